package evaluate

import (
	"context"
	"math"
	"testing"
)

// TestPrivacyAudit runs a reduced audit at ε = 2: the lower bounds must stay below
// the accountant's ε and the exact ε (at 99.9% confidence, so a correct
// implementation fails this test with probability < 0.001), and the exact ε must
// not exceed the accountant's.
func TestPrivacyAudit(t *testing.T) {
	rep, err := PrivacyAudit(context.Background(), AuditOptions{Epsilon: 2, Delta: 1e-5, Runs: 150, Customers: 20, Alpha: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Epsilon > 2*(1+1e-9) || rep.ExactEpsilon > rep.Epsilon {
		t.Errorf("accountant ε %v, exact ε %v: want exact ≤ accountant ≤ 2", rep.Epsilon, rep.ExactEpsilon)
	}
	for name, b := range map[string]float64{"transcript": rep.Transcript.Epsilon, "final model": rep.FinalModel.Epsilon,
		"gaussian estimate": rep.GaussianEpsilon} {
		if b > rep.ExactEpsilon {
			t.Errorf("%s: lower bound %v above the exact ε %v", name, b, rep.ExactEpsilon)
		}
	}
}

// TestPrivacyAuditHasPower: with little noise (ε = 200, z ≈ 0.2, so the summed
// canary coordinate is shifted by √10/0.2 ≈ 16 standard deviations) the
// transcript score separates the runs, and the bound reaches what 75 evaluation
// runs per side allow at 99.9% confidence, ln(p/(1−p)) with p = 0.0005^(1/75),
// i.e. 2.238. The final weight, filtered through Adam, is weaker but still far
// from 0. A broken statistic or canary would give 0.
func TestPrivacyAuditHasPower(t *testing.T) {
	rep, err := PrivacyAudit(context.Background(), AuditOptions{Epsilon: 200, Delta: 1e-5, Runs: 150, Customers: 20, Alpha: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	if b := rep.Transcript.Epsilon; b < 2.2 || b > 2.2382 {
		t.Errorf("transcript lower bound: got %v, want in [2.2, 2.2382]", b)
	}
	if b := rep.FinalModel.Epsilon; b < 1 {
		t.Errorf("final-model lower bound: got %v, want ≥ 1", b)
	}
}

func TestPrivacyAuditRejects(t *testing.T) {
	for _, o := range []AuditOptions{{Epsilon: 0, Delta: 1e-5}, {Epsilon: 1, Delta: 0}, {Epsilon: 1, Delta: 1e-5, Runs: 3}} {
		if _, err := PrivacyAudit(context.Background(), o); err == nil {
			t.Errorf("%+v: got no error", o)
		}
	}
}

// TestGaussianShift: out = 0, 1, 0, 1, … (pooled sd 0.5·√(2n/(2n−2))) and in =
// out + 1 give μ = 1/sd; the lower bound subtracts z₀.₉₅ = 1.6449 standard errors.
func TestGaussianShift(t *testing.T) {
	n := 100
	in, out := make([]float64, n), make([]float64, n)
	for i := range n {
		out[i] = float64(i % 2)
		in[i] = out[i] + 1
	}
	sd := math.Sqrt(float64(2*n) * 0.25 / float64(2*n-2))
	mu, lo := gaussianShift(in, out, 0.05)
	wantLo := 1/sd - 1.6448536*math.Sqrt(2/float64(n)+1/(sd*sd)/(4*float64(n)))
	if math.Abs(mu-1/sd) > 1e-12 || math.Abs(lo-wantLo) > 1e-6 {
		t.Errorf("got μ %v (lower %v), want %v (%v)", mu, lo, 1/sd, wantLo)
	}
}
