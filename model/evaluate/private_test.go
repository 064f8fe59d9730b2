package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// synthRows returns n customers with k rows each over d features; x0 drives
// the purchase probability.
func synthRows(t *testing.T, n, k, d int) (feature.Schema, []feature.Row) {
	t.Helper()
	s := feature.Schema{Version: 1}
	for j := range d {
		s.Names, s.Transforms = append(s.Names, fmt.Sprintf("f%d", j)), append(s.Transforms, "")
	}
	s.Hash = s.ComputeHash()
	rng := rand.New(rand.NewPCG(3, 4))
	var rows []feature.Row
	for c := range n {
		for cut := range k {
			x := make([]float64, d)
			for j := range x {
				x[j] = rng.NormFloat64()
			}
			label := 0
			if rng.Float64() < 1/(1+math.Exp(1-2*x[0])) {
				label = 1 + rng.IntN(model.Horizon)
			}
			rows = append(rows, feature.Row{Customer: fmt.Sprintf("c%d", c), Cutoff: cut, X: x, Label: label})
		}
	}
	return s, rows
}

// unitStd is a data-independent standardisation: mean 0, scale 1.
func unitStd(s feature.Schema) hazard.Standardization {
	std := hazard.Standardization{Mean: make([]float64, s.Len()), Scale: make([]float64, s.Len())}
	for j := range std.Scale {
		std.Scale[j] = 1
	}
	return std
}

func TestTrainPrivateSpendsTheBudget(t *testing.T) {
	const n, batch, epochs = 2000, 200, 3.0
	schema, rows := synthRows(t, n, 4, 3)
	for _, eps := range []float64{0.5, 2} {
		o := DPOptions{Epsilon: eps, Delta: 1e-6, BatchSize: batch, Epochs: epochs, CountNoise: 20, Std: unitStd}
		m, _, p, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{LearningRate: 0.05}, o)
		if err != nil {
			t.Fatal(err)
		}
		// Spends the target to within the planner's precision, never more.
		if p.Epsilon > eps || p.Epsilon < 0.995*eps {
			t.Errorf("ε %v: spent %v, want in [%v, %v]", eps, p.Epsilon, 0.995*eps, eps)
		}
		// The count comes first (σ = 20 within the library's 0.1%), then DP-SGD.
		if len(p.Releases) != 2 || p.Releases[0].Q != 1 || p.Releases[0].Steps != 1 ||
			math.Abs(p.Releases[0].Z-20)/20 > 1e-3 || p.Releases[1] != (dp.Release{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps}) {
			t.Errorf("ε %v: releases %+v, want the count (q 1, z 20, 1 step) then DP-SGD", eps, p.Releases)
		}
		// q = batch/ñ, steps = ⌈epochs/q⌉, ñ within 6σ of n.
		if math.Abs(p.NoisyCustomers-n) > 6*20 {
			t.Errorf("ε %v: noisy count %v, want %d ± 120", eps, p.NoisyCustomers, n)
		}
		wantQ := batch / math.Round(p.NoisyCustomers)
		if math.Abs(p.SamplingRate-wantQ) > 1e-12 || p.Steps != int(math.Ceil(epochs/wantQ-1e-9)) {
			t.Errorf("ε %v: q %v, %d steps; want %v, %d", eps, p.SamplingRate, p.Steps, wantQ, int(math.Ceil(epochs/wantQ)))
		}
		// Recomposing the releases gives the reported ε.
		if e, _, err := dp.Epsilon(p.Releases, 1e-6, dp.AccountantOptions{}); err != nil || math.Abs(e-p.Epsilon) > 1e-12 {
			t.Errorf("ε %v: recomposed %v (%v), want %v", eps, e, err, p.Epsilon)
		}
		// The model holds the given standardisation and no true counts.
		if !slices.Equal(m.Std.Scale, unitStd(schema).Scale) || !slices.Equal(m.Std.Mean, unitStd(schema).Mean) ||
			m.Training.Rows != 0 || m.Training.Customers != int(math.Round(p.NoisyCustomers)) || m.Training.Steps != p.Steps {
			t.Errorf("ε %v: model std %+v, metadata %+v", eps, m.Std, m.Training)
		}
	}
}

// TestTrainPrivateLearns: at ε = 4 on 2,000 customers the weight of the feature
// that drives purchases comes out clearly positive and dominates the others.
func TestTrainPrivateLearns(t *testing.T) {
	schema, rows := synthRows(t, 2000, 4, 3)
	o := DPOptions{Epsilon: 4, Delta: 1e-6, BatchSize: 500, Epochs: 10, Std: unitStd}
	m, _, _, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{LearningRate: 0.05}, o)
	if err != nil {
		t.Fatal(err)
	}
	w := m.Params[model.Horizon:]
	if !(w[0] > 0.5 && math.Abs(w[1]) < w[0]/3 && math.Abs(w[2]) < w[0]/3) {
		t.Errorf("weights %v: want w0 > 0.5 and |w1|, |w2| < w0/3", w)
	}
}

func TestTrainPrivateRejects(t *testing.T) {
	schema, rows := synthRows(t, 10, 1, 2)
	ok := DPOptions{Epsilon: 1, Delta: 1e-6, Std: unitStd}
	for name, mod := range map[string]func(*DPOptions){
		"no std":        func(o *DPOptions) { o.Std = nil },
		"infinite ε":    func(o *DPOptions) { o.Epsilon = math.Inf(1) },
		"δ = 0":         func(o *DPOptions) { o.Delta = 0 },
		"negative clip": func(o *DPOptions) { o.Clip = -1 },
	} {
		o := ok
		mod(&o)
		if _, _, _, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{}, o); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
	// A count noise so small that the count alone spends more than ε: refused.
	o := ok
	o.CountNoise = 0.5
	_, _, _, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{}, o)
	if !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Errorf("count alone over budget: got %v, want ErrBudgetExhausted", err)
	}
}

// TestTrainPrivateRhythm: DP-SGD trains a model with the rhythm term through
// the same clipped per-customer gradient (the rhythm weights are part of it),
// spends no more than the budget, and moves the rhythm weights off zero.
func TestTrainPrivateRhythm(t *testing.T) {
	schema, err := feature.NewSchema([]string{"recency_days", "gap_mean_days", "gap_std_days", "has_gap"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []feature.Row
	for c := range 2000 {
		for cut := range 3 {
			gap, rec := 5+rng.Float64()*40, rng.Float64()*40
			label := 0
			if due := int(gap-rec) + 1; due >= 1 && due <= model.Horizon && rng.Float64() < 0.7 {
				label = due
			}
			x := []float64{math.Log1p(rec), math.Log1p(gap), math.Log1p(1), 1}
			rows = append(rows, feature.Row{Customer: fmt.Sprintf("c%d", c), Cutoff: cut, X: x, Label: label})
		}
	}
	o := DPOptions{Epsilon: 2, Delta: 1e-6, BatchSize: 200, Epochs: 3, CountNoise: 20, Clip: 5, Std: hazard.FixedStandardization}
	m, _, p, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{LearningRate: 0.05, Rhythm: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Rhythm() || p.Epsilon > 2+1e-9 {
		t.Fatalf("rhythm %v, ε spent %v (budget 2)", m.Rhythm(), p.Epsilon)
	}
	v := m.Params[len(m.Params)-hazard.RhythmTerms:]
	if slices.Equal(v, make([]float64, hazard.RhythmTerms)) {
		t.Errorf("rhythm weights %v did not move", v)
	}
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("rhythm weights %v not finite", v)
		}
	}
	t.Logf("rhythm weights %v, ε %.3f", v, p.Epsilon)
}
