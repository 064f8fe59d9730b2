package paretonbd

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/integrate/quad"
)

// PAlive returns P(the customer is alive at T | x, t_x, T) (Fader and Hardie
// 2005, eq. 24): the share of the likelihood that comes from customers still
// alive at T,
//
//	P(alive) = 1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A₀).
func (p Params) PAlive(c Customer) (float64, error) {
	q, err := p.parts(c)
	if err != nil {
		return 0, fmt.Errorf("pareto/nbd p(alive): %w", err)
	}
	return 1 / (1 + math.Exp(q.dead-q.alive)), nil
}

// ExpectedPurchases returns E[Y(t) | x, t_x, T], the expected number of
// purchases in the t time units after calibration (Schmittlein, Morrison and
// Colombo 1987, eq. 22; Fader and Hardie 2005, eq. 27):
//
//	E = (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)] · P(alive),
//
// at s = 1 its limit (r+x)(β+T)/(α+T) · log((β+T+t)/(β+T)) · P(alive). The
// bracket divided by s−1 is computed as −expm1(−(s−1)·log1p(t/(β+T)))/(s−1),
// which keeps full precision for s near 1.
func (p Params) ExpectedPurchases(c Customer, t float64) (float64, error) {
	if math.IsNaN(t) || t < 0 || math.IsInf(t, 0) {
		return 0, fmt.Errorf("pareto/nbd expected purchases: horizon %v, want finite and ≥ 0", t)
	}
	alive, err := p.PAlive(c)
	if err != nil {
		return 0, err
	}
	if t == 0 {
		return 0, nil
	}
	b := p.Beta + c.T
	l := math.Log1p(t / b)
	g := l // (1 − (b/(b+t))^(s−1))/(s−1) at s = 1
	if s1 := p.S - 1; s1 != 0 {
		g = -math.Expm1(-s1*l) / s1
	}
	return (p.R + c.X) / (p.Alpha + c.T) * b * g * alive, nil
}

// ProbPurchaseWithin returns P(at least one purchase in (T, T+t] | x, t_x, T).
//
// Derivation: a customer dead at T never buys again. Given alive at T, the
// likelihood of the history as a function of (λ, μ) is λ^x e^(−λT) · e^(−μT),
// which factorises, so λ | data, alive ~ Gamma(r+x, α+T) and independently
// μ | data, alive ~ Gamma(s, β+T). By memorylessness the remaining lifetime is
// exponential with rate μ, and the first purchase after T comes before both
// death and T+t with probability ∫₀ᵗ λ e^(−λu) e^(−μu) du. Averaging over the
// two Gamma posteriors, with E[λe^(−λu)] = R/A·(A/(A+u))^(R+1) and
// E[e^(−μu)] = (B/(B+u))^S for R = r+x, A = α+T, S = s, B = β+T:
//
//	P = P(alive) · ∫₀ᵗ R/A · (A/(A+u))^(R+1) · (B/(B+u))^S du.
//
// The same argument without the "first" gives ExpectedPurchases, which is how
// it is checked. The integrand is smooth on [0, t] with its singularities at
// u = −A and u = −B, so Gauss–Legendre quadrature on pieces that stay well
// away from them is accurate to rounding.
func (p Params) ProbPurchaseWithin(c Customer, t float64) (float64, error) {
	if math.IsNaN(t) || t < 0 || math.IsInf(t, 0) {
		return 0, fmt.Errorf("pareto/nbd purchase probability: horizon %v, want finite and ≥ 0", t)
	}
	alive, err := p.PAlive(c)
	if err != nil {
		return 0, err
	}
	if t == 0 {
		return 0, nil
	}
	r, a, s, b := p.R+c.X, p.Alpha+c.T, p.S, p.Beta+c.T
	f := func(u float64) float64 {
		return r / a * math.Exp(-(r+1)*math.Log1p(u/a)-s*math.Log1p(u/b))
	}
	// A piece [u, u+w] with w ≤ (u+m)/2, m = min(A, B), stays at least twice
	// its length away from the singularities, so 20 nodes per piece reach
	// rounding error; the pieces grow geometrically, so even a horizon of
	// 1e6 ages takes about 35 of them.
	m := math.Min(a, b)
	var sum float64
	for u := 0.0; u < t; {
		w := math.Min((u+m)/2, t-u)
		sum += quad.Fixed(f, u, u+w, 20, quad.Legendre{}, 0)
		u += w
	}
	return alive * math.Min(sum, 1), nil
}
