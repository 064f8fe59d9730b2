package dp

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// OpacusOrders returns the Rényi orders Opacus uses by default: 1.1, 1.2, …, 10.9 and
// 12, 13, …, 63.
func OpacusOrders() []float64 {
	orders := make([]float64, 0, 99+52)
	for i := 11; i <= 109; i++ {
		orders = append(orders, float64(i)/10)
	}
	for a := 12; a <= 63; a++ {
		orders = append(orders, float64(a))
	}
	return orders
}

// DefaultOrders returns the orders the accountant uses unless told otherwise: the Opacus
// orders plus dp_accounting's extra orders 11, 128, 256, 512 and 1024, sorted. More
// orders can only lower the reported ε, since the conversion takes the minimum.
func DefaultOrders() []float64 {
	orders := append(OpacusOrders(), 11, 128, 256, 512, 1024)
	slices.Sort(orders)
	return orders
}

// MaxOrder is the largest Rényi order accepted. Integer orders cost time and memory linear
// in the order; orders beyond a few thousand never attain the minimum for any practical δ.
const MaxOrder = 10000

// ErrInvalidParameter is wrapped by every error about an out-of-range privacy parameter
// (sampling rate, noise multiplier, order, δ, ε, ρ).
var ErrInvalidParameter = errors.New("invalid privacy parameter")

func checkOrders(orders []float64) error {
	if len(orders) == 0 {
		return fmt.Errorf("orders: none given: %w", ErrInvalidParameter)
	}
	for i, a := range orders {
		if !(a > 1 && a <= MaxOrder) {
			return fmt.Errorf("orders: order %d is %v, must be in (1, %d]: %w", i, a, MaxOrder, ErrInvalidParameter)
		}
	}
	return nil
}

// Series selects how the series for fractional Rényi orders is summed.
type Series int

const (
	// SeriesAbsolute sums the absolute values of the series terms, as dp_accounting does.
	// The result is an upper bound on the exact value: slightly conservative and free of
	// cancellation. It is the default.
	SeriesAbsolute Series = iota
	// SeriesSigned keeps the signs of the terms, as Opacus does: the exact series, subject
	// to cancellation in floating point. Where a partial sum would turn negative the
	// value is treated as +Inf (no bound), never as small.
	SeriesSigned
)

// AccountantOptions configures the RDP accountant. The zero value uses DefaultOrders and
// SeriesAbsolute.
type AccountantOptions struct {
	// Orders are the Rényi orders, each in (1, MaxOrder]; nil means DefaultOrders.
	Orders []float64
	// Series is how fractional orders are summed.
	Series Series
}

func (o AccountantOptions) resolve() (AccountantOptions, error) {
	if o.Orders == nil {
		o.Orders = DefaultOrders()
	} else {
		o.Orders = slices.Clone(o.Orders)
	}
	if err := checkOrders(o.Orders); err != nil {
		return o, err
	}
	if o.Series != SeriesAbsolute && o.Series != SeriesSigned {
		return o, fmt.Errorf("series %d unknown: %w", o.Series, ErrInvalidParameter)
	}
	return o, nil
}

// RDPSubsampledGaussian returns the Rényi divergence of order alpha (> 1) of one step of
// the Poisson-subsampled Gaussian mechanism with sampling rate q ∈ [0, 1] and noise
// multiplier z > 0 (noise σ = z·sensitivity), following Mironov, Talwar and Zhang 2019
// (arXiv 1908.10530). q = 0 gives 0 and q = 1 gives the plain Gaussian α/(2z²).
//
// Integer orders use the exact binomial expansion; fractional orders use the paper's
// two-sided series, summed as s says. All sums are done in log space.
func RDPSubsampledGaussian(q, z, alpha float64, s Series) (float64, error) {
	if err := checkGaussian(q, z); err != nil {
		return 0, err
	}
	if !(alpha > 1 && alpha <= MaxOrder) {
		return 0, fmt.Errorf("rdp: order %v must be in (1, %d]: %w", alpha, MaxOrder, ErrInvalidParameter)
	}
	return rdpStep(q, z, alpha, s), nil
}

func checkGaussian(q, z float64) error {
	if !(q >= 0 && q <= 1) {
		return fmt.Errorf("rdp: sampling rate %v must be in [0, 1]: %w", q, ErrInvalidParameter)
	}
	if !(z > 0) || math.IsInf(z, 0) {
		return fmt.Errorf("rdp: noise multiplier %v must be finite and > 0: %w", z, ErrInvalidParameter)
	}
	return nil
}

// rdpStep assumes validated arguments.
func rdpStep(q, z, alpha float64, s Series) float64 {
	var lf []float64
	if alpha == math.Trunc(alpha) && q > 0 && q < 1 {
		lf = logFactorials(int(alpha))
	}
	return rdpStepLF(q, z, alpha, s, lf)
}

// rdpStepLF is rdpStep with a table of ln k! covering every integer order ≤ alpha, so a
// curve over many orders builds the table once.
func rdpStepLF(q, z, alpha float64, s Series, lf []float64) float64 {
	switch q {
	case 0:
		return 0
	case 1:
		return alpha / (2 * z * z)
	}
	var logA float64
	if alpha == math.Trunc(alpha) {
		logA = logAInt(q, z, int(alpha), lf)
	} else {
		logA = logAFrac(q, z, alpha, s == SeriesAbsolute)
	}
	r := logA / (alpha - 1)
	if math.IsNaN(r) {
		// Only ∞−∞ in an overflowing term produces NaN; the divergence is unbounded there.
		return math.Inf(1)
	}
	// A Rényi divergence is never negative. When it is far below machine precision
	// (q = 1e-6, z = 100: about 1e-16), rounding in the series can leave ln A_α a few
	// ulps below zero; that is 0, not an invalid value.
	return max(r, 0)
}

// logAInt is ln A_α for integer α: A_α = Σ_k C(α,k) (1−q)^(α−k) q^k exp((k²−k)/(2z²)).
// lf[k] = ln k! for k ≤ α (see logFactorials); the sum is a two-pass log-sum-exp (shift by
// the largest term), one exp per term.
func logAInt(q, z float64, alpha int, lf []float64) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	twoZ2 := 2 * z * z
	a := float64(alpha)
	terms := make([]float64, alpha+1)
	top := math.Inf(-1)
	for k := range terms {
		kf := float64(k)
		t := lf[alpha] - lf[k] - lf[alpha-k] + kf*logQ + (a-kf)*log1mQ + (kf*kf-kf)/twoZ2
		terms[k] = t
		top = max(top, t)
	}
	if math.IsInf(top, 0) {
		return top
	}
	var sum float64
	for _, t := range terms {
		// Terms below e⁻⁵⁰ of the largest change the sum by under 1e-18 relative even
		// all together (at most MaxOrder+1 of them); skipping their exp saves time.
		if d := t - top; d > -50 {
			sum += math.Exp(d)
		}
	}
	return top + math.Log(sum)
}

// logFactorials returns ln k! for k = 0..n.
func logFactorials(n int) []float64 {
	lf := make([]float64, n+1)
	for k := 2; k <= n; k++ {
		lf[k] = lf[k-1] + math.Log(float64(k))
	}
	return lf
}

// logAFrac is ln A_α for fractional α by the series of Mironov, Talwar and Zhang
// (Section 3.3), split at z0 = z²·ln(1/q − 1) + 1/2 into the parts below and above z0.
// absTerms selects SeriesAbsolute. The loop stops once both new terms are below e⁻³⁰, the
// criterion of the reference implementations; the sums are shifted log-sum-exps.
func logAFrac(q, z, alpha float64, absTerms bool) float64 {
	z0 := z*z*math.Log(1/q-1) + 0.5
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	twoZ2 := 2 * z * z
	logHalf := math.Log(0.5)
	var terms []float64 // log|term|, interleaved: s0, s1, s0, s1, …
	var signs []bool    // sign of C(α,i) for each pair
	// |C(α,i)| by the recurrence |C(α,i+1)| = |C(α,i)|·|α−i|/(i+1); the sign of C(α,i)
	// flips each time α−i passes below zero.
	logCoef, positive := 0.0, true
	top := math.Inf(-1)
	converged := false
	for i := 0; i < 100000; i++ {
		fi := float64(i)
		j := alpha - fi
		if i > 0 {
			prev := j + 1 // α − (i−1)
			logCoef += math.Log(math.Abs(prev) / fi)
			if prev < 0 {
				positive = !positive
			}
		}
		logS0 := logCoef + fi*logQ + j*log1mQ + (fi*fi-fi)/twoZ2 + logHalf + logErfc((fi-z0)/(math.Sqrt2*z))
		logS1 := logCoef + j*logQ + fi*log1mQ + (j*j-j)/twoZ2 + logHalf + logErfc((z0-j)/(math.Sqrt2*z))
		terms = append(terms, logS0, logS1)
		signs = append(signs, positive || absTerms)
		top = max(top, logS0, logS1)
		if i > int(alpha) && max(logS0, logS1) < -30 {
			converged = true
			break
		}
	}
	if !converged {
		return math.NaN() // a truncated series could understate A_α; rdpStep reports no bound
	}
	if math.IsInf(top, 0) || math.IsNaN(top) {
		return top
	}
	var sum0, sum1 float64
	for k, add := range signs {
		e0, e1 := math.Exp(terms[2*k]-top), math.Exp(terms[2*k+1]-top)
		if add {
			sum0 += e0
			sum1 += e1
		} else {
			sum0 -= e0
			sum1 -= e1
		}
	}
	if sum0 < 0 || sum1 < 0 || sum0+sum1 <= 0 {
		return math.NaN() // cancellation failed; rdpStep reports no bound
	}
	return top + math.Log(sum0+sum1)
}

// logErfc returns ln erfc(x), switching to the asymptotic expansion where erfc underflows.
func logErfc(x float64) float64 {
	if x < 20 {
		return math.Log(math.Erfc(x))
	}
	x2 := x * x
	inv := 1 / x2
	// erfc(x) = exp(−x²)/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) − …);
	// at x ≥ 20 the first omitted term is below 1e-11.
	series := 1 - inv/2 + 3*inv*inv/4 - 15*inv*inv*inv/8 + 105*inv*inv*inv*inv/16
	return -x2 - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(series)
}

// EpsilonFromRDP converts an RDP curve rdp[i] at orders[i] into ε for the given δ with the
// improved conversion of Balle et al. 2020 (also used by Opacus and dp_accounting):
//
//	ε = min over α of  r(α) + ln(1 − 1/α) − (ln δ + ln α)/(α − 1),
//
// clamped at 0. It returns the minimizing order. Orders whose RDP is +Inf are skipped; if
// every order is +Inf the result is ε = +Inf with order 0. Where δ² > 1 − exp(−r(α)) the
// mechanism is (0, δ)-DP by the Bretagnolle–Huber bound on total variation and ε = 0.
func EpsilonFromRDP(orders, rdp []float64, delta float64) (eps, order float64, err error) {
	if len(orders) != len(rdp) {
		return 0, 0, fmt.Errorf("epsilon from rdp: %d orders but %d values: %w", len(orders), len(rdp), ErrInvalidParameter)
	}
	if err := checkOrders(orders); err != nil {
		return 0, 0, fmt.Errorf("epsilon from rdp: %w", err)
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, fmt.Errorf("epsilon from rdp: %w", err)
	}
	eps, order = math.Inf(1), 0
	logDelta := math.Log(delta)
	for i, a := range orders {
		r := rdp[i]
		if math.IsNaN(r) || r < 0 {
			return 0, 0, fmt.Errorf("epsilon from rdp: value %v at order %v must be ≥ 0: %w", r, a, ErrInvalidParameter)
		}
		if math.IsInf(r, 1) {
			continue
		}
		var e float64
		if delta*delta+math.Expm1(-r) > 0 {
			e = 0
		} else {
			e = r + math.Log1p(-1/a) - (logDelta+math.Log(a))/(a-1)
		}
		if e < eps {
			eps, order = e, a
		}
	}
	return max(eps, 0), order, nil
}

func checkDelta(delta float64) error {
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("δ %v must be in (0, 1): %w", delta, ErrInvalidParameter)
	}
	return nil
}

// EpsilonFromZCDP converts ρ-zCDP into ε for the given δ with the same conversion as
// EpsilonFromRDP, applied to r(α) = αρ and minimized over every real α > 1 rather than a
// grid (the objective is convex in α; golden-section search to machine precision). This
// matches OpenDP's zCDP → approximate-DP conversion.
func EpsilonFromZCDP(rho, delta float64) (eps, order float64, err error) {
	if !(rho >= 0) || math.IsInf(rho, 0) {
		return 0, 0, fmt.Errorf("epsilon from zcdp: ρ %v must be finite and ≥ 0: %w", rho, ErrInvalidParameter)
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, fmt.Errorf("epsilon from zcdp: %w", err)
	}
	if rho == 0 {
		return 0, 0, nil
	}
	logDelta := math.Log(delta)
	f := func(a float64) float64 {
		return a*rho + math.Log1p(-1/a) - (logDelta+math.Log(a))/(a-1)
	}
	// Search t = ln(α − 1) over a bracket wide enough for any ρ, δ of practical interest.
	g := func(t float64) float64 { return f(1 + math.Exp(t)) }
	lo, hi := -20.0, 20.0
	phi := (math.Sqrt(5) - 1) / 2
	x1, x2 := hi-phi*(hi-lo), lo+phi*(hi-lo)
	f1, f2 := g(x1), g(x2)
	for range 200 {
		if f1 < f2 {
			hi, x2, f2 = x2, x1, f1
			x1 = hi - phi*(hi-lo)
			f1 = g(x1)
		} else {
			lo, x1, f1 = x1, x2, f2
			x2 = lo + phi*(hi-lo)
			f2 = g(x2)
		}
	}
	t := (lo + hi) / 2
	return max(g(t), 0), 1 + math.Exp(t), nil
}

// GaussianDelta returns the smallest δ for which the Gaussian mechanism with noise
// standard deviation sigma on a query of L2 sensitivity sens is (ε, δ)-DP, by Theorem 8 of
// Balle and Wang 2018: δ = Φ(s/(2σ) − εσ/s) − e^ε Φ(−s/(2σ) − εσ/s). The DP library uses
// the same formula internally to calibrate σ; it is exposed here so tests and reviewers can
// check a σ the library returned.
func GaussianDelta(sigma, sens, eps float64) (float64, error) {
	if !(sigma > 0) || !(sens > 0) || !(eps >= 0) || math.IsInf(sigma, 0) || math.IsInf(sens, 0) || math.IsInf(eps, 0) {
		return 0, fmt.Errorf("gaussian delta: σ %v, sensitivity %v, ε %v must be finite, σ and sensitivity > 0, ε ≥ 0: %w",
			sigma, sens, eps, ErrInvalidParameter)
	}
	a := sens / (2 * sigma)
	b := eps * sigma / sens
	phi := func(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
	// e^ε Φ(−a−b) computed in log space so large ε does not overflow.
	second := 0.0
	if p := phi(-a - b); p > 0 {
		second = math.Exp(eps + math.Log(p))
	}
	return max(phi(a-b)-second, 0), nil
}

// GaussianEpsilon returns the smallest ε at which the Gaussian mechanism with
// noise multiplier z (σ over the L2 sensitivity) is (ε, δ)-DP: the inverse of
// GaussianDelta in ε, found by bisection (δ falls as ε grows), to a relative
// 1e-9. It is the exact ε an empirical audit's lower bound is compared with.
func GaussianEpsilon(z, delta float64) (float64, error) {
	if !(delta > 0 && delta < 1) {
		return 0, fmt.Errorf("gaussian epsilon: δ %v must be in (0, 1): %w", delta, ErrInvalidParameter)
	}
	lo, hi := 0.0, 1.0
	for {
		d, err := GaussianDelta(z, 1, hi)
		if err != nil {
			return 0, fmt.Errorf("gaussian epsilon: %w", err)
		}
		if d <= delta {
			break
		}
		if lo, hi = hi, 2*hi; hi > 1e4 {
			return 0, errors.New("gaussian epsilon: no ε below 1e4")
		}
	}
	for hi-lo > 1e-9*hi {
		mid := (lo + hi) / 2
		d, err := GaussianDelta(z, 1, mid)
		if err != nil {
			return 0, fmt.Errorf("gaussian epsilon: %w", err)
		}
		if d <= delta {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
