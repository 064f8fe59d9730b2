package hazard

import (
	"fmt"
	"slices"
)

// Scratch is the working memory of Within. A scorer keeps one per goroutine
// and reuses it, so that scoring allocates nothing after its first call; the
// zero value is ready to use.
type Scratch struct {
	z, g, off []float64
}

// Within returns P(purchase within days days) for a raw feature vector x,
// 1 ≤ days ≤ Horizon: bit-identical to 1 − Predict(x).Survival[days], so to
// Predict(x).Within[i] where Horizons[i] = days. A live scorer that needs one
// probability per customer calls it instead of Predict, which builds the
// whole curve, its summaries and the extrapolation in new slices: Within runs
// the same arithmetic in the same order over the first days days only, in
// s's memory.
func (m *Model) Within(x []float64, days int, s *Scratch) (float64, error) {
	if len(x) != m.Schema.Len() {
		return 0, fmt.Errorf("within: score: %w: got %d, want %d", ErrFeatureCount, len(x), m.Schema.Len())
	}
	if days < 1 || days > m.Horizon {
		return 0, fmt.Errorf("within: %d days outside the model's horizon 1..%d", days, m.Horizon)
	}
	s.z = resize(s.z, len(x))
	m.standardize(x, s.z)
	f := m.score(m.Params, s.z, nil)
	var off []float64
	if m.rhythm.on {
		// g(x, t) and its offset on day t depend on t alone, so the first
		// days of Predict's 90-day offsets are computed here unchanged.
		s.g, s.off = resize(s.g, days*RhythmTerms), resize(s.off, days)
		m.rhythmOffsets(m.Params, s.z, s.g, s.off)
		off = s.off
	}
	// predict's survival recurrence, S_t = S_{t−1}·(1 − h_t), term for term.
	surv := 1.0
	for t := 1; t <= days; t++ {
		zt := m.Params[t-1] + f
		if off != nil {
			zt += off[t-1]
		}
		surv *= 1 - sigmoid(zt)
	}
	return 1 - surv, nil
}

// resize returns b with length n, reusing its memory when it is large enough.
func resize(b []float64, n int) []float64 { return slices.Grow(b[:0], n)[:n] }
