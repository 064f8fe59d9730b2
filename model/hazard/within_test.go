package hazard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// withinModels are the models Within must agree with Predict on: each kind
// of score function, with and without the rhythm term, random and trained.
func withinModels(t *testing.T) map[string]*Model {
	t.Helper()
	rhythm := rhythmModel(t)
	mlpRhythm, err := New(KindMLP, rhythm.Schema, rhythm.Std, 5, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	if err := mlpRhythm.EnableRhythm(); err != nil {
		t.Fatal(err)
	}
	initial, err := Initial(rhythm.Schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	schema, rows, _ := rhythmShop(t, []time.Time{start.AddDate(0, 0, 150), start.AddDate(0, 0, 250)})
	trained, _, err := Train(context.Background(), schema, rows, TrainOptions{Rhythm: true, Steps: 60, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*Model{
		"linear":     newModel(t, KindLinear, 4, 0),
		"mlp":        newModel(t, KindMLP, 4, 3),
		"rhythm":     rhythm,
		"mlp+rhythm": mlpRhythm,
		"initial":    initial,
		"trained":    trained,
	}
}

// sameBits reports whether a and b are the same float64, bit for bit.
func sameBits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// TestWithinBitIdenticalToPredict: for every model kind, random parameters
// (and the trained ones as trained) and random customers, including customers
// without a gap, extreme and non-finite features, Within(x, t) has exactly
// the bits of 1 − Predict(x).Survival[t] for every day t of the horizon, and
// of Predict(x).Within[i] at each reported horizon. Predict is the second
// method: it builds the whole curve the old way.
func TestWithinBitIdenticalToPredict(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 7))
	var s Scratch // one scratch across models of different widths, as a scorer reuses it
	for name, m := range withinModels(t) {
		d := m.Schema.Len()
		hasGap := -1
		for j, n := range m.Schema.Names {
			if n == "has_gap" {
				hasGap = j
			}
		}
		for trial := range 300 {
			if name != "trained" && trial%3 == 0 {
				for j := range m.Params {
					m.Params[j] = r.NormFloat64() * 2
				}
			}
			x := make([]float64, d)
			for j := range x {
				x[j] = r.Float64() * 6
			}
			switch trial % 10 {
			case 1:
				if hasGap >= 0 {
					x[hasGap] = 0 // no gap: the rhythm offsets are zero
				}
			case 2:
				x[r.IntN(d)] = 1e300
			case 3:
				x[r.IntN(d)] = -1e300
			case 4:
				x[r.IntN(d)] = math.Inf(1)
			case 5:
				x[r.IntN(d)] = math.NaN()
			}
			p, err := m.Predict(x)
			if err != nil {
				t.Fatal(err)
			}
			for day := 1; day <= m.Horizon; day++ {
				got, err := m.Within(x, day, &s)
				if err != nil {
					t.Fatalf("%s: within %d: %v", name, day, err)
				}
				if want := 1 - p.Survival[day]; !sameBits(got, want) {
					t.Fatalf("%s trial %d: Within(x, %d) = %v (%#x), Predict's 1 − S = %v (%#x)", name, trial, day, got, math.Float64bits(got), want, math.Float64bits(want))
				}
			}
			for i, h := range Horizons {
				got, _ := m.Within(x, h, &s)
				if !sameBits(got, p.Within[i]) {
					t.Fatalf("%s trial %d: Within(x, %d) = %v, Predict(x).Within[%d] = %v", name, trial, h, got, i, p.Within[i])
				}
			}
		}
	}
}

// TestWithinAllocatesNothing: after the first call sized its scratch, Within
// allocates nothing, for every kind of model.
func TestWithinAllocatesNothing(t *testing.T) {
	for name, m := range withinModels(t) {
		x := make([]float64, m.Schema.Len())
		for j := range x {
			x[j] = float64(j%5) + 0.5
		}
		var s Scratch
		if _, err := m.Within(x, 7, &s); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = m.Within(x, 7, &s) }); n != 0 {
			t.Errorf("%s: %v allocations per Within, want 0", name, n)
		}
	}
}

// TestWithinRejects: a feature vector of the wrong length and a horizon
// outside 1..Horizon are errors that say which, not a panic.
func TestWithinRejects(t *testing.T) {
	m := newModel(t, KindLinear, 3, 0)
	var s Scratch
	if _, err := m.Within([]float64{1, 2}, 7, &s); !errors.Is(err, ErrFeatureCount) {
		t.Errorf("short vector: got %v, want ErrFeatureCount", err)
	}
	for _, days := range []int{0, -1, 31} {
		_, err := m.Within([]float64{1, 2, 3}, days, &s)
		if want := fmt.Sprintf("within: %d days outside the model's horizon 1..30", days); err == nil || err.Error() != want {
			t.Errorf("days %d: got %v, want %q", days, err, want)
		}
	}
}
