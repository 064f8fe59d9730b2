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

// TestChooseDegree: 7 clients with 2 dropouts need the complete graph
// (degree 4 fails with 7·6/15 > 0.01; degree 6 keeps 4 ≥ 4 neighbours
// always); 7 clients with 1 colluder and no dropouts do with degree 2 only if
// 7·P(the colluder is one of 2 neighbours drawn from 6, both needed for t = 2)
// = 0 — so degree 2; for larger n the chosen degree meets the bound and the
// next sparser one does not.
func TestChooseDegree(t *testing.T) {
	if k, th, err := ChooseDegree(7, 2.0/6, 0, 0.01); err != nil || k != 6 || th != 4 {
		t.Errorf("ChooseDegree(7, dropout 1/3) = %d, %d, %v; want 6, 4", k, th, err)
	}
	if k, th, err := ChooseDegree(7, 0, 1.0/6, 0.01); err != nil || k != 2 || th != 2 {
		t.Errorf("ChooseDegree(7, corrupt 1/6) = %d, %d, %v; want 2, 2", k, th, err)
	}
	fails := func(n, k int, drop, bad float64) float64 {
		th := k/2 + 1
		d, c := int(math.Ceil(drop*float64(n-1))), int(math.Ceil(bad*float64(n-1)))
		return float64(n) * (lostTail(n-1, d, k, k-th+1) + lostTail(n-1, c, k, th))
	}
	for _, tc := range []struct {
		n         int
		drop, bad float64
	}{{100, 0.3, 0}, {1000, 0.3, 0}, {100, 0.05, 0.1}, {1000, 0.05, 0.1}} {
		k, th, err := ChooseDegree(tc.n, tc.drop, tc.bad, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		if p := fails(tc.n, k, tc.drop, tc.bad); p > 1e-6 {
			t.Errorf("%+v: degree %d fails with %v", tc, k, p)
		}
		if k < tc.n-1 && k > 2 {
			if p := fails(tc.n, k-2, tc.drop, tc.bad); p <= 1e-6 {
				t.Errorf("%+v: degree %d chosen though %d suffices (%v)", tc, k, k-2, p)
			}
		}
		t.Logf("n %d, %.0f%% dropouts, %.0f%% colluders, failure 1e-6: degree %d, threshold %d", tc.n, 100*tc.drop, 100*tc.bad, k, th)
	}
	if _, _, err := ChooseDegree(10, 0.9, 0, 1e-6); err == nil {
		t.Error("90% dropouts accepted")
	}
}
