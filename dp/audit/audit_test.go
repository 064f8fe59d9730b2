package audit

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// TestClopperPearsonAgainstBetaQuantiles compares with the beta-quantile form of
// the exact interval computed by gonum: lower = Beta(k, n−k+1)⁻¹(α),
// upper = Beta(k+1, n−k)⁻¹(1−α).
func TestClopperPearsonAgainstBetaQuantiles(t *testing.T) {
	for _, c := range []struct {
		k, n  int
		alpha float64
	}{{1, 10, 0.05}, {5, 10, 0.025}, {9, 10, 0.05}, {37, 500, 0.025}, {480, 500, 0.01}, {3, 2000, 0.025}} {
		lo, err := ClopperPearsonLower(c.k, c.n, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		hi, err := ClopperPearsonUpper(c.k, c.n, c.alpha)
		if err != nil {
			t.Fatal(err)
		}
		wantLo := distuv.Beta{Alpha: float64(c.k), Beta: float64(c.n - c.k + 1)}.Quantile(c.alpha)
		wantHi := distuv.Beta{Alpha: float64(c.k + 1), Beta: float64(c.n - c.k)}.Quantile(1 - c.alpha)
		if math.Abs(lo-wantLo) > 1e-9 || math.Abs(hi-wantHi) > 1e-9 {
			t.Errorf("k=%d n=%d α=%v: got [%.10f, %.10f], want [%.10f, %.10f]", c.k, c.n, c.alpha, lo, hi, wantLo, wantHi)
		}
	}
}

// TestClopperPearsonEdges checks the closed forms at k = 0 and k = n:
// upper(0, n) = 1 − α^(1/n) and lower(n, n) = α^(1/n).
func TestClopperPearsonEdges(t *testing.T) {
	for _, n := range []int{1, 10, 100} {
		hi, _ := ClopperPearsonUpper(0, n, 0.05)
		if want := 1 - math.Pow(0.05, 1/float64(n)); math.Abs(hi-want) > 1e-12 {
			t.Errorf("upper(0, %d): got %v, want %v", n, hi, want)
		}
		lo, _ := ClopperPearsonLower(n, n, 0.05)
		if want := math.Pow(0.05, 1/float64(n)); math.Abs(lo-want) > 1e-12 {
			t.Errorf("lower(%d, %d): got %v, want %v", n, n, lo, want)
		}
		if lo0, _ := ClopperPearsonLower(0, n, 0.05); lo0 != 0 {
			t.Errorf("lower(0, %d): got %v, want 0", n, lo0)
		}
	}
	for _, c := range [][2]int{{-1, 5}, {6, 5}, {0, 0}} {
		if _, err := ClopperPearsonLower(c[0], c[1], 0.05); err == nil {
			t.Errorf("lower(%d, %d): got no error", c[0], c[1])
		}
	}
}

// TestEpsilonLowerBoundSeparable: scores that separate perfectly give, on the 100
// evaluation runs per side, TPR ≥ (α/2)^(1/100) and FPR ≤ 1 − (α/2)^(1/100).
func TestEpsilonLowerBoundSeparable(t *testing.T) {
	in, out := make([]float64, 200), make([]float64, 200)
	for i := range in {
		in[i], out[i] = 1+float64(i%7), -float64(i%5)
	}
	const delta, alpha = 1e-6, 0.05
	b, err := EpsilonLowerBound(in, out, delta, alpha)
	if err != nil {
		t.Fatal(err)
	}
	p := math.Pow(alpha/2, 1.0/100)
	want := math.Log((p - delta) / (1 - p))
	if math.Abs(b.Epsilon-want) > 1e-9 || b.TPR != 1 || b.FPR != 0 || b.Evaluation != 100 {
		t.Errorf("got ε %v (TPR %v FPR %v, %d runs), want %v (1, 0, 100)", b.Epsilon, b.TPR, b.FPR, b.Evaluation, want)
	}
}

// TestEpsilonLowerBoundIndistinguishable: the same scores in both worlds prove nothing.
func TestEpsilonLowerBoundIndistinguishable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	b, err := EpsilonLowerBound(xs, xs, 1e-6, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if b.Epsilon != 0 {
		t.Errorf("got ε lower bound %v, want 0", b.Epsilon)
	}
}

// TestEpsilonLowerBoundRandomizedResponse audits randomized response, which is
// exactly ε-DP: the bound must stay below ε and, with 40,000 runs, come close to it.
func TestEpsilonLowerBoundRandomizedResponse(t *testing.T) {
	for _, eps := range []float64{0.5, 1, 2} {
		rng := rand.New(rand.NewPCG(uint64(eps*10), 7))
		p := math.Exp(eps) / (1 + math.Exp(eps))
		n := 40000
		in, out := make([]float64, n), make([]float64, n)
		for i := range n {
			if rng.Float64() < p {
				in[i] = 1
			}
			if rng.Float64() >= p {
				out[i] = 1
			}
		}
		b, err := EpsilonLowerBound(in, out, 0, 0.05)
		if err != nil {
			t.Fatal(err)
		}
		if b.Epsilon > eps || b.Epsilon < 0.85*eps {
			t.Errorf("ε = %v: got lower bound %v, want in [%v, %v]", eps, b.Epsilon, 0.85*eps, eps)
		}
	}
}

func TestEpsilonLowerBoundRejects(t *testing.T) {
	if _, err := EpsilonLowerBound([]float64{1, 2, 3}, []float64{1, 2, 3, 4}, 0, 0.05); err == nil {
		t.Error("3 runs: got no error")
	}
	if _, err := EpsilonLowerBound([]float64{1, 2, 3, math.NaN()}, []float64{1, 2, 3, 4}, 0, 0.05); err == nil {
		t.Error("NaN: got no error")
	}
}

// FuzzEpsilonLowerBound: for any scores the bound is finite and ≥ 0, the rates
// are proportions, and the confidence bounds bracket them.
func FuzzEpsilonLowerBound(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{0, 0, 1, 1, 2, 2, 3, 3}, 1e-6)
	f.Add([]byte{9, 9, 9, 9, 9}, []byte{0, 0, 0, 0, 0}, 0.0)
	f.Add([]byte{5, 5, 5, 5}, []byte{5, 5, 5, 5}, 0.5)
	f.Fuzz(func(t *testing.T, a, b []byte, delta float64) {
		in, out := make([]float64, len(a)), make([]float64, len(b))
		for i, x := range a {
			in[i] = float64(x)
		}
		for i, x := range b {
			out[i] = float64(x)
		}
		bd, err := EpsilonLowerBound(in, out, delta, 0.05)
		if err != nil {
			return
		}
		if !(bd.Epsilon >= 0) || math.IsInf(bd.Epsilon, 0) {
			t.Fatalf("ε lower bound %v, want finite and ≥ 0", bd.Epsilon)
		}
		if bd.TPR < 0 || bd.TPR > 1 || bd.FPR < 0 || bd.FPR > 1 || bd.TPRLower > bd.TPR+1e-12 || bd.FPRUpper < bd.FPR-1e-12 {
			t.Fatalf("rates %+v: want proportions with TPRLower ≤ TPR and FPRUpper ≥ FPR", bd)
		}
	})
}
