// Package paretonbd fits and applies the Pareto/NBD model of repeat buying
// (Schmittlein, Morrison and Colombo, "Counting your customers: who are they
// and what will they do next?", Management Science 33(1), 1987), with the
// likelihood in the form of Fader and Hardie, "A note on deriving the
// Pareto/NBD model and related expressions" (2005).
//
// While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α)
// and lives an exponential lifetime with rate μ ~ Gamma(s, β), independent of
// λ; unlike BG/NBD, a customer can drop out at any time, not only right after
// a purchase. A customer is summarised as in package bgnbd: x repeat
// purchases, t_x the time of the last one and T the time to the end of
// calibration, both from the first purchase, in one time unit of the caller's
// choice, which is also the unit of α, β and the prediction horizons.
//
// Fit validates its input; the prediction methods assume parameters from Fit
// or Params.Validate and a customer that passes Customer.Validate.
package paretonbd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/integrate/quad"

	"github.com/kairos-fl/kairos/model/bgnbd"
)

// Customer is one customer's calibration summary, the same (x, t_x, T) as
// BG/NBD's, so that bgnbd.Summarize, bgnbd.SummarizeBefore and
// bgnbd.ReadSummary serve both models.
type Customer = bgnbd.Customer

// Errors a caller may act on.
var (
	// ErrInvalidParams means a parameter is not a positive finite number.
	ErrInvalidParams = errors.New("invalid parameters")
	// ErrNotConverged means no starting point led the optimiser to a stationary point.
	ErrNotConverged = errors.New("maximum likelihood did not converge")
	// ErrNoRepeats means no customer made a repeat purchase, so the data say
	// nothing about purchase rates beyond the first purchase.
	ErrNoRepeats = errors.New("no repeat purchases: parameters not identifiable")
	// ErrNoConvergence means a hypergeometric series did not converge within
	// its iteration budget (its argument was too close to 1).
	ErrNoConvergence = errors.New("series did not converge")
)

// Params are the four population parameters of the Pareto/NBD model.
type Params struct {
	R, Alpha float64 // purchase rate λ ~ Gamma(shape R, rate Alpha)
	S, Beta  float64 // dropout rate μ ~ Gamma(shape S, rate Beta)
}

// Validate reports whether every parameter is positive and finite.
func (p Params) Validate() error {
	for _, v := range [...]float64{p.R, p.Alpha, p.S, p.Beta} {
		if !(v > 0) || math.IsInf(v, 1) {
			return fmt.Errorf("%w: %+v, want all positive and finite", ErrInvalidParams, p)
		}
	}
	return nil
}

// LogLikelihood returns Σ log L(r, α, s, β | x, t_x, T) over customers.
func (p Params) LogLikelihood(customers []Customer) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("pareto/nbd log-likelihood: %w", err)
	}
	var ll float64
	for i, c := range customers {
		if err := c.Validate(); err != nil {
			return 0, fmt.Errorf("pareto/nbd log-likelihood: customer %d: %w", i, err)
		}
		l, err := p.logLik(c)
		if err != nil {
			return 0, fmt.Errorf("pareto/nbd log-likelihood: customer %d (%+v): %w", i, c, err)
		}
		ll += l
	}
	return ll, nil
}

// parts are the pieces of one customer's likelihood that the predictions
// share: L = e^lead · (e^alive + e^dead), where e^alive is the part of
// customers still alive at T and e^dead of those who died in (t_x, T].
type parts struct {
	lead, alive, dead float64
}

// logLik returns one customer's log-likelihood (Fader and Hardie 2005, eq. 22):
//
//	L = Γ(r+x) α^r β^s / Γ(r) · [ 1/((α+T)^(r+x) (β+T)^s) + s/(r+s+x) · A₀ ]
//
// with, for α ≥ β,
//
//	A₀ = ₂F₁(r+s+x, s+1; r+s+x+1; (α−β)/(α+t_x)) / (α+t_x)^(r+s+x)
//	   − ₂F₁(r+s+x, s+1; r+s+x+1; (α−β)/(α+T)) / (α+T)^(r+s+x)
//
// and, for α < β, the same with α and β swapped and s+1 replaced by r+x.
// Choosing the form by the sign of α−β keeps the argument of ₂F₁ in [0, 1),
// where its series has positive terms and converges; everything is done in
// logs so that large x or T does not overflow.
func (p Params) logLik(c Customer) (float64, error) {
	q, err := p.parts(c)
	if err != nil {
		return 0, err
	}
	return q.lead + logAddExp(q.alive, q.dead), nil
}

func (p Params) parts(c Customer) (parts, error) {
	r, al, s, be := p.R, p.Alpha, p.S, p.Beta
	x := c.X
	lgRX, _ := math.Lgamma(r + x)
	lgR, _ := math.Lgamma(r)
	lead := lgRX - lgR + r*math.Log(al) + s*math.Log(be)
	alive := -(r+x)*math.Log(al+c.T) - s*math.Log(be+c.T)

	dead, err := p.logDead(c)
	if err != nil {
		return parts{}, err
	}
	return parts{lead: lead, alive: alive, dead: dead}, nil
}

// seriesMaxZ is the largest ₂F₁ argument for which logDead sums the series;
// beyond it (β ≫ α or α ≫ β relative to t_x, as on the no-dropout plateau
// β → ∞) the series needs thousands of terms per customer and logDead
// integrates instead.
const seriesMaxZ = 0.95

// logDead returns log(s/(r+s+x) · A₀), the log of the likelihood share of the
// customers who died in (t_x, T] (−Inf when t_x = T), by the ₂F₁ form of
// logLik when the series converges quickly and by logDeadQuad otherwise.
func (p Params) logDead(c Customer) (float64, error) {
	r, al, s, be := p.R, p.Alpha, p.S, p.Beta
	x := c.X
	m := r + s + x
	// big is max(α, β); b is the second parameter of ₂F₁ that goes with it.
	big, small, b := al, be, s+1
	if al < be {
		big, small, b = be, al, r+x
	}
	if (big-small)/(big+c.Tx) > seriesMaxZ {
		return p.logDeadQuad(c), nil
	}
	f := func(t float64) (float64, error) {
		h, err := logHyp2F1(m, b, m+1, (big-small)/(big+t))
		return h - m*math.Log(big+t), err
	}
	lx, err := f(c.Tx)
	if err != nil {
		return 0, err
	}
	lT, err := f(c.T)
	if err != nil {
		return 0, err
	}
	// A₀ = e^lx − e^lT ≥ 0 (the integral of a positive function over
	// (t_x, T]); it is 0 when t_x = T, and rounding may make lT ≥ lx there.
	if lT >= lx {
		return math.Inf(-1), nil
	}
	return math.Log(s/m) + lx + math.Log(-math.Expm1(lT-lx)), nil
}

// logDeadQuad returns the same as logDead from the integral over the death
// time τ that A₀ solves in closed form (Fader and Hardie 2005, eq. 19):
//
//	s/(r+s+x) · A₀ = s · ∫_{t_x}^T (α+τ)^−(r+x) (β+τ)^−(s+1) dτ,
//
// by Gauss–Legendre quadrature on pieces that grow geometrically away from
// the integrand's singularities at τ = −α and τ = −β (as in
// ProbPurchaseWithin), with the integrand scaled by its value at t_x, its
// largest, so that nothing underflows.
func (p Params) logDeadQuad(c Customer) float64 {
	if c.Tx >= c.T {
		return math.Inf(-1)
	}
	rx, s1 := p.R+c.X, p.S+1
	h := func(tau float64) float64 { return -rx*math.Log(p.Alpha+tau) - s1*math.Log(p.Beta+tau) }
	h0 := h(c.Tx)
	g := func(tau float64) float64 { return math.Exp(h(tau) - h0) }
	m := math.Min(p.Alpha, p.Beta)
	var sum float64
	for u := c.Tx; u < c.T; {
		w := math.Min((u+m)/2, c.T-u)
		sum += quad.Fixed(g, u, u+w, 20, quad.Legendre{}, 0)
		u += w
	}
	return math.Log(p.S) + h0 + math.Log(sum)
}

// logAddExp returns log(e^a + e^b) without overflow.
func logAddExp(a, b float64) float64 {
	if math.IsInf(b, -1) {
		return a
	}
	if math.IsInf(a, -1) {
		return b
	}
	m := math.Max(a, b)
	return m + math.Log(math.Exp(a-m)+math.Exp(b-m))
}

// FitOptions tune Fit. The zero value is ready to use.
type FitOptions struct {
	// Starts are the starting points tried; the best stationary point wins.
	// Empty means a default set spread over plausible shapes.
	Starts []Params
	// MaxIterations caps each optimiser run (0 means 1000).
	MaxIterations int
}

// defaultStarts cover slow and fast buyers, short and long lifetimes; on
// CDNOW every one of them reaches the same optimum.
var defaultStarts = []Params{
	{R: 1, Alpha: 1, S: 1, Beta: 1},
	{R: 0.5, Alpha: 10, S: 0.5, Beta: 10},
	{R: 0.1, Alpha: 20, S: 2, Beta: 5},
}

// Fit finds the maximum-likelihood parameters for customers and returns them
// with the log-likelihood there. It optimises over log-parameters, from every
// start, with Nelder–Mead and then BFGS on a central-difference gradient,
// and keeps the best run that ended at a stationary point; if none did, it
// returns ErrNotConverged with the gradient where the best run stopped. Data
// without a single repeat purchase: ErrNoRepeats.
func Fit(customers []Customer, opts FitOptions) (Params, float64, error) {
	if len(customers) == 0 {
		return Params{}, 0, errors.New("pareto/nbd fit: no customers")
	}
	starts := opts.Starts
	if len(starts) == 0 {
		starts = defaultStarts
	}
	for i, s := range starts {
		if err := s.Validate(); err != nil {
			return Params{}, 0, fmt.Errorf("pareto/nbd fit: start %d: %w", i, err)
		}
	}
	if opts.MaxIterations < 0 {
		return Params{}, 0, fmt.Errorf("pareto/nbd fit: max iterations %d, want ≥ 0", opts.MaxIterations)
	}
	maxIter := opts.MaxIterations
	if maxIter == 0 {
		maxIter = 1000
	}

	// Customers who share a summary are evaluated once, with a weight.
	groups, repeats, err := bgnbd.GroupSummaries(customers)
	if err != nil {
		return Params{}, 0, fmt.Errorf("pareto/nbd fit: %w", err)
	}
	if repeats == 0 {
		return Params{}, 0, fmt.Errorf("pareto/nbd fit: %d customers: %w", len(customers), ErrNoRepeats)
	}
	n := float64(len(customers))

	// The objective is the mean negative log-likelihood over log-parameters,
	// +Inf where a series does not converge, so that the optimiser backs off.
	objective := func(th []float64) float64 {
		p := fromLog(th)
		if p.Validate() != nil {
			return math.Inf(1)
		}
		var ll float64
		for _, w := range groups {
			l, err := p.logLik(w.C)
			if err != nil {
				return math.Inf(1)
			}
			ll += w.N * l
		}
		return -ll / n
	}
	x0 := make([][]float64, len(starts))
	for i, s := range starts {
		x0[i] = []float64{math.Log(s.R), math.Log(s.Alpha), math.Log(s.S), math.Log(s.Beta)}
	}
	th, err := minimize(objective, x0, maxIter)
	if err != nil {
		return Params{}, 0, fmt.Errorf("pareto/nbd fit: %w", err)
	}
	best := fromLog(th)
	ll, err := best.LogLikelihood(customers)
	if err != nil {
		return Params{}, 0, fmt.Errorf("pareto/nbd fit: %w", err)
	}
	return best, ll, nil
}

func fromLog(th []float64) Params {
	return Params{R: math.Exp(th[0]), Alpha: math.Exp(th[1]), S: math.Exp(th[2]), Beta: math.Exp(th[3])}
}
