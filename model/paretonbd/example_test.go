package paretonbd_test

import (
	"fmt"
	"os"

	"github.com/kairos-fl/kairos/model/bgnbd"
	"github.com/kairos-fl/kairos/model/paretonbd"
)

// Fit the CDNOW calibration summary (weeks) and predict for a customer with
// two repeat purchases, the last in week 30.43 of 38.86.
func Example() {
	f, err := os.Open("../bgnbd/testdata/cdnow_customers_summary.csv")
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
	p, ll, err := paretonbd.Fit(customers, paretonbd.FitOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("r = %.3f, alpha = %.3f, s = %.3f, beta = %.3f, log-likelihood %.2f\n", p.R, p.Alpha, p.S, p.Beta, ll)
	c := paretonbd.Customer{X: 2, Tx: 30.43, T: 38.86}
	alive, _ := p.PAlive(c)
	e, _ := p.ExpectedPurchases(c, 39)
	buy, _ := p.ProbPurchaseWithin(c, 30.0/7)
	fmt.Printf("P(alive) %.3f, E[purchases in 39 weeks] %.3f, P(buy within 30 days) %.3f\n", alive, e, buy)
	// Output:
	// r = 0.553, alpha = 10.578, s = 0.606, beta = 11.668, log-likelihood -9594.97
	// P(alive) 0.869, E[purchases in 39 weeks] 1.455, P(buy within 30 days) 0.162
}
