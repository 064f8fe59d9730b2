package distributed

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

// TestPlanUnsampledMatchesGaussian: without sampling and with τ negligible, the DDGauss
// bound is the Gaussian mechanism's α·Δ₂²/(2nσ²), so the planned central noise in grid
// units, √(nσ²), divided by the rounding's norm bound Δ₂, must equal the noise multiplier
// that dp.NoiseMultiplier finds for the Gaussian (a second method) to the bisections'
// precision.
func TestPlanUnsampledMatchesGaussian(t *testing.T) {
	o := PlanOptions{Dim: 95, Clip: 1, MinCohort: 10, MaxCohort: 20, MaxCustomers: 5000,
		SamplingRate: 1, Steps: 5, Epsilon: 2, Delta: 1e-6}
	p, err := MakePlan(o)
	if err != nil {
		t.Fatal(err)
	}
	z, err := dp.NoiseMultiplier(2, 1e-6, 1, 5, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := p.Params.LocalVariance.Float64()
	got := math.Sqrt(10*s2) / p.Params.NormBound()
	if math.Abs(got-z) > 2e-6*z {
		t.Errorf("√(nσ²)/Δ₂ = %v, want the Gaussian z = %v", got, z)
	}
	if p.Epsilon > 2 {
		t.Errorf("planned ε %v above the target 2", p.Epsilon)
	}
	// Minimal: 0.1% less variance overspends.
	q := p.Params
	q.LocalVariance = new(big.Rat).SetFloat64(s2 * 0.999)
	r, err := q.Release(10, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if e, _, _ := dp.Epsilon([]dp.Release{r}, 1e-6, dp.AccountantOptions{}); e <= 2 {
		t.Errorf("0.1%% less variance still meets the target (ε %v): the plan is not minimal", e)
	}
	// The modulus is what RequiredBits asks for the round's bounds.
	if b, err := RequiredBits(p.Params, 20, 5000, 1e-9); err != nil || b != p.Params.Bits {
		t.Errorf("bits %d, RequiredBits %d (%v)", p.Params.Bits, b, err)
	}
	// γ is C/2^k, the finest that fits: one step finer does not.
	finer := p.Params
	finer.Gamma /= 2
	finer.LocalVariance = new(big.Rat).Mul(p.Params.LocalVariance, big.NewRat(4, 1))
	if b, err := RequiredBits(finer, 20, 5000, 1e-9); err == nil && b <= MaxBits {
		t.Errorf("γ/2 would fit in %d bits too; the plan chose γ = %v", b, p.Params.Gamma)
	}
	if k := math.Log2(p.Params.Clip / p.Params.Gamma); k != math.Trunc(k) {
		t.Errorf("C/γ = 2^%v, want a power of two", k)
	}
}

// TestPlanSampled: with Poisson sampling the plan meets ε; with τ negligible the
// accountant's forward direction at integer orders is the subsampled Gaussian's own
// binomial sum (Mironov, Talwar and Zhang), so the planned z must not be below the
// Gaussian's z from dp.NoiseMultiplier (a second method) and, at 40 steps where that
// direction dominates, within 1% of it.
func TestPlanSampled(t *testing.T) {
	o := PlanOptions{Dim: 95, Clip: 1, MinCohort: 10, MaxCohort: 100, MaxCustomers: 23570,
		SamplingRate: 0.05, Steps: 40, Epsilon: 1, Delta: 1e-6}
	p, err := MakePlan(o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Epsilon > 1 {
		t.Errorf("ε %v above target", p.Epsilon)
	}
	z, err := dp.NoiseMultiplier(1, 1e-6, 0.05, 40, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.NoiseMultiplier < z*(1-1e-6) || p.NoiseMultiplier > 1.01*z {
		t.Errorf("noise multiplier %v, Gaussian %v: want within [1, 1.01]×", p.NoiseMultiplier, z)
	}
	t.Logf("γ = %v, σ² = %s, bits %d, z = %.4f (Gaussian %.4f)", p.Params.Gamma, p.Params.LocalVariance.FloatString(1), p.Params.Bits, p.NoiseMultiplier, z)
}

func TestPlanRejects(t *testing.T) {
	base := PlanOptions{Dim: 8, Clip: 1, MinCohort: 2, MaxCohort: 4, MaxCustomers: 10, SamplingRate: 1, Steps: 1, Epsilon: 1, Delta: 1e-6}
	for name, mut := range map[string]func(*PlanOptions){
		"min cohort 0":    func(o *PlanOptions) { o.MinCohort = 0 },
		"max below min":   func(o *PlanOptions) { o.MaxCohort = 1 },
		"no customers":    func(o *PlanOptions) { o.MaxCustomers = 0 },
		"epsilon 0":       func(o *PlanOptions) { o.Epsilon = 0 },
		"no steps":        func(o *PlanOptions) { o.Steps = 0 },
		"clip 0":          func(o *PlanOptions) { o.Clip = 0 },
		"too many to fit": func(o *PlanOptions) { o.MaxCustomers = 1 << 30; o.Bits = 16 },
	} {
		o := base
		mut(&o)
		if _, err := MakePlan(o); err == nil {
			t.Errorf("%s: planned", name)
		}
	}
	o := base
	o.MaxCustomers, o.Bits = 1<<30, 16
	if _, err := MakePlan(o); !errors.Is(err, ErrNoPlan) {
		t.Errorf("unfit modulus: err = %v, want ErrNoPlan", err)
	}
}
