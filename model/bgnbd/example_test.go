package bgnbd_test

import (
	"fmt"
	"os"

	"github.com/kairos-fl/kairos/model/bgnbd"
)

// Fit the CDNOW calibration summary (weeks) and score one customer: two repeat
// purchases, the last 30.43 weeks after the first, observed for 38.86 weeks.
func Example() {
	f, err := os.Open("testdata/cdnow_customers_summary.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	customers, err := bgnbd.ReadSummary(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, ll, err := bgnbd.Fit(customers, bgnbd.FitOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("r=%.3f alpha=%.3f a=%.3f b=%.3f loglik=%.2f\n", p.R, p.Alpha, p.A, p.B, ll)

	c := bgnbd.Customer{X: 2, Tx: 30.43, T: 38.86}
	e, err := p.ExpectedPurchases(c, 39)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("P(alive)=%.3f E[purchases in 39 weeks]=%.3f P(purchase within 30 days)=%.3f\n",
		p.PAlive(c), e, p.ProbPurchaseWithin(c, 30.0/7))
	// The second line agrees with the closed forms evaluated by hand in Python at
	// SciPy's fit (testdata/reference_fit.py): P(alive) 0.72661, P(within 30 d) 0.13868.

	// Output:
	// r=0.243 alpha=4.414 a=0.793 b=2.426 loglik=-9582.43
	// P(alive)=0.727 E[purchases in 39 weeks]=1.226 P(purchase within 30 days)=0.139
}
