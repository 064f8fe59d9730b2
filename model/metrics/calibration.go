package metrics

import (
	"fmt"
	"math"
)

// ECEBins is the number of bins of the expected calibration error Kairos
// reports: ten equal-width bins over [0, 1], as Calibration builds them and
// as scikit-learn's calibration_curve(n_bins=10, strategy="uniform") does.
const ECEBins = 10

// ECE returns the expected calibration error of a calibration table: the
// count-weighted mean, over the populated bins, of |mean prediction − observed
// frequency|,
//
//	ECE = Σₖ (nₖ / N) · |MeanPredₖ − FracPosₖ|,   N = Σₖ nₖ.
//
// Kairos reports it on Calibration(probs, labels, ECEBins): ten equal-width
// bins, not equal-mass ones, so that it reads off the reliability diagram. With
// ten bins a perfectly calibrated model still scores above zero by sampling
// noise of order √(p(1−p)/nₖ) per bin; compare methods on the same test rows.
func ECE(bins []Bin) (float64, error) {
	var n int
	var s float64
	for k, b := range bins {
		if b.Count < 0 {
			return 0, fmt.Errorf("ece: bin %d has count %d", k, b.Count)
		}
		if b.Count == 0 {
			continue
		}
		if math.IsNaN(b.MeanPred) || math.IsNaN(b.FracPos) {
			return 0, fmt.Errorf("ece: bin %d: mean %v, frequency %v: %w", k, b.MeanPred, b.FracPos, ErrNotFinite)
		}
		n += b.Count
		s += float64(b.Count) * math.Abs(b.MeanPred-b.FracPos)
	}
	if n == 0 {
		return 0, fmt.Errorf("ece: %w", ErrEmpty)
	}
	return s / float64(n), nil
}

// GainPoint is one point of a cumulative gain chart: targeting the Share of
// customers with the highest scores finds Captured of all positives. Lift is
// Captured / Share, the factor over targeting at random.
type GainPoint struct {
	Share    float64
	Captured float64
	Lift     float64
}

// CumulativeGain returns the cumulative gain curve at points equal shares of
// the customers (Share = 1/points, 2/points, …, 1), customers ranked by score
// from high to low. Customers tied with the ones at the edge of a share are
// counted as a fraction: each member of a tie group contributes the group's
// mean positive rate, so the curve does not depend on the order within a tie
// (a method that gives everyone the same score has Lift 1 everywhere). It
// needs at least one positive.
func CumulativeGain(scores []float64, labels []bool, points int) ([]GainPoint, error) {
	if points < 1 {
		return nil, fmt.Errorf("cumulative gain: %d points, want at least 1", points)
	}
	if err := checkScores("cumulative gain", scores, len(labels)); err != nil {
		return nil, err
	}
	pos := countPos(labels)
	if pos == 0 {
		return nil, fmt.Errorf("cumulative gain: no positives: %w", ErrOneClass)
	}
	n := len(scores)
	idx := descending(scores)
	out := make([]GainPoint, points)
	// Walk tie groups from the top, and fill every share boundary that falls
	// inside or at the end of the current group.
	var tpBefore float64 // positives strictly above the current group
	seen := 0            // customers strictly above the current group
	k := 0               // next point to fill
	for i := 0; i < n && k < points; {
		j := i
		gPos := 0
		for j < n && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				gPos++
			}
			j++
		}
		size := j - i
		for k < points {
			// The k-th boundary targets m customers; it lies in this group when
			// seen < m ≤ seen+size (exact in integers: m = n·(k+1)/points).
			m := float64(n) * float64(k+1) / float64(points)
			if m > float64(seen+size) {
				break
			}
			tp := tpBefore + (m-float64(seen))*float64(gPos)/float64(size)
			share := float64(k+1) / float64(points)
			out[k] = GainPoint{Share: share, Captured: tp / float64(pos), Lift: tp / float64(pos) / share}
			k++
		}
		tpBefore += float64(gPos)
		seen += size
		i = j
	}
	return out, nil
}
