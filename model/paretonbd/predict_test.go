package paretonbd

import (
	"math"
	"testing"
)

// posterior is a quadrature grid for λ ~ Gamma(r+x, α+T) and μ ~ Gamma(s,
// β+T), the posteriors of an alive customer: the trapezoidal rule over log λ
// and log μ, an evaluation that shares nothing with the closed forms.
type posterior struct{ l, m, w []float64 }

func newPosterior(p Params, c Customer) posterior {
	const lo, hi, n = -40.0, 6.0, 1200
	h := (hi - lo) / n
	logGamma := func(v, shape, rate float64) float64 { // log density of log v
		lg, _ := math.Lgamma(shape)
		return shape*math.Log(rate) - lg + shape*math.Log(v) - rate*v
	}
	var q posterior
	for i := 0; i <= n; i++ {
		l := math.Exp(lo + float64(i)*h)
		gl := logGamma(l, p.R+c.X, p.Alpha+c.T)
		for j := 0; j <= n; j++ {
			m := math.Exp(lo + float64(j)*h)
			w := h * h * math.Exp(gl+logGamma(m, p.S, p.Beta+c.T))
			if i == 0 || i == n {
				w /= 2
			}
			if j == 0 || j == n {
				w /= 2
			}
			if w > 0 {
				q.l, q.m, q.w = append(q.l, l), append(q.m, m), append(q.w, w)
			}
		}
	}
	return q
}

// mean returns E[f(λ, μ)].
func (q posterior) mean(f func(l, m float64) float64) float64 {
	var sum float64
	for i, w := range q.w {
		sum += w * f(q.l[i], q.m[i])
	}
	return sum
}

// TestPredictionsAgainstPosterior checks ExpectedPurchases and
// ProbPurchaseWithin against their definitions given alive, averaged over
// the posteriors by quadrature and weighted by P(alive):
//
//	E[Y(t)] = P(alive)·E[λ/μ·(1 − e^(−μt))]
//	P(Y(t) > 0) = P(alive)·E[λ/(λ+μ)·(1 − e^(−(λ+μ)t))]
//
// at CDNOW's published parameters, at s = 1 (the limit form) and with a
// heavy buyer, in weeks, over horizons from a day to two years.
func TestPredictionsAgainstPosterior(t *testing.T) {
	for _, tc := range []struct {
		p Params
		c Customer
	}{
		{published, Customer{X: 2, Tx: 30.43, T: 38.86}},
		{published, Customer{X: 0, Tx: 0, T: 38.86}},
		{Params{R: 0.553, Alpha: 10.578, S: 1, Beta: 11.669}, Customer{X: 1, Tx: 1, T: 70}},
		{Params{R: 2, Alpha: 3, S: 1.5, Beta: 40}, Customer{X: 25, Tx: 35, T: 36}},
	} {
		alive, err := tc.p.PAlive(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		post := newPosterior(tc.p, tc.c)
		for _, horizon := range []float64{1.0 / 7, 30.0 / 7, 39, 104} {
			e, err := tc.p.ExpectedPurchases(tc.c, horizon)
			if err != nil {
				t.Fatal(err)
			}
			wantE := alive * post.mean(func(l, m float64) float64 { return l / m * -math.Expm1(-m*horizon) })
			if math.Abs(e-wantE) > 1e-8*math.Max(1, wantE) {
				t.Errorf("%+v %+v t=%.3f: E[Y] got %.12f, want %.12f", tc.p, tc.c, horizon, e, wantE)
			}
			pr, err := tc.p.ProbPurchaseWithin(tc.c, horizon)
			if err != nil {
				t.Fatal(err)
			}
			wantP := alive * post.mean(func(l, m float64) float64 { return l / (l + m) * -math.Expm1(-(l+m)*horizon) })
			if math.Abs(pr-wantP) > 1e-8 {
				t.Errorf("%+v %+v t=%.3f: P(Y>0) got %.12f, want %.12f", tc.p, tc.c, horizon, pr, wantP)
			}
			if pr > e+1e-15 || pr > alive {
				t.Errorf("%+v %+v t=%.3f: P(Y>0) = %v above E[Y] = %v or P(alive) = %v", tc.p, tc.c, horizon, pr, e, alive)
			}
		}
	}
}

func TestPredictionEdges(t *testing.T) {
	c := Customer{X: 2, Tx: 30.43, T: 38.86}
	for _, h := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := published.ExpectedPurchases(c, h); err == nil {
			t.Errorf("ExpectedPurchases at horizon %v: got nil error", h)
		}
		if _, err := published.ProbPurchaseWithin(c, h); err == nil {
			t.Errorf("ProbPurchaseWithin at horizon %v: got nil error", h)
		}
	}
	e, _ := published.ExpectedPurchases(c, 0)
	pr, _ := published.ProbPurchaseWithin(c, 0)
	if e != 0 || pr != 0 {
		t.Errorf("horizon 0: got E %v, P %v, want 0, 0", e, pr)
	}
	// Near s = 1 the expm1 form joins the limit smoothly.
	at1, _ := Params{R: 0.5, Alpha: 10, S: 1, Beta: 12}.ExpectedPurchases(c, 39)
	near, _ := Params{R: 0.5, Alpha: 10, S: 1 + 1e-10, Beta: 12}.ExpectedPurchases(c, 39)
	if math.Abs(at1-near) > 1e-9 {
		t.Errorf("E[Y] at s = 1: %.12f, at s = 1+1e-10: %.12f", at1, near)
	}
}
