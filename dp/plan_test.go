package dp_test

import (
	"errors"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

func TestPlanTraining(t *testing.T) {
	tests := []struct {
		name       string
		opt        dp.PlanOptions
		wantQ      float64
		wantSteps  int
		wantZAbout float64 // 0: not checked
	}{
		{"opacus", dp.PlanOptions{Epsilon: 8, Delta: 1e-5, Customers: 2500, BatchSize: 100, Epochs: 90,
			Accountant: dp.AccountantOptions{Orders: dp.OpacusOrders(), Series: dp.SeriesSigned}}, 0.04, 2250, 1.416},
		{"tf mnist", dp.PlanOptions{Epsilon: 0.7242234026109595, Delta: 1e-5, Customers: 60000, BatchSize: 150, Epochs: 15},
			0.0025, 6000, 1.3},
		{"small shop", dp.PlanOptions{Epsilon: 1, Delta: 1e-6, Customers: 800, SamplingRate: 0.05, Epochs: 3}, 0.05, 60, 0},
		{"full batch", dp.PlanOptions{Epsilon: 2, Delta: 1e-5, SamplingRate: 1, Epochs: 10}, 1, 10, 0},
		{"by steps", dp.PlanOptions{Epsilon: 8, Delta: 1e-5, SamplingRate: 0.04, Steps: 2250,
			Accountant: dp.AccountantOptions{Orders: dp.OpacusOrders(), Series: dp.SeriesSigned}}, 0.04, 2250, 1.416},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := dp.PlanTraining(tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if relErr(p.SamplingRate, tt.wantQ) > 1e-12 || p.Steps != tt.wantSteps {
				t.Errorf("q, steps = %v, %d, want %v, %d", p.SamplingRate, p.Steps, tt.wantQ, tt.wantSteps)
			}
			if tt.wantZAbout != 0 && math.Abs(p.NoiseMultiplier-tt.wantZAbout) > 5e-4 {
				t.Errorf("z = %v, want about %v", p.NoiseMultiplier, tt.wantZAbout)
			}
			// Recompute ε of the plan in a fresh ledger.
			l, _ := dp.NewLedger(tt.opt.Accountant)
			if err := l.Add(p.Release()); err != nil {
				t.Fatal(err)
			}
			eps, _, _ := l.Epsilon(tt.opt.Delta)
			if eps > tt.opt.Epsilon || relErr(eps, tt.opt.Epsilon) > 1e-3 {
				t.Errorf("ε of plan = %.10g, want ≤ %v and within 1e-3 relative", eps, tt.opt.Epsilon)
			}
			if eps != p.Epsilon {
				t.Errorf("Plan.Epsilon = %v, recomputed %v", p.Epsilon, eps)
			}
			// The SGD built from the plan adds at least the planned noise, so it is charged
			// at most the target.
			s, err := dp.NewSGD(dp.SGDOptions{SamplingRate: p.SamplingRate, NoiseMultiplier: p.NoiseMultiplier, Clip: 1})
			if err != nil {
				t.Fatal(err)
			}
			r := s.Release()
			r.Steps = p.Steps
			actual, _, _ := dp.Epsilon([]dp.Release{r}, tt.opt.Delta, tt.opt.Accountant)
			if actual > tt.opt.Epsilon || relErr(actual, tt.opt.Epsilon) > 5e-3 {
				t.Errorf("ε charged for the SGD = %.8g, want ≤ %v and within 5e-3", actual, tt.opt.Epsilon)
			}
		})
	}
}

func TestPlanTrainingInvalid(t *testing.T) {
	bad := []dp.PlanOptions{
		{Epsilon: 1, Delta: 1e-5, Customers: 0, BatchSize: 10, Epochs: 1},
		{Epsilon: 1, Delta: 1e-5, SamplingRate: 0.1, Epochs: 1, Steps: 10},
		{Epsilon: 1, Delta: 1e-5, SamplingRate: 0.1},
		{Epsilon: 1, Delta: 1e-5, Customers: 100, SamplingRate: 0.1, BatchSize: 10, Epochs: 1},
		{Epsilon: 1, Delta: 1e-5, Customers: 100, BatchSize: 1000, Epochs: 1},
		{Epsilon: 1, Delta: 1e-5, Customers: 100, SamplingRate: 0.1, Epochs: 0},
		{Epsilon: 0, Delta: 1e-5, Customers: 100, SamplingRate: 0.1, Epochs: 1},
		{Epsilon: 1, Delta: 0, Customers: 100, SamplingRate: 0.1, Epochs: 1},
		{Epsilon: 1, Delta: 1e-5, Customers: 100, Epochs: 1},
	}
	for _, o := range bad {
		if _, err := dp.PlanTraining(o); !errors.Is(err, dp.ErrInvalidParameter) {
			t.Errorf("PlanTraining(%+v) = %v, want ErrInvalidParameter", o, err)
		}
	}
}

func TestFilter(t *testing.T) {
	f := dp.Filter{Cap: 3, Delta: 1e-5}
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	round := dp.Release{Q: 0.01, Z: 1.1, Steps: 50}
	var spent []float64
	for {
		eps, err := f.Check(l, round)
		if errors.Is(err, dp.ErrBudgetExhausted) {
			if eps <= f.Cap {
				t.Errorf("refused with ε after = %v ≤ cap %v", eps, f.Cap)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if eps > f.Cap {
			t.Fatalf("admitted a release to ε %v > cap %v", eps, f.Cap)
		}
		if err := l.Add(round); err != nil {
			t.Fatal(err)
		}
		spent = append(spent, eps)
		if len(spent) > 1000 {
			t.Fatal("filter never refused")
		}
	}
	if len(spent) < 2 {
		t.Fatalf("only %d rounds admitted, want several", len(spent))
	}
	for i := 1; i < len(spent); i++ {
		if spent[i] <= spent[i-1] {
			t.Errorf("ε after round %d = %v not above %v", i, spent[i], spent[i-1])
		}
	}
	// A refusal does not debit.
	if n := len(l.Releases()); n != len(spent) {
		t.Errorf("ledger holds %d releases, want %d", n, len(spent))
	}

	// A plan calibrated to spend exactly the cap passes the filter (tolerance 1e-9).
	p, err := dp.PlanTraining(dp.PlanOptions{Epsilon: 2, Delta: 1e-5, Customers: 1000, BatchSize: 50, Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := dp.NewLedger(dp.AccountantOptions{})
	if _, err := (dp.Filter{Cap: p.Epsilon, Delta: 1e-5}).Check(fresh, p.Release()); err != nil {
		t.Errorf("plan at the cap refused: %v", err)
	}
	if _, err := (dp.Filter{Cap: p.Epsilon * (1 - 1e-6), Delta: 1e-5}).Check(fresh, p.Release()); !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Errorf("plan 1e-6 above the cap: err = %v, want ErrBudgetExhausted", err)
	}
	for _, bad := range []dp.Filter{{Cap: 0, Delta: 1e-5}, {Cap: 1, Delta: 0}, {Cap: math.Inf(1), Delta: 1e-5}} {
		if _, err := bad.Check(fresh, round); !errors.Is(err, dp.ErrInvalidParameter) {
			t.Errorf("%+v.Check = %v, want ErrInvalidParameter", bad, err)
		}
	}
	if _, err := f.Check(fresh, dp.Release{Q: 2, Z: 1, Steps: 1}); !errors.Is(err, dp.ErrInvalidParameter) {
		t.Errorf("Check(q=2) = %v, want ErrInvalidParameter", err)
	}
}

func TestPlanTrainingAfterSpending(t *testing.T) {
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Add(dp.Release{Q: 0.02, Z: 1.2, Steps: 100}); err != nil {
			t.Fatal(err)
		}
	}
	spent, _, _ := l.Epsilon(1e-6)
	target := spent + 1
	p, err := dp.PlanTraining(dp.PlanOptions{Epsilon: target, Delta: 1e-6, SamplingRate: 0.02, Steps: 200, Spent: l})
	if err != nil {
		t.Fatal(err)
	}
	// Independently: compose all four releases from scratch.
	all := append(l.Releases(), p.Release())
	total, _, _ := dp.Epsilon(all, 1e-6, dp.AccountantOptions{})
	if total > target || relErr(total, target) > 1e-6 {
		t.Errorf("ε of ledger + plan = %.10g, want ≤ %v and within 1e-6", total, target)
	}
	if p.Epsilon != total {
		t.Errorf("Plan.Epsilon = %v, recomputed %v", p.Epsilon, total)
	}
	// More noise than a fresh plan would need for the same total.
	fresh, _ := dp.PlanTraining(dp.PlanOptions{Epsilon: target, Delta: 1e-6, SamplingRate: 0.02, Steps: 200})
	if p.NoiseMultiplier <= fresh.NoiseMultiplier {
		t.Errorf("z after spending = %v, want > fresh %v", p.NoiseMultiplier, fresh.NoiseMultiplier)
	}
	if _, err := dp.PlanTraining(dp.PlanOptions{Epsilon: spent * 0.9, Delta: 1e-6, SamplingRate: 0.02, Steps: 200, Spent: l}); !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Errorf("plan below what is spent: err = %v, want ErrBudgetExhausted", err)
	}
}
