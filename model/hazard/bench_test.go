package hazard

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// BenchmarkTrain measures training throughput in examples (customer-cutoff rows)
// per second on a random data set shaped like CDNOW's: 10 rows per customer,
// the full feature schema, 8% positives.
func BenchmarkTrain(b *testing.B) {
	schema, _ := feature.NewSchema(nil)
	d := schema.Len()
	r := rand.New(rand.NewPCG(1, 2))
	var rows []feature.Row
	for i := range 20000 {
		x := make([]float64, d)
		for j := range x {
			x[j] = r.NormFloat64()
		}
		label := 0
		if r.Float64() < 0.08 {
			label = 1 + r.IntN(30)
		}
		rows = append(rows, feature.Row{Customer: strconv.Itoa(i / 10), Cutoff: i % 10, X: x, Label: label})
	}
	for _, tc := range []struct {
		kind   string
		hidden int
	}{{KindLinear, 0}, {KindMLP, 16}} {
		b.Run(tc.kind, func(b *testing.B) {
			const steps, batch = 50, 256
			for range b.N {
				if _, _, err := Train(context.Background(), schema, rows, TrainOptions{Kind: tc.kind, Hidden: tc.hidden, Steps: steps, BatchSize: batch}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*steps*batch*10)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}
