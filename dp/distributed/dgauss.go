package distributed

import (
	"errors"
	"fmt"
	"io"
	"math/big"
)

// ErrInvalidParams is wrapped by every error about out-of-range encoding or noise
// parameters.
var ErrInvalidParams = errors.New("invalid distributed-DP parameters")

// DiscreteGaussian samples the discrete Gaussian N_Z(0, σ²): P(x) ∝ exp(−x²/(2σ²)) for
// every integer x, with σ² an exact rational. Sampling follows Canonne, Kamath and
// Steinke 2020 (Algorithms 1–3): Bernoulli(exp(−γ)) by the alternating-series method,
// a discrete Laplace proposal of integer scale t = ⌊σ⌋+1 and rejection. Every step is
// integer or rational arithmetic on uniform integers read from the source, so the
// output distribution is exact; no floating point is involved.
type DiscreteGaussian struct {
	num, den *big.Int // σ² = num/den, reduced, both > 0
	t        int64    // Laplace scale ⌊σ⌋ + 1
	// The rejection parameter is (|y|·t·den − num)² / (2·num·den·t²); rejDen is its
	// denominator, tDen is t·den.
	rejDen, tDen *big.Int
}

// maxSigma2 bounds σ² so that t and every sample fit an int64 with room to spare.
var maxSigma2 = new(big.Rat).SetInt64(1 << 60)

// NewDiscreteGaussian returns a sampler for N_Z(0, sigma2). sigma2 must be > 0 and at
// most 2^60.
func NewDiscreteGaussian(sigma2 *big.Rat) (*DiscreteGaussian, error) {
	if sigma2 == nil || sigma2.Sign() <= 0 {
		return nil, fmt.Errorf("discrete gaussian: σ² %v must be > 0: %w", sigma2, ErrInvalidParams)
	}
	if sigma2.Cmp(maxSigma2) > 0 {
		return nil, fmt.Errorf("discrete gaussian: σ² %v must be ≤ 2^60: %w", sigma2.FloatString(3), ErrInvalidParams)
	}
	num := new(big.Int).Set(sigma2.Num())
	den := new(big.Int).Set(sigma2.Denom())
	// ⌊σ⌋ = ⌊√⌊σ²⌋⌋, exactly.
	floorS2 := new(big.Int).Quo(num, den)
	t := new(big.Int).Sqrt(floorS2).Int64() + 1
	bt := big.NewInt(t)
	tDen := new(big.Int).Mul(bt, den)
	rejDen := new(big.Int).Mul(big.NewInt(2), num)
	rejDen.Mul(rejDen, den)
	rejDen.Mul(rejDen, bt)
	rejDen.Mul(rejDen, bt)
	return &DiscreteGaussian{num: num, den: den, t: t, rejDen: rejDen, tDen: tDen}, nil
}

// Sigma2 returns σ².
func (g *DiscreteGaussian) Sigma2() *big.Rat { return new(big.Rat).SetFrac(g.num, g.den) }

// Sample draws one value using uniform bytes from r (crypto/rand.Reader in production).
func (g *DiscreteGaussian) Sample(r io.Reader) (int64, error) {
	s := sampler{r: r}
	for {
		y, err := s.discreteLaplace(g.t)
		if err != nil {
			return 0, err
		}
		ay := y
		if ay < 0 {
			ay = -ay
		}
		// γ = (|y| − σ²/t)² / (2σ²) = (|y|·t·den − num)² / (2·num·den·t²)
		n := new(big.Int).Mul(big.NewInt(ay), g.tDen)
		n.Sub(n, g.num)
		n.Mul(n, n)
		ok, err := s.bernoulliExp(n, g.rejDen)
		if err != nil {
			return 0, err
		}
		if ok {
			return y, nil
		}
	}
}

// sampler holds the randomness source of one sampling run.
type sampler struct{ r io.Reader }

var (
	bigOne = big.NewInt(1)
	bigTwo = big.NewInt(2)
)

// uniform returns a uniform integer in [0, n), n > 0, by rejection on bytes of r (as
// crypto/rand.Int does, without its panic on n ≤ 0).
func (s sampler) uniform(n *big.Int) (*big.Int, error) {
	hi := new(big.Int).Sub(n, bigOne)
	bits := hi.BitLen()
	if bits == 0 {
		return new(big.Int), nil
	}
	nb := (bits + 7) / 8
	buf := make([]byte, nb)
	top := uint8(bits % 8)
	if top == 0 {
		top = 8
	}
	v := new(big.Int)
	for {
		if _, err := io.ReadFull(s.r, buf); err != nil {
			return nil, fmt.Errorf("read randomness: %w", err)
		}
		buf[0] &= uint8(int(1<<top) - 1)
		v.SetBytes(buf)
		if v.Cmp(n) < 0 {
			return v, nil
		}
	}
}

// bernoulli returns true with probability num/den (0 ≤ num ≤ den, den > 0).
func (s sampler) bernoulli(num, den *big.Int) (bool, error) {
	u, err := s.uniform(den)
	if err != nil {
		return false, err
	}
	return u.Cmp(num) < 0, nil
}

// bernoulliExp01 returns true with probability exp(−num/den) for num/den ∈ [0, 1]
// (CKS Algorithm 1, first part): draw A_k ~ Bernoulli(γ/k) for k = 1, 2, … until the
// first A_k = 0; the result is whether that k is odd.
func (s sampler) bernoulliExp01(num, den *big.Int) (bool, error) {
	k := int64(1)
	kd := new(big.Int)
	for {
		kd.Mul(den, big.NewInt(k))
		a, err := s.bernoulli(num, kd)
		if err != nil {
			return false, err
		}
		if !a {
			return k%2 == 1, nil
		}
		k++
	}
}

// bernoulliExp returns true with probability exp(−num/den) for num/den ≥ 0 (CKS
// Algorithm 1): ⌊γ⌋ draws of Bernoulli(exp(−1)), all of which must succeed, then one
// Bernoulli(exp(−(γ − ⌊γ⌋))).
func (s sampler) bernoulliExp(num, den *big.Int) (bool, error) {
	whole, frac := new(big.Int).QuoRem(num, den, new(big.Int))
	for i := new(big.Int); i.Cmp(whole) < 0; i.Add(i, bigOne) {
		ok, err := s.bernoulliExp01(bigOne, bigOne)
		if err != nil || !ok {
			return false, err
		}
	}
	return s.bernoulliExp01(frac, den)
}

// discreteLaplace returns a sample with P(x) ∝ exp(−|x|/t), t ≥ 1 (CKS Algorithm 2 with
// s = 1): U uniform in [0, t) accepted with probability exp(−U/t), V geometric with
// ratio exp(−1), magnitude U + t·V, a fair sign, and −0 rejected.
func (s sampler) discreteLaplace(t int64) (int64, error) {
	bt := big.NewInt(t)
	for {
		u, err := s.uniform(bt)
		if err != nil {
			return 0, err
		}
		ok, err := s.bernoulliExp(u, bt)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		var v int64
		for {
			ok, err := s.bernoulliExp01(bigOne, bigOne)
			if err != nil {
				return 0, err
			}
			if !ok {
				break
			}
			v++
		}
		x := u.Int64() + t*v
		neg, err := s.bernoulli(bigOne, bigTwo)
		if err != nil {
			return 0, err
		}
		if neg && x == 0 {
			continue
		}
		if neg {
			return -x, nil
		}
		return x, nil
	}
}
