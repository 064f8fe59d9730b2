package paretonbd

import (
	"math"
	"testing"

	"github.com/kairos-fl/kairos/model/bgnbd"
)

var published = Params{R: 0.553, Alpha: 10.578, S: 0.606, Beta: 11.669}

// TestLogLikelihoodHandPicked compares single customers with SciPy, which
// integrates the likelihood over the death time by adaptive quadrature
// (testdata/reference_fit.py), at the published parameters (α < β, so the
// second ₂F₁ form) and with α and β swapped (the first form).
func TestLogLikelihoodHandPicked(t *testing.T) {
	tests := []struct {
		c          Customer
		ll, palive float64
		swapped    bool
	}{
		{Customer{X: 2, Tx: 30.43, T: 38.86}, -9.554283245150, 0.869167559153, false},
		{Customer{X: 0, Tx: 0, T: 38.86}, -0.521046294081, 0.295286604617, false},
		{Customer{X: 14, Tx: 35, T: 36}, -31.905386763126, 0.985017006956, false},
		{Customer{X: 1, Tx: 1, T: 70}, -4.414799242433, 0.056768151333, false},
	}
	for _, tc := range tests {
		got, err := published.logLik(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tc.ll) > 1e-9 {
			t.Errorf("%+v: log-likelihood got %.12f, want %.12f", tc.c, got, tc.ll)
		}
		pa, err := published.PAlive(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(pa-tc.palive) > 1e-9 {
			t.Errorf("%+v: P(alive) got %.12f, want %.12f", tc.c, pa, tc.palive)
		}
	}
}

// defining returns the log of the model's defining integral
//
//	L = ∫∫ L(λ, μ | x, t_x, T) g(λ; r, α) g(μ; s, β) dλ dμ,
//	L(λ, μ | ·) = λ^x μ/(λ+μ) e^(−(λ+μ)t_x) + λ^(x+1)/(λ+μ) e^(−(λ+μ)T),
//
// by the trapezoidal rule over log λ and log μ (the integrand decays
// double-exponentially at both ends, where the rule converges geometrically):
// an evaluation that shares nothing with the ₂F₁ form but the model.
func defining(p Params, c Customer) float64 {
	const lo, hi, n = -40.0, 6.0, 1500
	h := (hi - lo) / n
	logGamma := func(v, shape, rate float64) float64 { // log density of log v
		lg, _ := math.Lgamma(shape)
		return shape*math.Log(rate) - lg + shape*math.Log(v) - rate*v
	}
	var sum float64
	for i := 0; i <= n; i++ {
		l := math.Exp(lo + float64(i)*h)
		gl := logGamma(l, p.R, p.Alpha)
		for j := 0; j <= n; j++ {
			m := math.Exp(lo + float64(j)*h)
			ind := math.Pow(l, c.X) / (l + m) * (m*math.Exp(-(l+m)*c.Tx) + l*math.Exp(-(l+m)*c.T))
			w := 1.0
			if i == 0 || i == n {
				w /= 2
			}
			if j == 0 || j == n {
				w /= 2
			}
			sum += w * ind * math.Exp(gl+logGamma(m, p.S, p.Beta))
		}
	}
	return math.Log(sum * h * h)
}

// TestLogLikelihoodDefiningIntegral checks the ₂F₁ form against the defining
// double integral on both sides of α = β.
func TestLogLikelihoodDefiningIntegral(t *testing.T) {
	c := Customer{X: 2, Tx: 30.43, T: 38.86}
	for _, p := range []Params{published, {R: 0.553, Alpha: 11.669, S: 0.606, Beta: 10.578}, {R: 2, Alpha: 3, S: 1.5, Beta: 40}} {
		got, err := p.logLik(c)
		if err != nil {
			t.Fatal(err)
		}
		want := defining(p, c)
		if math.Abs(got-want) > 1e-7 {
			t.Errorf("%+v: log-likelihood got %.10f, want %.10f (defining integral)", p, got, want)
		}
	}
}

// TestLogLikelihoodAlphaEqualsBeta: at α = β both ₂F₁ have argument 0 and
// A₀ = (α+t_x)^−(r+s+x) − (α+T)^−(r+s+x), a closed form; just off α = β the
// likelihood must be continuous whichever form is used.
func TestLogLikelihoodAlphaEqualsBeta(t *testing.T) {
	r, al, s := 0.7, 9.0, 1.3
	for _, c := range []Customer{{X: 3, Tx: 20, T: 39}, {X: 0, Tx: 0, T: 12}, {X: 40, Tx: 70, T: 78}} {
		m := r + s + c.X
		lg1, _ := math.Lgamma(r + c.X)
		lg0, _ := math.Lgamma(r)
		a0 := math.Pow(al+c.Tx, -m) - math.Pow(al+c.T, -m)
		want := lg1 - lg0 + (r+s)*math.Log(al) + math.Log(math.Pow(al+c.T, -(r+c.X)-s)+s/m*a0)
		for _, be := range []float64{al, al * (1 - 1e-9), al * (1 + 1e-9)} {
			got, err := Params{R: r, Alpha: al, S: s, Beta: be}.logLik(c)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-8 {
				t.Errorf("%+v at β = %v: got %.12f, want %.12f", c, be, got, want)
			}
		}
	}
}

// TestLogHyp2F1 checks the series against closed forms and against
// bgnbd.Hyp2F1, and that a large b does not overflow.
func TestLogHyp2F1(t *testing.T) {
	for _, z := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999} {
		// ₂F₁(1, 1; 2; z) = −log(1−z)/z.
		want := 1.0
		if z > 0 {
			want = -math.Log1p(-z) / z
		}
		got, err := logHyp2F1(1, 1, 2, z)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(math.Exp(got)-want) > 1e-13*want {
			t.Errorf("2F1(1,1;2;%v): got %.15g, want %.15g", z, math.Exp(got), want)
		}
		// ₂F₁(a, b; b; z) = (1−z)^−a.
		got, err = logHyp2F1(2.5, 3.7, 3.7, z)
		if err != nil {
			t.Fatal(err)
		}
		if w := -2.5 * math.Log1p(-z); math.Abs(got-w) > 1e-12*math.Max(1, math.Abs(w)) {
			t.Errorf("log 2F1(2.5,3.7;3.7;%v): got %.15g, want %.15g", z, got, w)
		}
		ref, err := bgnbd.Hyp2F1(3.2, 1.6, 4.2, z)
		if err != nil {
			t.Fatal(err)
		}
		got, err = logHyp2F1(3.2, 1.6, 4.2, z)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(math.Exp(got)-ref) > 1e-12*ref {
			t.Errorf("2F1(3.2,1.6;4.2;%v): got %.15g, want bgnbd's %.15g", z, math.Exp(got), ref)
		}
	}
	// ₂F₁(a, b; b; z) with b = 2000, a = 600 and z = 0.9: (1−z)^−600 = 1e600
	// overflows float64, its log does not.
	got, err := logHyp2F1(600, 2000, 2000, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if want := 600 * math.Log(10); math.Abs(got-want) > 1e-9*want {
		t.Errorf("log 2F1(600,2000;2000;0.9): got %.12g, want %.12g", got, want)
	}
	if _, err := logHyp2F1(1, 1, 2, 1); err == nil {
		t.Error("z = 1: got nil error, want one")
	}
}

// TestDeadSeriesMatchesQuadrature: the ₂F₁ series and the quadrature of the
// death-time integral, the two ways logDead has, agree wherever both apply
// (up to the series' limit z = 0.95, at both signs of α − β and for a heavy
// buyer), and the quadrature alone still matches the defining double
// integral past it (β = 400 ≫ α, z = 0.97 at t_x = 1).
func TestDeadSeriesMatchesQuadrature(t *testing.T) {
	for _, p := range []Params{published, {R: 0.553, Alpha: 11.669, S: 0.606, Beta: 10.578},
		{R: 0.8, Alpha: 2, S: 0.3, Beta: 40}, {R: 3, Alpha: 60, S: 2, Beta: 4}} {
		for _, c := range []Customer{{X: 2, Tx: 30.43, T: 38.86}, {X: 0, Tx: 0, T: 38.86}, {X: 60, Tx: 10, T: 70}, {X: 1, Tx: 1, T: 2}} {
			z := math.Abs(p.Alpha-p.Beta) / (math.Max(p.Alpha, p.Beta) + c.Tx)
			if z > seriesMaxZ {
				continue
			}
			series, err := p.logDead(c)
			if err != nil {
				t.Fatal(err)
			}
			if q := p.logDeadQuad(c); math.Abs(series-q) > 1e-10*math.Max(1, math.Abs(q)) {
				t.Errorf("%+v %+v (z = %.3f): series %.14f, quadrature %.14f", p, c, z, series, q)
			}
		}
	}
	p, c := Params{R: 0.7, Alpha: 15, S: 0.5, Beta: 400}, Customer{X: 2, Tx: 1, T: 38.86}
	got, err := p.logLik(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := defining(p, c); math.Abs(got-want) > 1e-7 {
		t.Errorf("%+v: log-likelihood by quadrature %.10f, defining integral %.10f", p, got, want)
	}
}
