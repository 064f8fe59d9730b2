// Package metrics scores purchase-timing predictions against what customers did:
// ranking quality (AUC, average precision, Harrell's C for censored times),
// probability quality (Brier, log loss, calibration table), a tuned F1 and the
// JData-2018 purchase-date score. Every function is pure and validates its input.
package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Errors a caller may act on. Each function wraps them with the metric's name.
var (
	// ErrLength means the input slices differ in length.
	ErrLength = errors.New("input lengths differ")
	// ErrEmpty means there is nothing to score.
	ErrEmpty = errors.New("no observations")
	// ErrOneClass means the labels hold only one class, so a ranking metric is undefined.
	ErrOneClass = errors.New("labels hold only one class")
	// ErrNotFinite means a score, probability or time is NaN or infinite.
	ErrNotFinite = errors.New("value is not finite")
	// ErrProbRange means a probability lies outside [0, 1].
	ErrProbRange = errors.New("probability outside [0, 1]")
	// ErrNoComparablePairs means no pair of subjects can be ordered, so the
	// concordance index is undefined (for example, no event was observed).
	ErrNoComparablePairs = errors.New("no comparable pairs")
)

// checkScores validates a score vector against its labels.
func checkScores(op string, scores []float64, n int) error {
	if len(scores) != n {
		return fmt.Errorf("%s: %d scores, %d labels: %w", op, len(scores), n, ErrLength)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrEmpty)
	}
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("%s: score %d is %v: %w", op, i, s, ErrNotFinite)
		}
	}
	return nil
}

// checkProbs validates a probability vector against its labels.
func checkProbs(op string, probs []float64, n int) error {
	if err := checkScores(op, probs, n); err != nil {
		return err
	}
	for i, p := range probs {
		if p < 0 || p > 1 {
			return fmt.Errorf("%s: probability %d is %v: %w", op, i, p, ErrProbRange)
		}
	}
	return nil
}

// countPos returns the number of true labels.
func countPos(labels []bool) int {
	n := 0
	for _, l := range labels {
		if l {
			n++
		}
	}
	return n
}

// descending returns the indices of scores sorted from highest to lowest score.
// The order within a tie is unspecified; every caller groups ties.
func descending(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	return idx
}

// tieGroups calls f for every group of equal scores, from the highest score
// down, with the group's row indices and its numbers of positives and
// negatives.
func tieGroups(scores []float64, labels []bool, f func(group []int, pos, neg int)) {
	idx := descending(scores)
	for i := 0; i < len(idx); {
		j := i
		pos, neg := 0, 0
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				pos++
			} else {
				neg++
			}
			j++
		}
		f(idx[i:j], pos, neg)
		i = j
	}
}

// AUC returns the area under the ROC curve: the probability that a random
// positive scores above a random negative, ties counting one half (the
// Mann–Whitney U statistic divided by n₊·n₋). It runs in O(n log n).
func AUC(scores []float64, labels []bool) (float64, error) {
	if err := checkScores("auc", scores, len(labels)); err != nil {
		return 0, err
	}
	pos := countPos(labels)
	neg := len(labels) - pos
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("auc: %d positives, %d negatives: %w", pos, neg, ErrOneClass)
	}
	// Walk from the highest score down; within a tie group every positive beats
	// the negatives seen below the group and ties with the group's negatives.
	var u float64 // pairs (positive, negative) ordered correctly, ties ½
	negAbove := 0 // negatives with a strictly higher score than the current group
	tieGroups(scores, labels, func(_ []int, gPos, gNeg int) {
		// Positives in this group beat every negative strictly below it.
		below := neg - negAbove - gNeg
		u += float64(gPos)*float64(below) + 0.5*float64(gPos)*float64(gNeg)
		negAbove += gNeg
	})
	return u / (float64(pos) * float64(neg)), nil
}

// AveragePrecision returns the area under the precision–recall curve as
// scikit-learn's average_precision_score computes it: Σₙ (Rₙ − Rₙ₋₁)·Pₙ over the
// distinct score thresholds from high to low, all observations sharing a score
// entering together. It needs at least one positive.
func AveragePrecision(scores []float64, labels []bool) (float64, error) {
	if err := checkScores("average precision", scores, len(labels)); err != nil {
		return 0, err
	}
	pos := countPos(labels)
	if pos == 0 {
		return 0, fmt.Errorf("average precision: no positives: %w", ErrOneClass)
	}
	idx := descending(scores)
	var ap, prevRecall float64
	tp, fp := 0, 0
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				tp++
			} else {
				fp++
			}
			j++
		}
		recall := float64(tp) / float64(pos)
		precision := float64(tp) / float64(tp+fp)
		ap += (recall - prevRecall) * precision
		prevRecall = recall
		i = j
	}
	return ap, nil
}

// Brier returns the mean squared difference between predicted probabilities and
// the 0/1 outcomes.
func Brier(probs []float64, labels []bool) (float64, error) {
	if err := checkProbs("brier", probs, len(labels)); err != nil {
		return 0, err
	}
	var s float64
	for i, p := range probs {
		d := p
		if labels[i] {
			d = p - 1
		}
		s += d * d
	}
	return s / float64(len(probs)), nil
}

// logLossEps bounds probabilities away from 0 and 1 so that one confident
// mistake costs a large but finite amount (−ln 1e−15 ≈ 34.5).
const logLossEps = 1e-15

// LogLoss returns the mean negative log-likelihood of the outcomes under the
// predicted probabilities (natural log), probabilities clipped to [1e−15, 1−1e−15].
func LogLoss(probs []float64, labels []bool) (float64, error) {
	if err := checkProbs("log loss", probs, len(labels)); err != nil {
		return 0, err
	}
	var s float64
	for i, p := range probs {
		p = math.Min(math.Max(p, logLossEps), 1-logLossEps)
		if labels[i] {
			s -= math.Log(p)
		} else {
			s -= math.Log1p(-p)
		}
	}
	return s / float64(len(probs)), nil
}

// Bin is one row of a calibration table: the predictions that fell in [Lo, Hi)
// (the last bin also holds Hi = 1), their mean, and the fraction that came true.
// MeanPred and FracPos are NaN when Count is zero.
type Bin struct {
	Lo, Hi   float64
	Count    int
	MeanPred float64
	FracPos  float64
}

// Calibration sorts predictions into bins equal-width bins over [0, 1] and
// reports, per bin, the mean prediction and the observed frequency. A
// well-calibrated model has MeanPred ≈ FracPos in every populated bin. Bin k is
// [k/bins, (k+1)/bins). scikit-learn's calibration_curve (1.2) differs only for
// a prediction exactly on an inner edge: it puts it in the lower bin, and its
// numpy.linspace edges can differ from k/bins in the last bit.
func Calibration(probs []float64, labels []bool, bins int) ([]Bin, error) {
	if bins < 1 {
		return nil, fmt.Errorf("calibration: %d bins, want at least 1", bins)
	}
	if err := checkProbs("calibration", probs, len(labels)); err != nil {
		return nil, err
	}
	out := make([]Bin, bins)
	sumPred := make([]float64, bins)
	nPos := make([]int, bins)
	for i, p := range probs {
		k := binOf(p, bins)
		out[k].Count++
		sumPred[k] += p
		if labels[i] {
			nPos[k]++
		}
	}
	for k := range out {
		out[k].Lo = float64(k) / float64(bins)
		out[k].Hi = float64(k+1) / float64(bins)
		if out[k].Count == 0 {
			out[k].MeanPred, out[k].FracPos = math.NaN(), math.NaN()
			continue
		}
		out[k].MeanPred = sumPred[k] / float64(out[k].Count)
		out[k].FracPos = float64(nPos[k]) / float64(out[k].Count)
	}
	return out, nil
}

// binOf returns the bin k with k/bins ≤ p < (k+1)/bins, computing the edges the
// way Bin reports them so that a value on an edge (0.6 with 5 bins) lands in the
// bin that starts there; p = 1 belongs to the last bin.
func binOf(p float64, bins int) int {
	k := min(int(p*float64(bins)), bins-1)
	if k > 0 && p < float64(k)/float64(bins) {
		k--
	}
	if k < bins-1 && p >= float64(k+1)/float64(bins) {
		k++
	}
	return k
}

// BestF1 scans every distinct score as a threshold (predict positive when
// score ≥ threshold) and returns the threshold with the highest F1 and that F1.
// Among equal F1 values the highest threshold wins. Tune it on validation data,
// never on the data it is then reported on.
func BestF1(scores []float64, labels []bool) (threshold, f1 float64, err error) {
	if err := checkScores("best f1", scores, len(labels)); err != nil {
		return 0, 0, err
	}
	pos := countPos(labels)
	if pos == 0 {
		return 0, 0, fmt.Errorf("best f1: no positives: %w", ErrOneClass)
	}
	idx := descending(scores)
	tp, fp := 0, 0
	f1 = -1
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				tp++
			} else {
				fp++
			}
			j++
		}
		fn := pos - tp
		f := 2 * float64(tp) / float64(2*tp+fp+fn)
		if f > f1 {
			f1, threshold = f, scores[idx[i]]
		}
		i = j
	}
	return threshold, f1, nil
}
