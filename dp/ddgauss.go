package dp

import (
	"fmt"
	"math"
)

// DDGauss is the distributed discrete Gaussian mechanism on a secure sum (Kairouz, Liu
// and Steinke 2021, arXiv 2102.06387): every merchant adds N_Z(0, Sigma2) per coordinate
// to an integer vector, the aggregator sees only the sum of at least Cohort honest
// shares, and one customer changes the summed integer vector by at most L2 in L2 norm
// and L1 in L1 norm, in Dim dimensions. With Q < 1 customers are Poisson-sampled at rate
// Q before each of Steps applications. All quantities are in grid units (after scaling
// by 1/γ), so no γ appears.
const DDGauss Mechanism = "ddgauss"

// ddgTau is τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1)) of the paper's Theorem 1 and
// Proposition 14: the distance of a sum of n discrete Gaussians N_Z(0, σ²) from the
// discrete Gaussian N_Z(0, nσ²).
func ddgTau(sigma2 float64, n int) float64 {
	var t float64
	for k := 1; k < n; k++ {
		t += math.Exp(-2 * math.Pi * math.Pi * sigma2 * float64(k) / float64(k+1))
	}
	return 10 * t
}

// ddgParams are a DDGauss release's parameters; they key its RDP curve.
type ddgParams struct {
	q, sigma2, l2, l1 float64
	dim, cohort       int
	tau               float64 // ddgTau(sigma2, cohort), computed once
}

// rdpDDGaussSum is Proposition 14 of the paper: for α ≥ 1, the Rényi divergence of order
// α between the sum of n independent N_Z(0, σ²)^d shifted by an integer vector of L2 norm
// ≤ Δ₂ and L1 norm ≤ Δ₁ and the unshifted sum is at most the least of
//
//	α·Δ₂²/(2nσ²) + τ·d,
//	α/2·(Δ₂²/(nσ²) + 2·Δ₁·τ/√(nσ²) + τ²·d),
//	α/2·(Δ₂/√(nσ²) + τ·√d)²,
//
// provided σ ≥ 1/2.
func rdpDDGaussSum(p ddgParams, alpha float64) float64 {
	ns2 := float64(p.cohort) * p.sigma2
	tau := p.tau
	d := float64(p.dim)
	a := alpha * p.l2 * p.l2 / (2 * ns2)
	b := alpha / 2 * (p.l2*p.l2/ns2 + 2*p.l1*tau/math.Sqrt(ns2) + tau*tau*d)
	c := alpha / 2 * math.Pow(p.l2/math.Sqrt(ns2)+tau*math.Sqrt(d), 2)
	return min(a+tau*d, b, c)
}

// rdpDDGauss returns the per-step RDP of p at order alpha. Without sampling it is
// Proposition 14 (ε(α) below). With Poisson sampling at rate q, one customer turns the
// output distribution P into the mixture M = (1−q)·P + q·P′, P′ the output with the
// customer; r = P′/P has E_P[r] = 1 and E_P[r^l] = e^{(l−1)D_l(P′‖P)} ≤ e^{(l−1)ε(l)}
// (Jensen over the customer's random rounding, then Proposition 14). The result is the
// least of three upper bounds on both directions of the divergence:
//
//   - ε(α), the unsampled mechanism;
//   - the larger of the two directions bounded separately:
//     D_α(M‖P): the binomial expansion E_P[(1−q+qr)^m] = Σ_l C(m,l)(1−q)^(m−l)q^l·E_P[r^l],
//     an identity for the integer m = ⌈α⌉ (Rényi divergence does not decrease with the
//     order, so order m bounds order α);
//     D_α(P‖M): f(r) = (1−q+qr)^(1−α) is convex with f” decreasing, so for all r ≥ 0
//     f(r) ≤ 1 + f′(1)(r−1) + K·(r−1)² with K = f(0) − 1 + f′(1) = (1−q)^(1−α) − 1 − (α−1)q
//     (the Taylor remainder's weight is largest at r = 0); taking E_P gives
//     e^{(α−1)D_α(P‖M)} ≤ 1 + K·(e^{ε(2)} − 1);
//   - the general Poisson-subsampling bound of Zhu and Wang 2019 (Theorem 6) at order ⌈α⌉:
//     1/(m−1)·ln[(1−q)^(m−1)(mq−q+1) + C(m,2)q²(1−q)^(m−2)e^{ε(2)} +
//     3·Σ_{l=3}^{m} C(m,l)q^l(1−q)^(m−l)e^{(l−1)ε(l)}].
func rdpDDGauss(p ddgParams, alpha float64, lf []float64) float64 {
	full := rdpDDGaussSum(p, alpha)
	switch p.q {
	case 0:
		return 0
	case 1:
		return full
	}
	m := int(math.Ceil(alpha))
	if m < 2 {
		m = 2
	}
	if len(lf) <= m {
		lf = logFactorials(m)
	}
	logQ, log1mQ := math.Log(p.q), math.Log1p(-p.q)
	mf := float64(m)
	eps := make([]float64, m+1) // ε(l) for l = 2..m
	for l := 2; l <= m; l++ {
		eps[l] = rdpDDGaussSum(p, float64(l))
	}
	// D_α(M‖P) at order m by the binomial identity.
	expand := make([]float64, 0, m+1)
	for l := 0; l <= m; l++ {
		lfl := float64(l)
		t := lf[m] - lf[l] - lf[m-l] + lfl*logQ + (mf-lfl)*log1mQ
		if l >= 2 {
			t += (lfl - 1) * eps[l]
		}
		expand = append(expand, t)
	}
	forward := logSumExp(expand) / (mf - 1)
	// D_α(P‖M) by the quadratic bound on (1−q+qr)^(1−α).
	k := math.Expm1(-(alpha-1)*log1mQ) - (alpha-1)*p.q
	backward := math.Log1p(max(k, 0)*math.Expm1(eps[2])) / (alpha - 1)
	// Zhu–Wang.
	zw := make([]float64, 0, m)
	zw = append(zw,
		(mf-1)*log1mQ+math.Log(mf*p.q-p.q+1),
		lf[m]-lf[2]-lf[m-2]+2*logQ+(mf-2)*log1mQ+eps[2])
	for l := 3; l <= m; l++ {
		lfl := float64(l)
		zw = append(zw, math.Log(3)+lf[m]-lf[l]-lf[m-l]+lfl*logQ+(mf-lfl)*log1mQ+(lfl-1)*eps[l])
	}
	zhuWang := logSumExp(zw) / (mf - 1)
	return max(0, min(full, max(forward, backward), zhuWang))
}

// logSumExp returns ln Σ e^{t_i}, shifted by the largest term.
func logSumExp(ts []float64) float64 {
	top := math.Inf(-1)
	for _, t := range ts {
		top = max(top, t)
	}
	if math.IsInf(top, 0) {
		return top
	}
	var sum float64
	for _, t := range ts {
		sum += math.Exp(t - top)
	}
	return top + math.Log(sum)
}

// RDPDistributedDiscreteGaussian returns the RDP at order alpha of one step of a
// DDGauss release r (r.Steps is ignored).
func RDPDistributedDiscreteGaussian(r Release, alpha float64) (float64, error) {
	if r.kind() != DDGauss {
		return 0, fmt.Errorf("rdp: mechanism %q is not %s: %w", r.kind(), DDGauss, ErrInvalidParameter)
	}
	rr := r
	rr.Steps = max(rr.Steps, 1)
	if err := rr.Validate(); err != nil {
		return 0, err
	}
	if !(alpha > 1 && alpha <= MaxOrder) {
		return 0, fmt.Errorf("rdp: order %v must be in (1, %d]: %w", alpha, MaxOrder, ErrInvalidParameter)
	}
	return rdpDDGauss(r.ddg(), alpha, nil), nil
}

func (r Release) ddg() ddgParams {
	return ddgParams{q: r.Q, sigma2: r.Sigma2, l2: r.L2, l1: r.L1, dim: r.Dim, cohort: r.Cohort, tau: ddgTau(r.Sigma2, r.Cohort)}
}

// maxCohort bounds the cohort of a DDGauss release (τ sums over it).
const maxCohort = 1 << 20

func validateDDGauss(r Release) error {
	switch {
	case r.Z != 0 || r.Rho != 0 || r.Epsilon != 0:
		return fmt.Errorf("release: a ddgauss release takes q, sigma2, cohort, l2, l1, dim and steps only: %w", ErrInvalidParameter)
	case !(r.Q > 0 && r.Q <= 1):
		return fmt.Errorf("release: sampling rate %v must be in (0, 1] (1: every customer): %w", r.Q, ErrInvalidParameter)
	case !(r.Sigma2 >= 0.25) || math.IsInf(r.Sigma2, 0):
		return fmt.Errorf("release: sigma2 %v must be finite and ≥ 1/4 (σ ≥ 1/2, as the bound requires): %w", r.Sigma2, ErrInvalidParameter)
	case r.Cohort < 1 || r.Cohort > maxCohort:
		return fmt.Errorf("release: cohort %d must be in [1, %d]: %w", r.Cohort, maxCohort, ErrInvalidParameter)
	case !(r.L2 > 0) || math.IsInf(r.L2, 0):
		return fmt.Errorf("release: l2 %v must be finite and > 0: %w", r.L2, ErrInvalidParameter)
	case !(r.L1 >= r.L2) || math.IsInf(r.L1, 0):
		return fmt.Errorf("release: l1 %v must be finite and ≥ l2 %v: %w", r.L1, r.L2, ErrInvalidParameter)
	case r.Dim < 1 || r.Dim > 1<<24:
		return fmt.Errorf("release: dim %d must be in [1, 2^24]: %w", r.Dim, ErrInvalidParameter)
	}
	return nil
}
