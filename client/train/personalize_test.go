package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// hazardWith returns a two-feature linear model (recency_days, purchases_total)
// with daily baseline hazard 0.01 and the given weights on the standardised features.
func hazardWith(t *testing.T, wRecency, wPurchases float64) *hazard.Model {
	t.Helper()
	schema, err := feature.NewSchema([]string{"recency_days", "purchases_total"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hazard.Initial(schema, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	m.Params[m.Horizon], m.Params[m.Horizon+1] = wRecency, wPurchases
	return m
}

// drawRows samples customers at the given cutoff indices from the hazard model
// truth: features uniform over a year of recency and 1..20 purchases, and the
// first purchase day drawn day by day from σ(b_t + f(x)).
func drawRows(t *testing.T, truth *hazard.Model, prefix string, customers int, cutoffs []int, seed uint64) []feature.Row {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var rows []feature.Row
	for i := range customers {
		for _, c := range cutoffs {
			x := []float64{math.Log1p(1 + 364*rng.Float64()), math.Log1p(float64(1 + rng.IntN(20)))}
			f, err := truth.Score(x)
			if err != nil {
				t.Fatal(err)
			}
			label := 0
			for d := 1; d <= truth.Horizon; d++ {
				if rng.Float64() < 1/(1+math.Exp(-(truth.Params[d-1]+f))) {
					label = d
					break
				}
			}
			rows = append(rows, feature.Row{Customer: fmt.Sprint(prefix, i), Cutoff: c, X: x, Label: label})
		}
	}
	return rows
}

// auc30 is the AUC of m's P(buy within 30 days) against the rows' labels.
func auc30(t *testing.T, m *hazard.Model, rows []feature.Row) float64 {
	t.Helper()
	var p []float64
	var y []bool
	for _, r := range rows {
		s, err := m.Score(r.X)
		if err != nil {
			t.Fatal(err)
		}
		p = append(p, m.PredictScore(s).Within[len(hazard.Horizons)-1])
		y = append(y, r.Label >= 1)
	}
	a, err := metrics.AUC(p, y)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPersonalize(t *testing.T) {
	// The global model says recent, frequent customers buy (recency weight −1.5,
	// purchases +1). Merchant "different" follows the opposite recency rule; merchant
	// "same" follows the global rule. Each has 300 customers at four labelled
	// cutoffs; both are scored on 3,000 other customers of their own kind. The
	// reference is the truth model's own AUC on those customers.
	global := hazardWith(t, -1.5, 1)
	tests := []struct {
		name  string
		truth *hazard.Model
		// wantChange: the choice must not be the global model.
		wantChange bool
	}{
		{"different", hazardWith(t, 1.5, 1), true},
		{"same", hazardWith(t, -1.5, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(global.Params)
			rows := drawRows(t, tt.truth, "c", 300, []int{0, 1, 2, 3}, 7)
			heldOut := drawRows(t, tt.truth, "h", 3000, []int{4}, 8)
			p, err := Personalize(context.Background(), global, rows, PersonalizeOptions{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(global.Params, before) {
				t.Fatal("Personalize modified the global model's parameters")
			}
			got, glob, ref := auc30(t, p.Model, heldOut), auc30(t, global, heldOut), auc30(t, tt.truth, heldOut)
			t.Logf("%s (α %g; candidates %+v): held-out AUC@30 personalised %.4f, global %.4f, truth %.4f",
				p.Choice, p.Blend, p.Candidates, got, glob, ref)
			if tt.wantChange && p.Choice == ChoiceGlobal {
				t.Errorf("choice: got %s, want a model moved from the global one", p.Choice)
			}
			if len(p.Candidates) != len(DefaultBlends) {
				t.Errorf("candidates: got %d, want %d", len(p.Candidates), len(DefaultBlends))
			}
			// Personalised is within 0.02 of the truth and never more than 0.01
			// below the global model.
			if got < ref-0.02 {
				t.Errorf("personalised AUC@30 %.4f, want ≥ truth %.4f − 0.02", got, ref)
			}
			if got < glob-0.01 {
				t.Errorf("personalised AUC@30 %.4f, want ≥ global %.4f − 0.01", got, glob)
			}
			if tt.wantChange && got < glob+0.2 {
				t.Errorf("personalised AUC@30 %.4f, want ≥ global %.4f + 0.2 on a merchant with the opposite rule", got, glob)
			}
		})
	}
}

func TestPersonalizeKeepsGlobal(t *testing.T) {
	// Nothing to learn a model of its own from: the global model, unchanged,
	// with a reason.
	global := hazardWith(t, -1.5, 1)
	truth := hazardWith(t, 1.5, 1)
	noBuyer := drawRows(t, truth, "c", 40, []int{0, 1}, 3)
	for i := range noBuyer {
		noBuyer[i].Label = 0
	}
	tests := []struct {
		name, reason string
		rows         []feature.Row
	}{
		{"no buyer", "too few buyers", noBuyer},
		{"no rows", "no labelled rows", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Personalize(context.Background(), global, tt.rows, PersonalizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Choice != ChoiceGlobal || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("got %s (%q), want global with a reason containing %q", p.Choice, p.Reason, tt.reason)
			}
			if !slices.Equal(p.Model.Params, global.Params) {
				t.Errorf("params: got %v, want the global model's %v", p.Model.Params, global.Params)
			}
			if p.Model == global {
				t.Error("got the global model itself, want a copy")
			}
		})
	}
}

func TestPersonalizeTooFewToCompare(t *testing.T) {
	// Three customers cannot be dealt into five folds: no comparison, so the
	// merchant's own model (LocalOnly on the same rows and seed) is kept.
	global := hazardWith(t, -1.5, 1)
	rows := drawRows(t, hazardWith(t, 1.5, 1), "c", 3, []int{0, 1, 2, 3}, 3)
	if positives(rows) == 0 {
		t.Fatal("the draw has no buyer; pick another seed")
	}
	p, err := Personalize(context.Background(), global, rows, PersonalizeOptions{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := LocalOnly(context.Background(), global.Schema, rows, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Choice != ChoiceLocal || p.Blend != 1 || !strings.Contains(p.Reason, "too few customers") {
		t.Errorf("got %s α %g (%q), want local-only with a reason naming too few customers", p.Choice, p.Blend, p.Reason)
	}
	if !slices.Equal(p.Model.Params, want.Params) {
		t.Errorf("params: got %v, want LocalOnly's %v", p.Model.Params, want.Params)
	}
}

func TestPersonalizeErrors(t *testing.T) {
	global := hazardWith(t, -1.5, 1)
	good := drawRows(t, global, "c", 5, []int{0, 1}, 5)
	tests := []struct {
		name string
		m    *hazard.Model
		rows []feature.Row
		opt  PersonalizeOptions
		want string
	}{
		{"nil model", nil, good, PersonalizeOptions{}, "nil global model"},
		{"short row", global, append(slices.Clone(good), feature.Row{Customer: "x", X: []float64{1}}), PersonalizeOptions{}, "row 10"},
		{"bad label", global, append(slices.Clone(good), feature.Row{Customer: "x", X: []float64{1, 1}, Label: 31}), PersonalizeOptions{}, "label 31"},
		{"bad blend", global, good, PersonalizeOptions{Blends: []float64{-1}}, "blend weight -1"},
		{"blends not increasing", global, good, PersonalizeOptions{Blends: []float64{0, 1, 0.5}}, "want increasing"},
		{"negative z", global, good, PersonalizeOptions{Z: -1}, "z -1"},
		{"one fold", global, good, PersonalizeOptions{Folds: 1}, "folds 1"},
		{"bad rate", global, good, PersonalizeOptions{LearningRate: math.Inf(1)}, "learning rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Personalize(context.Background(), tt.m, tt.rows, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestStratifiedAUC(t *testing.T) {
	// Hand-worked: cutoff 0 has buyer 3 against non-buyers 1 and 5 (one of two
	// pairs won), cutoff 1 buyer 2 against non-buyer 2 (a tie, one half): 1.5 of
	// 3 pairs. Pooled over cutoffs the buyer 3 would also beat the non-buyer 2
	// and the answer would differ (3.5 of 6 in the pooled count is not 0.5).
	score := []float64{3, 1, 5, 2, 2}
	stratum := []int{0, 0, 0, 1, 1}
	bought := []bool{true, false, false, true, false}
	if got := newStrataOrder(score, stratum, 2).auc(bought); got != 0.5 {
		t.Errorf("stratified AUC: got %v, want 0.5", got)
	}
	// One stratum: the same as metrics.AUC (a second implementation).
	rng := rand.New(rand.NewPCG(3, 4))
	var s1 []float64
	var y1 []bool
	for range 500 {
		s1 = append(s1, float64(rng.IntN(40)))
		y1 = append(y1, rng.Float64() < 0.3)
	}
	want, err := metrics.AUC(s1, y1)
	if err != nil {
		t.Fatal(err)
	}
	if got := newStrataOrder(s1, make([]int, len(s1)), 1).auc(y1); math.Abs(got-want) > 1e-12 {
		t.Errorf("one stratum: got %v, metrics.AUC %v", got, want)
	}
	if got := newStrataOrder([]float64{1, 2}, []int{0, 0}, 1).auc([]bool{false, false}); !math.IsNaN(got) {
		t.Errorf("no buyer: got %v, want NaN", got)
	}
}

func TestFitBlend(t *testing.T) {
	// The blend of weight α scores every customer (1 − α)·f_global + α·f_local
	// up to one constant (LocalOnly's score rewritten in the global
	// standardisation, the constant moved into the refitted baselines); α = 0
	// keeps the global weights and α = 1 is LocalOnly itself.
	global := hazardWith(t, -1.5, 1)
	rows := drawRows(t, hazardWith(t, 1.5, 1), "c", 200, []int{0, 1, 2}, 11)
	opt := PersonalizeOptions{Seed: 1}
	local, err := LocalOnly(context.Background(), global.Schema, rows, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []float64{0, 0.25, 0.5, 1} {
		m, err := FitBlend(context.Background(), global, rows, a, opt)
		if err != nil {
			t.Fatal(err)
		}
		var shift float64
		for i, r := range rows[:20] {
			got, err := m.Score(r.X)
			if err != nil {
				t.Fatal(err)
			}
			fg, _ := global.Score(r.X)
			fl, _ := local.Score(r.X)
			d := got - ((1-a)*fg + a*fl)
			if i == 0 {
				shift = d
			}
			if math.Abs(d-shift) > 1e-9 || (a == 0 || a == 1) && d != 0 {
				t.Fatalf("α %g, row %d: score %v, want (1 − α)·%v + α·%v + one constant (%v, then %v)", a, i, got, fg, fl, shift, d)
			}
		}
	}
	if _, err := FitBlend(context.Background(), global, rows, 1.5, opt); err == nil || !strings.Contains(err.Error(), "weight 1.5") {
		t.Errorf("weight 1.5: got %v, want an error naming it", err)
	}
}

// TestPersonalizeOwnDay: a shop whose customers buy exactly every P days
// (P = 10, 15, 20 or 25) from a random phase: the personalised model's day
// is weighed by each customer's own rhythm, and the median day lands on the
// due day (worked out from the phase) for more of the next cutoff's buyers
// than the model's own day does. The global model keeps weight 0.
func TestPersonalizeOwnDay(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoffs := []time.Time{start.AddDate(0, 0, 200), start.AddDate(0, 0, 260), start.AddDate(0, 0, 320), start.AddDate(0, 0, 380), start.AddDate(0, 0, 440)}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 9))
	periods := []int{10, 15, 20, 25}
	due := map[string]int{} // customer → day of the first purchase after the last cutoff (1-based)
	for i := range 800 {
		id := fmt.Sprint("c", i)
		p := periods[i%len(periods)]
		phase := rng.IntN(p)
		for d := phase; d < 500; d += p {
			if err := b.Add(model.Event{Customer: id, Kind: model.Purchase, Time: start.AddDate(0, 0, d).Add(12 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if d >= 440 && due[id] == 0 {
				due[id] = d - 440 + 1
			}
		}
	}
	var rows, next []feature.Row
	for _, r := range b.Rows() {
		if r.Cutoff == len(cutoffs)-1 {
			next = append(next, r)
		} else {
			rows = append(rows, r)
		}
	}
	global, err := hazard.Initial(b.Schema(), 0.05)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Personalize(context.Background(), global, rows, PersonalizeOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if global.OwnDay() != 0 {
		t.Fatal("Personalize set the global model's own-rhythm weight")
	}
	t.Logf("%s", p.Describe())
	if p.OwnDay == 0 || !(p.OwnDayMAE < p.OwnDayMAE0) || !strings.Contains(p.Describe(), "own rhythm") {
		t.Fatalf("own-rhythm weight %g, error %.3f vs %.3f: want a weight and a lower error", p.OwnDay, p.OwnDayMAE, p.OwnDayMAE0)
	}
	hits := func(w float64) int {
		if err := p.Model.SetOwnDay(w); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range next {
			pr, err := p.Model.Predict(r.X)
			if err != nil {
				t.Fatal(err)
			}
			if r.Label != due[r.Customer] {
				t.Fatalf("%s: label %d, due day %d: the shop is not what the test assumes", r.Customer, r.Label, due[r.Customer])
			}
			if r.Label > 0 && pr.MedianDay == r.Label {
				n++
			}
		}
		return n
	}
	without, with := hits(0), hits(p.OwnDay)
	t.Logf("median day on the due day: %d of %d customers with the weight, %d without", with, len(next), without)
	if with <= without {
		t.Errorf("median day on the due day for %d customers with the weight, %d without: want more", with, without)
	}
}
