package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/bgnbd"
	"github.com/kairos-fl/kairos/model/feature"
)

// ClassicFit is how the classic features' BG/NBD parameters were obtained.
type ClassicFit struct {
	Mode string `json:"mode"` // ClassicLocal or ClassicDP
	// Params are the BG/NBD parameters (weeks) every row's classic features use;
	// in JSON {"R","Alpha","A","B"}.
	Params bgnbd.Params `json:"params"`
	// Customers is the number of customers the fit saw: the true count for a
	// local fit, the DP count released for a DP fit.
	Customers float64 `json:"customers"`
	// Releases are the DP releases of a DP fit (count, then the gradient
	// sums), which the private training composes with its own.
	Releases []dp.Release `json:"releases,omitempty"`
}

// fitClassic fits BG/NBD on the summaries at cutoff ci (every purchase before
// the test cutoff) and sets the parameters in b.
func fitClassic(b *feature.Builder, ci int, cfg Config) (*ClassicFit, error) {
	sums, err := b.Summaries(ci)
	if err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, errors.New("no customer with a purchase before the test cutoff")
	}
	fit := &ClassicFit{Mode: cfg.Classic}
	switch cfg.Classic {
	case ClassicLocal:
		p, _, err := bgnbd.Fit(sums, bgnbd.FitOptions{})
		if err != nil {
			return nil, err
		}
		fit.Params, fit.Customers = p, float64(len(sums))
	case ClassicDP:
		o := *cfg.DP
		if err := o.defaults(); err != nil {
			return nil, err
		}
		if fit.Params, fit.Customers, fit.Releases, err = fitClassicPrivate(sums, o); err != nil {
			return nil, err
		}
	}
	if err := b.SetClassic(fit.Params); err != nil {
		return nil, err
	}
	return fit, nil
}

// classicSteps is the number of noisy gradient steps of the DP BG/NBD fit.
const classicSteps = 60

// fitClassicPrivate releases a Gaussian count of the customers, then fits
// BG/NBD with bgnbd.FitPrivate at a noise multiplier planned to spend
// o.ClassicShare·ε (count included) at δ.
func fitClassicPrivate(sums []bgnbd.Customer, o DPOptions) (bgnbd.Params, float64, []dp.Release, error) {
	ledger, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return bgnbd.Params{}, 0, nil, err
	}
	counter, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: o.CountNoise})
	if err != nil {
		return bgnbd.Params{}, 0, nil, fmt.Errorf("customer count: %w", err)
	}
	v := []float64{float64(len(sums))}
	if err := counter.AddNoise(v); err != nil {
		return bgnbd.Params{}, 0, nil, fmt.Errorf("customer count: %w", err)
	}
	if err := ledger.Add(counter.Release(1)); err != nil {
		return bgnbd.Params{}, 0, nil, err
	}
	noisyN := max(v[0], 1)
	plan, err := dp.PlanTraining(dp.PlanOptions{
		Epsilon: o.ClassicShare * o.Epsilon, Delta: o.Delta, SamplingRate: 1, Steps: classicSteps, Spent: ledger,
	})
	if err != nil {
		return bgnbd.Params{}, 0, nil, err
	}
	p, rel, err := bgnbd.FitPrivate(context.Background(), sums, bgnbd.PrivateFitOptions{
		Steps: plan.Steps, NoiseMultiplier: plan.NoiseMultiplier, Clip: classicClip, Customers: noisyN,
	})
	if err != nil {
		return bgnbd.Params{}, 0, nil, err
	}
	if err := ledger.Add(rel); err != nil {
		return bgnbd.Params{}, 0, nil, err
	}
	return p, math.Round(noisyN), ledger.Releases(), nil
}

// classicClip is the L2 clip of one customer's BG/NBD log-likelihood gradient
// in the DP fit.
const classicClip = 1
