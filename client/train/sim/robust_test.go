package sim

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/merge"
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
	run := func(t *testing.T, mo merge.Options, attack string) Scores {
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
		return sc
	}
	clean := run(t, merge.Options{Method: merge.MethodFedAvg}, "")
	if clean.AUC30 < 0.81 {
		t.Fatalf("clean FedAvg AUC@30: got %.4f, want ≥ 0.81", clean.AUC30)
	}
	robust := []merge.Options{
		{Method: merge.MethodMedian, NormBound: 1},
		{Method: merge.MethodTrimmedMean, TrimFraction: 0.2, NormBound: 1},
	}
	for _, attack := range []string{AttackScale, AttackFlip, AttackRandom} {
		t.Run(attack, func(t *testing.T) {
			plain := run(t, merge.Options{Method: merge.MethodFedAvg}, attack)
			for _, mo := range robust {
				if got := run(t, mo, attack); math.Abs(got.AUC30-clean.AUC30) > 0.01 {
					t.Errorf("%s under %s attack: AUC@30 %.4f, want within 0.01 of clean %.4f", mo.Method, attack, got.AUC30, clean.AUC30)
				}
			}
			// A scaled honest update keeps the ranking direction but wrecks the
			// probabilities, so "visibly degrades" is a lost 0.01 of AUC or a Brier
			// score 0.01 worse (clean ≈ 0.07).
			if clean.AUC30-plain.AUC30 < 0.01 && !(plain.Brier30-clean.Brier30 >= 0.01) {
				t.Errorf("plain FedAvg under %s attack: AUC@30 %.4f, Brier@30 %.4f; want AUC 0.01 below clean %.4f or Brier 0.01 above clean %.4f",
					attack, plain.AUC30, plain.Brier30, clean.AUC30, clean.Brier30)
			}
		})
	}
}
