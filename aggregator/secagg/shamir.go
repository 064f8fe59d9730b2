package secagg

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// SecretSize is the size of a shared secret (a mask seed or an X25519 key).
const SecretSize = 32

// chunkBytes bytes of a secret go in one field element (56 bits < 61), so a
// secret is secretChunks elements.
const (
	chunkBytes   = 7
	secretChunks = (SecretSize + chunkBytes - 1) / chunkBytes
)

// A Share is one Shamir share of a SecretSize-byte secret: the evaluations at
// X of the secretChunks random polynomials whose constant terms are the
// secret's 7-byte chunks.
type Share struct {
	X uint32
	Y [secretChunks]uint64
}

// ErrTooFewShares is returned when fewer shares than the threshold are at hand.
var ErrTooFewShares = errors.New("fewer shares than the threshold")

// split shares secret with threshold t at the points xs (distinct, non-zero):
// any t of the shares rebuild it, fewer reveal nothing about it.
func split(secret [SecretSize]byte, t int, xs []uint32, r io.Reader) ([]Share, error) {
	if t < 1 || t > len(xs) {
		return nil, fmt.Errorf("shamir split: threshold %d of %d shares", t, len(xs))
	}
	if err := checkPoints(xs); err != nil {
		return nil, fmt.Errorf("shamir split: %w", err)
	}
	shares := make([]Share, len(xs))
	for i, x := range xs {
		shares[i].X = x
	}
	coef := make([]uint64, t)
	for c := range secretChunks {
		coef[0] = chunk(secret, c)
		for j := 1; j < t; j++ {
			v, err := frand(r)
			if err != nil {
				return nil, fmt.Errorf("shamir split: %w", err)
			}
			coef[j] = v
		}
		for i, x := range xs {
			shares[i].Y[c] = evalPoly(coef, uint64(x))
		}
	}
	return shares, nil
}

// combine rebuilds a secret from the first t shares (by X) of shares.
func combine(shares []Share, t int) ([SecretSize]byte, error) {
	var secret [SecretSize]byte
	if t < 1 {
		return secret, fmt.Errorf("shamir combine: threshold %d", t)
	}
	if len(shares) < t {
		return secret, fmt.Errorf("shamir combine: %d shares, threshold %d: %w", len(shares), t, ErrTooFewShares)
	}
	use := slices.Clone(shares)
	slices.SortFunc(use, func(a, b Share) int { return int(int64(a.X) - int64(b.X)) })
	use = use[:t]
	xs := make([]uint32, t)
	for i, s := range use {
		xs[i] = s.X
	}
	if err := checkPoints(xs); err != nil {
		return secret, fmt.Errorf("shamir combine: %w", err)
	}
	lag := lagrangeAtZero(xs)
	for c := range secretChunks {
		var v uint64
		for i, s := range use {
			if s.Y[c] >= fieldP {
				return secret, fmt.Errorf("shamir combine: share at x=%d: value %d outside the field", s.X, s.Y[c])
			}
			v = fadd(v, fmul(lag[i], s.Y[c]))
		}
		if err := setChunk(&secret, c, v); err != nil {
			return secret, fmt.Errorf("shamir combine: shares inconsistent: %w", err)
		}
	}
	return secret, nil
}

// lagrangeAtZero returns the Lagrange coefficients ℓ_i(0) = Π_{j≠i} x_j/(x_j−x_i)
// of the distinct non-zero points xs.
func lagrangeAtZero(xs []uint32) []uint64 {
	out := make([]uint64, len(xs))
	for i, xi := range xs {
		num, den := uint64(1), uint64(1)
		for j, xj := range xs {
			if j == i {
				continue
			}
			num = fmul(num, uint64(xj))
			den = fmul(den, fsub(uint64(xj), uint64(xi)))
		}
		out[i] = fmul(num, finv(den))
	}
	return out
}

// evalPoly evaluates Σ coef[j]·x^j mod p by Horner's rule.
func evalPoly(coef []uint64, x uint64) uint64 {
	x %= fieldP
	var v uint64
	for j := len(coef) - 1; j >= 0; j-- {
		v = fadd(fmul(v, x), coef[j])
	}
	return v
}

func checkPoints(xs []uint32) error {
	seen := make(map[uint32]bool, len(xs))
	for _, x := range xs {
		if x == 0 {
			return errors.New("share point 0 (it would be the secret)")
		}
		if seen[x] {
			return fmt.Errorf("share point %d twice", x)
		}
		seen[x] = true
	}
	return nil
}

// chunk returns the c-th 7-byte little-endian chunk of secret.
func chunk(secret [SecretSize]byte, c int) uint64 {
	var v uint64
	for i := min((c+1)*chunkBytes, SecretSize) - 1; i >= c*chunkBytes; i-- {
		v = v<<8 | uint64(secret[i])
	}
	return v
}

// setChunk writes v as the c-th chunk of secret, refusing a value that has
// more bits than the chunk holds (shares that do not come from one secret).
func setChunk(secret *[SecretSize]byte, c int, v uint64) error {
	lo, hi := c*chunkBytes, min((c+1)*chunkBytes, SecretSize)
	if v>>(8*uint(hi-lo)) != 0 {
		return fmt.Errorf("chunk %d is %d, wider than %d bytes", c, v, hi-lo)
	}
	for i := lo; i < hi; i++ {
		secret[i] = byte(v)
		v >>= 8
	}
	return nil
}
