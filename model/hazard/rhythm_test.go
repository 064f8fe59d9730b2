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

// TestRhythmPredictsDueDay: with the rhythm term, the most likely day of a
// customer who buys exactly every P days is the day their next purchase is
// due (worked out from the phase, not read from the model) for at least 85%
// of the buyers, and for at least 10 points more of them than without it.
func TestRhythmPredictsDueDay(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var cutoffs []time.Time
	for d := 100; d <= 400; d += 13 {
		cutoffs = append(cutoffs, start.AddDate(0, 0, d))
	}
	test := start.AddDate(0, 0, 437)
	cutoffs = append(cutoffs, test)
	schema, rows, who := rhythmShop(t, cutoffs)
	var train, testRows []feature.Row
	for _, r := range rows {
		if r.Cutoff == len(cutoffs)-1 {
			testRows = append(testRows, r)
		} else {
			train = append(train, r)
		}
	}
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
