package evaluate

import (
	"context"
	"math"
	"testing"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

func TestLevelOffset(t *testing.T) {
	s := feature.Schema{Version: 1, Names: []string{"x"}, Transforms: []string{""}}
	s.Hash = s.ComputeHash()
	m, err := hazard.New(hazard.KindLinear, s, hazard.Standardization{Mean: []float64{0}, Scale: []float64{1}}, 0, 0.003)
	if err != nil {
		t.Fatal(err)
	}
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	// Every baseline logit(0.003), every score 0, one buyer in four: the day
	// hazard q with 1 − (1 − q)^30 = 1/4 is reached at c = logit(q) − logit(0.003).
	got := levelOffset(m, []float64{0, 0, 0, 0}, 1)
	want := logit(1-math.Pow(0.75, 1.0/model.Horizon)) - logit(0.003)
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("equal scores: got %v, want %v", got, want)
	}
	// Mixed scores: no closed form; check the mean by Predict, a second path.
	fs := []float64{-2, -0.5, 0, 1, 3}
	c := levelOffset(m, fs, 2)
	var mean float64
	for _, f := range fs {
		mean += m.PredictScore(f + c).Within[len(hazard.Horizons)-1]
	}
	if mean /= float64(len(fs)); math.Abs(mean-0.4) > 1e-9 {
		t.Errorf("mixed scores: mean P30 at the offset %v is %v, want 0.4", c, mean)
	}
	for _, pos := range []int{0, len(fs)} {
		if v := levelOffset(m, fs, pos); !math.IsNaN(v) {
			t.Errorf("%d of %d buyers: got %v, want NaN", pos, len(fs), v)
		}
	}
}

func TestCarry(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name       string
		offsets    []float64
		rho, shift float64
		pairs      int
	}{
		// Pairs (1, 0.5), (2, 1), (0.5, 0.25): Σab = 2.625, Σa² = 5.25.
		{"persistent", []float64{1, 2, 0.5, 1, 0.25}, 0.5, 0.125, 3},
		// Pairs (1, −1), (−1, 1), (−1, 1): Σab = −3, clipped to 0.
		{"alternating", []float64{1, -1, -1, 1, 1}, 0, 0, 3},
		// Pairs (1, 0.5), (0.5, 0.25), (2, 2) skipping the NaN: 4.625 / 5.25.
		{"nan skipped", []float64{1, nan, 0.5, 2, 0.25, 2}, 4.625 / 5.25, 2 * 4.625 / 5.25, 3},
		{"too few pairs", []float64{1, 1, 1, 1}, 0, 0, 2},
		{"last undefined", []float64{1, 1, 1, 1, 1, nan}, 0, 0, 3},
		{"rho above 1 clipped", []float64{0.1, 0.1, 0.2, 0.2, 0.4}, 1, 0.4, 3},
	}
	for _, tc := range tests {
		rho, shift, pairs := carry(tc.offsets)
		if math.Abs(rho-tc.rho) > 1e-12 || math.Abs(shift-tc.shift) > 1e-12 || pairs != tc.pairs {
			t.Errorf("%s: got rho %v shift %v pairs %d, want %v %v %d", tc.name, rho, shift, pairs, tc.rho, tc.shift, tc.pairs)
		}
	}
}

// TestLevelCarrySeasonal: on shops with a yearly season (amplitude 0.4) the
// test window's level differs from the training cutoffs' average, the
// offsets persist from one window to the next, and the carry-over must
// bring the probabilities closer to the observed frequencies (ECE@30 and
// Brier@30) without changing the ranking (AUC@30). On the stationary shops
// of TestHeldOutCadences it must leave the model nearly as trained.
func TestLevelCarrySeasonal(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four models")
	}
	ctx := context.Background()
	for i, l := range []heldOutLog{{"monthly-seasonal", 30, 540, 3000, 0.4}, {"quarterly-seasonal", 90, 730, 4000, 0.4}} {
		t.Run(l.name, func(t *testing.T) {
			events := l.events(t, uint64(200+i))
			first, last := events[0].Time, events[0].Time
			for _, e := range events {
				if e.Time.Before(first) {
					first = e.Time
				}
				if e.Time.After(last) {
					last = e.Time
				}
			}
			proto, err := DefaultProtocol(first, last, model.Horizon)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Dataset: l.name, TestCutoff: proto.Test, TrainCutoffs: proto.Train, Seed: 1,
				Hazard: DefaultHazardOptions(), Methods: []string{MethodHazard}}
			p, err := Prepare(events, cfg)
			if err != nil {
				t.Fatal(err)
			}
			with, err := p.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.NoLevelCarry = true
			without, err := p.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if with.Level == nil || without.Level != nil {
				t.Fatalf("level: with %v, without %v: want one only with", with.Level, without.Level)
			}
			ece := func(r Report) float64 {
				e, err := metrics.ECE(r.Methods[0].Calibration)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			w, wo := with.Methods[0], without.Methods[0]
			t.Logf("%s: rho %.3f shift %+.3f over %d pairs; ECE %.4f → %.4f, Brier %.4f → %.4f, AUC %.4f → %.4f",
				l.name, with.Level.Rho, with.Level.Shift, with.Level.Pairs, ece(without), ece(with), wo.Brier[30], w.Brier[30], wo.AUC[30], w.AUC[30])
			if ece(with) >= ece(without) || w.Brier[30] >= wo.Brier[30] {
				t.Errorf("carry-over did not help: ECE %.4f → %.4f, Brier %.4f → %.4f", ece(without), ece(with), wo.Brier[30], w.Brier[30])
			}
			if math.Abs(w.AUC[30]-wo.AUC[30]) > 1e-12 {
				t.Errorf("AUC@30 moved %.6f → %.6f: a shift of every baseline must not change the ranking", wo.AUC[30], w.AUC[30])
			}
		})
	}
}

// BenchmarkLevelCarry measures the carry-over's cost on the monthly shop of
// TestHeldOutCadences (3,000 customers, 540 days): the feature passes at
// the pseudo-cutoffs and the offsets, after the model is trained once.
func BenchmarkLevelCarry(b *testing.B) {
	t := &testing.T{}
	l := heldOutLogs[1]
	events := l.events(t, 101)
	first, last := events[0].Time, events[0].Time
	for _, e := range events {
		if e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	proto, err := DefaultProtocol(first, last, model.Horizon)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{TestCutoff: proto.Test, TrainCutoffs: proto.Train, Seed: 1, Hazard: DefaultHazardOptions(),
		Methods: []string{MethodHazard}, NoLevelCarry: true}
	p, err := Prepare(events, cfg)
	if err != nil {
		b.Fatal(err)
	}
	rep, err := p.Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		lc, err := p.levelCarry(rep.Model)
		if err != nil || lc == nil {
			b.Fatalf("level carry-over: %v, %v", lc, err)
		}
	}
}
