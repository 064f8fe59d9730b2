package bgnbd

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// simulate draws customers from the BG/NBD story itself (FHL 2005, section 2):
// λ ~ Gamma(r, α), p ~ Beta(a, b); purchases arrive as a Poisson process at
// rate λ; after every repeat purchase the customer drops out with probability p.
func simulate(truth Params, n int, seed uint64) []Customer {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	gamma := distuv.Gamma{Alpha: truth.R, Beta: truth.Alpha, Src: rng}
	beta := distuv.Beta{Alpha: truth.A, Beta: truth.B, Src: rng}
	out := make([]Customer, n)
	for i := range out {
		bigT := 20 + 32*rng.Float64() // cohorts observed 20..52 weeks
		lam, p := gamma.Rand(), beta.Rand()
		var x, tx, t float64
		for {
			t += rng.ExpFloat64() / lam
			if t > bigT {
				break
			}
			x, tx = x+1, t
			if rng.Float64() < p {
				break
			}
		}
		out[i] = Customer{X: x, Tx: tx, T: bigT}
	}
	return out
}

func TestFitRecoversSimulatedParams(t *testing.T) {
	truth := Params{R: 0.5, Alpha: 5, A: 0.8, B: 2.5}
	got, _, err := Fit(simulate(truth, 20000, 7), FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// With 20,000 customers the estimates' standard errors are a few per cent
	// for r and α and near ten per cent for a and b.
	for _, c := range []struct {
		name            string
		got, want, rtol float64
	}{
		{"r", got.R, truth.R, 0.1}, {"alpha", got.Alpha, truth.Alpha, 0.15},
		{"a", got.A, truth.A, 0.25}, {"b", got.B, truth.B, 0.3},
	} {
		if math.Abs(c.got-c.want) > c.rtol*c.want {
			t.Errorf("%s: got %.4f, want %.4f ± %.0f%%", c.name, c.got, c.want, 100*c.rtol)
		}
	}
	t.Logf("truth %+v, fit %+v", truth, got)
}
