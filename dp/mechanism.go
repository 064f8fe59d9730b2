package dp

import (
	"errors"
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// ErrNonFinite is matched (errors.Is) by a *NonFiniteError.
var ErrNonFinite = errors.New("non-finite value")

// NonFiniteError reports a NaN or ±Inf in a vector handed to the mechanism. Such a value
// is rejected before clipping: clipping a NaN gives NaN, and an infinite norm would make
// the clip scale 0 or NaN, either of which can leak the offending value.
type NonFiniteError struct {
	Index int     // position in the vector
	Value float64 // the offending value
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("coordinate %d is %v", e.Index, e.Value)
}

// Is makes errors.Is(err, ErrNonFinite) true.
func (e *NonFiniteError) Is(target error) bool { return target == ErrNonFinite }

// CheckFinite returns a *NonFiniteError for the first NaN or ±Inf in v.
func CheckFinite(v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return &NonFiniteError{Index: i, Value: x}
		}
	}
	return nil
}

// ClipL2 scales v in place to L2 norm at most c (by min(1, c/‖v‖)) and returns the norm
// before clipping. It rejects NaN/Inf coordinates with a *NonFiniteError and leaves v
// unchanged in that case.
func ClipL2(v []float64, c float64) (norm float64, err error) {
	if !(c > 0) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("clip: bound %v must be finite and > 0: %w", c, ErrInvalidParameter)
	}
	if err := CheckFinite(v); err != nil {
		return 0, fmt.Errorf("clip: %w", err)
	}
	// Scale before squaring so that huge but finite coordinates do not overflow the norm.
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	if m == 0 {
		return 0, nil
	}
	var ss float64
	for _, x := range v {
		y := x / m
		ss += y * y
	}
	norm = m * math.Sqrt(ss)
	if norm > c {
		s := c / norm
		for i := range v {
			v[i] *= s
		}
	}
	return norm, nil
}

// calibrationDelta is the δ argument handed to the DP library when we only want it to
// produce a given σ. Its value does not matter to the guarantee (the accountant uses σ,
// not this (ε, δ)); 1e-5 keeps the matching ε in a well-conditioned range.
const calibrationDelta = 1e-5

// GaussianOptions configures a vector Gaussian mechanism.
type GaussianOptions struct {
	// Clip is the L2 sensitivity C of the vectors the mechanism will noise (the clipping
	// bound of one customer's contribution). Required, finite, > 0.
	Clip float64
	// NoiseMultiplier is the target z; the standard deviation per coordinate is at least
	// z·C. Required, finite, > 0.
	NoiseMultiplier float64
}

// VectorGaussian adds isotropic Gaussian noise to a vector of L2 sensitivity C using the
// DP library's secure sampler (noise.Gaussian().AddNoiseFloat64 with l0Sensitivity = 1
// and lInfSensitivity = C on every coordinate, which is one release of the whole vector
// with L2 sensitivity C).
//
// The library takes (ε, δ), not σ. To add a target σ = z·C, NewVectorGaussian fixes
// δ = 1e-5 and bisects ε so that noise.SigmaForGaussian(1, C, ε, δ) is the smallest value
// the library returns that is ≥ the target; the library's calibration is accurate to 1e-3
// relative, so σ actually used is in [z·C, ≈1.001·z·C]. That σ, not the target, is what
// Sigma and NoiseMultiplier report and what the accountant must use.
type VectorGaussian struct {
	clip, sigma, eps float64
}

// NewVectorGaussian calibrates the library to the target noise multiplier.
func NewVectorGaussian(opt GaussianOptions) (*VectorGaussian, error) {
	c, z := opt.Clip, opt.NoiseMultiplier
	if !(c > 0) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("new vector gaussian: clip %v must be finite and > 0: %w", c, ErrInvalidParameter)
	}
	if !(z > 0) || math.IsInf(z, 0) {
		return nil, fmt.Errorf("new vector gaussian: noise multiplier %v must be finite and > 0: %w", z, ErrInvalidParameter)
	}
	eps, sigma, err := calibrateEpsilon(c, z*c)
	if err != nil {
		return nil, fmt.Errorf("new vector gaussian: %w", err)
	}
	return &VectorGaussian{clip: c, sigma: sigma, eps: eps}, nil
}

// calibrateEpsilon finds the largest ε (bisection on ln ε) for which the library's σ at
// (l0 = 1, lInf = c, ε, calibrationDelta) is still ≥ target, and returns that ε and σ.
func calibrateEpsilon(c, target float64) (eps, sigma float64, err error) {
	sig := func(e float64) float64 { return noise.SigmaForGaussian(1, c, e, calibrationDelta) }
	// The library accepts ε in [2^-50, ∞); beyond ε ≈ 700, e^ε overflows and σ collapses.
	lo, hi := math.Log(math.Exp2(-50)), math.Log(700.0)
	if sig(math.Exp(lo)) < target {
		return 0, 0, fmt.Errorf("calibrate: σ %v beyond the library's range for clip %v: %w", target, c, ErrInvalidParameter)
	}
	if sig(math.Exp(hi)) >= target {
		return 0, 0, fmt.Errorf("calibrate: σ %v below the library's range for clip %v: %w", target, c, ErrInvalidParameter)
	}
	for range 200 {
		mid := (lo + hi) / 2
		if mid == lo || mid == hi {
			break
		}
		if sig(math.Exp(mid)) >= target {
			lo = mid
		} else {
			hi = mid
		}
	}
	eps = math.Exp(lo)
	return eps, sig(eps), nil
}

// Sigma returns the standard deviation of the noise actually added per coordinate.
func (g *VectorGaussian) Sigma() float64 { return g.sigma }

// NoiseMultiplier returns σ / C for the σ actually added: the z to account with.
func (g *VectorGaussian) NoiseMultiplier() float64 { return g.sigma / g.clip }

// Clip returns the L2 sensitivity C the mechanism was calibrated for.
func (g *VectorGaussian) Clip() float64 { return g.clip }

// AddNoise adds the noise to every coordinate of v in place. The caller must already have
// bounded the L2 sensitivity of v by C (ClipL2 on each contribution). A NaN or Inf in v
// is refused with a *NonFiniteError before any noise is drawn, leaving v unchanged.
func (g *VectorGaussian) AddNoise(v []float64) error {
	if err := CheckFinite(v); err != nil {
		return fmt.Errorf("add noise: %w", err)
	}
	for i, x := range v {
		y, err := noise.Gaussian().AddNoiseFloat64(x, 1, g.clip, g.eps, calibrationDelta)
		if err != nil {
			return fmt.Errorf("add noise: coordinate %d: %w", i, err)
		}
		v[i] = y
	}
	return nil
}

// Release returns the debit for steps applications of the unsampled mechanism.
func (g *VectorGaussian) Release(steps int) Release {
	return Release{Mechanism: Gaussian, Q: 1, Z: g.NoiseMultiplier(), Steps: steps}
}
