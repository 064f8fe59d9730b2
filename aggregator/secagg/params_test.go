package secagg

import (
	"math"
	"testing"
)

// TestLostTailHandWorked: 4 neighbours drawn from 6 others of whom 2 drop;
// P(both dropouts among the neighbours) = C(4,2)/C(6,2) = 6/15, and
// P(at least one) = 1 − C(4,4)/C(6,4) = 14/15.
func TestLostTailHandWorked(t *testing.T) {
	for _, tc := range []struct {
		m    int
		want float64
	}{{2, 6.0 / 15}, {1, 14.0 / 15}, {0, 1}, {3, 0}} {
		if got := lostTail(6, 2, 4, tc.m); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("P(X ≥ %d) = %v, want %v", tc.m, got, tc.want)
		}
	}
}

// TestChooseDegree: the chosen graph meets the bound and the next sparser
// one does not; 7 clients with 2 dropouts need the complete graph (degree 4
// fails with 7·6/15 > 0.01; degree 6 keeps 4 ≥ 4 neighbours always).
func TestChooseDegree(t *testing.T) {
	k, th, err := ChooseDegree(7, 2.0/6, 0.01)
	if err != nil || k != 6 || th != 4 {
		t.Errorf("ChooseDegree(7, 1/3) = %d, %d, %v; want 6, 4", k, th, err)
	}
	for _, n := range []int{100, 1000} {
		k, th, err := ChooseDegree(n, 0.3, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		drops := int(math.Ceil(0.3 * float64(n-1)))
		if p := float64(n) * lostTail(n-1, drops, k, k-th+1); p > 1e-6 {
			t.Errorf("n %d: degree %d fails with %v", n, k, p)
		}
		if k < n-1 {
			if p := float64(n) * lostTail(n-1, drops, k-2, (k-2)-((k-2)/2+1)+1); p <= 1e-6 {
				t.Errorf("n %d: degree %d chosen though %d suffices (%v)", n, k, k-2, p)
			}
		}
		t.Logf("n %d, 30%% dropouts, failure 1e-6: degree %d, threshold %d", n, k, th)
	}
	if _, _, err := ChooseDegree(10, 0.9, 1e-6); err == nil {
		t.Error("90% dropouts accepted")
	}
}
