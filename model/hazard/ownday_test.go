package hazard

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// ownDayCase is a customer's raw (log1p) features for the own-rhythm day.
func ownDayCase(t *testing.T, schema feature.Schema, recency, gapMean, gapSD float64, days int) []float64 {
	t.Helper()
	x := make([]float64, schema.Len())
	set := func(name string, v float64) {
		j := -1
		for k, n := range schema.Names {
			if n == name {
				j = k
			}
		}
		if j < 0 {
			t.Fatalf("schema has no %s", name)
		}
		x[j] = v
	}
	set("recency_days", math.Log1p(recency))
	set("gap_mean_days", math.Log1p(gapMean))
	set("gap_std_days", math.Log1p(gapSD))
	set("has_gap", 1)
	set("has_purchase", 1)
	set("purchase_days_distinct", math.Log1p(float64(days)))
	return x
}

// TestOwnDayClosedForm: on a model whose hazard is h on every day, the day
// distribution weighed by the customer's rhythm is q'(t) ∝ h(1 − h)^(t−1) ·
// exp(−w(r + t − ½ − μ)²/(2σ²)) with σ² from the package comment; its median,
// mean and mode are computed here from that formula alone.
func TestOwnDayClosedForm(t *testing.T) {
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	schema := b.Schema()
	std := Standardization{Mean: make([]float64, schema.Len()), Scale: make([]float64, schema.Len())}
	for j := range std.Scale {
		std.Scale[j] = 1
	}
	const h = 0.02
	m, err := New(KindLinear, schema, std, 0, h)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name              string
		r, mu, sd         float64
		days              int
		w                 float64
		wantMedianShifted bool // the weighed median differs from the model's
	}{
		{"regular, due on day 12", 5, 17, 0.5, 11, 1, true},
		{"regular, half weight", 5, 17, 0.5, 11, 0.5, true},
		{"one gap: shrunk towards the CV prior", 5, 17, 0, 2, 1, true},
		{"overdue by 10 days", 27, 17, 1, 8, 1, true},
	}
	base := m.PredictScore(0)
	for _, tc := range cases {
		x := ownDayCase(t, schema, tc.r, tc.mu, tc.sd, tc.days)
		if err := m.SetOwnDay(tc.w); err != nil {
			t.Fatal(err)
		}
		got, err := m.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		n := float64(tc.days - 1)
		v := (n*tc.sd*tc.sd+2*0.25*tc.mu*tc.mu)/(n+2)*(1+1/n) + 1
		q := make([]float64, model.Horizon)
		var sum float64
		for d := 1; d <= model.Horizon; d++ {
			k := tc.r + float64(d) - 0.5 - tc.mu
			q[d-1] = h * math.Pow(1-h, float64(d-1)) * math.Exp(-tc.w*k*k/(2*v))
			sum += q[d-1]
		}
		var cum, mean float64
		median, mode := 0, 1
		for d := 1; d <= model.Horizon; d++ {
			q[d-1] /= sum
			mean += float64(d) * q[d-1]
			if cum += q[d-1]; median == 0 && cum >= 0.5 {
				median = d
			}
			if q[d-1] > q[mode-1] {
				mode = d
			}
		}
		if got.MedianDay != median || got.MostLikelyDay != mode || math.Abs(got.ExpectedDayIfBuys-mean) > 1e-9 {
			t.Errorf("%s: median %d, mode %d, mean %.6f; want %d, %d, %.6f", tc.name, got.MedianDay, got.MostLikelyDay, got.ExpectedDayIfBuys, median, mode, mean)
		}
		if (got.MedianDay != base.MedianDay) != tc.wantMedianShifted {
			t.Errorf("%s: median %d, the model's own %d", tc.name, got.MedianDay, base.MedianDay)
		}
		if got.Within != base.Within || got.Beyond != base.Beyond {
			t.Errorf("%s: the own-rhythm day changed a probability", tc.name)
		}
	}
	// Without a gap, or at weight 0, the day is the model's.
	for _, x := range [][]float64{make([]float64, schema.Len()), ownDayCase(t, schema, 5, 17, 0.5, 1)} {
		p, err := m.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		if p.MedianDay != base.MedianDay || p.MostLikelyDay != base.MostLikelyDay {
			t.Errorf("no gap: median %d, mode %d; want the model's %d, %d", p.MedianDay, p.MostLikelyDay, base.MedianDay, base.MostLikelyDay)
		}
	}
	if err := m.SetOwnDay(0); err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Predict(ownDayCase(t, schema, 5, 17, 0.5, 11)); p.MedianDay != base.MedianDay {
		t.Errorf("weight 0: median %d, want the model's %d", p.MedianDay, base.MedianDay)
	}
	for _, w := range []float64{-0.1, 4.5, math.NaN()} {
		if err := m.SetOwnDay(w); err == nil {
			t.Errorf("SetOwnDay(%v) accepted", w)
		}
	}
}

// TestFitOwnDayRegularShop: in the rhythm shop of rhythm_test.go every
// customer buys exactly every P days, so the day is the customer's own due
// day; FitOwnDay must give the rhythm a weight, lower the training buyers'
// error, and put the test buyers' median day on the due day (worked out from
// the phase) more often than the model alone, for at least 85% of them.
func TestFitOwnDayRegularShop(t *testing.T) {
	schema, train, test, _ := rhythmSplit(t)
	m, _, err := Train(context.Background(), schema, train, TrainOptions{LearningRate: 0.02, Steps: 1500, Anneal: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	exact := func() (int, int) {
		hit, buyers := 0, 0
		for _, r := range test {
			if r.Label == 0 {
				continue
			}
			p, err := m.Predict(r.X)
			if err != nil {
				t.Fatal(err)
			}
			buyers++
			if p.MedianDay == r.Label {
				hit++
			}
		}
		return hit, buyers
	}
	before, buyers := exact()
	w, mae, mae0, err := m.FitOwnDay(train)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := exact()
	t.Logf("weight %g, training MAE %.3f (model alone %.3f); median day = due day for %d then %d of %d test buyers", w, mae, mae0, before, after, buyers)
	if w == 0 || !(mae < mae0) || float64(after) < 0.85*float64(buyers) || after <= before {
		t.Errorf("weight %g, MAE %.3f vs %.3f, exact %d → %d of %d: want a weight, a lower error, more exact days and ≥ 85%%", w, mae, mae0, before, after, buyers)
	}
	// The weight survives the model file.
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(data, schema.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if back.OwnDay() != w {
		t.Errorf("round trip: weight %g, want %g", back.OwnDay(), w)
	}
}
