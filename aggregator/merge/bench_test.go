package merge

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCombine merges 100 merchants' updates of 1,000 parameters.
func BenchmarkCombine(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	deltas := make([][]float64, 100)
	weights := make([]float64, 100)
	for i := range deltas {
		deltas[i] = make([]float64, 1000)
		for j := range deltas[i] {
			deltas[i][j] = rng.NormFloat64()
		}
		weights[i] = 1 + rng.Float64()
	}
	for _, opt := range []Options{
		{Method: MethodFedAvg, NormBound: 10},
		{Method: MethodMedian, NormBound: 10},
		{Method: MethodTrimmedMean, TrimFraction: 0.2, NormBound: 10},
	} {
		b.Run(opt.Method, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Combine(deltas, weights, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
