package dp

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Mechanism names the kind of a Release.
type Mechanism string

// The mechanisms a Ledger can compose.
const (
	// Gaussian is the (Poisson-subsampled) Gaussian mechanism: Steps applications with
	// sampling rate Q (1 = no sampling) and noise multiplier Z = σ / L2 sensitivity.
	// It is what an empty Mechanism means.
	Gaussian Mechanism = "gaussian"
	// ZCDP is a release known only by its zero-concentrated-DP parameter Rho, repeated Steps
	// times; its RDP curve is α·ρ.
	ZCDP Mechanism = "zcdp"
	// Pure is an ε-DP release (Laplace noise), repeated Steps times. It is composed through
	// the RDP bound min(ε, α·ε²/2) that every ε-DP mechanism satisfies (D_α ≤ D_∞ ≤ ε, and
	// ε-DP ⇒ ε²/2-zCDP by Bun and Steinke 2016, Prop. 1.4), which is conservative.
	Pure Mechanism = "pure"
	// DDGauss (declared in ddgauss.go) is the distributed discrete Gaussian on a secure
	// sum.
)

// Release is one debit against a customer's privacy budget: a mechanism and its
// parameters, never an ε alone, so that releases compose by RDP.
type Release struct {
	Mechanism Mechanism `json:"mechanism,omitempty"`
	// Q is the Poisson sampling rate of a Gaussian release, in [0, 1].
	Q float64 `json:"q,omitempty"`
	// Z is the noise multiplier of a Gaussian release: σ actually added / L2 sensitivity.
	Z float64 `json:"z,omitempty"`
	// Steps is how many times the mechanism was applied; at least 1.
	Steps int `json:"steps"`
	// Rho is the zCDP parameter of a ZCDP release.
	Rho float64 `json:"rho,omitempty"`
	// Epsilon is the ε of a Pure release.
	Epsilon float64 `json:"epsilon,omitempty"`

	// Sigma2 is the variance of each honest merchant's discrete Gaussian noise share in
	// a DDGauss release, in grid units.
	Sigma2 float64 `json:"sigma2,omitempty"`
	// Cohort is the number of honest merchants whose noise the sum is guaranteed to
	// carry in a DDGauss release (the policy's min_cohort).
	Cohort int `json:"cohort,omitempty"`
	// L2 and L1 bound how much one customer changes the summed integer vector of a
	// DDGauss release, in L2 and L1 norm.
	L2 float64 `json:"l2,omitempty"`
	L1 float64 `json:"l1,omitempty"`
	// Dim is the dimension of a DDGauss release's integer vector (after padding).
	Dim int `json:"dim,omitempty"`
}

// Validate reports whether r describes a release the accountant can compose.
func (r Release) Validate() error {
	if r.Steps < 1 {
		return fmt.Errorf("release: steps %d must be ≥ 1: %w", r.Steps, ErrInvalidParameter)
	}
	if r.kind() != DDGauss && (r.Sigma2 != 0 || r.Cohort != 0 || r.L2 != 0 || r.L1 != 0 || r.Dim != 0) {
		return fmt.Errorf("release: sigma2, cohort, l2, l1 and dim belong to a ddgauss release: %w", ErrInvalidParameter)
	}
	switch r.kind() {
	case DDGauss:
		return validateDDGauss(r)
	case Gaussian:
		if r.Rho != 0 || r.Epsilon != 0 {
			return fmt.Errorf("release: a gaussian release takes q, z and steps only: %w", ErrInvalidParameter)
		}
		if err := checkGaussian(r.Q, r.Z); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	case ZCDP:
		if r.Q != 0 || r.Z != 0 || r.Epsilon != 0 {
			return fmt.Errorf("release: a zcdp release takes rho and steps only: %w", ErrInvalidParameter)
		}
		if !(r.Rho > 0) || math.IsInf(r.Rho, 0) {
			return fmt.Errorf("release: ρ %v must be finite and > 0: %w", r.Rho, ErrInvalidParameter)
		}
	case Pure:
		if r.Q != 0 || r.Z != 0 || r.Rho != 0 {
			return fmt.Errorf("release: a pure release takes epsilon and steps only: %w", ErrInvalidParameter)
		}
		if !(r.Epsilon > 0) || math.IsInf(r.Epsilon, 0) {
			return fmt.Errorf("release: ε %v must be finite and > 0: %w", r.Epsilon, ErrInvalidParameter)
		}
	default:
		return fmt.Errorf("release: unknown mechanism %q: %w", r.Mechanism, ErrInvalidParameter)
	}
	return nil
}

func (r Release) kind() Mechanism {
	if r.Mechanism == "" {
		return Gaussian
	}
	return r.Mechanism
}

// curveKey identifies the per-step RDP curve of a release; Steps only scales it.
type curveKey struct {
	mech Mechanism
	a, b float64
	ddg  ddgParams // DDGauss only
}

func (r Release) curveKey() curveKey {
	switch r.kind() {
	case ZCDP:
		return curveKey{mech: ZCDP, a: r.Rho}
	case Pure:
		return curveKey{mech: Pure, a: r.Epsilon}
	case DDGauss:
		return curveKey{mech: DDGauss, ddg: r.ddg()}
	default:
		return curveKey{mech: Gaussian, a: r.Q, b: r.Z}
	}
}

func stepCurve(k curveKey, orders []float64, s Series) []float64 {
	out := make([]float64, len(orders))
	var lf []float64
	if k.mech == Gaussian || k.mech == DDGauss {
		top := 0.0
		for _, a := range orders {
			if a == math.Trunc(a) || k.mech == DDGauss {
				top = max(top, math.Ceil(a))
			}
		}
		lf = logFactorials(int(top))
	}
	for i, a := range orders {
		switch k.mech {
		case ZCDP:
			out[i] = a * k.a
		case Pure:
			out[i] = min(k.a, a*k.a*k.a/2)
		case DDGauss:
			out[i] = rdpDDGauss(k.ddg, a, lf)
		default:
			out[i] = rdpStepLF(k.a, k.b, a, s, lf)
		}
	}
	return out
}

// Ledger composes releases by adding their RDP curves order by order. Releases with the
// same mechanism parameters share one per-step curve, computed once and scaled by their
// total steps, so a ledger of many releases with few distinct (q, z) pairs costs little.
// A Ledger is not safe for concurrent use.
type Ledger struct {
	orders   []float64
	series   Series
	releases []Release
	cache    map[curveKey][]float64 // per-step RDP curve
	steps    map[curveKey]float64   // total steps debited under each key
	keys     []curveKey             // keys in first-use order, for a deterministic sum
}

// NewLedger returns an empty ledger over opt's orders (each in (1, MaxOrder]).
func NewLedger(opt AccountantOptions) (*Ledger, error) {
	opt, err := opt.resolve()
	if err != nil {
		return nil, fmt.Errorf("new ledger: %w", err)
	}
	return &Ledger{
		orders: opt.Orders,
		series: opt.Series,
		cache:  make(map[curveKey][]float64),
		steps:  make(map[curveKey]float64),
	}, nil
}

// Orders returns a copy of the ledger's Rényi orders.
func (l *Ledger) Orders() []float64 { return slices.Clone(l.orders) }

// Releases returns a copy of the releases added so far, in order.
func (l *Ledger) Releases() []Release { return slices.Clone(l.releases) }

// RDP returns the composed RDP curve, one value per order.
func (l *Ledger) RDP() []float64 { return l.rdp(nil) }

func (l *Ledger) curve(k curveKey) []float64 {
	c, ok := l.cache[k]
	if !ok {
		c = stepCurve(k, l.orders, l.series)
		l.cache[k] = c
	}
	return c
}

// fillCurves computes the per-step curves of keys not yet cached, spreading them over the
// available cores when there are several: each curve costs a few hundred microseconds
// over the default orders, and a ledger with many distinct (q, z) pairs needs them all.
// The curves are pure functions of their key, so the result does not depend on the
// schedule.
func (l *Ledger) fillCurves(keys []curveKey) {
	var missing []curveKey
	for _, k := range keys {
		if _, ok := l.cache[k]; !ok {
			missing = append(missing, k)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(missing))
	if workers < 2 || len(missing) < 4 {
		return // curve() computes the few missing ones inline
	}
	out := make([][]float64, len(missing))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(missing); i = int(next.Add(1) - 1) {
				out[i] = stepCurve(missing[i], l.orders, l.series)
			}
		})
	}
	wg.Wait()
	for i, k := range missing {
		l.cache[k] = out[i]
	}
}

// rdp sums the curves of everything debited plus next (if not nil).
func (l *Ledger) rdp(next *Release) []float64 {
	l.fillCurves(l.keys)
	total := make([]float64, len(l.orders))
	add := func(k curveKey, steps float64) {
		c := l.curve(k)
		for i := range total {
			total[i] += steps * c[i]
		}
	}
	for _, k := range l.keys {
		add(k, l.steps[k])
	}
	if next != nil {
		add(next.curveKey(), float64(next.Steps))
	}
	return total
}

// Add debits r. It does not check any cap; use Filter.Check first.
func (l *Ledger) Add(r Release) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("ledger add: %w", err)
	}
	k := r.curveKey()
	if _, ok := l.steps[k]; !ok {
		l.keys = append(l.keys, k)
	}
	l.steps[k] += float64(r.Steps)
	l.releases = append(l.releases, r)
	return nil
}

// Epsilon returns the ε at δ of everything added so far and the order that attains it.
func (l *Ledger) Epsilon(delta float64) (eps, order float64, err error) {
	return EpsilonFromRDP(l.orders, l.rdp(nil), delta)
}

// EpsilonAfter returns the ε at δ the ledger would show after also debiting next, without
// changing the ledger.
func (l *Ledger) EpsilonAfter(next Release, delta float64) (eps, order float64, err error) {
	if err := next.Validate(); err != nil {
		return 0, 0, fmt.Errorf("epsilon after: %w", err)
	}
	return EpsilonFromRDP(l.orders, l.rdp(&next), delta)
}

// Epsilon composes the releases and returns ε at δ and the minimizing order.
func Epsilon(releases []Release, delta float64, opt AccountantOptions) (eps, order float64, err error) {
	l, err := NewLedger(opt)
	if err != nil {
		return 0, 0, err
	}
	l.releases = make([]Release, 0, len(releases))
	for i, r := range releases {
		if err := l.Add(r); err != nil {
			return 0, 0, fmt.Errorf("release %d: %w", i+1, err)
		}
	}
	return l.Epsilon(delta)
}

// NoiseMultiplier returns the smallest noise multiplier z (to a relative precision of
// 1e-10) such that steps applications of the Poisson-subsampled Gaussian with sampling
// rate q have ε ≤ target at δ. ε is decreasing in z, so the search is a bisection; the
// returned z always meets the target.
func NoiseMultiplier(target, delta, q float64, steps int, opt AccountantOptions) (float64, error) {
	opt, err := opt.resolve()
	if err != nil {
		return 0, fmt.Errorf("noise multiplier: %w", err)
	}
	return noiseMultiplier(target, delta, q, steps, opt, nil)
}

// NoiseMultiplierAfter is NoiseMultiplier for a training that follows what l already
// holds: the smallest z for which ε of the ledger plus the training stays ≤ target, over
// the ledger's orders and series. It returns an error wrapping ErrBudgetExhausted when the
// ledger alone already reaches the target.
func (l *Ledger) NoiseMultiplierAfter(target, delta, q float64, steps int) (float64, error) {
	base := l.rdp(nil)
	if err := checkDelta(delta); err != nil {
		return 0, fmt.Errorf("noise multiplier: %w", err)
	}
	spent, _, err := EpsilonFromRDP(l.orders, base, delta)
	if err != nil {
		return 0, fmt.Errorf("noise multiplier: %w", err)
	}
	if spent >= target {
		return 0, fmt.Errorf("noise multiplier: ledger already spends ε %.6g ≥ target %.6g: %w", spent, target, ErrBudgetExhausted)
	}
	return noiseMultiplier(target, delta, q, steps, AccountantOptions{Orders: l.orders, Series: l.series}, base)
}

// noiseMultiplier bisects z over resolved options; base, if not nil, is RDP already spent.
func noiseMultiplier(target, delta, q float64, steps int, opt AccountantOptions, base []float64) (float64, error) {
	if !(target > 0) || math.IsInf(target, 0) {
		return 0, fmt.Errorf("noise multiplier: target ε %v must be finite and > 0: %w", target, ErrInvalidParameter)
	}
	if err := checkDelta(delta); err != nil {
		return 0, fmt.Errorf("noise multiplier: %w", err)
	}
	if !(q > 0 && q <= 1) {
		return 0, fmt.Errorf("noise multiplier: sampling rate %v must be in (0, 1]: %w", q, ErrInvalidParameter)
	}
	if steps < 1 {
		return 0, fmt.Errorf("noise multiplier: steps %d must be ≥ 1: %w", steps, ErrInvalidParameter)
	}
	orders := opt.Orders
	rdp := make([]float64, len(orders))
	lf := logFactorials(int(slices.Max(orders)))
	epsAt := func(z float64) float64 {
		for i, a := range orders {
			rdp[i] = float64(steps) * rdpStepLF(q, z, a, opt.Series, lf)
			if base != nil {
				rdp[i] += base[i]
			}
		}
		e, _, _ := EpsilonFromRDP(orders, rdp, delta)
		return e
	}
	const maxZ = 1e6
	lo, hi := 0.0, 1.0
	for epsAt(hi) > target {
		lo, hi = hi, 2*hi
		if hi > maxZ {
			return 0, fmt.Errorf("noise multiplier: ε %v at δ %v is out of reach with z ≤ %g: %w", target, delta, maxZ, ErrInvalidParameter)
		}
	}
	for hi-lo > 1e-10*hi {
		mid := (lo + hi) / 2
		if epsAt(mid) > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
