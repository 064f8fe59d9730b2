package secagg

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
)

// fieldP is the Mersenne prime 2^61 − 1, the modulus of the Shamir field.
const fieldP uint64 = 1<<61 - 1

// fadd returns a+b mod p for a, b < p.
func fadd(a, b uint64) uint64 {
	s := a + b // < 2^62: no overflow
	if s >= fieldP {
		s -= fieldP
	}
	return s
}

// fsub returns a−b mod p for a, b < p.
func fsub(a, b uint64) uint64 {
	if a >= b {
		return a - b
	}
	return a + fieldP - b
}

// fmul returns a·b mod p for a, b < p. Since 2^61 ≡ 1 (mod p), the 122-bit
// product folds as high·2^61 + low ≡ high + low.
func fmul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	s := (hi<<3 | lo>>61) + lo&fieldP // < 2^62
	s = s&fieldP + s>>61              // ≤ 2^61
	if s >= fieldP {
		s -= fieldP
	}
	return s
}

// finv returns a^−1 mod p for a ≠ 0 (Fermat: a^(p−2)).
func finv(a uint64) uint64 {
	r, base, e := uint64(1), a, fieldP-2
	for e > 0 {
		if e&1 == 1 {
			r = fmul(r, base)
		}
		base = fmul(base, base)
		e >>= 1
	}
	return r
}

// frand draws a uniform field element from r by rejection.
func frand(r io.Reader) (uint64, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("draw field element: %w", err)
		}
		v := binary.LittleEndian.Uint64(b[:]) & fieldP
		if v < fieldP {
			return v, nil
		}
	}
}
