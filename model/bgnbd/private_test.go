package bgnbd

import (
	"context"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

// TestFitPrivateApproachesTheMLE: with little noise (z = 0.05, the least the
// library calibrates: σ = 5 on a sum over 4,000 customers) and a clip no
// customer reaches, the DP fit's noisy gradient is close to the exact mean
// gradient, so its 300 Adam steps from the public prior must land at the maximum
// likelihood fit that Fit (a quasi-Newton optimiser, a second method) finds on
// the same simulated customers.
func TestFitPrivateApproachesTheMLE(t *testing.T) {
	cs := simulate(Params{R: 0.5, Alpha: 5, A: 0.8, B: 2.5}, 4000, 11)
	mle, mleLL, err := Fit(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const clip = 100
	for _, p := range []Params{PublicPrior, mle} {
		for _, c := range cs {
			g := make([]float64, 4)
			if _, err := p.CustomerGradient(c, g); err != nil {
				t.Fatal(err)
			}
			if n := math.Hypot(math.Hypot(g[0], g[1]), math.Hypot(g[2], g[3])); n >= clip {
				t.Fatalf("customer %+v has gradient norm %v ≥ the clip %v at %+v: the test's premise fails", c, n, clip, p)
			}
		}
	}
	got, rel, err := FitPrivate(context.Background(), cs, PrivateFitOptions{
		Steps: 300, NoiseMultiplier: 0.05, Clip: clip, Customers: float64(len(cs)), LearningRate: 0.05,
	})
	if err != nil {
		t.Fatal(err)
	}
	ll, err := got.LogLikelihood(cs)
	if err != nil {
		t.Fatal(err)
	}
	// Mean log-likelihood within 1e-4 per customer of the optimum.
	if (mleLL-ll)/float64(len(cs)) > 1e-4 {
		t.Errorf("private fit %+v: log-likelihood %.3f, MLE %+v %.3f", got, ll, mle, mleLL)
	}
	if rel.Mechanism != dp.Gaussian || rel.Q != 1 || rel.Steps != 300 || math.Abs(rel.Z-0.05)/0.05 > 1e-3 {
		t.Errorf("release %+v, want Gaussian, q 1, 300 steps, z 0.05", rel)
	}
}

// TestFitPrivateClipsEachCustomer: the sensitivity argument needs every
// customer's contribution bounded by the clip whatever the data; with one
// customer of a thousand purchases and a clip of 1e-9 the first step's
// direction is noise of σ = z·C only, so the fit hardly leaves the prior.
func TestFitPrivateClipsEachCustomer(t *testing.T) {
	cs := []Customer{{X: 1000, Tx: 50, T: 52}}
	got, _, err := FitPrivate(context.Background(), cs, PrivateFitOptions{
		Steps: 1, NoiseMultiplier: 1, Clip: 1e-9, Customers: 1, LearningRate: 0.1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// One Adam step moves each log-parameter by at most the learning rate.
	for _, c := range []struct{ got, start float64 }{{got.R, PublicPrior.R}, {got.Alpha, PublicPrior.Alpha}, {got.A, PublicPrior.A}, {got.B, PublicPrior.B}} {
		if d := math.Abs(math.Log(c.got / c.start)); d > 0.1+1e-9 {
			t.Errorf("a parameter moved by %v in log space after one step, want ≤ 0.1", d)
		}
	}
}

func TestFitPrivateRejects(t *testing.T) {
	ok := PrivateFitOptions{NoiseMultiplier: 1, Customers: 10}
	for name, o := range map[string]PrivateFitOptions{
		"no noise":          {Customers: 10},
		"no count":          {NoiseMultiplier: 1},
		"negative steps":    {NoiseMultiplier: 1, Customers: 10, Steps: -1},
		"infinite clip":     {NoiseMultiplier: 1, Customers: 10, Clip: math.Inf(1)},
		"bad start":         {NoiseMultiplier: 1, Customers: 10, Start: Params{R: -1, Alpha: 1, A: 1, B: 1}},
		"NaN learning rate": {NoiseMultiplier: 1, Customers: 10, LearningRate: math.NaN()},
	} {
		if _, _, err := FitPrivate(context.Background(), []Customer{{X: 1, Tx: 1, T: 2}}, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, _, err := FitPrivate(context.Background(), []Customer{{X: 1, Tx: 3, T: 2}}, ok); err == nil {
		t.Error("t_x > T: no error")
	}
}

// TestCustomerGradientMatchesFiniteDifferences checks the exported gradient
// against central differences of LogLikelihood in the log-parameters.
func TestCustomerGradientMatchesFiniteDifferences(t *testing.T) {
	p := Params{R: 0.3, Alpha: 4, A: 0.7, B: 2.2}
	for _, c := range []Customer{{X: 0, Tx: 0, T: 30}, {X: 3, Tx: 20, T: 35}, {X: 40, Tx: 50, T: 52}} {
		g := make([]float64, 4)
		if _, err := p.CustomerGradient(c, g); err != nil {
			t.Fatal(err)
		}
		th := []float64{math.Log(p.R), math.Log(p.Alpha), math.Log(p.A), math.Log(p.B)}
		for k := range th {
			const h = 1e-6
			up, down := append([]float64(nil), th...), append([]float64(nil), th...)
			up[k] += h
			down[k] -= h
			lu, _ := fromLogParams(up).LogLikelihood([]Customer{c})
			ld, _ := fromLogParams(down).LogLikelihood([]Customer{c})
			if fd := (lu - ld) / (2 * h); math.Abs(fd-g[k]) > 1e-5*math.Max(1, math.Abs(fd)) {
				t.Errorf("%+v: ∂/∂θ%d = %v, finite difference %v", c, k, g[k], fd)
			}
		}
	}
	if _, err := p.CustomerGradient(Customer{X: 1, Tx: 1, T: 2}, make([]float64, 3)); err == nil {
		t.Error("short gradient: no error")
	}
}
