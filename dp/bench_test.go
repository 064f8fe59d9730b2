package dp_test

import (
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

// BenchmarkLedger10k composes 10,000 releases over the default orders and converts to ε.
// A merchant's history is many rounds under a few configurations, so the releases share
// 20 distinct (q, z) pairs (steps vary freely: they only scale the cached per-step
// curve). The sub-benchmarks show how the cost grows with the number of distinct pairs;
// each new pair costs one BenchmarkCurve.
func BenchmarkLedger10k(b *testing.B) {
	for _, distinct := range []int{20, 1, 100} {
		name := map[int]string{1: "distinct=1", 20: "distinct=20", 100: "distinct=100"}[distinct]
		rels := make([]dp.Release, 10000)
		for i := range rels {
			k := i % distinct
			rels[i] = dp.Release{Q: 0.001 * float64(1+k%10), Z: 0.8 + 0.1*float64(k/10), Steps: 10 + i%50}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := dp.Epsilon(rels, 1e-5, dp.AccountantOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCurve is the cost of one uncached per-step RDP curve over the default orders.
func BenchmarkCurve(b *testing.B) {
	for b.Loop() {
		if _, _, err := dp.Epsilon([]dp.Release{{Q: 0.01, Z: 1.1, Steps: 1}}, 1e-5, dp.AccountantOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNoise1k is the cost of noising a 1,000-coordinate vector through the library.
func BenchmarkNoise1k(b *testing.B) {
	g, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: 1.1})
	if err != nil {
		b.Fatal(err)
	}
	v := make([]float64, 1000)
	for b.Loop() {
		if err := g.AddNoise(v); err != nil {
			b.Fatal(err)
		}
	}
}
