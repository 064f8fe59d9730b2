package secagg

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
)

func testRand(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// TestFieldAgainstBig checks the Mersenne-folding multiply, add, subtract
// and inverse against math/big modulo 2^61 − 1.
func TestFieldAgainstBig(t *testing.T) {
	p := new(big.Int).SetUint64(fieldP)
	r := rand.New(rand.NewPCG(1, 2))
	edge := []uint64{0, 1, 2, fieldP - 1, fieldP - 2, 1 << 60, 1<<61 - 2, 12345678901234567}
	for i := range 20000 {
		a, b := r.Uint64N(fieldP), r.Uint64N(fieldP)
		if i < len(edge)*len(edge) {
			a, b = edge[i/len(edge)], edge[i%len(edge)]
		}
		ba, bb := new(big.Int).SetUint64(a), new(big.Int).SetUint64(b)
		want := new(big.Int).Mod(new(big.Int).Mul(ba, bb), p).Uint64()
		if got := fmul(a, b); got != want {
			t.Fatalf("fmul(%d, %d) = %d, want %d", a, b, got, want)
		}
		if got, want := fadd(a, b), new(big.Int).Mod(new(big.Int).Add(ba, bb), p).Uint64(); got != want {
			t.Fatalf("fadd(%d, %d) = %d, want %d", a, b, got, want)
		}
		if got, want := fsub(a, b), new(big.Int).Mod(new(big.Int).Sub(ba, bb), p).Uint64(); got != want {
			t.Fatalf("fsub(%d, %d) = %d, want %d", a, b, got, want)
		}
		if a != 0 {
			if got, want := finv(a), new(big.Int).ModInverse(ba, p).Uint64(); got != want {
				t.Fatalf("finv(%d) = %d, want %d", a, got, want)
			}
		}
	}
}

// TestShamirHandWorked: f(x) = 1234 + 166x + 94x² gives the shares
// f(1..5) = 1494, 1942, 2578, 3402, 4414 (worked by hand), and the Lagrange
// coefficients at 0 of the points 1, 2, 3 are 3, −3, 1.
func TestShamirHandWorked(t *testing.T) {
	coef := []uint64{1234, 166, 94}
	want := []uint64{1494, 1942, 2578, 3402, 4414}
	for i, w := range want {
		if got := evalPoly(coef, uint64(i+1)); got != w {
			t.Errorf("f(%d) = %d, want %d", i+1, got, w)
		}
	}
	if got := lagrangeAtZero([]uint32{1, 2, 3}); got[0] != 3 || got[1] != fieldP-3 || got[2] != 1 {
		t.Errorf("Lagrange coefficients of 1, 2, 3 = %v, want [3 p−3 1]", got)
	}
	// f(x) = (p − 1) + x wraps: f(1) = 0, f(2) = 1, and interpolation gives p − 1 back.
	wrap := []uint64{fieldP - 1, 1}
	if a, b := evalPoly(wrap, 1), evalPoly(wrap, 2); a != 0 || b != 1 {
		t.Errorf("wrapping f(1), f(2) = %d, %d, want 0, 1", a, b)
	}
	if l := lagrangeAtZero([]uint32{1, 2}); fadd(fmul(l[0], 0), fmul(l[1], 1)) != fieldP-1 {
		t.Errorf("interpolating (1,0), (2,1) at 0: want p − 1")
	}
	// Every 3-subset of the five hand-worked shares rebuilds 1234 through a
	// secret whose first chunk is 1234 and other chunks are 0.
	var shares []Share
	for i, w := range want {
		shares = append(shares, Share{X: uint32(i + 1), Y: [secretChunks]uint64{w}})
	}
	for _, sub := range subsets(len(shares), 3) {
		var pick []Share
		for _, i := range sub {
			pick = append(pick, shares[i])
		}
		got, err := combine(pick, 3)
		if err != nil {
			t.Fatalf("combine %v: %v", sub, err)
		}
		if got[0] != 0xd2 || got[1] != 0x04 || got[2] != 0 { // 1234 = 0x04d2, little-endian
			t.Errorf("combine %v = % x…, want d2 04 00…", sub, got[:4])
		}
	}
}

// subsets lists the k-subsets of {0…n−1}.
func subsets(n, k int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

// TestShamirEveryThresholdSubset splits random secrets t-of-n and rebuilds
// them from every t-subset; every (t−1)-subset is refused.
func TestShamirEveryThresholdSubset(t *testing.T) {
	r := testRand(7)
	for _, tc := range []struct{ t, n int }{{1, 1}, {2, 3}, {3, 5}, {4, 7}, {6, 10}} {
		var secret [SecretSize]byte
		_, _ = r.Read(secret[:])
		xs := make([]uint32, tc.n)
		for i := range xs {
			xs[i] = uint32(3*i + 11) // points need not be 1…n
		}
		shares, err := split(secret, tc.t, xs, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range subsets(tc.n, tc.t) {
			var pick []Share
			for _, i := range sub {
				pick = append(pick, shares[i])
			}
			got, err := combine(pick, tc.t)
			if err != nil || got != secret {
				t.Fatalf("t=%d n=%d subset %v: got % x, %v, want % x", tc.t, tc.n, sub, got[:4], err, secret[:4])
			}
		}
		if tc.t > 1 {
			if _, err := combine(shares[:tc.t-1], tc.t); !errors.Is(err, ErrTooFewShares) {
				t.Errorf("t=%d: %d shares: err %v, want ErrTooFewShares", tc.t, tc.t-1, err)
			}
		}
	}
}

// TestShamirFewerThanThresholdRevealNothing: for t = 2 one share is
// consistent with every secret, so it carries no information: given the share
// (x, y) and any candidate secret s, the line through (0, s) and (x, y) is a
// valid sharing polynomial. Checked by rebuilding each candidate from the real
// share and the point the candidate's line takes elsewhere.
func TestShamirFewerThanThresholdRevealNothing(t *testing.T) {
	r := testRand(9)
	var secret [SecretSize]byte
	_, _ = r.Read(secret[:])
	shares, err := split(secret, 2, []uint32{1, 2}, r)
	if err != nil {
		t.Fatal(err)
	}
	held := shares[0]
	for _, cand := range [][SecretSize]byte{{}, {1, 2, 3}, secret} {
		other := Share{X: 2}
		for c := range secretChunks {
			s := chunk(cand, c)
			slope := fsub(held.Y[c], s) // y = s + slope·x at x = 1
			other.Y[c] = fadd(s, fmul(slope, 2))
		}
		got, err := combine([]Share{held, other}, 2)
		if err != nil || got != cand {
			t.Errorf("candidate % x: got % x, %v", cand[:4], got[:4], err)
		}
	}
}

func TestShamirBadInput(t *testing.T) {
	var secret [SecretSize]byte
	r := testRand(1)
	for _, tc := range []struct {
		name string
		t    int
		xs   []uint32
	}{{"zero point", 2, []uint32{0, 1}}, {"duplicate point", 2, []uint32{4, 4}}, {"threshold above n", 3, []uint32{1, 2}}, {"threshold 0", 0, []uint32{1}}} {
		if _, err := split(secret, tc.t, tc.xs, r); err == nil {
			t.Errorf("%s: split accepted", tc.name)
		}
	}
	shares, _ := split(secret, 2, []uint32{1, 2}, r)
	bad := shares[1]
	bad.Y[0] = fieldP
	if _, err := combine([]Share{shares[0], bad}, 2); err == nil {
		t.Error("combine accepted a value outside the field")
	}
	if _, err := combine([]Share{shares[0], shares[0]}, 2); err == nil {
		t.Error("combine accepted the same point twice")
	}
}
