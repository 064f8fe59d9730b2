package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/dpagg"
	"github.com/google/differential-privacy/go/v3/noise"
)

// NoiseKind selects the noise of a DP statistic.
type NoiseKind int

const (
	// GaussianNoise needs δ > 0; the release is debited as a Gaussian mechanism with the
	// σ the library uses, so it composes tightly by RDP.
	GaussianNoise NoiseKind = iota
	// LaplaceNoise needs δ = 0; the release is debited as pure ε-DP, which the ledger
	// composes through the conservative bound min(ε, α·ε²/2).
	LaplaceNoise
)

// StatOptions configures a DP statistic. Each customer may contribute once (one partition,
// one contribution), which is what makes the sensitivities below hold.
type StatOptions struct {
	Epsilon float64 // required, > 0
	Delta   float64 // > 0 for Gaussian noise, 0 for Laplace noise
	Noise   NoiseKind
	// Lower and Upper clamp each contribution of a sum or mean; ignored by Count.
	Lower, Upper float64
}

func (o StatOptions) libNoise() (noise.Noise, error) {
	switch o.Noise {
	case GaussianNoise:
		return noise.Gaussian(), nil
	case LaplaceNoise:
		return noise.Laplace(), nil
	}
	return nil, fmt.Errorf("noise kind %d unknown: %w", o.Noise, ErrInvalidParameter)
}

// statRelease states what one Gaussian or Laplace release of L2 sensitivity sens costs.
// For Gaussian noise it recomputes the σ the library will use for (l0 = 1, lInf = sens,
// ε, δ) and debits a Gaussian mechanism with z = σ/sens.
func (o StatOptions) statRelease(sens, eps, delta float64) Release {
	if o.Noise == LaplaceNoise {
		return Release{Mechanism: Pure, Epsilon: eps, Steps: 1}
	}
	sigma := noise.SigmaForGaussian(1, sens, eps, delta)
	return Release{Mechanism: Gaussian, Q: 1, Z: sigma / sens, Steps: 1}
}

// Count is a DP count of customers, via dpagg.Count.
type Count struct {
	c   *dpagg.Count
	rel Release
}

// NewCount returns a count at 0.
func NewCount(opt StatOptions) (*Count, error) {
	n, err := opt.libNoise()
	if err != nil {
		return nil, fmt.Errorf("new count: %w", err)
	}
	c, err := dpagg.NewCount(&dpagg.CountOptions{Epsilon: opt.Epsilon, Delta: opt.Delta, MaxPartitionsContributed: 1, Noise: n})
	if err != nil {
		return nil, fmt.Errorf("new count: %w: %w", ErrInvalidParameter, err)
	}
	return &Count{c: c, rel: opt.statRelease(1, opt.Epsilon, opt.Delta)}, nil
}

// Increment counts one customer; call it at most once per customer.
func (c *Count) Increment() error {
	if err := c.c.Increment(); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

// Release states what Result costs; check it with a Filter before calling Result.
func (c *Count) Release() Release { return c.rel }

// Result returns the noisy count. It may be called once.
func (c *Count) Result() (int64, error) {
	r, err := c.c.Result()
	if err != nil {
		return 0, fmt.Errorf("count result: %w", err)
	}
	return r, nil
}

// Sum is a DP sum of one clamped value per customer, via dpagg.BoundedSumFloat64.
type Sum struct {
	s   *dpagg.BoundedSumFloat64
	rel Release
}

// NewSum returns a sum at 0 whose contributions are clamped to [opt.Lower, opt.Upper];
// its sensitivity is max(|Lower|, |Upper|).
func NewSum(opt StatOptions) (*Sum, error) {
	n, err := opt.libNoise()
	if err != nil {
		return nil, fmt.Errorf("new sum: %w", err)
	}
	if err := CheckFinite([]float64{opt.Lower, opt.Upper}); err != nil {
		return nil, fmt.Errorf("new sum: bounds: %w", err)
	}
	s, err := dpagg.NewBoundedSumFloat64(&dpagg.BoundedSumFloat64Options{
		Epsilon: opt.Epsilon, Delta: opt.Delta, MaxPartitionsContributed: 1,
		Lower: opt.Lower, Upper: opt.Upper, Noise: n,
	})
	if err != nil {
		return nil, fmt.Errorf("new sum: %w: %w", ErrInvalidParameter, err)
	}
	sens := max(math.Abs(opt.Lower), math.Abs(opt.Upper))
	return &Sum{s: s, rel: opt.statRelease(sens, opt.Epsilon, opt.Delta)}, nil
}

// Add adds one customer's value (clamped by the library). NaN and Inf are refused with a
// *NonFiniteError rather than silently dropped, so a data bug surfaces.
func (s *Sum) Add(x float64) error {
	if err := CheckFinite([]float64{x}); err != nil {
		return fmt.Errorf("sum add: %w", err)
	}
	if err := s.s.Add(x); err != nil {
		return fmt.Errorf("sum add: %w", err)
	}
	return nil
}

// Release states what Result costs; check it with a Filter before calling Result.
func (s *Sum) Release() Release { return s.rel }

// Result returns the noisy sum. It may be called once.
func (s *Sum) Result() (float64, error) {
	r, err := s.s.Result()
	if err != nil {
		return 0, fmt.Errorf("sum result: %w", err)
	}
	return r, nil
}

// Mean is a DP mean of one clamped value per customer, via dpagg.BoundedMean. The library
// splits (ε, δ) in halves between a count (sensitivity 1) and a sum of values relative to
// the midpoint (sensitivity (Upper − Lower)/2). With Gaussian noise the two releases are
// debited as one Gaussian of z = (1/z₁² + 1/z₂²)^(−1/2), which has exactly their summed
// RDP curve; with Laplace noise as pure ε (ε/2 + ε/2).
type Mean struct {
	m   *dpagg.BoundedMean
	rel Release
}

// NewMean returns an empty mean over [opt.Lower, opt.Upper] (Lower < Upper).
func NewMean(opt StatOptions) (*Mean, error) {
	n, err := opt.libNoise()
	if err != nil {
		return nil, fmt.Errorf("new mean: %w", err)
	}
	if err := CheckFinite([]float64{opt.Lower, opt.Upper}); err != nil {
		return nil, fmt.Errorf("new mean: bounds: %w", err)
	}
	if !(opt.Lower < opt.Upper) {
		return nil, fmt.Errorf("new mean: lower %v must be < upper %v: %w", opt.Lower, opt.Upper, ErrInvalidParameter)
	}
	m, err := dpagg.NewBoundedMean(&dpagg.BoundedMeanOptions{
		Epsilon: opt.Epsilon, Delta: opt.Delta, MaxPartitionsContributed: 1, MaxContributionsPerPartition: 1,
		Lower: opt.Lower, Upper: opt.Upper, Noise: n,
	})
	if err != nil {
		return nil, fmt.Errorf("new mean: %w: %w", ErrInvalidParameter, err)
	}
	var rel Release
	if opt.Noise == LaplaceNoise {
		rel = Release{Mechanism: Pure, Epsilon: opt.Epsilon, Steps: 1}
	} else {
		half := opt.Upper - (opt.Lower + (opt.Upper-opt.Lower)/2)
		z1 := opt.statRelease(1, opt.Epsilon/2, opt.Delta/2).Z
		z2 := opt.statRelease(half, opt.Epsilon/2, opt.Delta/2).Z
		rel = Release{Mechanism: Gaussian, Q: 1, Z: 1 / math.Sqrt(1/(z1*z1)+1/(z2*z2)), Steps: 1}
	}
	return &Mean{m: m, rel: rel}, nil
}

// Add adds one customer's value (clamped by the library); NaN and Inf are refused.
func (m *Mean) Add(x float64) error {
	if err := CheckFinite([]float64{x}); err != nil {
		return fmt.Errorf("mean add: %w", err)
	}
	if err := m.m.Add(x); err != nil {
		return fmt.Errorf("mean add: %w", err)
	}
	return nil
}

// Release states what Result costs; check it with a Filter before calling Result.
func (m *Mean) Release() Release { return m.rel }

// Result returns the noisy mean. It may be called once.
func (m *Mean) Result() (float64, error) {
	r, err := m.m.Result()
	if err != nil {
		return 0, fmt.Errorf("mean result: %w", err)
	}
	return r, nil
}
