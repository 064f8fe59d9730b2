package dp

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

// dgPMF returns the pmf of N_Z(0, σ²) on [−m, m], normalised over that range (the mass
// outside is below 1e-300 for the m used here).
func dgPMF(sigma2 float64, m int) []float64 {
	p := make([]float64, 2*m+1)
	var s float64
	for x := -m; x <= m; x++ {
		p[x+m] = math.Exp(-float64(x*x) / (2 * sigma2))
		s += p[x+m]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// sumPMF convolves n copies of pmf (centred at index len/2), by direct summation.
func sumPMF(pmf []float64, n int) []float64 {
	out := []float64{1}
	for range n {
		next := make([]float64, len(out)+len(pmf)-1)
		for i, a := range out {
			for j, b := range pmf {
				next[i+j] += a * b
			}
		}
		out = next
	}
	return out
}

// renyi is D_α(P || Q) = 1/(α−1)·ln Σ_x P(x)^α Q(x)^(1−α) for pmfs on the same support,
// summed directly over the points where Q > 0.
func renyi(p, q []float64, alpha float64) float64 {
	var s float64
	for i := range q {
		if q[i] > 0 && p[i] > 0 {
			s += math.Exp(alpha*math.Log(p[i]) + (1-alpha)*math.Log(q[i]))
		}
	}
	return math.Log(s) / (alpha - 1)
}

// shifted returns p moved right by k places (zero filled).
func shifted(p []float64, k int) []float64 {
	out := make([]float64, len(p))
	for i := range p {
		if j := i - k; j >= 0 && j < len(p) {
			out[i] = p[j]
		}
	}
	return out
}

// numericDDG computes, by summing the actual distributions, the worst Rényi divergence of
// order α between the sum of n discrete Gaussians shifted by the integer vector delta
// and the unshifted sum, over both directions, with each customer sampled at rate q
// (the shifted distribution is then the mixture (1−q)·P + q·P_Δ). The coordinates are
// independent, so for q = 1 the divergence is the sum over coordinates; for q < 1 the
// test uses one-dimensional deltas only.
func numericDDG(sigma2 float64, n int, delta []int, q, alpha float64) float64 {
	m := int(math.Ceil(40*math.Sqrt(sigma2))) + 2
	p := sumPMF(dgPMF(sigma2, m), n)
	// Pad so that shifts stay inside the support.
	pad := 0
	for _, d := range delta {
		pad = max(pad, d, -d)
	}
	p = append(append(make([]float64, pad), p...), make([]float64, pad)...)
	var total float64
	for _, d := range delta {
		ps := shifted(p, d)
		if q < 1 {
			for i := range ps {
				ps[i] = (1-q)*p[i] + q*ps[i]
			}
		}
		total += max(renyi(ps, p, alpha), renyi(p, ps, alpha))
	}
	return total
}

// TestDDGaussAgainstNumeric checks the accountant's per-step RDP against the divergence of
// the actual discrete distributions, for small parameters where τ matters (σ² = 1/4) and
// where it does not, with and without sampling (both directions of the subsampled
// divergence are computed); the bound must hold, and where τ is negligible it must also be
// close (within 2% of the continuous-Gaussian value αΔ₂²/(2nσ²)).
func TestDDGaussAgainstNumeric(t *testing.T) {
	tests := []struct {
		sigma2 float64
		n      int
		delta  []int
		q      float64
	}{
		{0.25, 4, []int{1}, 1},
		{0.25, 2, []int{1, 1}, 1},
		{1, 3, []int{2}, 1},
		{2, 5, []int{1, -2}, 1},
		{3, 4, []int{3}, 1},
		{1, 3, []int{2}, 0.1},
		{2, 4, []int{3}, 0.25},
		{3, 5, []int{1}, 0.05},
		{1, 2, []int{1}, 0.5},
		{0.25, 3, []int{1}, 0.3},
		{0.5, 2, []int{1}, 0.01},
	}
	for _, tt := range tests {
		var l2, l1 float64
		for _, d := range tt.delta {
			l2 += float64(d * d)
			l1 += math.Abs(float64(d))
		}
		l2 = math.Sqrt(l2)
		r := Release{Mechanism: DDGauss, Q: tt.q, Sigma2: tt.sigma2, Cohort: tt.n, L2: l2, L1: l1, Dim: len(tt.delta), Steps: 1}
		tau := ddgTau(tt.sigma2, tt.n)
		for _, alpha := range []float64{1.5, 2, 3, 4.5, 8, 16} {
			bound, err := RDPDistributedDiscreteGaussian(r, alpha)
			if err != nil {
				t.Fatal(err)
			}
			num := numericDDG(tt.sigma2, tt.n, tt.delta, tt.q, alpha)
			if num > bound*(1+1e-9)+1e-12 {
				t.Errorf("σ² %v, n %d, Δ %v, q %v, α %v: bound %v below the actual divergence %v",
					tt.sigma2, tt.n, tt.delta, tt.q, alpha, bound, num)
			}
			gauss := alpha * l2 * l2 / (2 * float64(tt.n) * tt.sigma2)
			if tt.q == 1 && tau < 1e-6 && math.Abs(num-gauss) > 0.02*gauss {
				t.Errorf("σ² %v, n %d, Δ %v, α %v: actual divergence %v far from αΔ²/(2nσ²) = %v",
					tt.sigma2, tt.n, tt.delta, alpha, num, gauss)
			}
			if tt.q == 1 && bound > gauss+tau*float64(len(tt.delta))+1e-12 {
				t.Errorf("σ² %v, n %d, Δ %v, α %v: bound %v above αΔ²/(2nσ²) + τd = %v",
					tt.sigma2, tt.n, tt.delta, alpha, bound, gauss+tau*float64(len(tt.delta)))
			}
		}
	}
}

// TestDDGaussTauHandWorked: τ for σ² = 1/4 and n = 3 is 10·(e^{−π²/4} + e^{−π²/3}).
func TestDDGaussTauHandWorked(t *testing.T) {
	want := 10 * (math.Exp(-math.Pi*math.Pi/4) + math.Exp(-math.Pi*math.Pi/3))
	if got := ddgTau(0.25, 3); math.Abs(got-want) > 1e-15 {
		t.Errorf("τ = %v, want %v", got, want)
	}
	if got := ddgTau(5, 1); got != 0 {
		t.Errorf("τ for one merchant = %v, want 0", got)
	}
}

// TestDDGaussSubsamplingHelps: sampling at q < 1 never costs more than q = 1 and, for a
// small q and moderate noise, costs much less; q → the bound of the unsampled mechanism.
func TestDDGaussSubsamplingHelps(t *testing.T) {
	r := Release{Mechanism: DDGauss, Q: 1, Sigma2: 4e4, Cohort: 10, L2: 520, L1: 4160, Dim: 64, Steps: 1}
	full, _ := RDPDistributedDiscreteGaussian(r, 8)
	r.Q = 0.01
	sub, _ := RDPDistributedDiscreteGaussian(r, 8)
	// The unsampled value is α·Δ₂²/(2nσ²) = 8·520²/(2·10·4e4) = 2.704 (τ ≈ 0).
	if math.Abs(full-2.704) > 1e-9 {
		t.Errorf("unsampled RDP at 8 = %v, want 2.704", full)
	}
	if !(sub < full/10) {
		t.Errorf("q = 0.01: RDP %v not below a tenth of unsampled %v", sub, full)
	}
}

// TestLedgerComposesDDGauss: a ledger holding a DDGauss and a Gaussian release reports
// the ε of the order-wise sum of the two curves, computed here from the exported RDP
// functions.
func TestLedgerComposesDDGauss(t *testing.T) {
	ddg := Release{Mechanism: DDGauss, Q: 0.05, Sigma2: 2.5e5, Cohort: 10, L2: 1040, L1: 8320, Dim: 64, Steps: 40}
	g := Release{Mechanism: Gaussian, Q: 1, Z: 50, Steps: 1}
	orders := []float64{2, 3.5, 8, 16, 32, 64}
	l, err := NewLedger(AccountantOptions{Orders: orders})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Release{ddg, g} {
		if err := l.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]float64, len(orders))
	for i, a := range orders {
		x, _ := RDPDistributedDiscreteGaussian(ddg, a)
		y, _ := RDPSubsampledGaussian(1, 50, a, SeriesAbsolute)
		want[i] = 40*x + y
	}
	we, wo, _ := EpsilonFromRDP(orders, want, 1e-6)
	ge, gor, err := l.Epsilon(1e-6)
	if err != nil {
		t.Fatal(err)
	}
	if ge != we || gor != wo {
		t.Errorf("ledger ε %v at order %v, want %v at %v", ge, gor, we, wo)
	}
	if !(ge > 0) || math.IsInf(ge, 0) {
		t.Errorf("ε = %v", ge)
	}
}

func TestDDGaussReleaseRoundTrip(t *testing.T) {
	r, err := ParseReleaseSpec("mechanism=ddgauss,q=0.05,sigma2=250000,cohort=10,l2=1040.5,l1=8320,dim=64,steps=40")
	if err != nil {
		t.Fatal(err)
	}
	want := Release{Mechanism: DDGauss, Q: 0.05, Sigma2: 250000, Cohort: 10, L2: 1040.5, L1: 8320, Dim: 64, Steps: 40}
	if r != want {
		t.Fatalf("parsed %+v, want %+v", r, want)
	}
	// Inferred from sigma2.
	if r2, err := ParseReleaseSpec("q=0.05,sigma2=250000,cohort=10,l2=1040.5,l1=8320,dim=64,steps=40"); err != nil || r2 != want {
		t.Errorf("inferred: %+v, %v", r2, err)
	}
	var buf bytes.Buffer
	if err := WriteReleases(&buf, []Release{want, {Mechanism: Gaussian, Q: 1, Z: 3, Steps: 1}}); err != nil {
		t.Fatal(err)
	}
	back, err := ParseReleases(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, []Release{want, {Mechanism: Gaussian, Q: 1, Z: 3, Steps: 1}}) {
		t.Errorf("round trip gave %+v", back)
	}
	csv := "mechanism,q,sigma2,cohort,l2,l1,dim,steps\nddgauss,0.05,250000,10,1040.5,8320,64,40\n"
	if got, err := ParseReleases(strings.NewReader(csv)); err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("csv: %+v, %v", got, err)
	}
}

func TestDDGaussValidate(t *testing.T) {
	ok := Release{Mechanism: DDGauss, Q: 0.05, Sigma2: 2.5e5, Cohort: 10, L2: 1040, L1: 8320, Dim: 64, Steps: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Release){
		"sigma below 1/2": func(r *Release) { r.Sigma2 = 0.2 },
		"no cohort":       func(r *Release) { r.Cohort = 0 },
		"l1 below l2":     func(r *Release) { r.L1 = 10 },
		"no dim":          func(r *Release) { r.Dim = 0 },
		"q zero":          func(r *Release) { r.Q = 0 },
		"with z":          func(r *Release) { r.Z = 1 },
		"nan l2":          func(r *Release) { r.L2 = math.NaN() },
		"gaussian fields": func(r *Release) { r.Mechanism = Gaussian; r.Z = 1 },
	} {
		r := ok
		mut(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, r)
		}
	}
}

// TestDDGaussSampledMatchesGaussian: when τ is negligible, the forward direction's binomial
// sum at integer orders is the subsampled Gaussian's (Mironov, Talwar and Zhang's A_α with
// z = √(nσ²)/Δ₂), so the sampled DDGauss curve is never below RDPSubsampledGaussian; it
// equals it at α = 2 (the Zhu–Wang sum has no l ≥ 3 terms there) and at α = 20 (the
// forward direction dominates), and elsewhere the backward bound costs at most 10%.
func TestDDGaussSampledMatchesGaussian(t *testing.T) {
	const z = 2.0
	r := Release{Mechanism: DDGauss, Q: 0.05, Sigma2: 4e8 * z * z / 10, Cohort: 10, L2: 2e4, L1: 2e4 * 8, Dim: 64, Steps: 1}
	for _, a := range []float64{2, 5, 12, 20, 32} {
		got, err := RDPDistributedDiscreteGaussian(r, a)
		if err != nil {
			t.Fatal(err)
		}
		want, err := RDPSubsampledGaussian(0.05, z, a, SeriesAbsolute)
		if err != nil {
			t.Fatal(err)
		}
		if got < want*(1-1e-9) {
			t.Errorf("α %v: DDGauss %v below the Gaussian's %v", a, got, want)
		}
		if (a == 2 || a == 20) && got > want*(1+1e-9) {
			t.Errorf("α %v: DDGauss %v above the Gaussian's %v", a, got, want)
		}
		if got > 1.1*want {
			t.Errorf("α %v: DDGauss %v more than 10%% above the Gaussian's %v", a, got, want)
		}
	}
}
