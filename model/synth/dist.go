package synth

import (
	"math"
	"math/rand/v2"
)

// gamma draws from Gamma(shape, scale) (mean shape·scale) by Marsaglia and
// Tsang's method, boosting shapes below 1 with U^(1/shape).
func gamma(r *rand.Rand, shape, scale float64) float64 {
	if shape < 1 {
		u := r.Float64()
		for u == 0 {
			u = r.Float64()
		}
		return gamma(r, shape+1, scale) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v * scale
		}
	}
}

// beta draws from Beta(a, b) as a ratio of gammas.
func beta(r *rand.Rand, a, b float64) float64 {
	x := gamma(r, a, 1)
	y := gamma(r, b, 1)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// poisson draws from Poisson(mean): Knuth's product method for small means,
// a rounded normal approximation above 30 (the generator's means are small).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	limit := math.Exp(-mean)
	n, p := 0, r.Float64()
	for p > limit {
		n++
		p *= r.Float64()
	}
	return n
}

// categorical draws an index with probability proportional to w; cum is the
// running sum of w.
func categorical(r *rand.Rand, cum []float64) int {
	u := r.Float64() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

func cumsum(w []float64) []float64 {
	c := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		c[i] = s
	}
	return c
}
