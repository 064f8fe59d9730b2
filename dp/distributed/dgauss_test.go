package distributed

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// seeded returns a deterministic byte source for tests, so that the statistical tests
// below give the same verdict on every run; production draws from crypto/rand.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// dgPMF returns the pmf of N_Z(0, σ²) by direct summation, and the
// normalising constant.
func dgPMF(sigma2 float64) (func(x int) float64, float64) {
	norm := 1.0
	for y := 1; y < 10000; y++ {
		t := math.Exp(-float64(y*y) / (2 * sigma2))
		if t == 0 {
			break
		}
		norm += 2 * t
	}
	return func(x int) float64 { return math.Exp(-float64(x*x)/(2*sigma2)) / norm }, norm
}

// TestNormalisationPoisson checks the normalising constant that the pmf tests use
// against the Poisson summation formula Σ_y exp(−y²/2σ²) = √(2πσ²)·Σ_k exp(−2π²σ²k²),
// an independent computation.
func TestNormalisationPoisson(t *testing.T) {
	for _, s2 := range []float64{0.25, 1.0 / 3, 2.5, 100.0 / 7, 400} {
		_, direct := dgPMF(s2)
		theta := 1.0
		for k := 1; k < 100; k++ {
			theta += 2 * math.Exp(-2*math.Pi*math.Pi*s2*float64(k*k))
		}
		poisson := math.Sqrt(2*math.Pi*s2) * theta
		if math.Abs(direct-poisson) > 1e-12*poisson {
			t.Errorf("σ² = %v: direct sum %v, Poisson summation %v", s2, direct, poisson)
		}
	}
}

// chiSquareCritical is the upper 1e-6 quantile of χ² with k degrees of freedom by the
// Wilson–Hilferty approximation (z = 4.753).
func chiSquareCritical(k int) float64 {
	const z = 4.753
	f := float64(k)
	a := 2 / (9 * f)
	return f * math.Pow(1-a+z*math.Sqrt(a), 3)
}

// chiSquare bins samples by value, merging both tails where the expected count under pmf
// falls below 10, and returns the statistic and its degrees of freedom.
func chiSquare(samples []int64, pmf func(int) float64) (float64, int) {
	n := float64(len(samples))
	counts := map[int64]int{}
	for _, x := range samples {
		counts[x]++
	}
	k := 0
	for n*pmf(k+1) >= 10 {
		k++
	}
	var stat float64
	var tailObs int
	tailExp := 1.0
	for x := -k; x <= k; x++ {
		e := n * pmf(x)
		tailExp -= pmf(x)
		o := float64(counts[int64(x)])
		stat += (o - e) * (o - e) / e
	}
	for x, c := range counts {
		if x < int64(-k) || x > int64(k) {
			tailObs += c
		}
	}
	e := n * tailExp
	bins := 2*k + 1
	if e > 0 {
		stat += (float64(tailObs) - e) * (float64(tailObs) - e) / e
		bins++
	}
	return stat, bins - 1
}

func draw(t *testing.T, sigma2 *big.Rat, n int, seed byte) []int64 {
	t.Helper()
	g, err := NewDiscreteGaussian(sigma2)
	if err != nil {
		t.Fatal(err)
	}
	r := seeded(seed)
	out := make([]int64, n)
	for i := range out {
		if out[i], err = g.Sample(r); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDiscreteGaussianPMF: the samples fit the closed-form pmf (χ² at the 1e-6 level)
// and their second moment matches the pmf's variance within 5 standard errors; the same
// samples are rejected against a pmf 10% wider, so the test can fail.
func TestDiscreteGaussianPMF(t *testing.T) {
	const n = 60000
	for i, s2 := range []*big.Rat{big.NewRat(1, 3), big.NewRat(5, 2), big.NewRat(100, 7)} {
		sf, _ := s2.Float64()
		xs := draw(t, s2, n, byte(i+1))
		pmf, _ := dgPMF(sf)
		stat, df := chiSquare(xs, pmf)
		if crit := chiSquareCritical(df); stat > crit {
			t.Errorf("σ² = %v: χ² = %.1f with %d df, above the 1e-6 critical value %.1f", s2, stat, df, crit)
		}
		wrong, _ := dgPMF(1.1 * sf)
		if stat, df := chiSquare(xs, wrong); stat <= chiSquareCritical(df) {
			t.Errorf("σ² = %v: samples not rejected against σ² × 1.1 (χ² = %.1f, %d df)", s2, stat, df)
		}
		var m2, m4 float64 // E[X²], E[X⁴] under the pmf
		for x := -2000; x <= 2000; x++ {
			p := pmf(x)
			m2 += float64(x*x) * p
			m4 += float64(x*x) * float64(x*x) * p
		}
		if m2 > sf*(1+1e-12) {
			t.Errorf("σ² = %v: pmf variance %v exceeds σ² (CKS 2020 show it is at most σ²)", s2, m2)
		}
		var got float64
		var mean float64
		for _, x := range xs {
			got += float64(x * x)
			mean += float64(x)
		}
		got /= n
		mean /= n
		se := math.Sqrt((m4 - m2*m2) / n)
		if math.Abs(got-m2) > 5*se {
			t.Errorf("σ² = %v: sample E[X²] %v, pmf variance %v (5 se = %v)", s2, got, m2, 5*se)
		}
		if math.Abs(mean) > 5*math.Sqrt(m2/n) {
			t.Errorf("σ² = %v: sample mean %v, want 0 within %v", s2, mean, 5*math.Sqrt(m2/n))
		}
	}
}

// TestBernoulliExp: exp(−γ) coins for rational γ below, at and above 1 hit their
// probability within 5 standard errors.
func TestBernoulliExp(t *testing.T) {
	const n = 40000
	s := sampler{r: seeded(9)}
	for _, g := range [][2]int64{{0, 1}, {3, 7}, {1, 1}, {5, 2}, {9, 4}} {
		var hits int
		for range n {
			ok, err := s.bernoulliExp(big.NewInt(g[0]), big.NewInt(g[1]))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				hits++
			}
		}
		p := math.Exp(-float64(g[0]) / float64(g[1]))
		se := math.Sqrt(p * (1 - p) / n)
		if got := float64(hits) / n; math.Abs(got-p) > 5*se+1e-12 {
			t.Errorf("γ = %d/%d: frequency %v, want exp(−γ) = %v ± %v", g[0], g[1], got, p, 5*se)
		}
	}
}

func TestNewDiscreteGaussianRejects(t *testing.T) {
	for _, s2 := range []*big.Rat{nil, big.NewRat(0, 1), big.NewRat(-1, 2), new(big.Rat).SetInt64(1 << 62)} {
		if _, err := NewDiscreteGaussian(s2); err == nil {
			t.Errorf("σ² = %v accepted", s2)
		}
	}
}

func BenchmarkDiscreteGaussian(b *testing.B) {
	g, err := NewDiscreteGaussian(big.NewRat(1_000_000, 3))
	if err != nil {
		b.Fatal(err)
	}
	r := seeded(1)
	for b.Loop() {
		if _, err := g.Sample(r); err != nil {
			b.Fatal(err)
		}
	}
}
