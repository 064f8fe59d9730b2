// Package bgnbd fits and applies the BG/NBD model of repeat buying (Fader, Hardie
// and Lee, "Counting your customers the easy way", Marketing Science 24(2), 2005),
// Kairos's classical baseline and a source of features (P(alive), expected
// purchases) for the hazard model.
//
// While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α);
// after every repeat purchase they drop out with probability p ~ Beta(a, b). A customer
// is summarised by x (repeat purchases), t_x (time of the last purchase, measured
// from the first) and T (time from the first purchase to the end of calibration),
// all in one time unit of the caller's choice; parameters α and the predictions'
// horizons are in that same unit.
//
// Fit validates its input; the prediction methods (PAlive, ExpectedPurchases,
// ProbNoPurchase, ProbPurchaseWithin) assume parameters from Fit or
// Params.Validate and a customer that passes Customer.Validate.
package bgnbd

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/optimize"
)

// Errors a caller may act on.
var (
	// ErrInvalidCustomer means a summary is impossible (negative count, t_x > T, …).
	ErrInvalidCustomer = errors.New("invalid customer summary")
	// ErrInvalidParams means a parameter is not a positive finite number.
	ErrInvalidParams = errors.New("invalid parameters")
	// ErrNotConverged means no starting point led the optimiser to a stationary point.
	ErrNotConverged = errors.New("maximum likelihood did not converge")
	// ErrNoRepeats means no customer made a repeat purchase, so the dropout
	// parameters a and b are not identified by the data.
	ErrNoRepeats = errors.New("no repeat purchases: dropout parameters not identifiable")
	// ErrNoConvergence means a hypergeometric series did not converge within its
	// iteration budget.
	ErrNoConvergence = errors.New("series did not converge")
)

// Customer is one customer's calibration summary.
type Customer struct {
	X  float64 // repeat purchases: purchase periods (days) after the first
	Tx float64 // time of the last purchase, from the first purchase
	T  float64 // time from the first purchase to the end of calibration
}

// maxX bounds x: a billion distinct purchase days is already millions of years,
// and beyond about 1e300 lgamma overflows and the likelihood is NaN.
const maxX = 1e9

// Validate reports whether c is a possible summary: x a whole number in
// [0, 1e9], 0 ≤ t_x ≤ T, T > 0, and t_x = 0 when x = 0.
func (c Customer) Validate() error {
	for _, v := range [...]float64{c.X, c.Tx, c.T} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %+v has a non-finite value", ErrInvalidCustomer, c)
		}
	}
	switch {
	case c.X < 0 || c.X > maxX || c.X != math.Trunc(c.X):
		return fmt.Errorf("%w: x = %v, want a whole number in [0, %g]", ErrInvalidCustomer, c.X, float64(maxX))
	case c.T <= 0:
		return fmt.Errorf("%w: T = %v, want > 0", ErrInvalidCustomer, c.T)
	case c.Tx < 0 || c.Tx > c.T:
		return fmt.Errorf("%w: t_x = %v, want within [0, T = %v]", ErrInvalidCustomer, c.Tx, c.T)
	case c.X == 0 && c.Tx != 0:
		return fmt.Errorf("%w: t_x = %v with x = 0, want 0", ErrInvalidCustomer, c.Tx)
	}
	return nil
}

// Params are the four population parameters of the BG/NBD model.
type Params struct {
	R, Alpha float64 // purchase rate λ ~ Gamma(shape R, rate Alpha)
	A, B     float64 // dropout probability p ~ Beta(A, B)
}

// Validate reports whether every parameter is positive and finite.
func (p Params) Validate() error {
	for _, v := range [...]float64{p.R, p.Alpha, p.A, p.B} {
		if !(v > 0) || math.IsInf(v, 1) {
			return fmt.Errorf("%w: %+v, want all positive and finite", ErrInvalidParams, p)
		}
	}
	return nil
}

// MeanDropout returns E[p] = a/(a+b), the mean probability that a customer
// drops out after a purchase. Below about 1e-6 the fit is on the no-dropout
// boundary described at Fit: the predictions are the NBD's, and b is not
// identified by the data.
func (p Params) MeanDropout() float64 { return p.A / (p.A + p.B) }

// LogLikelihood returns Σ log L(r, α, a, b | x, t_x, T) over customers.
func (p Params) LogLikelihood(customers []Customer) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("bgnbd log-likelihood: %w", err)
	}
	var ll float64
	l := newLikelihood(p)
	for i, c := range customers {
		if err := c.Validate(); err != nil {
			return 0, fmt.Errorf("bgnbd log-likelihood: customer %d: %w", i, err)
		}
		ll += l.logLik(c, nil)
	}
	return ll, nil
}

// logLik returns one customer's log-likelihood; see likelihood.logLik.
func (p Params) logLik(c Customer, grad []float64) float64 {
	return newLikelihood(p).logLik(c, grad)
}

// likelihood holds the parts of the log-likelihood and its gradient that
// depend on the parameters only, so that each customer costs three lgamma and
// three digamma calls instead of six of each.
type likelihood struct {
	p                 Params
	logAlpha, logA    float64
	lgR, lgAB, lgB    float64
	digR, digAB, digB float64
}

func newLikelihood(p Params) likelihood {
	l := likelihood{p: p, logAlpha: math.Log(p.Alpha), logA: math.Log(p.A)}
	l.lgR, _ = math.Lgamma(p.R)
	l.lgAB, _ = math.Lgamma(p.A + p.B)
	l.lgB, _ = math.Lgamma(p.B)
	l.digR = mathext.Digamma(p.R)
	l.digAB = mathext.Digamma(p.A + p.B)
	l.digB = mathext.Digamma(p.B)
	return l
}

// logLik returns one customer's log-likelihood (FHL 2005, section 3)
//
//	L = B(a, b+x)/B(a, b) · Γ(r+x)α^r/Γ(r) · [ (α+T)^−(r+x) + δ_{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]
//
// computed in log space with lgamma so that large x does not overflow. If grad
// is not nil it receives ∂ log L / ∂(log r, log α, log a, log b), added to its
// current contents.
func (l likelihood) logLik(c Customer, grad []float64) float64 {
	r, al, a, b := l.p.R, l.p.Alpha, l.p.A, l.p.B
	x := c.X
	lgRX, _ := math.Lgamma(r + x)
	lgBX, _ := math.Lgamma(b + x)
	lgABX, _ := math.Lgamma(a + b + x)
	a1 := lgRX - l.lgR + r*l.logAlpha
	a2 := l.lgAB + lgBX - l.lgB - lgABX
	logAT := math.Log(al + c.T)
	a3 := -(r + x) * logAT
	ll := a1 + a2 + a3
	w4 := 0.0 // weight of the "dropped out after the last purchase" branch
	var logATx float64
	if x > 0 {
		logATx = math.Log(al + c.Tx)
		a4 := l.logA - math.Log(b+x-1) - (r+x)*logATx
		// log(e^a3 + e^a4) without overflow.
		m := math.Max(a3, a4)
		lse := m + math.Log(math.Exp(a3-m)+math.Exp(a4-m))
		ll = a1 + a2 + lse
		w4 = math.Exp(a4 - lse)
	}
	if grad == nil {
		return ll
	}
	w3 := 1 - w4
	digABX := mathext.Digamma(a + b + x)
	dr := mathext.Digamma(r+x) - l.digR + l.logAlpha - w3*logAT
	dal := r/al - w3*(r+x)/(al+c.T)
	da := l.digAB - digABX
	db := l.digAB + mathext.Digamma(b+x) - l.digB - digABX
	if x > 0 {
		dr -= w4 * logATx
		dal -= w4 * (r + x) / (al + c.Tx)
		da += w4 / a
		db -= w4 / (b + x - 1)
	}
	// Chain rule for θ = log p: ∂/∂θ = p·∂/∂p.
	grad[0] += r * dr
	grad[1] += al * dal
	grad[2] += a * da
	grad[3] += b * db
	return ll
}

// FitOptions tune Fit. The zero value is ready to use.
type FitOptions struct {
	// Starts are the starting points tried; the best converged fit wins.
	// Empty means a default set spread over plausible shapes.
	Starts []Params
	// MaxIterations caps each optimiser run (0 means 1000).
	MaxIterations int
}

// defaultStarts cover slow and fast buyers, loyal and fickle ones; on CDNOW
// every one of them reaches the same optimum.
var defaultStarts = []Params{
	{R: 1, Alpha: 1, A: 1, B: 1},
	{R: 0.5, Alpha: 5, A: 0.5, B: 3},
	{R: 0.1, Alpha: 20, A: 2, B: 0.5},
	{R: 3, Alpha: 0.5, A: 0.2, B: 10},
}

// Group is a distinct customer summary and how many customers share it.
type Group struct {
	C Customer
	N float64
}

// GroupSummaries validates customers and returns their distinct summaries
// with multiplicities, in a fixed order (so that sums, and so fits, are
// reproducible), and the total of repeat purchases. Many customers share a
// summary (every x = 0 customer of one cohort), so a likelihood summed over
// groups costs a fraction of one summed over customers.
func GroupSummaries(customers []Customer) ([]Group, float64, error) {
	counts := make(map[Customer]float64)
	repeats := 0.0
	for i, c := range customers {
		if err := c.Validate(); err != nil {
			return nil, 0, fmt.Errorf("customer %d: %w", i, err)
		}
		counts[c]++
		repeats += c.X
	}
	groups := make([]Group, 0, len(counts))
	for c, n := range counts {
		groups = append(groups, Group{c, n})
	}
	sort.Slice(groups, func(i, j int) bool {
		gi, gj := groups[i].C, groups[j].C
		if gi.X != gj.X {
			return gi.X < gj.X
		}
		if gi.Tx != gj.Tx {
			return gi.Tx < gj.Tx
		}
		return gi.T < gj.T
	})
	return groups, repeats, nil
}

// Fit finds the maximum-likelihood parameters for customers and returns them
// with the log-likelihood there. It optimises over log-parameters with BFGS and
// the analytic gradient from each starting point, falls back on Nelder–Mead
// when no run ends at a stationary point (see minimize), and keeps the best
// stationary point; if there is none, it returns ErrNotConverged. Data
// without a single repeat purchase cannot identify a and b: ErrNoRepeats.
//
// On data with no visible dropout (Online Retail) the likelihood has no
// interior maximum: it rises ever more slowly as a → 0, where BG/NBD becomes
// the NBD and b no longer matters. Fit then returns a point on that plateau,
// with a tiny a and an arbitrary large b; MeanDropout tells such a fit apart.
func Fit(customers []Customer, opts FitOptions) (Params, float64, error) {
	if len(customers) == 0 {
		return Params{}, 0, errors.New("bgnbd fit: no customers")
	}
	starts := opts.Starts
	if len(starts) == 0 {
		starts = defaultStarts
	}
	for i, s := range starts {
		if err := s.Validate(); err != nil {
			return Params{}, 0, fmt.Errorf("bgnbd fit: start %d: %w", i, err)
		}
	}
	if opts.MaxIterations < 0 {
		return Params{}, 0, fmt.Errorf("bgnbd fit: max iterations %d, want ≥ 0", opts.MaxIterations)
	}
	maxIter := opts.MaxIterations
	if maxIter == 0 {
		maxIter = 1000
	}

	groups, repeats, err := GroupSummaries(customers)
	if err != nil {
		return Params{}, 0, fmt.Errorf("bgnbd fit: %w", err)
	}
	if repeats == 0 {
		return Params{}, 0, fmt.Errorf("bgnbd fit: %d customers: %w", len(customers), ErrNoRepeats)
	}
	n := float64(len(customers))

	fromLog := func(th []float64) Params {
		return Params{R: math.Exp(th[0]), Alpha: math.Exp(th[1]), A: math.Exp(th[2]), B: math.Exp(th[3])}
	}
	// The objective is the mean negative log-likelihood, so that tolerances do
	// not depend on the number of customers.
	objective := func(th, grad []float64) float64 {
		clear(grad) // grad is nil when only the value is wanted
		p := fromLog(th)
		if p.Validate() != nil {
			return math.Inf(1)
		}
		var g [4]float64
		var ll float64
		l := newLikelihood(p)
		for _, w := range groups {
			var gg []float64
			if grad != nil {
				g = [4]float64{}
				gg = g[:]
			}
			ll += w.N * l.logLik(w.C, gg)
			for k := range grad {
				grad[k] -= w.N * g[k] / n
			}
		}
		return -ll / n
	}
	// The line search asks for the value and the gradient at the same point in
	// two calls; computing both once and caching the last point halves the work.
	var (
		lastTh [4]float64
		lastF  float64
		lastG  [4]float64
		cached bool
	)
	eval := func(th []float64) {
		if cached && [4]float64(th) == lastTh {
			return
		}
		lastG = [4]float64{}
		lastF = objective(th, lastG[:])
		lastTh, cached = [4]float64(th), true
	}
	problem := optimize.Problem{
		Func: func(th []float64) float64 { eval(th); return lastF },
		Grad: func(grad, th []float64) { eval(th); copy(grad, lastG[:]) },
	}
	x0 := make([][]float64, len(starts))
	for i, s := range starts {
		x0[i] = []float64{math.Log(s.R), math.Log(s.Alpha), math.Log(s.A), math.Log(s.B)}
	}
	th, err := minimize(problem, x0, maxIter)
	if err != nil {
		return Params{}, 0, fmt.Errorf("bgnbd fit: %w", err)
	}
	best := fromLog(th)
	// Report the likelihood summed directly, not via the scaled objective.
	ll, err := best.LogLikelihood(customers)
	if err != nil {
		return Params{}, 0, fmt.Errorf("bgnbd fit: %w", err)
	}
	return best, ll, nil
}
