package hazard

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

func testSchema(t *testing.T, d int) feature.Schema {
	t.Helper()
	full, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := feature.NewSchema(full.Names[:d])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unitStd(d int) Standardization {
	s := Standardization{Mean: make([]float64, d), Scale: make([]float64, d)}
	for j := range s.Scale {
		s.Scale[j] = 1
	}
	return s
}

// fullSchema is the unmasked schema and each feature's position in it.
func fullSchema(t *testing.T) (feature.Schema, map[string]int) {
	t.Helper()
	full, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for j, n := range full.Names {
		pos[n] = j
	}
	return full, pos
}

// checkFiniteDifferences compares m's gradient of CustomerLoss on rows with
// central finite differences, coordinate by coordinate, to the relative
// tolerance tol, and returns the gradient.
func checkFiniteDifferences(t *testing.T, m *Model, rows []feature.Row, tol float64) []float64 {
	t.Helper()
	grad := make([]float64, len(m.Params))
	if _, err := m.CustomerLoss(rows, grad); err != nil {
		t.Fatal(err)
	}
	const eps = 1e-6
	for j := range m.Params {
		orig := m.Params[j]
		m.Params[j] = orig + eps
		lp, _ := m.CustomerLoss(rows, nil)
		m.Params[j] = orig - eps
		lm, _ := m.CustomerLoss(rows, nil)
		m.Params[j] = orig
		fd := (lp - lm) / (2 * eps)
		if math.Abs(fd-grad[j]) > tol*math.Max(1, math.Abs(fd)) {
			t.Errorf("param %d of %d: got gradient %v, finite difference %v", j, len(m.Params), grad[j], fd)
		}
	}
	return grad
}

func newModel(t *testing.T, kind string, d, hidden int) *Model {
	t.Helper()
	m, err := New(kind, testSchema(t, d), unitStd(d), hidden, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTwoExampleLikelihood works the loss and gradient of two examples by hand.
// Every baseline logit is ln(1/3), so h_t = 0.25, and w = 0.
//
//	A: x = 1, first purchase on day 2: −ln(1−h) − ln h = ln(4/3) + ln 4
//	B: x = −2, censored:               30·ln(4/3)
//
// ∂/∂z_t of an example is h − [t = label] over its risk days, so
//
//	b_1: 0.25 + 0.25 = 0.5; b_2: (0.25 − 1) + 0.25 = −0.5; b_3..b_30: 0.25 (B only)
//	w:   A (0.25 − 0.75)·1 + B 30·0.25·(−2) = −0.5 − 15 = −15.5
func TestTwoExampleLikelihood(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	rows := []feature.Row{{Customer: "a", X: []float64{1}, Label: 2}, {Customer: "b", X: []float64{-2}, Label: 0}}
	grad := make([]float64, len(m.Params))
	loss, err := m.CustomerLoss(rows, grad)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Log(4.0/3) + math.Log(4) + 30*math.Log(4.0/3); math.Abs(loss-want) > 1e-12 {
		t.Errorf("loss: got %v, want %v", loss, want)
	}
	want := make([]float64, 31)
	want[0], want[1] = 0.5, -0.5
	for k := 2; k < 30; k++ {
		want[k] = 0.25
	}
	want[30] = -15.5
	for j := range want {
		if math.Abs(grad[j]-want[j]) > 1e-12 {
			t.Errorf("grad[%d]: got %v, want %v", j, grad[j], want[j])
		}
	}
}

// TestGradientFiniteDifferences checks the per-customer gradient against central
// finite differences for every score function (wide: the scratch kind).
func TestGradientFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		hidden int
	}{{KindLinear, 0}, {KindMLP, 4}, {KindWide, 4}} {
		t.Run(tc.kind, func(t *testing.T) {
			const d = 5
			r := rand.New(rand.NewPCG(7, 8))
			m := newModel(t, tc.kind, d, tc.hidden)
			m.Std = Standardization{Mean: []float64{1, 0, -1, 2, 0}, Scale: []float64{2, 1, 0.5, 3, 1}}
			for j := range m.Params {
				m.Params[j] = r.NormFloat64() * 0.5
			}
			for j := range 30 {
				m.Params[j] -= 3
			}
			var rows []feature.Row
			for i := range 4 {
				x := make([]float64, d)
				for j := range x {
					x[j] = r.NormFloat64() * 2
				}
				rows = append(rows, feature.Row{Customer: "c", Cutoff: i, X: x, Label: []int{0, 1, 17, 30}[i]})
			}
			checkFiniteDifferences(t, m, rows, 1e-6)
		})
	}
}

// TestPredictHandSet checks survival outputs for hand-set hazards.
func TestPredictHandSet(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	logit := func(h float64) float64 { return math.Log(h / (1 - h)) }
	for k := range 30 {
		m.Params[k] = logit(0.1)
	}
	p, err := m.Predict([]float64{0})
	if err != nil {
		t.Fatal(err)
	}
	// Constant hazard 0.1: S(t) = 0.9^t, P(within t) = 1 − 0.9^t,
	// E[min(T,30)] = Σ_{t=0}^{29} 0.9^t = (1 − 0.9^30)/0.1, most likely day 1.
	for i, h := range Horizons {
		if want := 1 - math.Pow(0.9, float64(h)); math.Abs(p.Within[i]-want) > 1e-12 {
			t.Errorf("P(within %d): got %v, want %v", h, p.Within[i], want)
		}
	}
	if want := (1 - math.Pow(0.9, 30)) / 0.1; math.Abs(p.ExpectedDays-want) > 1e-12 {
		t.Errorf("expected days: got %v, want %v", p.ExpectedDays, want)
	}
	if p.MostLikelyDay != 1 {
		t.Errorf("most likely day: got %d, want 1", p.MostLikelyDay)
	}
	// Median given a purchase: 1 − 0.9^t ≥ (1 − 0.9^30)/2 = 0.4788 ⇔
	// t ≥ ln(0.5212)/ln(0.9) = 6.18, so day 7.
	if p.MedianDay != 7 {
		t.Errorf("median day: got %d, want 7", p.MedianDay)
	}
	// h_1 = 0.1, h_2 = 0.5, later 0.01: P(T=2) = 0.9·0.5 = 0.45 beats 0.1.
	m.Params[1] = 0
	for k := 2; k < 30; k++ {
		m.Params[k] = logit(0.01)
	}
	// With w = 1 and x = ln 2 ... keep f = 0: x = 0.
	m.Params[30] = 1
	p, _ = m.Predict([]float64{0})
	if p.MostLikelyDay != 2 {
		t.Errorf("most likely day: got %d, want 2", p.MostLikelyDay)
	}
	if want := 1 - 0.9*0.5*0.99; math.Abs(p.Within[1]-want) > 1e-12 {
		t.Errorf("P(within 3): got %v, want %v", p.Within[1], want)
	}
	// A score shift f adds to every logit: x = 1 with w = 1 and scale 1 turns
	// h_1 = 0.1 into σ(logit(0.1) + 1).
	p, _ = m.Predict([]float64{1})
	if want := 1 / (1 + math.Exp(-(logit(0.1) + 1))); math.Abs(p.Hazard[0]-want) > 1e-12 {
		t.Errorf("hazard with score 1: got %v, want %v", p.Hazard[0], want)
	}
	if _, err := m.Predict([]float64{1, 2}); !errors.Is(err, ErrFeatureCount) {
		t.Errorf("wrong length: got %v, want ErrFeatureCount", err)
	}
}

func TestMeanStep(t *testing.T) {
	s, err := NewMeanStep(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Customer i's gradient is (i, 1): the mean over all three is (1, 1).
	dir := []float64{9, 9}
	grad := func(i int, out []float64) float64 { out[0] += float64(i); out[1]++; return 0 }
	if err := s.Step(3, grad, dir); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dir, []float64{1, 1}) {
		t.Errorf("direction: got %v, want [1 1]", dir)
	}
	if err := s.Step(0, grad, dir); err == nil {
		t.Error("no customers: got nil error")
	}
}

// TestRecoverBaseline draws first-purchase days from a known hazard
// h_t(x) = σ(b_t + 0.8·x), x ~ N(0,1), and checks that the fitted baseline
// hazard at x = 0 is within 4 standard errors of the truth on every day.
func TestRecoverBaseline(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 20000
	trueB := make([]float64, 30)
	for k := range trueB {
		trueB[k] = math.Log(0.03/0.97) + 0.6*math.Sin(float64(k)/5)
	}
	var rows []feature.Row
	atRisk := make([]float64, 30)
	for i := range n {
		x := r.NormFloat64()
		label := 0
		for k := range 30 {
			atRisk[k]++
			if r.Float64() < sigmoid(trueB[k]+0.8*x) {
				label = k + 1
				break
			}
		}
		rows = append(rows, feature.Row{Customer: string(rune(i)), X: []float64{x}, Label: label})
	}
	m, _, err := Train(context.Background(), testSchema(t, 1), rows, TrainOptions{
		Std: ptr(unitStd(1)), Steps: 3000, BatchSize: 500, LearningRate: 0.02, Seed: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Params[30]; math.Abs(got-0.8) > 0.05 {
		t.Errorf("weight: got %v, want 0.8 ± 0.05", got)
	}
	for k := range 30 {
		got, want := sigmoid(m.Params[k]), sigmoid(trueB[k])
		// The at-risk count at x = 0 is of the order of atRisk; the binomial
		// standard error of a daily hazard is sqrt(h(1−h)/atRisk).
		se := math.Sqrt(want * (1 - want) / atRisk[k])
		if math.Abs(got-want) > 4*se+0.002 {
			t.Errorf("day %d hazard: got %.4f, want %.4f ± %.4f", k+1, got, want, 4*se+0.002)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestSmallShopCalibrated trains with the default schedule on a shop of 1,500
// customers (the size of the BTYDplus grocery cohort) whose daily hazard is a
// constant 0.04, and checks the fitted P(buy within 30 days) against the closed
// form 1 − 0.96³⁰ = 0.7061. A schedule counted in epochs alone stops after 6
// batches per epoch × 20 epochs = 120 steps, where the baselines have moved
// from their start (P = 0.086) only part of the way.
func TestSmallShopCalibrated(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const n, h = 1500, 0.04
	var rows []feature.Row
	for i := range n {
		label := 0
		for k := range 30 {
			if r.Float64() < h {
				label = k + 1
				break
			}
		}
		rows = append(rows, feature.Row{Customer: strconv.Itoa(i), X: []float64{r.NormFloat64()}, Label: label})
	}
	m, rep, err := Train(context.Background(), testSchema(t, 1), rows, TrainOptions{Anneal: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Predict([]float64{0})
	if err != nil {
		t.Fatal(err)
	}
	// The observed 30-day share has a binomial standard error of
	// sqrt(0.706·0.294/1500) = 0.0118; allow 3 of them.
	want := 1 - math.Pow(1-h, 30)
	if got := p.Within[len(Horizons)-1]; math.Abs(got-want) > 0.035 {
		t.Errorf("P(buy within 30 days) after %d steps: got %.4f, want %.4f ± 0.035", rep.Steps, got, want)
	}
}

func TestTrainDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var rows []feature.Row
	for i := range 300 {
		rows = append(rows, feature.Row{Customer: string(rune('a' + i%50)), Cutoff: i % 3, X: []float64{r.NormFloat64(), r.NormFloat64()}, Label: r.IntN(31)})
	}
	for _, kind := range []string{KindLinear, KindMLP} {
		opts := TrainOptions{Kind: kind, Hidden: 3, Seed: 42, Steps: 40, BatchSize: 10, EarlyStopping: true, EvalEvery: 5}
		a, ra, err := Train(context.Background(), testSchema(t, 2), rows, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := Train(context.Background(), testSchema(t, 2), rows, opts)
		if !slices.Equal(a.Params, b.Params) {
			t.Errorf("%s: same seed gave different parameters", kind)
		}
		if ra.Customers != 50 || ra.Rows != 300 {
			t.Errorf("%s: report %+v, want 50 customers and 300 rows", kind, ra)
		}
		opts.Seed = 43
		c, _, _ := Train(context.Background(), testSchema(t, 2), rows, opts)
		if slices.Equal(a.Params, c.Params) {
			t.Errorf("%s: different seeds gave identical parameters", kind)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		hidden int
	}{{KindLinear, 0}, {KindMLP, 2}} {
		m := newModel(t, tc.kind, 3, tc.hidden)
		for j := range m.Params {
			m.Params[j] = float64(j) / 7
		}
		m.Training = Metadata{Dataset: "cdnow", Cutoffs: []string{"1997-07-01"}, Seed: 3, Steps: 10}
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(data, m.Schema.Hash)
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if !slices.Equal(got.Params, m.Params) || got.Kind != m.Kind || got.Hidden != m.Hidden || got.Training.Dataset != "cdnow" {
			t.Errorf("%s: round trip changed the model: got %+v, want %+v", tc.kind, got, m)
		}
		if _, err := Unmarshal(data, testSchema(t, 2).Hash); !errors.Is(err, ErrSchemaMismatch) {
			t.Errorf("%s: other schema: got %v, want ErrSchemaMismatch", tc.kind, err)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	m := newModel(t, KindLinear, 2, 0)
	good, _ := json.Marshal(m)
	mutate := func(f func(map[string]any)) []byte {
		var v map[string]any
		_ = json.Unmarshal(good, &v)
		f(v)
		b, _ := json.Marshal(v)
		return b
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"version", mutate(func(v map[string]any) { v["version"] = 4 }), ErrUnknownVersion},
		{"own-day weight in version 1", mutate(func(v map[string]any) { v["own_day_weight"] = 0.5 }), nil},
		{"own-day weight without its features", mutate(func(v map[string]any) { v["version"], v["own_day_weight"] = 3, 0.5 }), nil},
		{"own-day weight above 4", mutate(func(v map[string]any) { v["version"], v["own_day_weight"] = 3, 4.5 }), nil},
		{"version 2 without rhythm", mutate(func(v map[string]any) { v["version"] = 2 }), nil},
		{"rhythm in version 1", mutate(func(v map[string]any) { v["rhythm_weights"] = []any{1.0, 1.0, 1.0} }), nil},
		{"format", mutate(func(v map[string]any) { v["format"] = "other" }), ErrUnknownVersion},
		{"renamed feature", mutate(func(v map[string]any) {
			v["feature_schema"].(map[string]any)["names"].([]any)[0] = "x"
		}), ErrSchemaMismatch},
		{"weights", mutate(func(v map[string]any) { v["weights"] = []any{1.0} }), nil},
		{"kind", mutate(func(v map[string]any) { v["kind"] = "tree" }), nil},
		{"scale", mutate(func(v map[string]any) { v["standardization"].(map[string]any)["scale"] = []any{0.0, 1.0} }), nil},
		{"unknown field", mutate(func(v map[string]any) { v["extra"] = 1 }), nil},
		{"truncated", good[:len(good)/2], nil},
	}
	for _, tc := range tests {
		_, err := Unmarshal(tc.data, "")
		if err == nil {
			t.Errorf("%s: got nil error", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Unmarshal(good, ""); err != nil {
		t.Errorf("good file: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	s, _ := feature.NewSchema([]string{"recency_days", "tenure_days"})
	for _, kind := range []string{KindLinear, KindMLP} {
		m, _ := New(kind, s, unitStd(2), 2, 0.01)
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"format":"kairos-hazard-model","version":1}`))
	rs, _ := feature.NewSchema([]string{"recency_days", "gap_mean_days", "gap_std_days", "has_gap"})
	if m, err := New(KindLinear, rs, unitStd(4), 0, 0.01); err == nil && m.EnableRhythm() == nil {
		b, _ := json.Marshal(m)
		f.Add(b) // version 2, rhythm_weights
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data, "")
		if err != nil {
			return
		}
		// Anything accepted must predict without panicking and re-encode.
		if _, err := m.Predict(make([]float64, m.Schema.Len())); err != nil {
			t.Fatalf("accepted model cannot predict: %v", err)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("accepted model cannot be re-encoded: %v", err)
		}
	})
}

// countingStep is a GradientStep that uses every customer each step and checks
// that the per-customer losses it is given add up to the model's loss.
type countingStep struct {
	calls, customers int
	loss             float64
}

func (c *countingStep) Step(n int, grad func(int, []float64) float64, dir []float64) error {
	c.calls++
	c.customers = n
	clear(dir)
	c.loss = 0
	for i := range n {
		c.loss += grad(i, dir)
	}
	return nil
}

// TestPluggableStep checks that Train runs exactly Steps steps of a caller's
// GradientStep over one privacy unit per customer, and that the first step sees
// the loss of the initial model: 3 customers × 2 censored rows × 30 days ×
// −ln(1 − 0.25) with every hazard 0.25 and zero weights.
func TestPluggableStep(t *testing.T) {
	var rows []feature.Row
	for i := range 6 {
		rows = append(rows, feature.Row{Customer: string(rune('a' + i%3)), Cutoff: i / 3, X: []float64{float64(i)}, Label: 0})
	}
	var first float64
	step := &countingStep{}
	wrapped := stepFunc(func(n int, grad func(int, []float64) float64, dir []float64) error {
		err := step.Step(n, grad, dir)
		if step.calls == 1 {
			first = step.loss
		}
		return err
	})
	_, rep, err := Train(context.Background(), testSchema(t, 1), rows, TrainOptions{Step: wrapped, Steps: 7, BaseHazard: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if step.calls != 7 || rep.Steps != 7 || step.customers != 3 {
		t.Errorf("got %d calls, %d steps, %d customers; want 7, 7, 3", step.calls, rep.Steps, step.customers)
	}
	if want := 6 * 30 * math.Log(4.0/3); math.Abs(first-want) > 1e-9 {
		t.Errorf("first step loss: got %v, want %v", first, want)
	}
}

type stepFunc func(int, func(int, []float64) float64, []float64) error

func (f stepFunc) Step(n int, grad func(int, []float64) float64, dir []float64) error {
	return f(n, grad, dir)
}

// TestAbsentSignalIsAbsent: in a purchases-only log every customer has
// view_recency_days = 0 and has_view = 0. Under FixedStandardization that raw 0
// would standardise to (0 − 3.5)/1.5 = −2.33, "viewed today"; gated by has_view
// it enters as 0, so a weight on it moves neither the score nor, in training,
// that weight. A customer who did view keeps the ordinary standardisation.
func TestAbsentSignalIsAbsent(t *testing.T) {
	schema, err := feature.NewSchema([]string{"view_recency_days", "has_view"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(KindLinear, schema, FixedStandardization(schema), 0, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	m.Params[m.Horizon] = 0.7 // weight on view_recency_days; has_view's stays 0
	for _, tc := range []struct {
		x    []float64
		want float64
	}{
		{[]float64{0, 0}, 0},
		{[]float64{math.Log1p(2), 1}, 0.7 * (math.Log1p(2) - 3.5) / 1.5},
	} {
		if got, err := m.Score(tc.x); err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Score(%v): got %v (%v), want %v", tc.x, got, err, tc.want)
		}
	}
	grad := make([]float64, len(m.Params))
	if _, err := m.CustomerLoss([]feature.Row{{Customer: "a", X: []float64{0, 0}, Label: 4}}, grad); err != nil {
		t.Fatal(err)
	}
	if g := grad[m.Horizon]; g != 0 {
		t.Errorf("gradient on view_recency_days of a customer without views: got %v, want 0", g)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Unmarshal(b, schema.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Score([]float64{0, 0}); err != nil || got != 0 {
		t.Errorf("loaded model: Score of a customer without views: got %v (%v), want 0", got, err)
	}
}

// TestContributions checks the attribution against independent computations:
// for the linear score, w_j·z_j by hand and a sum equal to Score; for the MLP,
// ∂f/∂z_j from central finite differences of Score, times z_j. A feature whose
// gate says its signal is absent contributes 0 either way.
func TestContributions(t *testing.T) {
	schema, err := feature.NewSchema([]string{"recency_days", "views_total", "has_view"})
	if err != nil {
		t.Fatal(err)
	}
	std := Standardization{Mean: []float64{2, 1, 0.5}, Scale: []float64{2, 0.5, 0.5}}
	lin, err := New(KindLinear, schema, std, 0, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	copy(lin.Params[lin.Horizon:], []float64{0.5, -1, 0.25})
	z, c := make([]float64, 3), make([]float64, 3)
	// x = (4, 3, 1): z = (1, 4, 1); contributions 0.5, −4, 0.25.
	score, method := lin.Contributions([]float64{4, 3, 1}, z, c)
	if want := []float64{0.5, -4, 0.25}; !slices.Equal(c, want) || score != -3.25 || method != ExplainLinearExact {
		t.Errorf("linear: got %v, score %v, %s; want %v, −3.25, %s", c, score, method, want, ExplainLinearExact)
	}
	// No views: views_total is absent (0), has_view = 0 → z = −1 for it.
	score, _ = lin.Contributions([]float64{4, 0, 0}, z, c)
	if want := []float64{0.5, 0, -0.25}; !slices.Equal(c, want) || score != 0.25 {
		t.Errorf("linear without views: got %v, score %v; want %v, 0.25", c, score, want)
	}

	mlp, err := New(KindMLP, schema, std, 4, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for j := mlp.Horizon; j < len(mlp.Params); j++ {
		mlp.Params[j] = r.NormFloat64()
	}
	for _, x := range [][]float64{{4, 3, 1}, {1, 0, 0}} {
		score, method := mlp.Contributions(x, z, c)
		want, err := mlp.Score(x)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(score-want) > 1e-12 || method != ExplainGradientInput {
			t.Errorf("mlp %v: score %v (%s), Score gives %v", x, score, method, want)
		}
		const h = 1e-6
		for j := range x {
			if x[2] == 0 && j == 1 {
				if c[j] != 0 {
					t.Errorf("mlp %v: absent views_total contributes %v, want 0", x, c[j])
				}
				continue
			}
			if x[2] == 0 && j == 2 {
				continue // any move off has_view = 0 opens the gate: no derivative there
			}
			up, dn := slices.Clone(x), slices.Clone(x)
			up[j] += h * std.Scale[j]
			dn[j] -= h * std.Scale[j]
			fu, _ := mlp.Score(up)
			fd, _ := mlp.Score(dn)
			if fd := (fu - fd) / (2 * h) * z[j]; math.Abs(c[j]-fd) > 1e-6 {
				t.Errorf("mlp %v feature %d: got %v, finite differences give %v", x, j, c[j], fd)
			}
		}
	}
}
