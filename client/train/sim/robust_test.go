package sim

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/model/hazard"
)

var (
	tenOnce sync.Once
	tenD    *Data
	tenErr  error
)

// tenMerchants is CDNOW split into ten equal merchants.
func tenMerchants(t *testing.T) *Data {
	t.Helper()
	ev := cdnowEvents(t) // skips when the data is missing
	tenOnce.Do(func() {
		shares := make([]float64, 10)
		for i := range shares {
			shares[i] = 0.1
		}
		tenD, tenErr = Prepare(ev, DataOptions{Shares: shares})
	})
	if tenErr != nil {
		t.Fatal(tenErr)
	}
	return tenD
}

// TestRobustMerge: two of ten merchants send scaled (×100), sign-flipped (×−10) or
// random updates (100 times an honest norm). The median and the trimmed mean, each after a norm bound, stay
// within 0.01 AUC@30 of the clean FedAvg run; plain FedAvg without a bound degrades.
func TestRobustMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 10 federations on CDNOW")
	}
	d := tenMerchants(t)
	ctx := context.Background()
	base := FedOptions{
		Rounds: 8, Steps: 8, SamplingRate: 0.05, ClipNorm: 1, LearningRate: 0.5,
		Epsilon: 1, Delta: 1e-6, Seed: 7, Server: ServerFedAvg,
	}
	run := func(t *testing.T, mo merge.Options, attack string) FedResult {
		t.Helper()
		o := base
		o.Merge = mo
		if attack != "" {
			o.Attackers, o.Attack = []int{3, 8}, attack
		}
		res, err := d.Federate(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		sc := res.Pooled
		t.Logf("%-12s bound %-3v attack %-6s: AUC@30 %.4f, Brier@30 %.4f (median update norm, last round %.3f)",
			mo.Method, mo.NormBound, attack, sc.AUC30, sc.Brier30, res.MedianNorm[len(res.MedianNorm)-1])
		return res
	}
	cleanRes := run(t, merge.Options{Method: merge.MethodFedAvg}, "")
	clean := cleanRes.Pooled
	if clean.AUC30 < 0.81 {
		t.Fatalf("clean FedAvg AUC@30: got %.4f, want ≥ 0.81", clean.AUC30)
	}
	robust := []merge.Options{
		{Method: merge.MethodMedian, NormBound: 1},
		{Method: merge.MethodTrimmedMean, TrimFraction: 0.2, NormBound: 1},
	}
	for _, attack := range []string{AttackScale, AttackFlip, AttackRandom} {
		t.Run(attack, func(t *testing.T) {
			plainRes := run(t, merge.Options{Method: merge.MethodFedAvg}, attack)
			plain := plainRes.Pooled
			farthest := 0.0 // the robust merges' largest distance from the clean model
			for _, mo := range robust {
				res := run(t, mo, attack)
				if got := res.Pooled; math.Abs(got.AUC30-clean.AUC30) > 0.01 {
					t.Errorf("%s under %s attack: AUC@30 %.4f, want within 0.01 of clean %.4f", mo.Method, attack, got.AUC30, clean.AUC30)
				}
				farthest = max(farthest, paramDistance(res.Model, cleanRes.Model))
			}
			if attack == AttackScale {
				// A scaled honest update keeps the ranking direction: what it
				// does to the predictions depends on the (unseeded) DP noise —
				// from −0.005 to −0.54 AUC@30 and +0.009 to +0.83 Brier@30 over
				// ten runs (docs/benchmarks.md) — so the test asserts what it
				// does to the model: FedAvg's parameters end far from the clean
				// run's (the attackers' 100× updates get in), the robust merges'
				// near it, and the probabilities are worse, not better.
				moved := paramDistance(plainRes.Model, cleanRes.Model)
				t.Logf("distance from the clean model: plain FedAvg %.3f, robust merges at most %.3f", moved, farthest)
				if moved < 5*farthest || !(plain.Brier30 > clean.Brier30) {
					t.Errorf("plain FedAvg under the scale attack: parameters %.3f from clean (robust merges ≤ %.3f, want ≥ 5×), Brier@30 %.4f (clean %.4f, want above)",
						moved, farthest, plain.Brier30, clean.Brier30)
				}
				return
			}
			// Flipped and random updates wreck the ranking or the
			// probabilities: a lost 0.01 of AUC or a Brier score 0.01 worse
			// (clean ≈ 0.07).
			if clean.AUC30-plain.AUC30 < 0.01 && !(plain.Brier30-clean.Brier30 >= 0.01) {
				t.Errorf("plain FedAvg under %s attack: AUC@30 %.4f, Brier@30 %.4f; want AUC 0.01 below clean %.4f or Brier 0.01 above clean %.4f",
					attack, plain.AUC30, plain.Brier30, clean.AUC30, clean.Brier30)
			}
		})
	}
}

// paramDistance is the L2 distance between two models' parameter vectors.
func paramDistance(a, b *hazard.Model) float64 {
	var ss float64
	for i := range a.Params {
		d := a.Params[i] - b.Params[i]
		ss += d * d
	}
	return math.Sqrt(ss)
}
