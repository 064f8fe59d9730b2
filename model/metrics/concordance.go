package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// ConcordanceIndex returns Harrell's C for right-censored times: among
// comparable pairs, the fraction in which the subject with the earlier event
// has the higher risk, ties in risk counting one half.
//
// A pair (i, j) is comparable when i's event is observed and either
// time[i] < time[j], or time[i] == time[j] and j is censored (a subject censored
// at t is taken to have survived past an event at t). Two events at the same
// time are not comparable. This is the convention of lifelines'
// concordance_index (called there with predicted survival = −risk).
//
// It runs in O(n log n): subjects are visited in time order while a Fenwick
// tree counts, by risk rank, the events seen so far.
func ConcordanceIndex(risk, time []float64, event []bool) (float64, error) {
	const op = "concordance index"
	n := len(risk)
	if len(time) != n || len(event) != n {
		return 0, fmt.Errorf("%s: %d risks, %d times, %d events: %w", op, n, len(time), len(event), ErrLength)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: %w", op, ErrEmpty)
	}
	for i := range n {
		if math.IsNaN(risk[i]) || math.IsInf(risk[i], 0) {
			return 0, fmt.Errorf("%s: risk %d is %v: %w", op, i, risk[i], ErrNotFinite)
		}
		if math.IsNaN(time[i]) || math.IsInf(time[i], 0) {
			return 0, fmt.Errorf("%s: time %d is %v: %w", op, i, time[i], ErrNotFinite)
		}
	}

	// Rank risks densely so the tree is indexed 1..m.
	sorted := append([]float64(nil), risk...)
	sort.Float64s(sorted)
	uniq := sorted[:0]
	for i, v := range sorted {
		if i == 0 || v != sorted[i-1] {
			uniq = append(uniq, v)
		}
	}
	rank := func(v float64) int { return sort.SearchFloat64s(uniq, v) + 1 }

	// Visit by time; at equal times, events before censorings, so that a
	// censoring at t is compared with the events at t but two events at t are not.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(ia, ib int) int {
		if c := cmp.Compare(time[ia], time[ib]); c != 0 {
			return c
		}
		switch {
		case event[ia] && !event[ib]:
			return -1
		case !event[ia] && event[ib]:
			return 1
		}
		return 0
	})

	tree := newFenwick(len(uniq))
	var concordant, tied, pairs float64
	// count adds the comparisons of subject j against every event in the tree,
	// all of which happened earlier (or at the same time, for a censored j).
	count := func(j int) {
		r := rank(risk[j])
		total := tree.prefix(len(uniq))
		atOrBelow := tree.prefix(r)
		below := tree.prefix(r - 1)
		concordant += float64(total - atOrBelow) // earlier events with higher risk
		tied += float64(atOrBelow - below)
		pairs += float64(total)
	}
	for i := 0; i < n; {
		t := time[order[i]]
		// Events at t: compare with earlier events, then insert all of them.
		j := i
		for j < n && time[order[j]] == t && event[order[j]] {
			count(order[j])
			j++
		}
		for k := i; k < j; k++ {
			tree.add(rank(risk[order[k]]), 1)
		}
		// Censorings at t: compare with every event up to and including t.
		for j < n && time[order[j]] == t {
			count(order[j])
			j++
		}
		i = j
	}
	if pairs == 0 {
		return 0, fmt.Errorf("%s: %w", op, ErrNoComparablePairs)
	}
	return (concordant + 0.5*tied) / pairs, nil
}

// fenwick is a binary indexed tree of counts over ranks 1..n.
type fenwick []int

func newFenwick(n int) fenwick { return make(fenwick, n+1) }

func (f fenwick) add(i, v int) {
	for ; i < len(f); i += i & -i {
		f[i] += v
	}
}

// prefix returns the sum of counts at ranks 1..i (0 when i ≤ 0).
func (f fenwick) prefix(i int) int {
	s := 0
	for ; i > 0; i -= i & -i {
		s += f[i]
	}
	return s
}
