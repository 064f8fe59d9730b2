// Package audit turns the outcomes of a membership-inference experiment into an
// empirical lower bound on the privacy loss ε of a mechanism, with a stated
// confidence. If a mechanism is (ε, δ)-DP, then for every test T that says "member"
// from its output, P[T | member] ≤ e^ε·P[T | not member] + δ; a test with a high
// true-positive rate and a low false-positive rate therefore proves that ε is at
// least ln((TPR − δ)/FPR). Rates measured from finitely many runs are replaced by
// exact (Clopper–Pearson) confidence bounds, so that the lower bound holds with the
// stated probability.
package audit

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrTooFewRuns is returned when there are too few scores to split and bound.
var ErrTooFewRuns = errors.New("too few runs")

// logBinomPMF is ln P[X = k] for X ~ Binomial(n, p), 0 < p < 1.
func logBinomPMF(k, n int, p float64) float64 {
	lc, _ := math.Lgamma(float64(n + 1))
	l1, _ := math.Lgamma(float64(k + 1))
	l2, _ := math.Lgamma(float64(n - k + 1))
	return lc - l1 - l2 + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
}

// upperTail is P[X ≥ k] for X ~ Binomial(n, p), summed in log space.
func upperTail(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1
	}
	// Terms by the recurrence pmf(j+1)/pmf(j) = (n−j)/(j+1)·p/(1−p), summed
	// relative to the largest so far; past the mode, stop once the terms are
	// below e^-60 of it.
	lr := math.Log(p) - math.Log1p(-p)
	t := logBinomPMF(k, n, p)
	m, s := t, 1.0
	for j := k + 1; j <= n; j++ {
		t += math.Log(float64(n-j+1)/float64(j)) + lr
		if t > m {
			s = s*math.Exp(m-t) + 1
			m = t
			continue
		}
		if t < m-60 {
			break
		}
		s += math.Exp(t - m)
	}
	return math.Min(1, math.Exp(m)*s)
}

// bisect finds p in [0, 1] with f(p) = target for f increasing in p.
func bisect(f func(float64) float64, target float64) float64 {
	lo, hi := 0.0, 1.0
	for hi-lo > 1e-13 {
		mid := (lo + hi) / 2
		if f(mid) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

func checkCount(k, n int, alpha float64) error {
	switch {
	case n < 1:
		return fmt.Errorf("clopper-pearson: n %d, want ≥ 1", n)
	case k < 0 || k > n:
		return fmt.Errorf("clopper-pearson: k %d outside 0..%d", k, n)
	case !(alpha > 0 && alpha < 1):
		return fmt.Errorf("clopper-pearson: α %v outside (0, 1)", alpha)
	}
	return nil
}

// ClopperPearsonLower returns the exact one-sided lower confidence bound at level
// 1 − alpha on a binomial proportion after k successes in n trials: the p with
// P[Binomial(n, p) ≥ k] = alpha (0 when k = 0).
func ClopperPearsonLower(k, n int, alpha float64) (float64, error) {
	if err := checkCount(k, n, alpha); err != nil {
		return 0, err
	}
	if k == 0 {
		return 0, nil
	}
	return bisect(func(p float64) float64 { return upperTail(k, n, p) }, alpha), nil
}

// ClopperPearsonUpper returns the exact one-sided upper confidence bound at level
// 1 − alpha: the p with P[Binomial(n, p) ≤ k] = alpha (1 when k = n).
func ClopperPearsonUpper(k, n int, alpha float64) (float64, error) {
	if err := checkCount(k, n, alpha); err != nil {
		return 0, err
	}
	if k == n {
		return 1, nil
	}
	// P[X ≤ k] = 1 − P[X ≥ k+1] is decreasing in p.
	return bisect(func(p float64) float64 { return upperTail(k+1, n, p) }, 1-alpha), nil
}

// Bound is an empirical lower bound on ε.
type Bound struct {
	// Epsilon is the lower bound (0 when the experiment proves nothing), holding
	// with probability at least Confidence over the runs.
	Epsilon    float64 `json:"epsilon_lower_bound"`
	Confidence float64 `json:"confidence"`
	// Threshold is the score at or above which the test says "member" (chosen on
	// the selection half), Flipped whether the test used the complement event
	// (score below Threshold means "not member").
	Threshold float64 `json:"threshold"`
	Flipped   bool    `json:"flipped,omitempty"`
	// TPR and FPR are the rates of the test on the evaluation half, with the
	// confidence bounds used: ε ≥ ln((TPRLower − δ)/FPRUpper).
	TPR      float64 `json:"tpr"`
	FPR      float64 `json:"fpr"`
	TPRLower float64 `json:"tpr_lower"`
	FPRUpper float64 `json:"fpr_upper"`
	// Selection and Evaluation are the runs per side in each half.
	Selection  int `json:"selection_runs"`
	Evaluation int `json:"evaluation_runs"`
}

// test is a threshold test: member iff score ≥ t (or, flipped, non-member iff
// score < t, which is the test "score < t" with the roles of the worlds swapped).
type test struct {
	t    float64
	flip bool
}

// counts returns how many of in and out the test flags (for a flipped test, how
// many of out and in fall below t: the complement event, with worlds swapped).
func (c test) counts(in, out []float64) (pos, neg int) {
	for _, s := range in {
		if !c.flip && s >= c.t {
			pos++
		}
		if c.flip && s < c.t {
			neg++
		}
	}
	for _, s := range out {
		if !c.flip && s >= c.t {
			neg++
		}
		if c.flip && s < c.t {
			pos++
		}
	}
	return pos, neg
}

// sizes returns the number of runs behind the counts' rates.
func (c test) sizes(in, out []float64) (nPos, nNeg int) {
	if c.flip {
		return len(out), len(in)
	}
	return len(in), len(out)
}

func bound(pos, nPos, neg, nNeg int, delta, alpha float64) (eps, tprLo, fprHi float64, err error) {
	if tprLo, err = ClopperPearsonLower(pos, nPos, alpha/2); err != nil {
		return 0, 0, 0, err
	}
	if fprHi, err = ClopperPearsonUpper(neg, nNeg, alpha/2); err != nil {
		return 0, 0, 0, err
	}
	if tprLo-delta <= 0 {
		return 0, tprLo, fprHi, nil
	}
	return max(0, math.Log((tprLo-delta)/fprHi)), tprLo, fprHi, nil
}

// EpsilonLowerBound bounds ε from below given scores of a membership statistic
// (higher = more likely a member) from independent runs with the target present
// (in) and absent (out), at δ and confidence 1 − alpha.
//
// The runs are split in two: the even-indexed runs choose the threshold test that
// gives the largest bound, the odd-indexed runs evaluate it, so that the choice
// does not bias the bound. Two events are tried at every threshold: "score ≥ t"
// (evidence against P[in] ≤ e^ε·P[out] + δ) and "score < t" (evidence against
// P[out] ≤ e^ε·P[in] + δ); both must hold under (ε, δ)-DP. The two Clopper–Pearson
// bounds are taken at alpha/2 each, so the result holds with probability ≥ 1 − alpha.
func EpsilonLowerBound(in, out []float64, delta, alpha float64) (Bound, error) {
	if len(in) < 4 || len(out) < 4 {
		return Bound{}, fmt.Errorf("epsilon lower bound: %d and %d runs: %w", len(in), len(out), ErrTooFewRuns)
	}
	if !(delta >= 0 && delta < 1) || !(alpha > 0 && alpha < 1) {
		return Bound{}, fmt.Errorf("epsilon lower bound: δ %v or α %v out of range", delta, alpha)
	}
	for _, s := range slices.Concat(in, out) {
		if math.IsNaN(s) {
			return Bound{}, errors.New("epsilon lower bound: NaN score")
		}
	}
	half := func(xs []float64, r int) []float64 {
		var o []float64
		for i := r; i < len(xs); i += 2 {
			o = append(o, xs[i])
		}
		return o
	}
	selIn, selOut, evIn, evOut := half(in, 0), half(out, 0), half(in, 1), half(out, 1)
	vals := slices.Concat(selIn, selOut)
	slices.Sort(vals)
	vals = slices.Compact(vals)
	// Thresholds halfway between neighbouring scores, so that a tie between
	// thresholds can be broken towards the middle of the gap rather than its
	// edge, where the evaluation runs would fall on the wrong side.
	cands := make([]float64, 0, len(vals)+1)
	cands = append(cands, vals[0]-1)
	for i := 1; i < len(vals); i++ {
		cands = append(cands, vals[i-1]+(vals[i]-vals[i-1])/2)
	}
	cands = append(cands, vals[len(vals)-1]+1)
	type scored struct {
		c   test
		eps float64
	}
	var all []scored
	bestEps := -1.0
	for _, flip := range []bool{false, true} {
		for _, t := range cands {
			c := test{t: t, flip: flip}
			pos, neg := c.counts(selIn, selOut)
			nPos, nNeg := c.sizes(selIn, selOut)
			e, _, _, err := bound(pos, nPos, neg, nNeg, delta, alpha)
			if err != nil {
				return Bound{}, fmt.Errorf("epsilon lower bound: %w", err)
			}
			all = append(all, scored{c, e})
			bestEps = max(bestEps, e)
		}
	}
	// The middle of the first run of thresholds that attain the best bound.
	first := slices.IndexFunc(all, func(s scored) bool { return s.eps == bestEps })
	last := first
	for last+1 < len(all) && all[last+1].eps == bestEps && all[last+1].c.flip == all[first].c.flip {
		last++
	}
	best := all[(first+last)/2].c
	nPos, nNeg := best.sizes(evIn, evOut)
	pos, neg := best.counts(evIn, evOut)
	eps, lo, hi, err := bound(pos, nPos, neg, nNeg, delta, alpha)
	if err != nil {
		return Bound{}, fmt.Errorf("epsilon lower bound: %w", err)
	}
	return Bound{
		Epsilon: eps, Confidence: 1 - alpha, Threshold: best.t, Flipped: best.flip,
		TPR: float64(pos) / float64(nPos), FPR: float64(neg) / float64(nNeg), TPRLower: lo, FPRUpper: hi,
		Selection: min(len(selIn), len(selOut)), Evaluation: min(len(evIn), len(evOut)),
	}, nil
}
