package secagg

import (
	"fmt"
	"math"
)

// ChooseDegree returns the smallest neighbour degree, and its threshold
// ⌊degree/2⌋ + 1, such that when ⌈dropout·(n−1)⌉ of the other clients drop out
// the chance that some client keeps fewer than threshold surviving neighbours
// is at most failure: for one client the number of its neighbours among the
// dropouts is hypergeometric, and a union bound over the n clients gives the
// round's chance. It falls back to the complete graph (degree n − 1) when no
// sparser graph is enough, and errs when not even that is.
func ChooseDegree(n int, dropout, failure float64) (degree, threshold int, err error) {
	if n < 2 || !(dropout >= 0 && dropout < 1) || !(failure > 0 && failure < 1) {
		return 0, 0, fmt.Errorf("choose degree: n %d, dropout %v, failure %v: want n ≥ 2, dropout in [0, 1), failure in (0, 1)", n, dropout, failure)
	}
	drops := int(math.Ceil(dropout * float64(n-1)))
	for k := 2; ; k += 2 {
		if k >= n-1 {
			k = n - 1
		}
		t := k/2 + 1
		if float64(n)*lostTail(n-1, drops, k, k-t+1) <= failure {
			return k, t, nil
		}
		if k == n-1 {
			return 0, 0, fmt.Errorf("choose degree: %d of %d clients dropping leave some client fewer than %d surviving neighbours with probability above %v even in the complete graph", drops, n, t, failure)
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
