package drift

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// TestPSIHandWorked: reference 0..99 in four bins has edges 25, 50, 75 and
// shares ¼ each; a current sample of 0..49 twice fills the first two bins
// with ½ each and leaves two empty (share floored at 1e-4):
// PSI = 2·(½ − ¼)·ln 2 + 2·(1e-4 − ¼)·ln(1e-4/¼).
func TestPSIHandWorked(t *testing.T) {
	var ref, cur []float64
	for i := range 100 {
		ref = append(ref, float64(i))
	}
	for i := range 100 {
		cur = append(cur, float64(i%50))
	}
	got, err := PSI(ref, cur, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := 2*(0.5-0.25)*math.Ln2 + 2*(1e-4-0.25)*math.Log(1e-4/0.25)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("PSI: got %v, want %v", got, want)
	}
	if same, _ := PSI(ref, ref, 4); same != 0 {
		t.Errorf("PSI of a sample against itself: got %v, want 0", same)
	}
	// A flag feature: edges collapse to one (at 1); shares (0.8, 0.2) vs (0.5, 0.5).
	flag := func(ones, n int) []float64 {
		out := make([]float64, n)
		for i := range ones {
			out[i] = 1
		}
		return out
	}
	got, _ = PSI(flag(20, 100), flag(50, 100), 10)
	want = (0.5-0.8)*math.Log(0.5/0.8) + (0.5-0.2)*math.Log(0.5/0.2)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("flag PSI: got %v, want %v", got, want)
	}
	if _, err := PSI(ref, nil, 4); err == nil {
		t.Error("empty current sample: want an error")
	}
	if _, err := PSI(ref, []float64{math.NaN()}, 4); err == nil {
		t.Error("NaN: want an error")
	}
}

// TestOutcomesHandWorked: four predictions whose windows passed, scores 0.9,
// 0.8, 0.3, 0.1 with outcomes buy, no, buy, no: of the four (buyer,
// non-buyer) pairs three are ordered right, AUC 3/4; Brier
// (0.01 + 0.64 + 0.49 + 0.01)/4. A fifth prediction is still pending.
func TestOutcomesHandWorked(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.AddDate(0, 0, 40)
	preds := []Prediction{
		{"a", t0, 0.9}, {"b", t0, 0.8}, {"c", t0, 0.3}, {"d", t0, 0.1},
		{"a", now.AddDate(0, 0, -5), 0.5},
	}
	purchases := map[string][]time.Time{
		"a": {t0.AddDate(0, 0, 3)},
		"b": {t0.AddDate(0, 0, 30)}, // the day after the window: not a buyer
		"c": {t0},                   // at τ: inside [τ, τ+30 d)
		"d": {t0.Add(-time.Second)}, // before τ
	}
	o, err := Outcomes(preds, purchases, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if o.Evaluated != 4 || o.Pending != 1 || o.Buyers != 2 {
		t.Errorf("counts: got %d evaluated, %d pending, %d buyers; want 4, 1, 2", o.Evaluated, o.Pending, o.Buyers)
	}
	if o.AUC30 != 0.75 {
		t.Errorf("AUC30: got %v, want 0.75", o.AUC30)
	}
	if want := (0.01 + 0.64 + 0.49 + 0.01) / 4; math.Abs(o.Brier-want) > 1e-12 {
		t.Errorf("Brier: got %v, want %v", o.Brier, want)
	}
}

// liveRows computes, with the live engine, every customer's features at tau
// from a log where customer c buys every gap(c) days (exponential waits).
func liveRows(t *testing.T, seed uint64, customers int, from, tau time.Time, gap func(int) float64) [][]float64 {
	t.Helper()
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	var rows [][]float64
	for c := range customers {
		var s feature.LiveState
		at := from.Add(time.Duration(r.Float64() * 30 * float64(model.Day)))
		for at.Before(tau) {
			if err := eng.Apply(&s, model.Event{Customer: strconv.Itoa(c), Time: at, Kind: model.Purchase, Amount: 20, HasAmount: true}); err != nil {
				t.Fatal(err)
			}
			at = at.Add(time.Duration(r.ExpFloat64() * gap(c) * float64(model.Day)))
		}
		if _, ok := s.Latest(); !ok {
			continue
		}
		x, err := eng.Features(&s, tau, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, x)
	}
	return rows
}

// TestShiftedStream: customers who bought about weekly in the training
// period and about every five weeks afterwards shift recency and the purchase
// counts past the 0.25 rule of thumb; a continuation without the shift (new
// random draws) stays under 0.1 on the same features.
func TestShiftedStream(t *testing.T) {
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	names := eng.Schema().Names
	t0 := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	trainTau, laterTau := t0.AddDate(0, 6, 0), t0.AddDate(1, 0, 0)
	weekly := func(c int) float64 { return 5 + float64(c%5) }
	monthly := func(c int) float64 { return 5 * (5 + float64(c%5)) }
	ref := liveRows(t, 1, 2000, t0, trainTau, weekly)
	same := liveRows(t, 2, 2000, t0.AddDate(0, 6, 0), laterTau, weekly)
	shifted := liveRows(t, 3, 2000, t0.AddDate(0, 6, 0), laterTau, monthly)
	psiOf := func(rows [][]float64) map[string]float64 {
		sh, err := Shifts(names, ref, rows, 10)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, s := range sh {
			m[s.Name] = s.PSI
		}
		return m
	}
	stable, moved := psiOf(same), psiOf(shifted)
	for _, f := range []string{"recency_days", "purchases_30d", "gap_mean_days"} {
		if moved[f] <= 0.25 {
			t.Errorf("%s: PSI %.3f after the shift, want > 0.25", f, moved[f])
		}
		if stable[f] >= 0.1 {
			t.Errorf("%s: PSI %.3f without a shift, want < 0.1", f, stable[f])
		}
		t.Logf("%s: PSI %.3f stable, %.3f shifted", f, stable[f], moved[f])
	}
}
