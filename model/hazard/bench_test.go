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

// BenchmarkP7 is the live scorer's one number, P(buy within 7 days), through
// Predict (the whole curve) and through Within (7 days, caller's scratch), for
// a linear and a rhythm model over the full schema and an MLP.
func BenchmarkP7(b *testing.B) {
	schema, _ := feature.NewSchema(nil)
	std := FixedStandardization(schema)
	linear, _ := New(KindLinear, schema, std, 0, 0.01)
	rhythm, _ := New(KindLinear, schema, std, 0, 0.01)
	if err := rhythm.EnableRhythm(); err != nil {
		b.Fatal(err)
	}
	mlp, _ := New(KindMLP, schema, std, 16, 0.01)
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, schema.Len())
	for _, m := range []*Model{linear, rhythm, mlp} {
		for j := range m.Params {
			m.Params[j] = r.NormFloat64() * 0.1
		}
	}
	for j := range x {
		x[j] = r.Float64() * 4
	}
	for _, tc := range []struct {
		name string
		m    *Model
	}{{"linear", linear}, {"rhythm", rhythm}, {"mlp16", mlp}} {
		b.Run(tc.name+"/predict", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.m.Predict(x); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/within", func(b *testing.B) {
			b.ReportAllocs()
			var s Scratch
			for b.Loop() {
				if _, err := tc.m.Within(x, 7, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
