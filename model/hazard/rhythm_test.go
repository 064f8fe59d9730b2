package hazard

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// periods are the rhythm shop's purchase periods in days: several within the
// horizon and two beyond it, so that one score cannot encode both whether and
// when a customer buys.
var periods = []int{10, 15, 20, 25, 45, 60}

// rhythmShop is a shop whose customers buy exactly every P days (periods) at
// noon, from a random phase: the day of each customer's next purchase after
// any cutoff is known exactly.
func rhythmShop(t *testing.T, cutoffs []time.Time) (feature.Schema, []feature.Row, map[string][2]int) {
	t.Helper()
	start := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	who := map[string][2]int{} // customer → period, phase (days)
	for i := range 600 {
		id := "c" + strconv.Itoa(i)
		period := periods[i%len(periods)]
		phase := rng.IntN(period)
		who[id] = [2]int{period, phase}
		for d := phase; d < 500; d += period {
			if err := b.Add(model.Event{Customer: id, Kind: model.Purchase, Time: start.AddDate(0, 0, d)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.Schema(), b.Rows(), who
}

// rhythmSplit is the rhythm shop's rows at 24 training cutoffs, 13 days
// apart from day 100, and at the test cutoff, day 437 (midnight).
func rhythmSplit(t *testing.T) (schema feature.Schema, train, test []feature.Row, who map[string][2]int) {
	t.Helper()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var cutoffs []time.Time
	for d := 100; d <= 400; d += 13 {
		cutoffs = append(cutoffs, start.AddDate(0, 0, d))
	}
	cutoffs = append(cutoffs, start.AddDate(0, 0, 437))
	schema, rows, who := rhythmShop(t, cutoffs)
	for _, r := range rows {
		if r.Cutoff == len(cutoffs)-1 {
			test = append(test, r)
		} else {
			train = append(train, r)
		}
	}
	return schema, train, test, who
}

// TestRhythmPredictsDueDay: with the rhythm term, the most likely day of a
// customer who buys exactly every P days is the day their next purchase is
// due (worked out from the phase, not read from the model) for at least 85%
// of the buyers, and for at least 10 points more of them than without it.
func TestRhythmPredictsDueDay(t *testing.T) {
	schema, train, testRows, who := rhythmSplit(t)
	// The due day from the phase alone: purchases fall on days phase + k·P at
	// noon, the test cutoff is day 437 at midnight, so day 1 is day 437.
	due := func(id string) int {
		p := who[id]
		k := (437 - p[1] + p[0] - 1) / p[0]
		return p[1] + k*p[0] - 437 + 1
	}
	var without float64
	for _, rhythm := range []bool{false, true} {
		m, _, err := Train(context.Background(), schema, train, TrainOptions{Rhythm: rhythm, LearningRate: 0.02, Steps: 1500, Anneal: true, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		exact, buyers, days := 0, 0, map[int]bool{}
		for _, r := range testRows {
			p, err := m.Predict(r.X)
			if err != nil {
				t.Fatal(err)
			}
			d := due(r.Customer)
			if d > model.Horizon {
				d = 0
			}
			if r.Label != d {
				t.Fatalf("%s: label %d, due day %d: the synthetic shop is not what the test assumes", r.Customer, r.Label, d)
			}
			if d == 0 {
				continue
			}
			buyers++
			days[p.MostLikelyDay] = true
			if p.MostLikelyDay == r.Label {
				exact++
			}
		}
		share := float64(exact) / float64(buyers)
		t.Logf("rhythm %v: most likely day exact for %d of %d buyers (%.3f), %d distinct days", rhythm, exact, buyers, share, len(days))
		if !rhythm {
			without = share
		}
		if rhythm && (share < 0.85 || share < without+0.1) {
			t.Errorf("most likely day = due day for %.3f of buyers with the rhythm term, %.3f without; want ≥ 0.85 and 0.1 more", share, without)
		}
		if rhythm {
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Unmarshal(data, schema.Hash)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := m.Predict(testRows[0].X)
			b, _ := back.Predict(testRows[0].X)
			if a.MostLikelyDay != b.MostLikelyDay || a.Within != b.Within || !back.Rhythm() {
				t.Errorf("round trip: %+v vs %+v", a.Within, b.Within)
			}
		}
	}
}

// TestRhythmGradientFiniteDifferences checks CustomerLoss's gradient of a
// linear and an MLP model with the rhythm term, the rhythm weights included,
// against central finite differences, on rows with and without a gap.
func TestRhythmGradientFiniteDifferences(t *testing.T) {
	full, pos := fullSchema(t)
	for _, tc := range []struct {
		kind   string
		hidden int
	}{{KindLinear, 0}, {KindMLP, 3}} {
		t.Run(tc.kind, func(t *testing.T) {
			d := full.Len()
			m, err := New(tc.kind, full, FixedStandardization(full), tc.hidden, 0.01)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.EnableRhythm(); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			for j := range m.Params {
				m.Params[j] = r.NormFloat64() * 0.1
			}
			for j := range m.Horizon {
				m.Params[j] -= 3
			}
			v := m.Params[m.rhythmStart():]
			v[0], v[1], v[2] = 0.4, -0.8, -0.5
			var rows []feature.Row
			for i, label := range []int{0, 3, 17, 30, 9} {
				x := make([]float64, d)
				for j := range x {
					x[j] = r.Float64()
				}
				x[pos["recency_days"]] = 1 + 3*r.Float64()
				x[pos["gap_mean_days"]] = 1 + 3*r.Float64()
				x[pos["has_gap"]] = float64(min(i, 1)) // the first row has no gap
				rows = append(rows, feature.Row{Customer: "c", Cutoff: i, X: x, Label: label})
			}
			grad := checkFiniteDifferences(t, m, rows, 1e-5)
			if grad[m.rhythmStart()] == 0 {
				t.Error("rhythm weight has zero gradient")
			}
		})
	}
}
