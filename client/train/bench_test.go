package train_test

import (
	"context"
	"os"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/model/hazard"
)

// BenchmarkLocal is one merchant's round: the largest merchant of the reference split
// (40% of CDNOW, 9,449 customers, 37,796 rows) runs 10 DP-SGD steps at q = 0.05.
func BenchmarkLocal(b *testing.B) {
	data := os.Getenv("KAIROS_DATA")
	if data == "" {
		data = "../../../shared/data"
	}
	path := data + "/cdnow/CDNOW_master.txt"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("CDNOW_master.txt not found at %s (set KAIROS_DATA)", path)
	}
	ctx := context.Background()
	events, err := sim.LoadCDNOW(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
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
