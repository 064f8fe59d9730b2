package secagg

import (
	"fmt"
	"math"
)

// ChooseDegree returns the smallest neighbour degree, and its threshold
// ⌊degree/2⌋ + 1, such that, except with probability at most failure, every
// client keeps at least threshold surviving neighbours when ⌈dropout·(n−1)⌉
// of the others drop out, and has fewer than threshold neighbours among
// ⌈corrupt·(n−1)⌉ clients colluding with the server. For one client each count
// is hypergeometric (the graph's ring order is a uniform permutation); a union
// bound over the n clients and the two events gives the round's chance.
//
// Together the two events leave every honest client an honest surviving
// neighbour, whose pairwise mask the server cannot remove, and keep its
// secrets out of reach of the colluders' shares. It falls back to the
// complete graph (degree n − 1) when no sparser graph is enough, and errs when
// not even that is.
func ChooseDegree(n int, dropout, corrupt, failure float64) (degree, threshold int, err error) {
	if n < 2 || !(dropout >= 0 && dropout < 1) || !(corrupt >= 0 && corrupt < 0.5) || !(failure > 0 && failure < 1) {
		return 0, 0, fmt.Errorf("choose degree: n %d, dropout %v, corrupt %v, failure %v: want n ≥ 2, dropout in [0, 1), corrupt in [0, ½), failure in (0, 1)", n, dropout, corrupt, failure)
	}
	drops := int(math.Ceil(dropout * float64(n-1)))
	bad := int(math.Ceil(corrupt * float64(n-1)))
	for k := 2; ; k += 2 {
		if k >= n-1 {
			k = n - 1
		}
		t := k/2 + 1
		if float64(n)*(lostTail(n-1, drops, k, k-t+1)+lostTail(n-1, bad, k, t)) <= failure {
			return k, t, nil
		}
		if k == n-1 {
			return 0, 0, fmt.Errorf("choose degree: %d dropouts and %d colluders among %d clients break threshold %d with probability above %v even in the complete graph", drops, bad, n, t, failure)
		}
	}
}

// lostTail is P(X ≥ m) for X hypergeometric: k draws without replacement from
// pop items of which bad are marked.
func lostTail(pop, bad, k, m int) float64 {
	var p float64
	for x := max(m, 0); x <= min(k, bad); x++ {
		if k-x > pop-bad {
			continue
		}
		p += math.Exp(lchoose(bad, x) + lchoose(pop-bad, k-x) - lchoose(pop, k))
	}
	return p
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}
