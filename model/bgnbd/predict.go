package bgnbd

import (
	"fmt"
	"math"
)

// PAlive returns P(the customer is still alive at T | x, t_x, T) (Fader, Hardie
// and Lee, "Computing P(alive) using the BG/NBD model", brucehardie.com note 021):
//
//	P(alive) = 1 / (1 + δ_{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
//
// A customer with no repeat purchase is alive by construction of the model,
// since dropout can happen only right after a purchase.
func (p Params) PAlive(c Customer) float64 {
	if c.X == 0 {
		return 1
	}
	logOdds := math.Log(p.A) - math.Log(p.B+c.X-1) + (p.R+c.X)*(math.Log(p.Alpha+c.T)-math.Log(p.Alpha+c.Tx))
	return 1 / (1 + math.Exp(logOdds))
}

// ProbNoPurchase returns P(X(T, T+t) = 0 | x, t_x, T), the probability that the
// customer makes no purchase in the t time units after calibration:
//
//	P = (1 − P(alive)) + P(alive) · ((α+T)/(α+T+t))^(r+x)
//
// Derivation: a customer dead at T never buys again. Given alive at T, the
// likelihood of the history as a function of λ is λ^x·e^(−λT) and is separate
// from the dropout part, so λ | data, alive ~ Gamma(r+x, α+T). Dropout happens
// only right after a purchase, so an alive customer makes no purchase in
// (T, T+t] with probability e^(−λt); averaged over that Gamma posterior this is
// ((α+T)/(α+T+t))^(r+x), the Gamma moment-generating function at −t. The same
// conditioning argument gives FHL 2005's conditional expectation (section 4).
func (p Params) ProbNoPurchase(c Customer, t float64) float64 {
	return 1 - p.ProbPurchaseWithin(c, t)
}

// ProbPurchaseWithin returns 1 − ProbNoPurchase(c, t), computed directly so that
// it keeps full relative precision for short horizons.
func (p Params) ProbPurchaseWithin(c Customer, t float64) float64 {
	if t <= 0 {
		return 0
	}
	// 1 − ((α+T)/(α+T+t))^(r+x) = −expm1((r+x)·log1p(−t/(α+T+t))).
	stillQuiet := -math.Expm1((p.R + c.X) * math.Log1p(-t/(p.Alpha+c.T+t)))
	return p.PAlive(c) * stillQuiet
}

// ExpectedPurchases returns E[Y(t) | x, t_x, T], the expected number of
// purchases in the t time units after calibration (FHL 2005, section 4):
//
//	E = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z)]
//	    / (1 + δ_{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)),   z = t/(α+T+t).
//
// The bracket is evaluated after Euler's transformation
// ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z), which turns it into
// 1 − (1−z)^(a−1)·₂F₁(a+b−1−r, a−1; a+b+x−1; z): the huge terms that the
// original series has for large x disappear, and because every term but the
// first carries the factor (a−1), the division by a−1 is done analytically, so
// a = 1 is no longer a removable singularity. Domain: t ≥ 0 (so 0 ≤ z < 1) and
// a+b+x−1 not a non-positive integer (only possible for x = 0 with a+b ≤ 1).
func (p Params) ExpectedPurchases(c Customer, t float64) (float64, error) {
	e, err := p.expected(c.X, c.T, t)
	if err != nil {
		return 0, fmt.Errorf("bgnbd expected purchases: %w", err)
	}
	if c.X == 0 {
		return e, nil
	}
	odds := math.Exp(math.Log(p.A) - math.Log(p.B+c.X-1) + (p.R+c.X)*(math.Log(p.Alpha+c.T)-math.Log(p.Alpha+c.Tx)))
	return e / (1 + odds), nil
}

// ExpectedPurchasesNew returns E[X(t)], the expected number of purchases in the
// first t time units of a customer just acquired (FHL 2005, section 4):
//
//	E = (a+b−1)/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b; a+b−1; t/(α+t))].
func (p Params) ExpectedPurchasesNew(t float64) (float64, error) {
	e, err := p.expected(0, 0, t)
	if err != nil {
		return 0, fmt.Errorf("bgnbd expected purchases: %w", err)
	}
	return e, nil
}

// expected evaluates (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x)·₂F₁(r+x, b+x;
// a+b+x−1; z)] in the transformed, singularity-free form described at
// ExpectedPurchases: with u = (a−1)·log(1−z) and
// G = Σ_{k≥1} (a+b−1−r)_k (a)_{k−1} z^k / ((a+b+x−1)_k k!),
//
//	bracket/(a−1) = −expm1(u)/(a−1) − e^u·G.
func (p Params) expected(x, bigT, t float64) (float64, error) {
	if math.IsNaN(t) || t < 0 || math.IsInf(t, 0) {
		return 0, fmt.Errorf("horizon %v, want finite and ≥ 0", t)
	}
	if t == 0 {
		return 0, nil
	}
	z := t / (p.Alpha + bigT + t)
	a1 := p.A - 1
	l := math.Log1p(-z)
	u := a1 * l
	var head float64 // −expm1(u)/(a−1), → −log(1−z) as a → 1
	if a1 == 0 {
		head = -l
	} else {
		head = -math.Expm1(u) / a1
	}
	g, err := seriesG(p.A+p.B-1-p.R, p.A, p.A+p.B+x-1, z)
	if err != nil {
		return 0, err
	}
	return (p.A + p.B + x - 1) * (head - math.Exp(u)*g), nil
}

// seriesG sums Σ_{k≥1} (A)_k (a)_{k−1} z^k / ((C)_k k!), which is
// (₂F₁(A, a−1; C; z) − 1)/(a−1) written without the division.
func seriesG(bigA, a, bigC, z float64) (float64, error) {
	// term_1 = A·z/C; term_{k+1} = term_k · (A+k)(a+k−1)·z / ((C+k)(k+1)).
	if bigC <= 0 && bigC == math.Trunc(bigC) {
		return 0, fmt.Errorf("hypergeometric parameter c = %v is a non-positive integer", bigC)
	}
	term := bigA * z / bigC
	sum := term
	k0 := math.Abs(bigA) + math.Abs(a) + math.Abs(bigC)
	for k := 1.0; k < maxTerms; k++ {
		ratio := (bigA + k) * (a + k - 1) * z / ((bigC + k) * (k + 1))
		term *= ratio
		sum += term
		if k > k0 && converged(term, sum, ratio, z) {
			return sum, nil
		}
	}
	return 0, fmt.Errorf("%w: %d terms at z = %v", ErrNoConvergence, int(maxTerms), z)
}

// maxTerms bounds every series; at z = 0.999 the terms fall by e⁻¹ every
// thousand, so this reaches below 1e−16 for any z ≤ 0.9999.
const maxTerms = 1e6

// converged reports whether the tail after the current term is negligible.
// The ratio of consecutive terms is z·(a+k)(b+k)/((c+k)(k+1)) → z. Callers
// check only for k > |a|+|b|+|c|, where the ratio moves steadily towards z (for
// the parameters BG/NBD produces; this is a heuristic, not a theorem), so every
// later ratio is at most ρ, the larger of the current ratio and z, and the tail
// is at most |term|·ρ/(1−ρ).
func converged(term, sum, ratio, z float64) bool {
	rho := math.Max(math.Abs(ratio), z)
	if rho >= 1 {
		return false
	}
	return math.Abs(term)*rho/(1-rho) <= 1e-16*math.Abs(sum) || term == 0
}

// Hyp2F1 returns the Gauss hypergeometric function ₂F₁(a, b; c; z) by its
// power series Σ (a)_k (b)_k / ((c)_k k!) z^k. Domain: 0 ≤ z < 1 (the series
// converges for |z| < 1; negative z is accepted but slow when z is near −1),
// and c not a non-positive integer. Convergence slows as z → 1; past 10⁶ terms
// it returns ErrNoConvergence.
func Hyp2F1(a, b, c, z float64) (float64, error) {
	if math.IsNaN(z) || z <= -1 || z >= 1 {
		return 0, fmt.Errorf("hyp2f1: z = %v, want within (−1, 1)", z)
	}
	if c <= 0 && c == math.Trunc(c) {
		return 0, fmt.Errorf("hyp2f1: c = %v is a non-positive integer", c)
	}
	term, sum := 1.0, 1.0
	k0 := math.Abs(a) + math.Abs(b) + math.Abs(c)
	for k := 0.0; k < maxTerms; k++ {
		ratio := (a + k) * (b + k) * z / ((c + k) * (k + 1))
		term *= ratio
		sum += term
		if term == 0 || (k > k0 && converged(term, sum, ratio, math.Abs(z))) {
			return sum, nil
		}
	}
	return 0, fmt.Errorf("hyp2f1: %w: %d terms at z = %v", ErrNoConvergence, int(maxTerms), z)
}
