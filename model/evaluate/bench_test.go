package evaluate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Shape of the epoch benchmarks: like the CDNOW reference benchmark per customer
// (21 cutoffs, about 40 features), with fewer customers.
const (
	benchCustomers = 2048
	benchCutoffs   = 21
	benchFeatures  = 40
	benchBatch     = 256
	benchEpochs    = 4
)

func benchRows(b *testing.B) (feature.Schema, []feature.Row) {
	b.Helper()
	s := feature.Schema{Version: 1}
	for j := range benchFeatures {
		s.Names, s.Transforms = append(s.Names, fmt.Sprintf("f%d", j)), append(s.Transforms, "")
	}
	s.Hash = s.ComputeHash()
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []feature.Row
	for c := range benchCustomers {
		for k := range benchCutoffs {
			x := make([]float64, benchFeatures)
			for j := range x {
				x[j] = rng.NormFloat64()
			}
			label := 0
			if rng.Float64() < 1/(1+math.Exp(2-x[0])) {
				label = 1 + rng.IntN(model.Horizon)
			}
			rows = append(rows, feature.Row{Customer: fmt.Sprintf("c%d", c), Cutoff: k, X: x, Label: label})
		}
	}
	return s, rows
}

// benchmarkEpoch trains for benchEpochs epochs of benchBatch customers per step
// (expected, for DP) and reports the time per epoch.
func benchmarkEpoch(b *testing.B, kind string, private bool) {
	schema, rows := benchRows(b)
	steps := benchEpochs * benchCustomers / benchBatch
	for b.Loop() {
		opts := hazard.TrainOptions{Kind: kind, Hidden: 16, Steps: steps, BatchSize: benchBatch, LearningRate: 0.01}
		if private {
			sgd, err := dp.NewSGD(dp.SGDOptions{SamplingRate: float64(benchBatch) / benchCustomers, NoiseMultiplier: 1, Clip: 1})
			if err != nil {
				b.Fatal(err)
			}
			opts.Step = sgd
		}
		if _, _, err := hazard.Train(context.Background(), schema, rows, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchEpochs)/1e6, "ms/epoch")
}

func BenchmarkEpochNonPrivate(b *testing.B) {
	for _, kind := range []string{hazard.KindLinear, hazard.KindMLP} {
		b.Run(kind, func(b *testing.B) { benchmarkEpoch(b, kind, false) })
	}
}

func BenchmarkEpochDP(b *testing.B) {
	for _, kind := range []string{hazard.KindLinear, hazard.KindMLP} {
		b.Run(kind, func(b *testing.B) { benchmarkEpoch(b, kind, true) })
	}
}
