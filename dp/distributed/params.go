package distributed

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
)

// maxScaledClip bounds C/γ so that every rounded coordinate is below 2^25 and its
// square fits a uint64 exactly.
const maxScaledClip = 1 << 24

// MaxBits is the largest modulus exponent: sums are carried in uint32.
const MaxBits = 32

// Params fixes one round's encoding. All merchants of a round must use the same Params
// (the aggregator publishes them with the round); every field is public.
type Params struct {
	// Dim is the length of each customer's contribution (the model's parameter count).
	Dim int `json:"dim"`
	// Clip is the L2 bound C on one customer's contribution; Encode clips to it.
	Clip float64 `json:"clip"`
	// Gamma is the grid step γ: coordinates are divided by γ before rounding, so the
	// decoded sum is accurate to about γ per customer and coordinate.
	Gamma float64 `json:"gamma"`
	// Beta is the β of conditional randomised rounding: a rounding whose squared norm
	// exceeds NormBound()² is redrawn, which happens with probability at most β.
	Beta float64 `json:"beta"`
	// LocalVariance is σ², in grid units, of the discrete Gaussian noise share each
	// merchant adds per coordinate: the target central variance divided by min_cohort.
	LocalVariance *big.Rat `json:"local_variance"`
	// Bits is the modulus exponent b ∈ [1, 32]: encodings and sums live in Z_{2^b}.
	Bits int `json:"bits"`
	// Seed is the round's public seed for the random rotation's signs.
	Seed Seed `json:"seed"`
}

// Seed is a round's public rotation seed; it reads and writes as 64 hex digits.
type Seed [32]byte

// MarshalText writes s as hex.
func (s Seed) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(s[:])), nil }

// UnmarshalText reads 64 hex digits.
func (s *Seed) UnmarshalText(b []byte) error {
	if len(b) != 2*len(s) {
		return fmt.Errorf("seed: %d hex digits, want %d: %w", len(b), 2*len(s), ErrInvalidParams)
	}
	if _, err := hex.Decode(s[:], b); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// Validate reports whether p can encode. It does not check that the modulus is large
// enough for a cohort; see RequiredBits.
func (p Params) Validate() error {
	switch {
	case p.Dim < 1 || p.Dim > 1<<24:
		return fmt.Errorf("params: dim %d must be in [1, 2^24]: %w", p.Dim, ErrInvalidParams)
	case !(p.Clip > 0) || math.IsInf(p.Clip, 0):
		return fmt.Errorf("params: clip %v must be finite and > 0: %w", p.Clip, ErrInvalidParams)
	case !(p.Gamma > 0) || math.IsInf(p.Gamma, 0):
		return fmt.Errorf("params: gamma %v must be finite and > 0: %w", p.Gamma, ErrInvalidParams)
	case !(p.Beta > 0 && p.Beta < 1):
		return fmt.Errorf("params: beta %v must be in (0, 1): %w", p.Beta, ErrInvalidParams)
	case p.Bits < 1 || p.Bits > MaxBits:
		return fmt.Errorf("params: bits %d must be in [1, %d]: %w", p.Bits, MaxBits, ErrInvalidParams)
	case p.Clip/p.Gamma > maxScaledClip:
		return fmt.Errorf("params: clip/gamma %v must be ≤ 2^24: %w", p.Clip/p.Gamma, ErrInvalidParams)
	case p.LocalVariance == nil || p.LocalVariance.Sign() <= 0:
		return fmt.Errorf("params: local_variance must be > 0: %w", ErrInvalidParams)
	case p.LocalVariance.Cmp(maxSigma2) > 0:
		return fmt.Errorf("params: local_variance %s must be ≤ 2^60: %w", p.LocalVariance.FloatString(3), ErrInvalidParams)
	}
	return nil
}

// PaddedDim is the dimension after padding to a power of two: the length of every
// encoding and the d of the accountant.
func (p Params) PaddedDim() int { return paddedDim(p.Dim) }

// NormBound returns Δ₂, the L2 bound that conditional randomised rounding enforces on
// one customer's integer vector (Kairouz, Liu and Steinke 2021, Theorem 1 / eq. (4)):
//
//	Δ₂² = min{ c² + d/4 + √(2 ln(1/β))·(c + √d/2), (c + √d)² },  c = C/γ, d = PaddedDim.
//
// The second term holds for every rounding (each coordinate moves by less than 1); the
// first is exceeded with probability at most β, and such a rounding is redrawn.
func (p Params) NormBound() float64 {
	return RoundedNormBound(p.Clip/p.Gamma, p.PaddedDim(), p.Beta)
}

// RoundedNormBound is NormBound for a scaled clip c = C/γ in dimension d.
func RoundedNormBound(c float64, d int, beta float64) float64 {
	fd := float64(d)
	sq := c*c + fd/4 + math.Sqrt(2*math.Log(1/beta))*(c+math.Sqrt(fd)/2)
	return math.Min(math.Sqrt(sq), c+math.Sqrt(fd))
}

// L1Bound returns Δ₁ for an integer vector of L2 norm at most NormBound() in PaddedDim
// dimensions: min{√d·Δ₂, Δ₂²} (Cauchy–Schwarz, and |k| ≤ k² for integers), and never
// below Δ₂ (which only loosens it, since ‖x‖₁ ≥ ‖x‖₂), as the accountant requires.
func (p Params) L1Bound() float64 {
	d2 := p.NormBound()
	return math.Max(math.Min(math.Sqrt(float64(p.PaddedDim()))*d2, d2*d2), d2)
}

// RequiredBits returns the smallest b such that, for a round in which at most
// maxCohort merchants each add their noise share and at most maxCustomers customers in
// all contribute, every coordinate of the integer sum lies in [−2^(b−1), 2^(b−1)) — so
// that the sum mod 2^b decodes without wrapping — except with probability at most
// failProb. The bound per coordinate is
//
//	K + s₁·√(2 ln(4d/p)) + √(N·σ²)·√(2 ln(4d/p)),
//
// with K = maxCustomers bounding the rounding error (less than 1 per customer), s₁ =
// K·C/(γ√d) the sub-Gaussian scale of a rotated coordinate of a vector of norm at most
// K·C/γ (Hoeffding over the random signs), and N·σ² the sub-Gaussian scale of the sum of
// N discrete Gaussians (Canonne, Kamath and Steinke show N_Z(0, σ²) is sub-Gaussian with
// variance proxy σ²); the failure probability is split evenly and union-bounded over the
// d coordinates. It errs when even 2^32 is too small.
func RequiredBits(p Params, maxCohort, maxCustomers int, failProb float64) (int, error) {
	q := p
	q.Bits = MaxBits
	if err := q.Validate(); err != nil {
		return 0, fmt.Errorf("required bits: %w", err)
	}
	if maxCohort < 1 || maxCustomers < 1 {
		return 0, fmt.Errorf("required bits: cohort %d and customers %d must be ≥ 1: %w", maxCohort, maxCustomers, ErrInvalidParams)
	}
	if !(failProb > 0 && failProb < 1) {
		return 0, fmt.Errorf("required bits: failure probability %v must be in (0, 1): %w", failProb, ErrInvalidParams)
	}
	d := float64(p.PaddedDim())
	k := float64(maxCustomers)
	z := math.Sqrt(2 * math.Log(4*d/failProb))
	s2, _ := p.LocalVariance.Float64()
	bound := k + k*p.Clip/(p.Gamma*math.Sqrt(d))*z + math.Sqrt(float64(maxCohort)*s2)*z
	for b := 1; b <= MaxBits; b++ {
		if bound < math.Ldexp(1, b-1) {
			return b, nil
		}
	}
	return 0, fmt.Errorf("required bits: a coordinate may reach %.4g, beyond 2^31 (lower the cohort, customers or noise, or raise gamma): %w", bound, ErrInvalidParams)
}

// DefaultBeta is the conditional rounding β the paper's experiments use, e^−½.
func DefaultBeta() float64 { return math.Exp(-0.5) }
