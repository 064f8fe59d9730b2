package paretonbd

import (
	"fmt"
	"math"
)

// maxTerms bounds the series; at z = 0.9999 its terms fall by e⁻¹ every ten
// thousand, so this reaches below 1e−16 of the sum for any z ≤ 0.9999 and
// parameters of the size the likelihood produces.
const maxTerms = 1e6

// logHyp2F1 returns log ₂F₁(a, b; c; z) for a, b, c > 0 and 0 ≤ z < 1, by the
// power series Σ (a)_k (b)_k / ((c)_k k!) z^k. Every term is positive, so
// there is no cancellation; the running sum is rescaled whenever it grows
// past 1e200, so that a large b (b = r+x for a heavy buyer) cannot overflow.
// It stops when the tail after the current term k is below 1e−16 of the sum,
// bounded rigorously: every later term ratio (a+j)(b+j)z/((c+j)(j+1)), j > k,
// is at most ρ = z·max(1, (a+k+1)/(c+k+1))·max(1, (b+k+1)/(k+2)), because
// each fraction moves monotonically towards 1, so once ρ < 1 the tail is at
// most term·ρ/(1−ρ).
func logHyp2F1(a, b, c, z float64) (float64, error) {
	if !(z >= 0 && z < 1) || !(a > 0 && b > 0 && c > 0) {
		return 0, fmt.Errorf("hyp2f1(%v, %v; %v; %v): want a, b, c > 0 and 0 ≤ z < 1", a, b, c, z)
	}
	if z == 0 {
		return 0, nil
	}
	const big = 1e200
	term, sum, scale := 1.0, 1.0, 0.0 // the true sum is sum·e^scale
	for k := 0.0; k < maxTerms; k++ {
		ratio := (a + k) * (b + k) * z / ((c + k) * (k + 1))
		term *= ratio
		sum += term
		if sum > big {
			term /= big
			sum /= big
			scale += math.Log(big)
		}
		rho := z * math.Max(1, (a+k+1)/(c+k+1)) * math.Max(1, (b+k+1)/(k+2))
		if rho < 1 && term*rho/(1-rho) <= 1e-16*sum {
			return math.Log(sum) + scale, nil
		}
	}
	return 0, fmt.Errorf("hyp2f1(%v, %v; %v; %v): %w after %d terms", a, b, c, z, ErrNoConvergence, int(maxTerms))
}
