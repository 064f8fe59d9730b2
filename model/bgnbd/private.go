package bgnbd

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/dp"
)

// PublicPrior is the data-independent starting point of FitPrivate (in weeks):
// a slow, fairly loyal buyer population (mean rate r/α = 0.1 a week, mean
// dropout a/(a+b) = 1/7). It is a fixed guess, not fitted to any data set.
var PublicPrior = Params{R: 0.5, Alpha: 5, A: 0.5, B: 3}

// PrivateFitOptions configure FitPrivate.
type PrivateFitOptions struct {
	// Start is the public starting point; the zero value means PublicPrior.
	Start Params
	// Steps is the number of noisy full-batch gradient steps (default 60).
	Steps int
	// NoiseMultiplier z and Clip C: every step adds Gaussian noise of σ = z·C
	// (through the DP library) to the sum of the customers' gradients of the
	// log-likelihood in (log r, log α, log a, log b), each clipped to L2 norm
	// ≤ C (default 1). Plan z with dp.PlanTraining at sampling rate 1.
	NoiseMultiplier, Clip float64
	// Customers is the count the noisy sum is divided by. It must be public or
	// a DP release the caller has debited (not the true count).
	Customers float64
	// LearningRate is Adam's step size on the log-parameters (default 0.1),
	// decayed linearly to a twentieth over the steps.
	LearningRate float64
}

func (o *PrivateFitOptions) defaults() error {
	if o.Start == (Params{}) {
		o.Start = PublicPrior
	}
	if o.Steps == 0 {
		o.Steps = 60
	}
	if o.Clip == 0 {
		o.Clip = 1
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.1
	}
	finitePos := func(x float64) bool { return x > 0 && !math.IsInf(x, 0) }
	switch {
	case o.Start.Validate() != nil:
		return fmt.Errorf("start: %w", o.Start.Validate())
	case o.Steps < 0:
		return fmt.Errorf("steps %d, want > 0", o.Steps)
	case !finitePos(o.NoiseMultiplier):
		return fmt.Errorf("noise multiplier %v, want finite and > 0", o.NoiseMultiplier)
	case !finitePos(o.Clip):
		return fmt.Errorf("clip %v, want finite and > 0", o.Clip)
	case !finitePos(o.Customers):
		return fmt.Errorf("customers %v, want a finite count > 0", o.Customers)
	case !finitePos(o.LearningRate):
		return fmt.Errorf("learning rate %v, want finite and > 0", o.LearningRate)
	}
	return nil
}

// logBound keeps every log-parameter within [−logBound, logBound] during
// FitPrivate: noise must not walk a parameter to 0 or +Inf, where the
// likelihood is undefined.
const logBound = 10

// FitPrivate fits BG/NBD with differential privacy, the customer being the
// unit: Steps full-batch steps of Adam ascent on the mean log-likelihood,
// each from the sum over every customer of that customer's own gradient
// (CustomerGradient: it reads only the customer's x, t_x, T and the current,
// already released parameters) clipped to Clip, plus Gaussian noise of
// σ = z·Clip, divided by the public count. Only the noisy sums are released;
// the parameters are their post-processing. The returned release (sampling
// rate 1, z, Steps) is what to debit in the ledger: Steps compositions of the
// Gaussian mechanism with sensitivity Clip under adding or removing one
// customer.
//
// Clipping biases the fit towards the customers with small gradients when C is
// below their norms; the noise adds an error of order z·C/(Customers·√Steps)
// to the gradient. Both are measured in docs/benchmarks.md.
func FitPrivate(ctx context.Context, customers []Customer, o PrivateFitOptions) (Params, dp.Release, error) {
	fail := func(err error) (Params, dp.Release, error) {
		return Params{}, dp.Release{}, fmt.Errorf("bgnbd private fit: %w", err)
	}
	if err := o.defaults(); err != nil {
		return fail(err)
	}
	for i, c := range customers {
		if err := c.Validate(); err != nil {
			return fail(fmt.Errorf("customer %d: %w", i, err))
		}
	}
	sgd, err := dp.NewSGD(dp.SGDOptions{SamplingRate: 1, NoiseMultiplier: o.NoiseMultiplier, Clip: o.Clip, Customers: o.Customers})
	if err != nil {
		return fail(err)
	}
	th := []float64{math.Log(o.Start.R), math.Log(o.Start.Alpha), math.Log(o.Start.A), math.Log(o.Start.B)}
	dir := make([]float64, 4)
	mom, vel := make([]float64, 4), make([]float64, 4)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	for s := 1; s <= o.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		l := newLikelihood(fromLogParams(th))
		grad := func(i int, out []float64) float64 { return l.logLik(customers[i], out) }
		if err := sgd.Step(len(customers), grad, dir); err != nil {
			return fail(fmt.Errorf("step %d: %w", s, err))
		}
		lr := o.LearningRate * (1 - 0.95*float64(s-1)/float64(max(o.Steps-1, 1)))
		c1, c2 := 1-math.Pow(b1, float64(s)), 1-math.Pow(b2, float64(s))
		for k, g := range dir {
			mom[k] = b1*mom[k] + (1-b1)*g
			vel[k] = b2*vel[k] + (1-b2)*g*g
			// Ascent: the direction is the gradient of the log-likelihood.
			th[k] = min(max(th[k]+lr*(mom[k]/c1)/(math.Sqrt(vel[k]/c2)+eps), -logBound), logBound)
		}
	}
	p := fromLogParams(th)
	if err := p.Validate(); err != nil {
		return fail(errors.Join(errors.New("fit left the parameter space"), err))
	}
	return p, sgd.Release(), nil
}

// CustomerGradient adds to grad (len 4) the gradient of customer c's
// log-likelihood with respect to (log r, log α, log a, log b) and returns the
// log-likelihood. It depends on c and p only.
func (p Params) CustomerGradient(c Customer, grad []float64) (float64, error) {
	if len(grad) != 4 {
		return 0, fmt.Errorf("bgnbd customer gradient: grad has %d entries, want 4", len(grad))
	}
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("bgnbd customer gradient: %w", err)
	}
	if err := c.Validate(); err != nil {
		return 0, fmt.Errorf("bgnbd customer gradient: %w", err)
	}
	return p.logLik(c, grad), nil
}

func fromLogParams(th []float64) Params {
	return Params{R: math.Exp(th[0]), Alpha: math.Exp(th[1]), A: math.Exp(th[2]), B: math.Exp(th[3])}
}
