package aggregator

import (
	"errors"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// TestDebitCapBoundary pins where the aggregator's debit and the client's
// filter (dp.Filter) stop: a release that takes ε past the cap by 10⁻⁷
// relative ("1.0000001 > 1") is refused by both, one within the 10⁻⁹
// tolerance passes both. The vector is Opacus's (q 0.04, z 1.5, 2250 steps,
// δ 1e-5: 7.32911117143 with signed series); the default absolute series is
// an upper bound, 7.32933, so a cap at Opacus's figure is refused too.
func TestDebitCapBoundary(t *testing.T) {
	const opacus = 7.32911117143
	rel := dp.Release{Mechanism: dp.Gaussian, Q: 0.04, Z: 1.5, Steps: 2250}
	a, err := newAccountant()
	if err != nil {
		t.Fatal(err)
	}
	eps, _, err := dp.Epsilon([]dp.Release{rel}, 1e-5, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if eps < opacus || math.Abs(eps-7.32933) > 1e-5 {
		t.Fatalf("ε %v, want 7.32933 (≥ Opacus's %v)", eps, opacus)
	}
	signed, _, err := dp.Epsilon([]dp.Release{rel}, 1e-5, dp.AccountantOptions{Orders: dp.OpacusOrders(), Series: dp.SeriesSigned})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(signed-opacus) > 1e-6*opacus {
		t.Fatalf("signed series ε %v, want Opacus's %v", signed, opacus)
	}
	for _, c := range []struct {
		cap  float64
		pass bool
	}{
		{opacus, false},
		{eps / (1 + 1e-7), false},
		{eps / (1 + 2e-9), false},
		{eps / (1 + 5e-10), true},
		{eps, true},
	} {
		mp := policies.MerchantPolicy{EpsilonCap: c.cap, Delta: 1e-5}
		got, _, err := a.debit(nil, []dp.Release{rel}, mp)
		switch {
		case c.pass && err != nil:
			t.Errorf("cap %v: debit refused: %v", c.cap, err)
		case c.pass && math.Abs(got[0]-eps) > 1e-12*eps:
			t.Errorf("cap %v: debit ε %v, want %v", c.cap, got[0], eps)
		case !c.pass && !errors.Is(err, dp.ErrBudgetExhausted):
			t.Errorf("cap %v (ε %v): debit got %v, want ErrBudgetExhausted", c.cap, eps, err)
		}
		l, err := dp.NewLedger(dp.AccountantOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, ferr := dp.Filter{Cap: c.cap, Delta: 1e-5}.Check(l, rel)
		if c.pass != (ferr == nil) || !c.pass && !errors.Is(ferr, dp.ErrBudgetExhausted) {
			t.Errorf("cap %v: filter got %v, want pass %v", c.cap, ferr, c.pass)
		}
	}
}
