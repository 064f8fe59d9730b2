package main

import (
	"fmt"
	"math/big"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
)

// ddgFlags are the flags of the distributed discrete Gaussian (secure aggregation) in
// kairos dp epsilon and dp noise.
type ddgFlags struct {
	mechanism     string
	dim           int
	clip, gamma   float64
	beta          float64
	minCohort     int
	maxCohort     int
	maxCustomers  int
	bits          int
	wrap          float64
	localVariance string
}

func (f *ddgFlags) register(cmd *cobra.Command, planning bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.mechanism, "mechanism", "gaussian",
		`"gaussian" (plain DP-SGD) or "ddgauss" (secure aggregation with distributed discrete Gaussian noise)`)
	fs.IntVar(&f.dim, "dim", 0, "ddgauss: model parameters per update")
	fs.Float64Var(&f.clip, "clip", 1, "ddgauss: per-customer L2 clipping norm C")
	fs.Float64Var(&f.beta, "beta", 0, "ddgauss: conditional rounding's β (default e^-0.5)")
	fs.IntVar(&f.minCohort, "min-cohort", 0, "ddgauss: honest merchants the noise counts on (policy min_cohort)")
	if planning {
		fs.Float64Var(&f.gamma, "gamma", 0, "ddgauss: grid step γ (default: the finest C/2^k that fits --bits)")
		fs.IntVar(&f.maxCohort, "max-cohort", 0, "ddgauss: most merchants in a round (default --min-cohort)")
		fs.IntVar(&f.maxCustomers, "max-customers", 0, "ddgauss: most customers contributing to one round, all merchants together")
		fs.IntVar(&f.bits, "bits", 32, "ddgauss: largest modulus exponent b (sums mod 2^b)")
		fs.Float64Var(&f.wrap, "wrap-probability", 1e-9, "ddgauss: allowed chance that a round's sum wraps mod 2^b")
		return
	}
	fs.Float64Var(&f.gamma, "gamma", 0, "ddgauss: grid step γ")
	fs.StringVar(&f.localVariance, "local-variance", "", "ddgauss: each merchant's noise variance σ² in grid units (a number or a fraction n/d)")
}

func (f *ddgFlags) isDDG() (bool, error) {
	switch f.mechanism {
	case "gaussian", "":
		return false, nil
	case string(dp.DDGauss):
		if f.dim < 1 || f.minCohort < 1 {
			return true, fmt.Errorf("--mechanism ddgauss needs --dim and --min-cohort")
		}
		return true, nil
	default:
		return false, fmt.Errorf("--mechanism: %q unknown (want gaussian or ddgauss)", f.mechanism)
	}
}

// release is the ddgauss debit for kairos dp epsilon.
func (f *ddgFlags) release(q float64, steps int) (dp.Release, error) {
	s2, ok := new(big.Rat).SetString(f.localVariance)
	if !ok {
		return dp.Release{}, fmt.Errorf("--local-variance: %q is not a number or fraction", f.localVariance)
	}
	beta := f.beta
	if beta == 0 {
		beta = distributed.DefaultBeta()
	}
	p := distributed.Params{Dim: f.dim, Clip: f.clip, Gamma: f.gamma, Beta: beta, LocalVariance: s2, Bits: distributed.MaxBits}
	r, err := p.Release(f.minCohort, q, steps)
	if err != nil {
		return dp.Release{}, fmt.Errorf("--mechanism ddgauss: %w", err)
	}
	return r, nil
}

// plan runs distributed.MakePlan for kairos dp noise.
func (f *ddgFlags) plan(eps, delta, q float64, steps int, spent *dp.Ledger, opt dp.AccountantOptions) (distributed.Plan, error) {
	maxCohort := f.maxCohort
	if maxCohort == 0 {
		maxCohort = f.minCohort
	}
	if f.maxCustomers < 1 {
		return distributed.Plan{}, fmt.Errorf("--mechanism ddgauss needs --max-customers")
	}
	return distributed.MakePlan(distributed.PlanOptions{
		Dim: f.dim, Clip: f.clip, Beta: f.beta, MinCohort: f.minCohort, MaxCohort: maxCohort,
		MaxCustomers: f.maxCustomers, SamplingRate: q, Steps: steps, Epsilon: eps, Delta: delta,
		Spent: spent, Accountant: opt, Bits: f.bits, WrapProbability: f.wrap, Gamma: f.gamma,
	})
}

func writeDDGPlan(cmd *cobra.Command, p distributed.Plan, asJSON bool) error {
	if asJSON {
		return dpWriteJSON(cmd.OutOrStdout(), p)
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(),
		"ddgauss: γ = %g, local variance σ² = %s (grid units), b = %d bits, Δ₂ = %.6g, dim %d: "+
			"central noise %.6g per coordinate (z = %.6g) with the min cohort; ε = %.6g at δ = %g (best Rényi order %g)\n",
		p.Params.Gamma, p.Params.LocalVariance.FloatString(3), p.Params.Bits, p.Params.NormBound(), p.Params.PaddedDim(),
		p.NoiseStd, p.NoiseMultiplier, p.Epsilon, p.Delta, p.Order)
	return err
}
