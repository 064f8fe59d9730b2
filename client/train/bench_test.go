package train_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// cdnowEvents loads CDNOW_master.txt from $KAIROS_DATA (default the shared
// data beside the repository), or skips.
func cdnowEvents(b *testing.B) []model.Event {
	b.Helper()
	data := os.Getenv("KAIROS_DATA")
	if data == "" {
		data = "../../../shared/data"
	}
	path := data + "/cdnow/CDNOW_master.txt"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("CDNOW_master.txt not found at %s (set KAIROS_DATA)", path)
	}
	events, err := sim.LoadCDNOW(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	return events
}

// BenchmarkLocal is one merchant's round: the largest merchant of the reference split
// (40% of CDNOW, 9,449 customers, 37,796 rows) runs 10 DP-SGD steps at q = 0.05.
func BenchmarkLocal(b *testing.B) {
	ctx := context.Background()
	events := cdnowEvents(b)
	d, err := sim.Prepare(events, sim.DataOptions{})
	if err != nil {
		b.Fatal(err)
	}
	base, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		b.Fatal(err)
	}
	plan := protocol.TrainingPlan{
		Steps: 10, SamplingRate: 0.05, NoiseMultiplier: 5.66, ClipNorm: 1,
		LearningRate: 0.5, Delta: 1e-6, CountNoise: 50,
	}
	b.ReportMetric(float64(d.Customers[0]), "customers")
	b.ResetTimer()
	for b.Loop() {
		if _, err := train.Local(ctx, base, d.Train[0], plan, train.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPersonalize is one merchant's personalisation (train.Personalize,
// seed 1) on cdnow-100 (seed 1, reference cutoffs): the merchants nearest 100
// and 500 customers, from a global model fitted on every merchant's rows pooled
// (300 Adam steps of the engine's defaults: a fixed stand-in for the federated
// model, which the rule's cost does not depend on).
func BenchmarkPersonalize(b *testing.B) {
	ctx := context.Background()
	events := cdnowEvents(b)
	split, err := sim.SplitCDNOW100(events, 1)
	if err != nil {
		b.Fatal(err)
	}
	d, err := sim.PrepareSplit(events, split, sim.DataOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var pooled []feature.Row
	for _, rs := range d.Train {
		pooled = append(pooled, rs...)
	}
	global, _, err := hazard.Train(ctx, d.Schema, pooled, hazard.TrainOptions{Steps: 300, L2: 1e-4, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{100, 500} {
		m := 0
		for i, c := range d.Customers {
			if abs(c-size) < abs(d.Customers[m]-size) {
				m = i
			}
		}
		b.Run(fmt.Sprintf("customers=%d", d.Customers[m]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := train.Personalize(ctx, global, d.Train[m], train.PersonalizeOptions{Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func abs(x int) int { return max(x, -x) }
