package aggregator

import (
	"errors"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// TestDebit checks debit's grouped composition against the accountant run
// on every row separately, with rows of several mechanisms interleaved.
func TestDebit(t *testing.T) {
	rows := []LedgerRow{
		{Seq: 1, Release: dp.Release{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.2, Steps: 10}},
		{Seq: 2, Release: dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1}},
		{Seq: 3, Release: dp.Release{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.5, Steps: 7}},
		{Seq: 4, Release: dp.Release{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.2, Steps: 10}},
		{Seq: 5, Release: dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1}},
	}
	sgd := dp.Release{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.2, Steps: 10}
	count := dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1}
	var all []dp.Release
	for _, r := range rows {
		all = append(all, r.Release)
	}
	wantSGD, _, err := dp.Epsilon(append(all[:len(all):len(all)], sgd), 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantAll, _, err := dp.Epsilon(append(all[:len(all):len(all)], sgd, count), 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mp := policies.MerchantPolicy{EpsilonCap: wantAll * 1.01, Delta: 1e-6}
	gotSGD, gotAll, err := debit(rows, sgd, count, mp)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(gotSGD-wantSGD) > 1e-12*wantSGD || math.Abs(gotAll-wantAll) > 1e-12*wantAll {
		t.Fatalf("got ε %v then %v, want %v then %v", gotSGD, gotAll, wantSGD, wantAll)
	}
	mp.EpsilonCap = wantAll * 0.99
	if _, _, err := debit(rows, sgd, count, mp); !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Fatalf("cap below ε %v: got %v, want ErrBudgetExhausted", wantAll, err)
	}
}
