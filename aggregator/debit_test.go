package aggregator

import (
	"errors"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// TestDebit checks the accountant's grouped composition with cached per-step
// curves against dp.Epsilon run on every row separately, with rows of several
// mechanisms interleaved; a second debit (curves now cached) must agree too,
// and the ledger after a debit must hold every step.
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
	a, err := newAccountant()
	if err != nil {
		t.Fatal(err)
	}
	groups, err := summarize(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("got %d groups, want 3 distinct mechanisms", len(groups))
	}
	for pass := range 2 {
		eps, after, err := a.debit(groups, []dp.Release{sgd, count}, mp)
		if err != nil {
			t.Fatal(err)
		}
		gotSGD, gotAll := eps[0], eps[1]
		if math.Abs(gotSGD-wantSGD) > 1e-12*wantSGD || math.Abs(gotAll-wantAll) > 1e-12*wantAll {
			t.Fatalf("pass %d: got ε %v then %v, want %v then %v", pass, gotSGD, gotAll, wantSGD, wantAll)
		}
		steps := 0
		for _, g := range after {
			steps += g.Steps
		}
		if want := 10 + 1 + 7 + 10 + 1 + 10 + 1; steps != want {
			t.Fatalf("pass %d: ledger after the debit has %d steps, want %d", pass, steps, want)
		}
	}
	// The summary after a debit composes to the ε the debit reported.
	eps, after, err := a.debit(groups, []dp.Release{sgd, count}, mp)
	if err != nil {
		t.Fatal(err)
	}
	gotAll := eps[1]
	if eps, err := a.epsilon(after, mp.Delta); err != nil || math.Abs(eps-gotAll) > 1e-12*gotAll {
		t.Fatalf("ε of the ledger after: got %v (%v), want %v", eps, err, gotAll)
	}
	mp.EpsilonCap = wantAll * 0.99
	if _, _, err := a.debit(groups, []dp.Release{sgd, count}, mp); !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Fatalf("cap below ε %v: got %v, want ErrBudgetExhausted", wantAll, err)
	}
	// A cap exactly at ε passes (dp.Filter's tolerance), as a plan spending it must.
	mp.EpsilonCap = wantAll
	if _, _, err := a.debit(groups, []dp.Release{sgd, count}, mp); err != nil {
		t.Fatalf("cap equal to ε: %v", err)
	}
}
