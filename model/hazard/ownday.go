package hazard

import (
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/model/feature"
)

// The own-rhythm day: the model's distribution of the first purchase day
// given a purchase within the horizon, q(t) = P(T = t | T ≤ H), says little
// about one customer (its shape over the days is shared; only its level
// moves with the score). A customer who has bought on several days has a
// rhythm of their own: with n gaps of mean μ and standard deviation s
// between purchase days and a wait r since the last, the next gap falls on
// day t when it lies in [r + t − 1, r + t). The own-rhythm day reads the day
// off the product of the two,
//
//	q'(t) ∝ q(t) · exp(−w · (r + t − ½ − μ)² / (2σ²)),
//	σ² = (n·s² + n₀·(κμ)²) / (n + n₀) · (1 + 1/n) + h²,
//
// the model's day distribution weighed by a normal likelihood of the
// customer's next gap whose spread is their own, shrunk towards a
// coefficient of variation κ by n₀ pseudo-gaps (a single gap has no spread
// of its own), widened by the uncertainty of the mean (1 + 1/n) and by h
// days of rounding, and tempered by a weight w ∈ [0, 4] fitted on the
// training rows (FitOwnDay: how much a customer's rhythm says about their
// day in this shop; 0 on a log where it says nothing, above 1 where the
// rhythms are tighter than the shrunk spread allows). An erratic customer's likelihood is nearly flat over
// the horizon and leaves q as it is; a regular one's peaks where the wait
// reaches the usual gap. Only the day read-outs change (MostLikelyDay,
// MedianDay, ExpectedDayIfBuys, ClosestDay); every P(buy within h) is the
// model's. Everything it reads is the customer's own row.
const (
	ownDayPseudoGaps = 2.0
	ownDayCV         = 0.5
	ownDayRounding   = 1.0
)

// OwnDayWeights is the grid FitOwnDay chooses the weight from.
var OwnDayWeights = [...]float64{0, 0.125, 0.25, 0.5, 1, 2, 4}

// ownDayIndex holds the schema positions the own-rhythm day reads: the
// rhythm term's and the number of purchase days.
type ownDayIndex struct {
	rhythmIndex
	days int
}

func (m *Model) ownDayPositions() (ownDayIndex, bool) {
	r, ok := m.rhythmPositions()
	if !ok {
		return ownDayIndex{}, false
	}
	ix := ownDayIndex{rhythmIndex: r, days: -1}
	for j, n := range m.Schema.Names {
		if n == "purchase_days_distinct" && m.Schema.Transforms[j] == "log1p" {
			ix.days = j
		}
	}
	return ix, ix.days >= 0
}

// SetOwnDay makes Predict read the day off the own-rhythm product with
// weight w (0 turns it off).
func (m *Model) SetOwnDay(w float64) error {
	if !(w >= 0 && w <= OwnDayWeights[len(OwnDayWeights)-1]) {
		return fmt.Errorf("own-rhythm day weight %v, want in [0, %g]", w, OwnDayWeights[len(OwnDayWeights)-1])
	}
	if w == 0 {
		m.ownDayWeight = 0
		return nil
	}
	ix, ok := m.ownDayPositions()
	if !ok {
		return fmt.Errorf("own-rhythm day: %w", errNoOwnDayFeatures)
	}
	m.ownDay, m.ownDayWeight = ix, w
	return nil
}

var errNoOwnDayFeatures = errors.New("schema lacks recency_days, gap_mean_days, gap_std_days, has_gap or purchase_days_distinct (log1p)")

// OwnDay is the own-rhythm day's weight (0: the model's day as it is).
func (m *Model) OwnDay() float64 { return m.ownDayWeight }

// OwnDayMinZ is how many standard errors the weight's gain on the training
// buyers must exceed for FitOwnDay to keep it.
const OwnDayMinZ = 2.0

// FitOwnDay sets the own-rhythm day's weight to the value of OwnDayWeights
// whose predicted (median) days have the lowest mean absolute error over the
// rows that buy within the horizon (Label 1..Horizon), the smallest weight
// on a tie, and keeps it only if its error is below weight 0's by more than
// OwnDayMinZ standard errors of the paired difference (rows as
// independent); otherwise the weight is 0. It returns the weight with its
// error and the error at weight 0. A schema without the features it reads,
// or fewer than two buyers, leaves it at 0.
func (m *Model) FitOwnDay(rows []feature.Row) (w, mae, mae0 float64, err error) {
	ix, ok := m.ownDayPositions()
	m.ownDayWeight = 0
	if !ok {
		return 0, 0, 0, nil
	}
	m.ownDay = ix
	// diff[k] accumulates the paired differences e_k − e_0 and their squares.
	var sum, diff, diff2 [len(OwnDayWeights)]float64
	n := 0
	for _, r := range rows {
		if r.Label < 1 || r.Label > m.Horizon {
			continue
		}
		p, err := m.Predict(r.X)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("fit own-rhythm day: %w", err)
		}
		e0 := math.Abs(float64(p.MedianDay - r.Label))
		for k, wk := range OwnDayWeights {
			e := e0
			if wk > 0 {
				e = math.Abs(float64(m.ownDayMedian(r.X, p, wk) - r.Label))
			}
			sum[k] += e
			diff[k] += e - e0
			diff2[k] += (e - e0) * (e - e0)
		}
		n++
	}
	if n < 2 {
		return 0, 0, 0, nil
	}
	best := 0
	for k := range sum {
		if sum[k] < sum[best] {
			best = k
		}
	}
	N := float64(n)
	mean := diff[best] / N
	se := math.Sqrt(max(diff2[best]/N-mean*mean, 0) / (N - 1))
	if !(-mean > OwnDayMinZ*se) {
		best = 0
	}
	m.ownDayWeight = OwnDayWeights[best]
	return m.ownDayWeight, sum[best] / N, sum[0] / N, nil
}

// applyOwnDay rewrites p's day read-outs for the raw feature vector x with
// weight w.
func (m *Model) applyOwnDay(x []float64, p *Prediction, w float64) {
	q := m.ownDayDist(x, *p, w)
	if q == nil {
		return
	}
	p.MostLikelyDay, p.ExpectedDayIfBuys, p.MedianDay = 1, 0, medianDay(q)
	best := -1.0
	for t := 1; t <= len(q); t++ {
		if q[t-1] > best {
			best, p.MostLikelyDay = q[t-1], t
		}
		p.ExpectedDayIfBuys += float64(t) * q[t-1]
	}
	p.ClosestDay = closestDay(q)
}

// ownDayMedian is the median day of the own-rhythm product with weight w,
// or p's own median day where it does not apply.
func (m *Model) ownDayMedian(x []float64, p Prediction, w float64) int {
	if q := m.ownDayDist(x, p, w); q != nil {
		return medianDay(q)
	}
	return p.MedianDay
}

// medianDay is the smallest day at which the normalised day weights q
// reach one half.
func medianDay(q []float64) int {
	var cum float64
	for t := 1; t <= len(q); t++ {
		if cum += q[t-1]; cum >= 0.5 {
			return t
		}
	}
	return len(q)
}

// ownDayDist is the own-rhythm product q'(t), normalised, for the raw
// feature vector x and p's day distribution, or nil for a customer without
// two purchase days (or weights that vanish).
func (m *Model) ownDayDist(x []float64, p Prediction, w float64) []float64 {
	ix := m.ownDay
	if x[ix.hasGap] < 0.5 {
		return nil
	}
	n := math.Round(math.Expm1(x[ix.days])) - 1
	if n < 1 {
		return nil
	}
	r := math.Expm1(max(x[ix.recency], 0))
	mu := math.Expm1(max(x[ix.gap], 0))
	s := math.Expm1(max(x[ix.sd], 0))
	v := (n*s*s+ownDayPseudoGaps*ownDayCV*ownDayCV*mu*mu)/(n+ownDayPseudoGaps)*(1+1/n) + ownDayRounding*ownDayRounding
	H := len(p.Hazard)
	q := make([]float64, H)
	// The log-weights are shifted by their maximum so that a customer long
	// overdue (every weight tiny) still gets a distribution.
	top := math.Inf(-1)
	for t := 1; t <= H; t++ {
		d := r + float64(t) - 0.5 - mu
		q[t-1] = -w * d * d / (2 * v)
		top = max(top, q[t-1])
	}
	var sum float64
	for t := 1; t <= H; t++ {
		q[t-1] = p.Hazard[t-1] * p.Survival[t-1] * math.Exp(q[t-1]-top)
		sum += q[t-1]
	}
	if !(sum > 0) {
		return nil
	}
	for t := range q {
		q[t] /= sum
	}
	return q
}
