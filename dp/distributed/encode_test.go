package distributed

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func testParams(dim int) Params {
	var seed Seed
	seed[0] = 7
	return Params{
		Dim: dim, Clip: 1, Gamma: 1.0 / 64, Beta: math.Exp(-0.5),
		LocalVariance: big.NewRat(1000, 3), Bits: 32, Seed: seed,
	}
}

// sylvester builds the ±1 Hadamard matrix of order n by H_{2k} = [[H, H], [H, −H]].
func sylvester(n int) [][]float64 {
	h := [][]float64{{1}}
	for len(h) < n {
		m := len(h)
		next := make([][]float64, 2*m)
		for i := range next {
			next[i] = make([]float64, 2*m)
			for j := range next[i] {
				v := h[i%m][j%m]
				if i >= m && j >= m {
					v = -v
				}
				next[i][j] = v
			}
		}
		h = next
	}
	return h
}

// TestRotateMatchesMatrix: the fast transform equals the explicit (H/√n)·D product, and
// unrotate inverts it.
func TestRotateMatchesMatrix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{1, 3, 8, 13} {
		n := paddedDim(dim)
		var seed Seed
		seed[1] = byte(dim)
		d := signs(seed, n)
		x := make([]float64, dim)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		got := rotate(x, d)
		h := sylvester(n)
		for i := range n {
			var want float64
			for j := range dim {
				want += h[i][j] * d[j] * x[j]
			}
			want /= math.Sqrt(float64(n))
			if math.Abs(got[i]-want) > 1e-12 {
				t.Errorf("dim %d: rotated[%d] = %v, want %v", dim, i, got[i], want)
			}
		}
		back := unrotate(got, d, dim)
		for i := range x {
			if math.Abs(back[i]-x[i]) > 1e-12 {
				t.Errorf("dim %d: unrotate(rotate(x))[%d] = %v, want %v", dim, i, back[i], x[i])
			}
		}
	}
}

// TestSignsDependOnSeed: different seeds give different rotations, the same seed the same.
func TestSignsDependOnSeed(t *testing.T) {
	var a, b Seed
	b[31] = 1
	sa, sa2, sb := signs(a, 256), signs(a, 256), signs(b, 256)
	same, plus := 0, 0
	for i := range sa {
		if sa[i] != sa2[i] {
			t.Fatalf("seed gives different signs at %d", i)
		}
		if sa[i] == sb[i] {
			same++
		}
		if sa[i] > 0 {
			plus++
		}
	}
	if same == 256 || plus == 0 || plus == 256 {
		t.Errorf("signs: %d of 256 equal across seeds, %d positive", same, plus)
	}
}

// TestNormBoundHandWorked: c = 10, d = 4, β = e^−½ gives √(2 ln(1/β)) = 1 and
// Δ₂² = 100 + 1 + 1·(10 + 1) = 112, below (c + √d)² = 144.
func TestNormBoundHandWorked(t *testing.T) {
	p := Params{Dim: 3, Clip: 5, Gamma: 0.5, Beta: math.Exp(-0.5), LocalVariance: big.NewRat(1, 1), Bits: 32}
	if got, want := p.NormBound(), math.Sqrt(112); math.Abs(got-want) > 1e-12 {
		t.Errorf("NormBound = %v, want √112 = %v", got, want)
	}
	if got, want := p.L1Bound(), 2*math.Sqrt(112); math.Abs(got-want) > 1e-12 {
		t.Errorf("L1Bound = %v, want √4·√112 = %v", got, want)
	}
	// C/γ = 1/8 in one dimension, β = e^−½: Δ₂² = 1/64 + 1/4 + (1/8 + 1/2) = 57/64 < 1, so
	// Δ₂² < Δ₂ and Δ₁ is Δ₂ itself; the release is valid.
	small := Params{Dim: 1, Clip: 1, Gamma: 8, Beta: math.Exp(-0.5), LocalVariance: big.NewRat(1, 1), Bits: 8}
	if got, want := small.NormBound(), math.Sqrt(57.0/64); math.Abs(got-want) > 1e-12 || small.L1Bound() != got {
		t.Errorf("C/γ = 1/8: Δ₂ = %v (want %v), Δ₁ = %v (want Δ₂)", got, want, small.L1Bound())
	}
	if _, err := small.Release(2, 1, 1); err != nil {
		t.Errorf("release with Δ₂ < 1: %v", err)
	}
	// With β tiny the first term exceeds (c + √d)² and the second one wins.
	if got, want := RoundedNormBound(1, 4, 1e-300), 3.0; got != want {
		t.Errorf("RoundedNormBound(1, 4, 1e-300) = %v, want 1 + √4 = %v", got, want)
	}
}

// clippedSum is the test's own clip-and-sum: v·min(1, C/‖v‖), summed.
func clippedSum(cs [][]float64, clip float64) []float64 {
	out := make([]float64, len(cs[0]))
	for _, c := range cs {
		var ss float64
		for _, v := range c {
			ss += v * v
		}
		s := 1.0
		if n := math.Sqrt(ss); n > clip {
			s = clip / n
		}
		for i, v := range c {
			out[i] += s * v
		}
	}
	return out
}

// TestDecodeSumWithoutNoise: three merchants encode without noise; the decoded modular
// sum equals the sum of their clipped contributions within the quantisation bound: the
// rotation is orthogonal, each customer's rounding moves each of the n rotated
// coordinates by less than γ, so the error norm is below γ·K·√n for K customers. Some
// contributions exceed the clip and are clipped; the error is also far below the
// smallest effect a dropped customer would have.
func TestDecodeSumWithoutNoise(t *testing.T) {
	p := testParams(13)
	p.Gamma = 1.0 / 1024
	rng := rand.New(rand.NewPCG(3, 4))
	var all [][]float64
	total := make([]uint32, p.PaddedDim())
	for m := range 3 {
		cs := make([][]float64, 5+m)
		for i := range cs {
			cs[i] = make([]float64, p.Dim)
			for j := range cs[i] {
				cs[i][j] = rng.NormFloat64() * 0.6
			}
		}
		enc, err := encode(context.Background(), cs, p, seeded(byte(m)), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := AddMod(total, enc, p.Bits); err != nil {
			t.Fatal(err)
		}
		all = append(all, cs...)
	}
	got, err := DecodeSum(total, p)
	if err != nil {
		t.Fatal(err)
	}
	want := clippedSum(all, p.Clip)
	var errNorm float64
	for i := range want {
		errNorm += (got[i] - want[i]) * (got[i] - want[i])
	}
	errNorm = math.Sqrt(errNorm)
	bound := p.Gamma * float64(len(all)) * math.Sqrt(float64(p.PaddedDim()))
	if errNorm >= bound {
		t.Errorf("‖decoded − Σ clipped‖ = %v, want < γ·K·√n = %v", errNorm, bound)
	}
	// Leaving one customer out must move the decoded sum by more than the bound.
	short, err := encode(context.Background(), all[1:], p, seeded(9), false)
	if err != nil {
		t.Fatal(err)
	}
	gotShort, err := DecodeSum(short, p)
	if err != nil {
		t.Fatal(err)
	}
	var diff float64
	for i := range got {
		diff += (gotShort[i] - want[i]) * (gotShort[i] - want[i])
	}
	if math.Sqrt(diff) < bound {
		t.Errorf("decode without customer 0 is within %v of the full sum: the test cannot tell them apart", bound)
	}
}

// TestEncodeNoiseVariance: with no contributions, the centred sum of four merchants'
// encodings is the sum of four discrete Gaussians; its sample variance over 4,096
// coordinates matches 4·Var(N_Z(0, σ²)) (Var by summing the pmf) within 5 standard errors.
func TestEncodeNoiseVariance(t *testing.T) {
	p := testParams(4096)
	p.LocalVariance = big.NewRat(9, 2)
	total := make([]uint32, p.PaddedDim())
	for m := range 4 {
		enc, err := encode(context.Background(), nil, p, seeded(byte(20+m)), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := AddMod(total, enc, p.Bits); err != nil {
			t.Fatal(err)
		}
	}
	pmf, _ := dgPMF(4.5)
	var v1, m4 float64
	for x := -200; x <= 200; x++ {
		v1 += float64(x*x) * pmf(x)
		m4 += math.Pow(float64(x), 4) * pmf(x)
	}
	want := 4 * v1
	// Var of a sum of 4 iid: fourth central moment 4·m4 + 3·4·3·v1² → Var(S²) = that − want².
	varS2 := 4*m4 + 36*v1*v1 - want*want
	var got float64
	for _, u := range total {
		c := int64(u)
		if c >= 1<<31 {
			c -= 1 << 32
		}
		got += float64(c * c)
	}
	n := float64(len(total))
	got /= n
	if se := math.Sqrt(varS2 / n); math.Abs(got-want) > 5*se {
		t.Errorf("sample variance %v, want %v ± %v", got, want, 5*se)
	}
}

// TestConditionalRoundingBound: every accepted rounding respects the squared-norm limit,
// and an unreachable limit is an error, not a loop.
func TestConditionalRoundingBound(t *testing.T) {
	r := seeded(5)
	y := []float64{0.5, -0.5, 0.5, -0.5, 2.25, -3.75, 0, 1}
	// Floors: 0,-1,0,-1,2,-4,0,1 → the smallest possible squared norm is 0+0+0+0+4+9+0+1 = 14.
	for range 200 {
		k, err := roundConditional(y, 16, r)
		if err != nil {
			t.Fatal(err)
		}
		var ss int64
		for i, v := range k {
			if f := math.Floor(y[i]); float64(v) != f && float64(v) != f+1 {
				t.Fatalf("coordinate %d of %v rounded to %d", i, y[i], v)
			}
			ss += v * v
		}
		if ss > 16 {
			t.Fatalf("accepted rounding %v has squared norm %d > 16", k, ss)
		}
	}
	if _, err := roundConditional(y, 13, r); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("limit 13 below every rounding: err = %v, want ErrInvalidParams", err)
	}
}

// TestRequiredBitsHandWorked: d = 1 (n = 1), C/γ = 64, K = 10 customers, N = 4 merchants,
// σ² = 100, p = 4·e^−8 (so √(2 ln(4d/p)) = 4): bound = 10 + 10·64·4 + √400·4 = 2650,
// which needs 2^(b−1) > 2650: b = 13.
func TestRequiredBitsHandWorked(t *testing.T) {
	p := testParams(1)
	p.LocalVariance = big.NewRat(100, 1)
	b, err := RequiredBits(p, 4, 10, 4*math.Exp(-8))
	if err != nil {
		t.Fatal(err)
	}
	if b != 13 {
		t.Errorf("RequiredBits = %d, want 13", b)
	}
	if _, err := RequiredBits(p, 4, 1<<30, 1e-9); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("2^30 customers fit 32 bits: err = %v", err)
	}
}

// TestWrapAround: a modulus too small for the sum makes the decoded value wrong by a
// multiple of 2^b·γ; RequiredBits' modulus decodes it.
func TestWrapAround(t *testing.T) {
	p := testParams(1)
	cs := [][]float64{{1}, {1}, {1}} // each is ±64 on the grid exactly: no rounding
	ctx := context.Background()
	// The sum is 3·64 = 192 in the rotated basis (up to the sign of the one coordinate).
	// b = 9 holds it; with b = 8 it wraps to 192 − 256 = −64, which decodes to −1.
	for _, tc := range []struct {
		bits int
		want float64
	}{{9, 3}, {8, -1}} {
		p.Bits = tc.bits
		enc, err := EncodeWithoutNoise(ctx, cs, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSum(enc, p)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tc.want {
			t.Errorf("bits %d: decoded %v, want %v", tc.bits, got[0], tc.want)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	ctx := context.Background()
	p := testParams(3)
	for name, cs := range map[string][][]float64{
		"short": {{1, 2}},
	} {
		if _, err := Encode(ctx, cs, p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad := p
	bad.LocalVariance = nil
	if _, err := Encode(ctx, nil, bad); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("no noise variance: err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Encode(cctx, [][]float64{{1, 0, 0}}, p); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := DecodeSum(make([]uint32, 3), p); err == nil {
		t.Error("decode of 3 coordinates for padded dim 4 accepted")
	}
	p.Bits = 8
	if _, err := DecodeSum([]uint32{0, 256, 0, 0}, p); err == nil {
		t.Error("decode of 256 with b = 8 accepted")
	}
}

// FuzzDecodeSum: any bytes as a sum, any dimension and modulus: an error or a finite
// vector of the right length, never a panic.
func FuzzDecodeSum(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255}, uint8(2), uint8(32))
	f.Add([]byte{}, uint8(1), uint8(1))
	f.Add(make([]byte, 64), uint8(13), uint8(20))
	f.Fuzz(func(t *testing.T, raw []byte, dim, bits uint8) {
		p := testParams(int(dim))
		p.Bits = int(bits)
		sum := make([]uint32, len(raw)/4)
		for i := range sum {
			sum[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
		got, err := DecodeSum(sum, p)
		if err != nil {
			return
		}
		if len(got) != p.Dim {
			t.Fatalf("decoded %d coordinates, want %d", len(got), p.Dim)
		}
		for i, v := range got {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("coordinate %d is %v", i, v)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	p := testParams(64)
	cs := make([][]float64, 200)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range cs {
		cs[i] = make([]float64, p.Dim)
		for j := range cs[i] {
			cs[i][j] = rng.NormFloat64() * 0.1
		}
	}
	for b.Loop() {
		if _, err := Encode(context.Background(), cs, p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParamsJSON: parameters survive a JSON round trip, the seed as 64 hex digits and
// the noise variance as an exact fraction.
func TestParamsJSON(t *testing.T) {
	p := testParams(5)
	p.Seed[31] = 0xab
	p.LocalVariance = big.NewRat(1000001, 3)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"seed":"07`+strings.Repeat("00", 30)+`ab"`) {
		t.Errorf("seed not in hex: %s", b)
	}
	var back Params
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Seed != p.Seed || back.LocalVariance.Cmp(p.LocalVariance) != 0 || back.Gamma != p.Gamma || back.Bits != p.Bits {
		t.Errorf("round trip: %+v, want %+v", back, p)
	}
	if err := json.Unmarshal([]byte(`{"seed":"zz"}`), &back); err == nil {
		t.Error("a 2-digit seed was accepted")
	}
}

// FuzzParams: any JSON as round parameters is refused or, if valid, encodes a small
// contribution and decodes the result to a finite vector, never panicking.
func FuzzParams(f *testing.F) {
	p := testParams(3)
	good, _ := json.Marshal(p)
	f.Add(good)
	f.Add([]byte(`{"dim":1,"clip":1,"gamma":0.5,"beta":0.5,"local_variance":"1/4","bits":8,"seed":"` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{"dim":-1,"local_variance":"0"}`))
	f.Add([]byte(`{"seed":"zz"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p Params
		if err := json.Unmarshal(raw, &p); err != nil {
			return
		}
		if err := p.Validate(); err != nil || p.Dim > 64 {
			return
		}
		c := make([]float64, p.Dim)
		c[0] = 1
		enc, err := encode(context.Background(), [][]float64{c}, p, seeded(1), true)
		if err != nil {
			return
		}
		got, err := DecodeSum(enc, p)
		if err != nil {
			t.Fatalf("decode of a valid encoding: %v", err)
		}
		for i, v := range got {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("coordinate %d is %v", i, v)
			}
		}
	})
}
