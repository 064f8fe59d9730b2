package hazard

import (
	"fmt"
	"math"
)

// The direct horizon objective. The discrete-time hazard's negative
// log-likelihood of one row factors exactly into the binary cross-entropy of
// "buys within the horizon" and the log-likelihood of the day given a
// purchase:
//
//	NLL = −y·log(1 − S_H) − (1 − y)·log S_H  +  y·(−log P(T = label | T ≤ H)),
//
// S_H = Π_{t≤H} (1 − h_t), y = 1 for a buyer. For a non-buyer the two are the
// same number (the row is censored at H). TrainOptions.Whether, w in [0, 1],
// trains on
//
//	BCE_H + (1 − w)·NLL_day  =  (1 − w)·NLL + w·BCE_H,
//
// so w = 0 is the plain hazard likelihood and w = 1 fits P(buy within the
// horizon) alone, the day shape then held only by the initial baselines. The
// term has no parameters of its own: it reweights one row's loss, so a
// customer's gradient stays the sum of their rows' gradients and DP-SGD (and
// the federation's clipped updates) train it unchanged.

// checkWhether validates a Whether weight.
func checkWhether(w float64) error {
	if !(w >= 0 && w <= 1) {
		return fmt.Errorf("whether weight %v, want in [0, 1]", w)
	}
	return nil
}

// SetWhether sets the weight w of the direct horizon objective in the loss of
// CustomerLoss (and of training): (1 − w)·NLL + w·BCE of P(buy within the
// horizon). A model read from a file has w = 0.
func (m *Model) SetWhether(w float64) error {
	if err := checkWhether(w); err != nil {
		return fmt.Errorf("set whether: %w", err)
	}
	m.whether = w
	return nil
}

// Whether is the weight of the direct horizon objective (SetWhether).
func (m *Model) Whether() float64 { return m.whether }

// whetherLoss returns w·(−log(1 − S_H)), the buyer's share of the direct
// horizon objective, for the daily logits p[t−1] + f (+ off[t−1]), and, when
// grad is non-nil, adds its gradient with respect to the baselines and the
// rhythm weights into grad and returns its derivative with respect to f in
// df. ∂(−log(1 − S))/∂z_t = −h_t·S/(1 − S); when 1 − S underflows (every
// daily logit far below zero) it is computed from log Σ e^{z_t}, since
// 1 − S ≈ Σ h_t ≈ Σ e^{z_t} there.
func (m *Model) whetherLoss(p []float64, f float64, off, grad []float64, rs *rhythmScratch) (loss, df float64) {
	H, w := m.Horizon, m.whether
	z := func(t int) float64 {
		zt := p[t-1] + f
		if off != nil {
			zt += off[t-1]
		}
		return zt
	}
	var cum float64 // −log S_H = Σ softplus(z_t)
	zmax := math.Inf(-1)
	for t := 1; t <= H; t++ {
		zt := z(t)
		cum += softplus(zt)
		zmax = max(zmax, zt)
	}
	// coef(t) is h_t·S/(1 − S).
	var coef func(zt float64) float64
	if cum > 1e-12 {
		// −log(1 − S) = −log(−expm1(−cum)); S/(1 − S) = 1/expm1(cum).
		loss = -math.Log(-math.Expm1(-cum))
		r := 1 / math.Expm1(cum)
		coef = func(zt float64) float64 { return sigmoid(zt) * r }
	} else {
		// Here every z_t < −27, h_t = e^{z_t} to 1e-12 relative, and
		// 1 − S = cum to the same precision.
		var s float64
		for t := 1; t <= H; t++ {
			s += math.Exp(z(t) - zmax)
		}
		lse := zmax + math.Log(s)
		loss = -lse
		coef = func(zt float64) float64 { return math.Exp(zt - lse) }
	}
	loss *= w
	if grad == nil {
		return loss, 0
	}
	for t := 1; t <= H; t++ {
		g := -w * coef(z(t))
		grad[t-1] += g
		if off != nil {
			v, k := grad[len(grad)-RhythmTerms:], (t-1)*RhythmTerms
			for i := range RhythmTerms {
				v[i] += g * rs.g[k+i]
			}
		}
		df += g
	}
	return loss, df
}
