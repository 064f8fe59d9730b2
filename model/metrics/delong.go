package metrics

import (
	"fmt"
	"math"
)

// PairedAUC is two scores' AUCs on the same labelled rows and the standard
// error of their difference.
type PairedAUC struct {
	A, B float64
	// SE is DeLong's standard error of A − B (DeLong, DeLong & Clarke-Pearson
	// 1988), which accounts for both scores ranking the same rows.
	SE float64
}

// DeLong returns the AUCs of scores a and b on labels and DeLong's standard
// error of their difference, one row per independent subject.
//
// For m positives and n negatives, positive i's placement under a score is
// V10ᵢ = (negatives scored below i + ½ · those tied with i) / n and negative
// j's is V01ⱼ = (positives scored above j + ½ · those tied) / m; the AUC is the
// mean of either. The variance of AUC_a − AUC_b is S10/m + S01/n, with S10
// and S01 the sample variances (divisor m − 1 and n − 1) of the placements'
// differences V10ᵢ(a) − V10ᵢ(b) and V01ⱼ(a) − V01ⱼ(b). It needs at least two
// positives and two negatives.
func DeLong(a, b []float64, labels []bool) (PairedAUC, error) {
	for _, s := range [][]float64{a, b} {
		if err := checkScores("delong", s, len(labels)); err != nil {
			return PairedAUC{}, err
		}
	}
	pos := countPos(labels)
	neg := len(labels) - pos
	if pos < 2 || neg < 2 {
		return PairedAUC{}, fmt.Errorf("delong: %d positives, %d negatives, want two of each: %w", pos, neg, ErrOneClass)
	}
	va, aucA := placements(a, labels, pos, neg)
	vb, aucB := placements(b, labels, pos, neg)
	var sp, sn, mp, mn float64
	for i, l := range labels {
		if l {
			mp += va[i] - vb[i]
		} else {
			mn += va[i] - vb[i]
		}
	}
	mp /= float64(pos)
	mn /= float64(neg)
	for i, l := range labels {
		d := va[i] - vb[i]
		if l {
			sp += (d - mp) * (d - mp)
		} else {
			sn += (d - mn) * (d - mn)
		}
	}
	v := sp/float64(pos-1)/float64(pos) + sn/float64(neg-1)/float64(neg)
	return PairedAUC{A: aucA, B: aucB, SE: math.Sqrt(v)}, nil
}

// placements returns every row's DeLong placement under scores (V10 for a
// positive, V01 for a negative) and the AUC.
func placements(scores []float64, labels []bool, pos, neg int) ([]float64, float64) {
	v := make([]float64, len(scores))
	posAbove, negAbove := 0, 0
	var sum float64
	tieGroups(scores, labels, func(group []int, gPos, gNeg int) {
		below := neg - negAbove - gNeg
		v10 := (float64(below) + 0.5*float64(gNeg)) / float64(neg)
		v01 := (float64(posAbove) + 0.5*float64(gPos)) / float64(pos)
		for _, k := range group {
			if labels[k] {
				v[k] = v10
				sum += v10
			} else {
				v[k] = v01
			}
		}
		posAbove += gPos
		negAbove += gNeg
	})
	return v, sum / float64(pos)
}
