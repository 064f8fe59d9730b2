// Package merge combines the model updates of one federated round into a single
// update: weighted FedAvg, coordinate-wise median or trimmed mean, each after an
// optional L2 norm bound on every update, and a FedAdam server optimizer that treats
// the combined update as a pseudo-gradient (Reddi et al. 2021, "Adaptive Federated
// Optimization").
//
// The robust methods (median, trimmed mean) ignore the weights: a weight comes from a
// merchant's own declared (DP) customer count, so a malicious merchant could inflate
// it; an unweighted order statistic bounds what a minority can do to each coordinate
// whatever it declares. The norm bound is applied first so that one huge update
// cannot dominate FedAvg either, and FedAvg can cap every weight's share of the
// total (CapShares) so that no declared count outweighs the rest.
//
// The package is pure: no I/O, no logging, no randomness. Inputs are never modified.
package merge

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Merge methods.
const (
	MethodFedAvg      = "fedavg"
	MethodMedian      = "median"
	MethodTrimmedMean = "trimmed_mean"
)

// Errors Combine returns (wrapped, with the offending index). A caller that gets one
// of ErrNonFinite or ErrLength for a merchant's update has a bad update, not a bad merge.
var (
	ErrEmpty     = errors.New("no updates to combine")
	ErrLength    = errors.New("update lengths differ")
	ErrNonFinite = errors.New("non-finite value")
	ErrWeight    = errors.New("invalid weight")
	ErrOptions   = errors.New("invalid merge options")
)

// Options selects the merge.
type Options struct {
	// Method is MethodFedAvg (the default when empty), MethodMedian or
	// MethodTrimmedMean.
	Method string `json:"method"`
	// TrimFraction is the fraction of updates dropped at each end of every coordinate
	// by the trimmed mean, in [0, 0.5): ⌊TrimFraction·n⌋ smallest and as many largest.
	TrimFraction float64 `json:"trim_fraction,omitempty"`
	// NormBound, when > 0, scales every update whose L2 norm exceeds it down to it
	// before combining. 0 means no bound.
	NormBound float64 `json:"norm_bound,omitempty"`
	// MaxWeightShare, when > 0, caps every FedAvg weight at this share of the
	// total (CapShares), so that no update outweighs the rest by claiming a
	// huge count. 0 means no cap.
	MaxWeightShare float64 `json:"max_weight_share,omitempty"`
}

// Validate reports whether o is usable.
func (o Options) Validate() error {
	switch o.Method {
	case "", MethodFedAvg, MethodMedian, MethodTrimmedMean:
	default:
		return fmt.Errorf("%w: method %q (want %s, %s or %s)", ErrOptions, o.Method, MethodFedAvg, MethodMedian, MethodTrimmedMean)
	}
	if !(o.TrimFraction >= 0 && o.TrimFraction < 0.5) {
		return fmt.Errorf("%w: trim fraction %v outside [0, 0.5)", ErrOptions, o.TrimFraction)
	}
	if !(o.NormBound >= 0) || math.IsInf(o.NormBound, 0) {
		return fmt.Errorf("%w: norm bound %v must be finite and ≥ 0", ErrOptions, o.NormBound)
	}
	if !(o.MaxWeightShare >= 0 && o.MaxWeightShare <= 1) {
		return fmt.Errorf("%w: max weight share %v outside [0, 1]", ErrOptions, o.MaxWeightShare)
	}
	return nil
}

// CapShares returns the shares wᵢ/Σw with every share above maxShare cut to
// it and the excess spread over the others in proportion to their weights
// (water-filling: a share raised by the spread may be cut in turn). When
// maxShare·n < 1 no distribution honours the cap and the shares are equal.
// The weights must be finite and ≥ 0 with a positive finite sum; maxShare is
// in (0, 1]. The result sums to 1 (up to rounding).
func CapShares(weights []float64, maxShare float64) ([]float64, error) {
	n := len(weights)
	if !(maxShare > 0 && maxShare <= 1) {
		return nil, fmt.Errorf("cap shares: %w: max share %v outside (0, 1]", ErrOptions, maxShare)
	}
	if n == 0 {
		return nil, fmt.Errorf("cap shares: %w: no weights", ErrWeight)
	}
	if err := checkWeights(weights, n); err != nil {
		return nil, fmt.Errorf("cap shares: %w", err)
	}
	out := make([]float64, n)
	if maxShare*float64(n) <= 1 {
		for i := range out {
			out[i] = 1 / float64(n)
		}
		return out, nil
	}
	capped := make([]bool, n)
	for {
		// The shares of the uncapped weights, given those already capped.
		rest, free := 1.0, 0.0
		for i, w := range weights {
			if capped[i] {
				rest -= maxShare
			} else {
				free += w
			}
		}
		more := false
		for i, w := range weights {
			switch {
			case capped[i]:
				out[i] = maxShare
			case free > 0:
				out[i] = rest * (w / free)
			default: // only zero weights are left: they share the rest equally
				out[i] = rest / float64(n-count(capped))
			}
			if !capped[i] && out[i] > maxShare {
				capped[i], more = true, true
			}
		}
		if !more {
			return out, nil
		}
	}
}

func count(bs []bool) int {
	k := 0
	for _, b := range bs {
		if b {
			k++
		}
	}
	return k
}

// checkWeights reports whether weights (nil: equal) fit n updates.
func checkWeights(weights []float64, n int) error {
	if weights == nil {
		return nil
	}
	if len(weights) != n {
		return fmt.Errorf("%w: %d weights for %d updates", ErrWeight, len(weights), n)
	}
	var sum float64
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("%w: weight %d is %v, want finite and ≥ 0", ErrWeight, i, w)
		}
		sum += w
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return fmt.Errorf("%w: weights sum to %v, want finite and > 0", ErrWeight, sum)
	}
	return nil
}

// Combine merges deltas (one per merchant, all of one length) into one delta.
// weights are used by FedAvg only (Σ wᵢ·Δᵢ / Σ wᵢ, each share capped at
// MaxWeightShare when set); nil means equal weights. They must be finite and ≥ 0
// with a positive sum. The robust methods use no weights
// (see the package comment) but still validate them when given.
func Combine(deltas [][]float64, weights []float64, opt Options) ([]float64, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("combine: %w", err)
	}
	n := len(deltas)
	if n == 0 {
		return nil, fmt.Errorf("combine: %w", ErrEmpty)
	}
	d := len(deltas[0])
	for i, v := range deltas {
		if len(v) != d {
			return nil, fmt.Errorf("combine: update %d: %w: %d parameters, want %d", i, ErrLength, len(v), d)
		}
		for j, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("combine: update %d: %w: coordinate %d is %v", i, ErrNonFinite, j, x)
			}
		}
	}
	if err := checkWeights(weights, n); err != nil {
		return nil, fmt.Errorf("combine: %w", err)
	}
	if weights != nil && opt.MaxWeightShare > 0 && (opt.Method == "" || opt.Method == MethodFedAvg) {
		var err error
		if weights, err = CapShares(weights, opt.MaxWeightShare); err != nil {
			return nil, fmt.Errorf("combine: %w", err)
		}
	}
	scale := make([]float64, n) // per-update factor from the norm bound
	for i, v := range deltas {
		scale[i] = 1
		if opt.NormBound > 0 {
			if nv := norm(v); nv > opt.NormBound {
				scale[i] = opt.NormBound / nv
			}
		}
	}
	out := make([]float64, d)
	switch opt.Method {
	case "", MethodFedAvg:
		var sum float64
		for i := range n {
			sum += weight(weights, i)
		}
		for i, v := range deltas {
			f := scale[i] * (weight(weights, i) / sum) // w/sum first: scale·w may underflow
			for j, x := range v {
				out[j] += f * x
			}
		}
	case MethodMedian, MethodTrimmedMean:
		k := 0
		if opt.Method == MethodTrimmedMean {
			k = int(math.Floor(opt.TrimFraction*float64(n) + 1e-9))
		}
		col := make([]float64, n)
		for j := range d {
			for i, v := range deltas {
				col[i] = scale[i] * v[j]
			}
			slices.Sort(col)
			if opt.Method == MethodMedian {
				if n%2 == 1 {
					out[j] = col[n/2]
				} else {
					out[j] = col[n/2-1]/2 + col[n/2]/2 // halves first: the sum may overflow
				}
				continue
			}
			var s float64
			inv := 1 / float64(n-2*k)
			for _, x := range col[k : n-k] {
				s += x * inv // scaled before summing, so huge finite values cannot overflow
			}
			out[j] = s
		}
	}
	return out, nil
}

func weight(w []float64, i int) float64 {
	if w == nil {
		return 1
	}
	return w[i]
}

// norm is the L2 norm of v; when the plain sum of squares overflows or underflows
// it is recomputed scaled by the largest magnitude.
func norm(v []float64) float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	if ss > 1e-300 && !math.IsInf(ss, 0) {
		return math.Sqrt(ss)
	}
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	if m == 0 {
		return 0
	}
	ss = 0
	for _, x := range v {
		y := x / m
		ss += y * y
	}
	return m * math.Sqrt(ss)
}
