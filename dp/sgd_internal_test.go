package dp

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// gradientStep repeats, as a test-local declaration, the interface the hazard model
// (model/hazard) consumes; *SGD must satisfy it without importing model.
type gradientStep interface {
	Step(n int, grad func(i int, out []float64) float64, dir []float64) error
}

var _ gradientStep = (*SGD)(nil)

func fixedGrads(gs [][]float64) func(i int, out []float64) float64 {
	return func(i int, out []float64) float64 {
		for k, x := range gs[i] {
			out[k] += x
		}
		return 0
	}
}

func newTestSGD(t *testing.T, q, z, c float64) *SGD {
	t.Helper()
	s, err := NewSGD(SGDOptions{SamplingRate: q, NoiseMultiplier: z, Clip: c})
	if err != nil {
		t.Fatalf("NewSGD: %v", err)
	}
	return s
}

func TestClippedSumOutlierMovesSumByAtMostC(t *testing.T) {
	const c = 1.0
	base := [][]float64{{0.3, 0.4}, {3, 4}, {-0.1, 0.2}}
	outlier := []float64{3000, -4000} // 1,000× a normal customer's gradient
	s := newTestSGD(t, 1, 1, c)

	without := make([]float64, 2)
	s.clippedSum(len(base), fixedGrads(base), without)
	// Hand-worked: (0.3, 0.4) is inside the ball; (3, 4) has norm 5 → (0.6, 0.8);
	// (−0.1, 0.2) is inside.
	want := []float64{0.3 + 0.6 - 0.1, 0.4 + 0.8 + 0.2}
	for k := range want {
		if math.Abs(without[k]-want[k]) > 1e-12 {
			t.Errorf("sum[%d] = %v, want %v", k, without[k], want[k])
		}
	}
	with := make([]float64, 2)
	all := append(append([][]float64{}, base...), outlier)
	s.clippedSum(len(all), fixedGrads(all), with)
	d := math.Hypot(with[0]-without[0], with[1]-without[1])
	if d > c*(1+1e-12) {
		t.Errorf("outlier moved the noiseless sum by %v, want ≤ C = %v", d, c)
	}
	// Clipped, not dropped: the outlier contributes (0.6, −0.8).
	if math.Abs(with[0]-without[0]-0.6) > 1e-12 || math.Abs(with[1]-without[1]+0.8) > 1e-12 {
		t.Errorf("outlier contribution = (%v, %v), want (0.6, −0.8)", with[0]-without[0], with[1]-without[1])
	}
}

func TestPoissonSamplingRate(t *testing.T) {
	const n, q = 20000, 0.3
	s := newTestSGD(t, q, 1, 1)
	calls := 0
	seen := make(map[int]bool)
	grad := func(i int, out []float64) float64 {
		calls++
		seen[i] = true
		return 0
	}
	s.clippedSum(n, grad, make([]float64, 1))
	// The batch size is Binomial(n, q): five standard deviations √(nq(1−q)).
	if tol := 5 * math.Sqrt(n*q*(1-q)); math.Abs(float64(calls)-n*q) > tol {
		t.Errorf("sampled %d customers, want %v ± %.0f", calls, n*q, tol)
	}
	if len(seen) != calls {
		t.Errorf("%d calls for %d distinct customers, want each sampled customer once", calls, len(seen))
	}
}

func TestStepNoiseAndScale(t *testing.T) {
	// q = 1, n customers with zero gradients: dir = N(0, σ²) / n per coordinate.
	const n, d = 4, 5000
	s := newTestSGD(t, 1, 1.5, 0.5)
	dir := make([]float64, d)
	zero := func(int, []float64) float64 { return 0 }
	if err := s.Step(n, zero, dir); err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, x := range dir {
		ss += x * x
	}
	sd := math.Sqrt(ss / d) // the mean is known to be 0
	want := s.Sigma() / n
	// Known mean: ss/σ² is χ²(d), so sd has standard error ≈ want/√(2d); five of them.
	if tol := 5 * want / math.Sqrt(2*d); math.Abs(sd-want) > tol {
		t.Errorf("sd of dir = %.5g, want σ/(q·n) = %.5g ± %.3g", sd, want, tol)
	}
	if got := s.Release(); got.Q != 1 || got.Steps != 1 || got.Z != s.Sigma()/0.5 {
		t.Errorf("Release = %+v, want {Q:1 Z:%v Steps:1}", got, s.Sigma()/0.5)
	}
}

// TestStepNonFiniteGradientContributesZero: a customer whose gradient holds an
// Inf or a NaN (two purchases of 1e308 made a spend feature +Inf and the gradient
// NaN) used to abort the step, so whether a merchant submitted depended on that
// one customer. The step now completes and that customer contributes exactly
// zero: the noiseless sum equals the sum without it (a move of 0 ≤ C).
func TestStepNonFiniteGradientContributesZero(t *testing.T) {
	const c = 1.0
	good := [][]float64{{0.3, 0.4}, {3, 4}}
	bad := [][]float64{{math.Inf(1), 0}, {math.NaN(), 5}, {0, math.Inf(-1)}}
	s := newTestSGD(t, 1, 1, c)
	without := make([]float64, 2)
	s.clippedSum(len(good), fixedGrads(good), without)
	for _, b := range bad {
		with := make([]float64, 2)
		all := append(slices.Clone(good), b)
		s.clippedSum(len(all), fixedGrads(all), with)
		if with[0] != without[0] || with[1] != without[1] {
			t.Errorf("gradient %v: sum %v, want %v (the sum without it)", b, with, without)
		}
	}
	if s.Dropped() != len(bad) {
		t.Errorf("Dropped = %d, want %d", s.Dropped(), len(bad))
	}
	// The step completes, adds noise, and is counted.
	dir := []float64{7, 7}
	all := append(slices.Clone(good), bad...)
	if err := s.Step(len(all), fixedGrads(all), dir); err != nil {
		t.Fatalf("Step with non-finite gradients = %v, want nil", err)
	}
	if err := CheckFinite(dir); err != nil || s.Steps() != 1 {
		t.Errorf("dir %v (%v), Steps %d; want finite and 1", dir, err, s.Steps())
	}
}

// TestStepNoCustomersIsNoise: a merchant with no customers used to get
// ErrNoCustomers and send nothing, which told the aggregator it had none. n = 0
// now releases noise alone, N(0, σ²) / (q·N) with N = max(Customers, 1), and is
// counted like any other step.
func TestStepNoCustomersIsNoise(t *testing.T) {
	const d = 4000
	for _, customers := range []float64{0, 3.7} {
		s, err := NewSGD(SGDOptions{SamplingRate: 0.5, NoiseMultiplier: 2, Clip: 0.5, Customers: customers})
		if err != nil {
			t.Fatal(err)
		}
		dir := make([]float64, d)
		if err := s.Step(0, func(int, []float64) float64 { t.Fatal("grad called with n = 0"); return 0 }, dir); err != nil {
			t.Fatalf("Step(n = 0) = %v, want nil", err)
		}
		var ss float64
		for _, x := range dir {
			ss += x * x
		}
		want := s.Sigma() / (0.5 * max(customers, 1))
		if sd, tol := math.Sqrt(ss/d), 5*want/math.Sqrt(2*d); math.Abs(sd-want) > tol {
			t.Errorf("customers %v: sd of dir = %.5g, want σ/(q·N) = %.5g ± %.3g", customers, sd, want, tol)
		}
		if got := s.Release(); got.Steps != 1 || got.Q != 0.5 {
			t.Errorf("Release = %+v, want 1 step at q 0.5", got)
		}
	}
	s := newTestSGD(t, 1, 1, 1)
	if err := s.Step(-1, fixedGrads(nil), make([]float64, 1)); !errors.Is(err, ErrNoCustomers) {
		t.Errorf("Step(n = −1) = %v, want ErrNoCustomers", err)
	}
}

func TestSGDTrainsAMean(t *testing.T) {
	// Minimise Σᵢ (θ − xᵢ)²/2 with customers' xᵢ = i mod 10 (mean 4.5). The clip C = 20
	// exceeds every gradient near the optimum, so clipping is inactive there, and the
	// noise on the mean gradient is σ/(q·n) = 1·20/(0.2·5000) = 0.02 per step.
	const n = 5000
	s := newTestSGD(t, 0.2, 1, 20)
	theta := 0.0
	dir := make([]float64, 1)
	var avg float64
	const steps, lr = 200, 0.5
	for k := range steps {
		grad := func(i int, out []float64) float64 {
			d := theta - float64(i%10)
			out[0] += d
			return d * d / 2
		}
		if err := s.Step(n, grad, dir); err != nil {
			t.Fatal(err)
		}
		theta -= lr * dir[0]
		if k >= steps/2 {
			avg += theta / (steps / 2)
		}
	}
	// Per step, dir = (θ − 4.5) + e with sd(e) ≈ √((1−q)/(q·n)·8.25 + 0.02²) ≈ 0.084
	// (Poisson sampling plus DP noise). θ − 4.5 is then an AR(1) with coefficient 0.5 and
	// stationary sd lr·0.084/√(1−0.25) ≈ 0.048; the mean of the last 100 iterates has sd
	// ≈ 0.048·√(3/100) ≈ 0.0084, so 0.05 is about six standard deviations.
	if math.Abs(avg-4.5) > 0.05 {
		t.Errorf("averaged θ = %v, want 4.5 ± 0.05", avg)
	}
	if got := s.Release(); got.Steps != steps || got.Q != 0.2 {
		t.Errorf("Release = %+v, want Q 0.2 and %d steps", got, steps)
	}
}
