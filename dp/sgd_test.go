package dp

import (
	"errors"
	"math"
	"testing"
)

// TestSGDCustomersNormalizer checks that a caller-supplied customer count, not the true
// n, divides the noisy sum: with q = 1 and every customer's gradient clipped to (C, 0), the
// sum is n·C in the first coordinate, so dir[0] = n·C/N up to noise of σ/N.
func TestSGDCustomersNormalizer(t *testing.T) {
	const n, c, z = 40, 2.0, 0.05
	for _, customers := range []float64{0, 80, 10} {
		s, err := NewSGD(SGDOptions{SamplingRate: 1, NoiseMultiplier: z, Clip: c, Customers: customers})
		if err != nil {
			t.Fatal(err)
		}
		dir := make([]float64, 2)
		err = s.Step(n, func(_ int, out []float64) float64 { out[0] += 1000; return 0 }, dir)
		if err != nil {
			t.Fatal(err)
		}
		norm := customers
		if norm == 0 {
			norm = n
		}
		want := n * c / norm
		if tol := 6 * 1.001 * z * c / norm; math.Abs(dir[0]-want) > tol {
			t.Errorf("customers %v: dir[0] = %v, want %v ± %v", customers, dir[0], want, tol)
		}
	}
	if _, err := NewSGD(SGDOptions{SamplingRate: 0.1, NoiseMultiplier: 1, Clip: 1, Customers: -1}); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("customers -1: err = %v, want ErrInvalidParameter", err)
	}
}
