package hazard

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// zeroStep is a GradientStep that returns no direction: with L2 = 0 Adam then
// never moves, so the trained parameters are the starting point itself.
type zeroStep struct{}

func (zeroStep) Step(_ int, _ func(int, []float64) float64, dir []float64) error {
	clear(dir)
	return nil
}

func initRows() []feature.Row {
	r := rand.New(rand.NewPCG(1, 2))
	var rows []feature.Row
	for i := range 60 {
		rows = append(rows, feature.Row{Customer: string(rune('a' + i%20)), Cutoff: i % 3, X: []float64{r.NormFloat64(), r.NormFloat64()}, Label: r.IntN(31)})
	}
	return rows
}

// TestTrainStartsFromInit: a frozen training returns its start, which is the
// prior's parameters with Init and the documented zero-weight, BaseHazard
// start without.
func TestTrainStartsFromInit(t *testing.T) {
	s, std := testSchema(t, 2), unitStd(2)
	prior, err := New(KindLinear, s, std, 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	for j := range prior.Params {
		prior.Params[j] = 0.1*float64(j) - 2
	}
	opts := TrainOptions{Std: &std, Step: zeroStep{}, Steps: 5}
	got, _, err := Train(context.Background(), s, initRows(), TrainOptions{Std: &std, Step: zeroStep{}, Steps: 5, Init: prior})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Params, prior.Params) {
		t.Errorf("frozen training from a prior: got %v, want the prior %v", got.Params, prior.Params)
	}
	zero, _, err := Train(context.Background(), s, initRows(), opts)
	if err != nil {
		t.Fatal(err)
	}
	lo := math.Log(0.003 / 0.997)
	for j, v := range zero.Params {
		want := 0.0
		if j < zero.Horizon {
			want = lo
		}
		if math.Abs(v-want) > 1e-15 {
			t.Fatalf("frozen training from zero: parameter %d = %v, want %v", j, v, want)
		}
	}
	// A real training moves away from the prior.
	moved, _, err := Train(context.Background(), s, initRows(), TrainOptions{Std: &std, Steps: 20, Init: prior})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(moved.Params, prior.Params) {
		t.Error("training from a prior did not move")
	}
}

func TestTrainRejectsIncompatibleInit(t *testing.T) {
	s, std := testSchema(t, 2), unitStd(2)
	ok, err := New(KindLinear, s, std, 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(KindLinear, testSchema(t, 3), unitStd(3), 0, 0.01)
	mlp, _ := New(KindMLP, s, std, 4, 0.01)
	scaled := *ok
	scaled.Std = Standardization{Mean: []float64{0, 0}, Scale: []float64{2, 1}}
	nan := *ok
	nan.Params = slices.Clone(ok.Params)
	nan.Params[3] = math.NaN()
	for name, c := range map[string]struct {
		prior *Model
		want  string
	}{
		"schema":          {other, "schema"},
		"kind":            {mlp, "mlp"},
		"standardisation": {&scaled, "standardise"},
		"NaN":             {&nan, "non-finite"},
	} {
		_, _, err := Train(context.Background(), s, initRows(), TrainOptions{Std: &std, Steps: 2, Init: c.prior})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", name, err, c.want)
		}
	}
}
