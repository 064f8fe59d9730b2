package hazard

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// TestBeyondClosedForm: past the trained horizon every day gets σ(b̄ + f),
// b̄ the mean baseline logit. With a constant hazard 0.1 that is 0.1, so
// P(within 60) = 1 − 0.9^60 and P(within 90) = 1 − 0.9^90; with baselines
// alternating between logit(0.2) and logit(0.05) the mean logit is their
// midpoint, and the survival past day 30 is S₃₀·(1 − σ(b̄ + f))^(h−30), worked
// out here from the two hazards, not from the model.
func TestBeyondClosedForm(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	logit := func(h float64) float64 { return math.Log(h / (1 - h)) }
	for k := range 30 {
		m.Params[k] = logit(0.1)
	}
	p, err := m.Predict([]float64{0})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range LongHorizons {
		if want := 1 - math.Pow(0.9, float64(h)); math.Abs(p.Beyond[i]-want) > 1e-12 {
			t.Errorf("constant hazard: P(within %d) got %v, want %v", h, p.Beyond[i], want)
		}
	}
	lo, hi := 0.05, 0.2
	for k := range 30 {
		m.Params[k] = logit(hi)
		if k%2 == 1 {
			m.Params[k] = logit(lo)
		}
	}
	m.Params[30] = 1 // w = 1; x = 0.5 gives f = 0.5
	p, err = m.Predict([]float64{0.5})
	if err != nil {
		t.Fatal(err)
	}
	sig := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	s30 := math.Pow((1-sig(logit(hi)+0.5))*(1-sig(logit(lo)+0.5)), 15)
	tail := 1 - sig((logit(hi)+logit(lo))/2+0.5)
	for i, h := range LongHorizons {
		want := 1 - s30*math.Pow(tail, float64(h-30))
		if math.Abs(p.Beyond[i]-want) > 1e-12 {
			t.Errorf("alternating hazard: P(within %d) got %v, want %v", h, p.Beyond[i], want)
		}
	}
}

// TestMonotoneAcrossHorizons: for random models (linear, MLP, rhythm) and
// random customers, P(within 1) ≤ P(within 3) ≤ … ≤ P(within 30) ≤
// P(within 60) ≤ P(within 90), each in [0, 1].
func TestMonotoneAcrossHorizons(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for _, kind := range []string{KindLinear, KindMLP, "rhythm"} {
		var m *Model
		switch kind {
		case "rhythm":
			m = rhythmModel(t)
		case KindMLP:
			m = newModel(t, KindMLP, 4, 3)
		default:
			m = newModel(t, KindLinear, 4, 0)
		}
		d := m.Schema.Len()
		for trial := range 200 {
			for j := range m.Params {
				m.Params[j] = r.NormFloat64() * 2
			}
			x := make([]float64, d)
			for j := range x {
				x[j] = r.Float64() * 6
			}
			p, err := m.Predict(x)
			if err != nil {
				t.Fatal(err)
			}
			all := append(p.Within[:], p.Beyond[:]...)
			for i, v := range all {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("%s trial %d: probability %d is %v", kind, trial, i, v)
				}
				if i > 0 && v < all[i-1] {
					t.Fatalf("%s trial %d: P(within) not monotone across horizons: %v", kind, trial, all)
				}
			}
		}
	}
}

// rhythmModel is a linear model over the full schema with the rhythm term.
func rhythmModel(t *testing.T) *Model {
	t.Helper()
	full, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(KindLinear, full, FixedStandardization(full), 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnableRhythm(); err != nil {
		t.Fatal(err)
	}
	return m
}
