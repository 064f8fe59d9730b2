package distributed

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/kairos-fl/kairos/dp"
)

// maxRoundingTries bounds the redraws of conditional rounding; each try fails with
// probability at most β < 1, so reaching it means β is nearly 1 or the source is broken.
const maxRoundingTries = 1000

// Encode turns one merchant's per-customer contributions (each of length p.Dim) into its
// share of a secure sum: each contribution is clipped to L2 norm p.Clip, rotated by the
// round's randomised Hadamard transform, divided by γ and rounded to integers by
// conditional randomised rounding (norm at most p.NormBound()); the rounded vectors are
// summed, one discrete Gaussian N_Z(0, p.LocalVariance) is added per coordinate, and the
// result is reduced mod 2^p.Bits. The output has p.PaddedDim() entries.
//
// Contributions are rounded one customer at a time, not after summing, so that adding or
// removing one customer changes the merchant's integer sum by exactly that customer's
// rounded vector, whose norm the rounding bounds: that is the sensitivity the accountant
// (dp.DDGauss) uses. A contribution with a NaN or ±Inf coordinate counts as the zero
// vector rather than failing the encoding, so that no one customer decides whether the
// merchant sends. Randomness comes from crypto/rand. The caller's slices are not
// modified.
func Encode(ctx context.Context, contributions [][]float64, p Params) ([]uint32, error) {
	return encode(ctx, contributions, p, bufio.NewReader(rand.Reader), true)
}

// EncodeWithoutNoise is Encode without the noise share. Its output is not differentially
// private; it exists to check sums exactly (tests, dropout recovery checks).
func EncodeWithoutNoise(ctx context.Context, contributions [][]float64, p Params) ([]uint32, error) {
	return encode(ctx, contributions, p, bufio.NewReader(rand.Reader), false)
}

func encode(ctx context.Context, contributions [][]float64, p Params, r io.Reader, noisy bool) ([]uint32, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	n := p.PaddedDim()
	d := signs(p.Seed, n)
	d2 := p.NormBound()
	limit := uint64(math.Floor(d2 * d2 * (1 - 1e-12)))
	acc := make([]uint64, n) // wraps mod 2^64, a multiple of 2^b
	x := make([]float64, p.Dim)
	for i, c := range contributions {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if len(c) != p.Dim {
			return nil, fmt.Errorf("encode: contribution %d has %d coordinates, want %d: %w", i, len(c), p.Dim, ErrInvalidParams)
		}
		copy(x, c)
		if dp.CheckFinite(x) != nil {
			// One customer's NaN or ±Inf must not decide whether the merchant
			// can send at all (that would be a release no ε covers): it
			// contributes the zero vector, as in dp.Step; sensitivity stays ≤ C.
			continue
		}
		if _, err := dp.ClipL2(x, p.Clip); err != nil {
			return nil, fmt.Errorf("encode: contribution %d: %w", i, err)
		}
		y := rotate(x, d)
		for j := range y {
			y[j] /= p.Gamma
		}
		k, err := roundConditional(y, limit, r)
		if err != nil {
			return nil, fmt.Errorf("encode: contribution %d: %w", i, err)
		}
		for j, v := range k {
			acc[j] += uint64(v)
		}
	}
	if noisy {
		g, err := NewDiscreteGaussian(p.LocalVariance)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		for j := range acc {
			if j%64 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("encode: %w", err)
				}
			}
			z, err := g.Sample(r)
			if err != nil {
				return nil, fmt.Errorf("encode: noise: %w", err)
			}
			acc[j] += uint64(z)
		}
	}
	mask := uint64(1)<<p.Bits - 1
	out := make([]uint32, n)
	for j, v := range acc {
		out[j] = uint32(v & mask)
	}
	return out, nil
}

// roundConditional rounds each coordinate of y down or up at random, up with probability
// equal to its fractional part (to within 2^−53), and redraws the whole vector until its
// squared norm is at most limit.
func roundConditional(y []float64, limit uint64, r io.Reader) ([]int64, error) {
	out := make([]int64, len(y))
	var buf [8]byte
	for range maxRoundingTries {
		var hi, lo uint64
		for j, v := range y {
			f := math.Floor(v)
			if _, err := io.ReadFull(r, buf[:]); err != nil {
				return nil, fmt.Errorf("round: read randomness: %w", err)
			}
			u := binary.LittleEndian.Uint64(buf[:]) >> 11 // uniform in [0, 2^53)
			k := int64(f)
			if float64(u) < (v-f)*(1<<53) {
				k++
			}
			out[j] = k
			a := uint64(max(k, -k)) // < 2^25 since C/γ ≤ 2^24
			var carry uint64
			lo, carry = bits.Add64(lo, a*a, 0)
			hi += carry
		}
		if hi == 0 && lo <= limit {
			return out, nil
		}
	}
	return nil, fmt.Errorf("round: no rounding within the norm bound after %d tries: %w", maxRoundingTries, ErrInvalidParams)
}

// AddMod adds src to dst coordinate-wise mod 2^bits, as the secure sum does.
func AddMod(dst, src []uint32, bits int) error {
	if len(dst) != len(src) {
		return fmt.Errorf("add mod: lengths %d and %d differ: %w", len(dst), len(src), ErrInvalidParams)
	}
	if bits < 1 || bits > MaxBits {
		return fmt.Errorf("add mod: bits %d must be in [1, %d]: %w", bits, MaxBits, ErrInvalidParams)
	}
	mask := uint64(1)<<bits - 1
	for i, v := range src {
		dst[i] = uint32((uint64(dst[i]) + uint64(v)) & mask)
	}
	return nil
}

// DecodeSum maps a sum of encodings mod 2^p.Bits back to the sum of the contributions:
// each coordinate is lifted to the centred range [−2^(b−1), 2^(b−1)), multiplied by γ
// and the rotation is inverted; the padding is dropped. The result is the sum of all
// clipped contributions plus the rounding error (at most γ per customer and coordinate
// in the rotated basis) and the summed noise (γ²·Σσ² per coordinate). It is wrong if the
// integer sum wrapped; RequiredBits chooses b to make that unlikely.
func DecodeSum(sum []uint32, p Params) ([]float64, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("decode sum: %w", err)
	}
	n := p.PaddedDim()
	if len(sum) != n {
		return nil, fmt.Errorf("decode sum: %d coordinates, want %d: %w", len(sum), n, ErrInvalidParams)
	}
	modulus := uint64(1) << p.Bits
	y := make([]float64, n)
	for j, v := range sum {
		u := uint64(v)
		if u >= modulus {
			return nil, fmt.Errorf("decode sum: coordinate %d is %d, not below 2^%d: %w", j, v, p.Bits, ErrInvalidParams)
		}
		c := int64(u)
		if u >= modulus/2 {
			c -= int64(modulus)
		}
		y[j] = float64(c) * p.Gamma
	}
	return unrotate(y, signs(p.Seed, n), p.Dim), nil
}
