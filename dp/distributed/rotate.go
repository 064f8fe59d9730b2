package distributed

import (
	"math"
	"math/rand/v2"
)

// paddedDim returns the smallest power of two ≥ d (d ≥ 1).
func paddedDim(d int) int {
	p := 1
	for p < d {
		p <<= 1
	}
	return p
}

// signs returns the ±1 diagonal D of the randomised Hadamard rotation for a round: n
// signs from ChaCha8 keyed by the round's public seed. The rotation is public; it only
// has to be independent of the data, which is fixed before the seed is drawn.
func signs(seed Seed, n int) []float64 {
	src := rand.NewChaCha8(seed)
	out := make([]float64, n)
	var word uint64
	for i := range out {
		if i%64 == 0 {
			word = src.Uint64()
		}
		out[i] = 1
		if word&1 == 1 {
			out[i] = -1
		}
		word >>= 1
	}
	return out
}

// fwht applies the orthonormal Walsh–Hadamard transform H/√n to v in place; len(v) is a
// power of two. H/√n is symmetric and its own inverse.
func fwht(v []float64) {
	n := len(v)
	for h := 1; h < n; h <<= 1 {
		for i := 0; i < n; i += 2 * h {
			for j := i; j < i+h; j++ {
				a, b := v[j], v[j+h]
				v[j], v[j+h] = a+b, a-b
			}
		}
	}
	s := 1 / math.Sqrt(float64(n))
	for i := range v {
		v[i] *= s
	}
}

// rotate returns (H/√n)·D·x with x zero-padded to n = len(d).
func rotate(x, d []float64) []float64 {
	out := make([]float64, len(d))
	for i, xi := range x {
		out[i] = d[i] * xi
	}
	fwht(out)
	return out
}

// unrotate returns the first dim coordinates of D·(H/√n)·y, the inverse of rotate.
func unrotate(y, d []float64, dim int) []float64 {
	v := make([]float64, len(y))
	copy(v, y)
	fwht(v)
	for i := range v {
		v[i] *= d[i]
	}
	return v[:dim:dim]
}
