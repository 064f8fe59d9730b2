package dp_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
	"github.com/kairos-fl/kairos/dp"
)

func TestCountReleaseDescribesTheNoise(t *testing.T) {
	// The release a Count states must be the noise the library actually adds: over many
	// independent counts of the same data the noisy results spread with sd = Z·1.
	opt := dp.StatOptions{Epsilon: 1, Delta: 1e-5}
	const n = 20000
	const trueCount = 37
	var rel dp.Release
	var sum, sumSq float64
	for i := range n {
		c, err := dp.NewCount(opt)
		if err != nil {
			t.Fatal(err)
		}
		for range trueCount {
			if err := c.Increment(); err != nil {
				t.Fatal(err)
			}
		}
		r, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			rel = c.Release()
		}
		d := float64(r - trueCount)
		sum += d
		sumSq += d * d
	}
	if rel.Mechanism != dp.Gaussian || rel.Q != 1 || rel.Steps != 1 {
		t.Fatalf("count release = %+v, want an unsampled Gaussian", rel)
	}
	// Reference doc: the library's σ for (1, 1, ε=1, δ=1e-5) measured as 3.732422.
	if math.Abs(rel.Z-3.732422) > 1e-6 {
		t.Errorf("count Z = %v, want 3.732422", rel.Z)
	}
	mean := sum / n
	sd := math.Sqrt((sumSq - n*mean*mean) / (n - 1))
	// Rounding to integers adds variance 1/12 (Sheppard), negligible next to σ² ≈ 13.9.
	want := math.Sqrt(rel.Z*rel.Z + 1.0/12)
	if tol := 5 * want / math.Sqrt(2*n); math.Abs(sd-want) > tol {
		t.Errorf("sd of noisy counts = %.4g, want %.4g ± %.3g", sd, want, tol)
	}
	if tol := 5 * want / math.Sqrt(n); math.Abs(mean) > tol {
		t.Errorf("mean error = %.4g, want 0 ± %.3g", mean, tol)
	}
}

func TestStatReleases(t *testing.T) {
	eps, delta := 0.8, 1e-6
	s, err := dp.NewSum(dp.StatOptions{Epsilon: eps, Delta: delta, Lower: -2, Upper: 5})
	if err != nil {
		t.Fatal(err)
	}
	// Sensitivity max(|−2|, |5|) = 5; σ scales linearly in it.
	if got, want := s.Release().Z, noise.SigmaForGaussian(1, 5, eps, delta)/5; got != want {
		t.Errorf("sum Z = %v, want %v", got, want)
	}
	m, err := dp.NewMean(dp.StatOptions{Epsilon: eps, Delta: delta, Lower: 0, Upper: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Two halves of (ε, δ), each with z₁ ≈ SigmaForGaussian(1, 1, ε/2, δ/2); composed by
	// RDP they are one Gaussian with z = z₁/√2 (up to the library's 1e-3 grid).
	z1 := noise.SigmaForGaussian(1, 1, eps/2, delta/2)
	if got := m.Release().Z; relErr(got, z1/math.Sqrt2) > 2e-3 {
		t.Errorf("mean Z = %v, want ≈ %v", got, z1/math.Sqrt2)
	}
	lm, err := dp.NewMean(dp.StatOptions{Epsilon: eps, Noise: dp.LaplaceNoise, Lower: 0, Upper: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r := lm.Release(); r.Mechanism != dp.Pure || r.Epsilon != eps {
		t.Errorf("Laplace mean release = %+v, want pure ε = %v", r, eps)
	}
}

func TestSumClampsAndRefusesNaN(t *testing.T) {
	// With a huge ε the Laplace noise is negligible and the result shows the clamping.
	s, err := dp.NewSum(dp.StatOptions{Epsilon: 1e6, Noise: dp.LaplaceNoise, Lower: 0, Upper: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []float64{1, 2, 100, -5} {
		if err := s.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(math.NaN()); !errors.Is(err, dp.ErrNonFinite) {
		t.Errorf("Add(NaN) = %v, want ErrNonFinite", err)
	}
	got, err := s.Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := 1.0 + 2 + 10 + 0; math.Abs(got-want) > 1e-3 {
		t.Errorf("sum = %v, want %v (clamped to [0, 10])", got, want)
	}
	if _, err := s.Result(); err == nil {
		t.Error("second Result succeeded, want an error (released once)")
	}
}

func TestStatOptionsInvalid(t *testing.T) {
	if _, err := dp.NewCount(dp.StatOptions{Epsilon: 1, Delta: 0}); !errors.Is(err, dp.ErrInvalidParameter) {
		t.Errorf("Gaussian count with δ = 0: %v, want ErrInvalidParameter", err)
	}
	if _, err := dp.NewCount(dp.StatOptions{Epsilon: 1, Delta: 1e-5, Noise: dp.LaplaceNoise}); !errors.Is(err, dp.ErrInvalidParameter) {
		t.Errorf("Laplace count with δ > 0: %v, want ErrInvalidParameter", err)
	}
	if _, err := dp.NewMean(dp.StatOptions{Epsilon: 1, Delta: 1e-5, Lower: 3, Upper: 3}); !errors.Is(err, dp.ErrInvalidParameter) {
		t.Errorf("mean with lower = upper: %v, want ErrInvalidParameter", err)
	}
	if _, err := dp.NewSum(dp.StatOptions{Epsilon: 1, Delta: 1e-5, Lower: math.Inf(-1), Upper: 3}); !errors.Is(err, dp.ErrNonFinite) {
		t.Errorf("sum with infinite bound: %v, want ErrNonFinite", err)
	}
}
