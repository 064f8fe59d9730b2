package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// gatedSchema has an ungated feature, a feature gated by a 0/1 indicator, and
// the indicator (the schema's order).
func gatedSchema(t *testing.T) feature.Schema {
	t.Helper()
	s, err := feature.NewSchema([]string{"recency_days", "has_gap", "gap_mean_days"})
	if err != nil {
		t.Fatal(err)
	}
	if g := s.Gates(); !slices.Equal(g, []int{-1, 2, -1}) {
		t.Fatalf("gates %v, want gap_mean_days gated by has_gap", g)
	}
	return s
}

// gatedRows draws customers at the cutoffs: recency, a gap in two of three
// (gap_mean_days 0 otherwise, as the builder leaves an absent feature), and
// the first purchase day drawn from truth's daily hazards.
func gatedRows(t *testing.T, truth *hazard.Model, customers int, cutoffs []int, seed uint64) []feature.Row {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	var rows []feature.Row
	for i := range customers {
		for _, c := range cutoffs {
			x := []float64{math.Log1p(1 + 364*rng.Float64()), 0, 0}
			if rng.IntN(3) > 0 {
				x[1], x[2] = math.Log1p(5+200*rng.Float64()), 1
			}
			p, err := truth.Predict(x)
			if err != nil {
				t.Fatal(err)
			}
			label := 0
			for d, h := range p.Hazard {
				if rng.Float64() < h {
					label = d + 1
					break
				}
			}
			rows = append(rows, feature.Row{Customer: fmt.Sprintf("c%03d", i), Cutoff: c, X: x, Label: label})
		}
	}
	return rows
}

// linearModel is a linear model of schema with the given standardisation,
// weights and daily baseline hazards from 0.02 falling by 2% a day.
func linearModel(t *testing.T, schema feature.Schema, std hazard.Standardization, w []float64) *hazard.Model {
	t.Helper()
	m, err := hazard.New(hazard.KindLinear, schema, std, 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	for d := range m.Horizon {
		h := 0.02 * math.Pow(0.98, float64(d))
		m.Params[d] = math.Log(h / (1 - h))
	}
	copy(m.Params[m.Horizon:], w)
	return m
}

func TestRestandardize(t *testing.T) {
	// The rewritten model predicts, hazard by hazard, what the original does
	// (hazard.Model.Predict on raw rows, both sides), with the gated feature
	// present and absent; its parameters are then in the reference's
	// standardisation, so the reference with those parameters is that model.
	schema := gatedSchema(t)
	local := linearModel(t, schema, hazard.Standardization{Mean: []float64{4.2, 2.5, 0.6}, Scale: []float64{1.3, 1.1, 0.49}}, []float64{-0.8, 0.3, 0.5})
	ref := linearModel(t, schema, hazard.Standardization{Mean: []float64{3.1, 3.9, 0.8}, Scale: []float64{0.7, 2.2, 0.4}}, []float64{1, 1, 1})
	p, err := restandardize(local, ref)
	if err != nil {
		t.Fatal(err)
	}
	conv := clone(ref, p)
	for _, x := range [][]float64{{3, 2.2, 1}, {5.5, 4.8, 1}, {0.7, 0, 0}, {4, 0, 0}, {2, 0, 1}} {
		want, err := local.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		got, err := conv.Predict(x)
		if err != nil {
			t.Fatal(err)
		}
		for d := range want.Hazard {
			if math.Abs(got.Hazard[d]-want.Hazard[d]) > 1e-12 {
				t.Fatalf("x %v day %d: hazard %v, want %v", x, d+1, got.Hazard[d], want.Hazard[d])
			}
		}
	}
	// Hand-worked: with a single ungated feature, w' = w·σ'/σ and every
	// baseline moves by w·(μ' − μ)/σ. w = 2, μ = 1, σ = 4 → μ' = 3, σ' = 2:
	// w' = 1, shift = 2·2/4 = 1.
	one, err := feature.NewSchema([]string{"recency_days"})
	if err != nil {
		t.Fatal(err)
	}
	a := linearModel(t, one, hazard.Standardization{Mean: []float64{1}, Scale: []float64{4}}, []float64{2})
	b := linearModel(t, one, hazard.Standardization{Mean: []float64{3}, Scale: []float64{2}}, []float64{0})
	q, err := restandardize(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if q[a.Horizon] != 1 || q[0] != a.Params[0]+1 || q[a.Horizon-1] != a.Params[a.Horizon-1]+1 {
		t.Errorf("got weight %v and baselines %v → %v, want weight 1 and baselines + 1", q[a.Horizon], a.Params[:a.Horizon], q[:a.Horizon])
	}
	// A model of another schema cannot be rewritten.
	if _, err := restandardize(a, ref); err == nil || !strings.Contains(err.Error(), "schemas") {
		t.Errorf("other schema: got %v, want an error naming the schemas", err)
	}
}

func TestLocalStepsIsLocalOnly(t *testing.T) {
	// LocalOnly with early stopping refits every row for the steps it settled
	// on: the same fit as localSteps for that many steps, to the bit, so that
	// the folds of the cross-fitting take LocalOnly's recipe exactly.
	schema := gatedSchema(t)
	truth := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{-0.7, 0.4, -0.3})
	rows := gatedRows(t, truth, 150, []int{0, 1, 2, 3}, 5)
	local, err := LocalOnly(context.Background(), schema, rows, 3)
	if err != nil {
		t.Fatal(err)
	}
	again, err := localSteps(context.Background(), schema, rows, local.Training.Steps, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Params, local.Params) {
		t.Errorf("localSteps(%d) params %v, LocalOnly %v", local.Training.Steps, again.Params, local.Params)
	}
}

// candidateModel builds Personalize's candidate of weight a as a model of its
// own, without refitting anything: local itself for a = 1, else the global
// model with parameters (1 − a)·θ_global + a·θ_local, θ_local rewritten in
// the global standardisation.
func candidateModel(t *testing.T, global, local *hazard.Model, a float64) *hazard.Model {
	t.Helper()
	if a == 1 {
		return local
	}
	own, err := restandardize(local, global)
	if err != nil {
		t.Fatal(err)
	}
	mix := make([]float64, len(own))
	for j := range mix {
		mix[j] = (1-a)*global.Params[j] + a*own[j]
	}
	return clone(global, mix)
}

func TestCrossFitSecondMethod(t *testing.T) {
	// A small hand-built merchant with a gated feature. The second method is the
	// straightforward computation: fit each fold's model by hazard.Train
	// directly (LocalOnly's settings, S steps), build every candidate as a
	// model of its own — α = 1 the fold's model, a blend the global model with
	// parameters (1 − α)·θ_global + α·θ_fold (θ_fold rewritten in the global
	// standardisation, TestRestandardize) — score each held-out row with it,
	// and count the buyer/non-buyer pairs of the same cutoff and fold one by one.
	// crossFit's candidate scores (mixed from three scores per row), AUCs and
	// choice must be the same.
	schema := gatedSchema(t)
	truth := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0.9, -0.4, 0.6})
	rows := gatedRows(t, truth, 60, []int{0, 1, 2}, 9)
	global := linearModel(t, schema, hazard.ComputeStandardization(gatedRows(t, truth, 40, []int{5}, 10), 3), []float64{-0.9, 0.4, 0.2})
	opt := PersonalizeOptions{Seed: 4, Folds: 3}
	if err := opt.defaults(); err != nil {
		t.Fatal(err)
	}
	const steps = 120
	groups := GroupByCustomer(rows)
	cv, err := crossFit(context.Background(), global, groups, steps, opt)
	if err != nil {
		t.Fatal(err)
	}
	// In crossFit's row order: folds in turn, customers and their rows in order.
	fold := dealFolds(groups, opt.Folds, opt.Seed)
	score := make([][]float64, len(opt.Blends))
	var cutoff, part []int
	var bought []bool
	for f := range opt.Folds {
		var fit []feature.Row
		for g, rs := range groups {
			if fold[g] != f {
				fit = append(fit, rs...)
			}
		}
		m, _, err := hazard.Train(context.Background(), schema, fit, hazard.TrainOptions{Kind: hazard.KindLinear, Steps: steps, L2: 1e-4, Seed: opt.Seed})
		if err != nil {
			t.Fatal(err)
		}
		cands := make([]*hazard.Model, len(opt.Blends))
		for i, a := range opt.Blends {
			cands[i] = candidateModel(t, global, m, a)
		}
		for g, rs := range groups {
			if fold[g] != f {
				continue
			}
			for _, r := range rs {
				for i, c := range cands {
					v, err := c.Score(r.X)
					if err != nil {
						t.Fatal(err)
					}
					score[i] = append(score[i], v)
				}
				cutoff, bought = append(cutoff, r.Cutoff), append(bought, r.Label >= 1)
				part = append(part, f)
			}
		}
	}
	want := make([]float64, len(opt.Blends))
	for i, a := range opt.Blends {
		s := score[i]
		if len(cv.score[i]) != len(s) {
			t.Fatalf("α %g: %d scored rows, want %d", a, len(cv.score[i]), len(s))
		}
		for k := range s {
			if math.Abs(cv.score[i][k]-s[k]) > 1e-9 {
				t.Fatalf("α %g row %d: score %v, second method %v", a, k, cv.score[i][k], s[k])
			}
		}
		var won, pairs float64
		for p := range s {
			for n := range s {
				if !bought[p] || bought[n] || cutoff[p] != cutoff[n] || part[p] != part[n] {
					continue
				}
				pairs++
				switch {
				case s[p] > s[n]:
					won++
				case s[p] == s[n]:
					won += 0.5
				}
			}
		}
		want[i] = won / pairs
		if math.Abs(cv.auc[i]-want[i]) > 1e-12 {
			t.Errorf("α %g: AUC %v, second method %v", a, cv.auc[i], want[i])
		}
		t.Logf("α %g: out-of-fold AUC %.4f (%v pairs)", a, cv.auc[i], pairs)
	}
	// The rule on the second method's AUCs (the SEs are DeLong's, tested in
	// delong_test.go): the most local candidate unless a more global one beats
	// it by more than Z SEs, then the most local of those.
	best := len(want) - 1
	for i := len(want) - 2; i >= 0; i-- {
		if cv.se[i] > 0 && want[i]-want[len(want)-1] > opt.Z*cv.se[i] {
			best = i
			break
		}
	}
	if cv.best != best {
		t.Errorf("chosen candidate %d, second method %d", cv.best, best)
	}
}

func TestRecalibrateSecondMethod(t *testing.T) {
	// The straightforward computation: full-batch Adam on the baselines with
	// the gradient of every customer's loss from the full model
	// (hazard.Model.CustomerLoss on the raw rows, all parameters' gradients
	// computed, the weights' dropped). recalibrate runs on the scores alone;
	// its parameters must be the same to the bit, and its weights untouched.
	schema := gatedSchema(t)
	truth := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0.9, -0.4, 0.6})
	rows := gatedRows(t, truth, 80, []int{0, 1, 2}, 13)
	start := linearModel(t, schema, hazard.ComputeStandardization(rows, 3), []float64{0.5, -0.2, 0.3})
	opt := PersonalizeOptions{Steps: 60}
	if err := opt.defaults(); err != nil {
		t.Fatal(err)
	}
	got, err := recalibrate(context.Background(), start, rows, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := clone(start, start.Params)
	p, h, n := want.Params, want.Horizon, float64(len(rows))
	g := make([]float64, len(p))
	mom, vel := make([]float64, h), make([]float64, h)
	for s := 1; s <= opt.Steps; s++ {
		clear(g)
		for _, c := range GroupByCustomer(rows) {
			if _, err := want.CustomerLoss(c, g); err != nil {
				t.Fatal(err)
			}
		}
		lr := opt.LearningRate * (1 - 0.9*float64(s-1)/float64(opt.Steps-1))
		for j := range h {
			d := g[j] / n
			mom[j] = 0.9*mom[j] + 0.1*d
			vel[j] = 0.999*vel[j] + 0.001*d*d
			p[j] -= lr * (mom[j] / (1 - math.Pow(0.9, float64(s)))) / (math.Sqrt(vel[j]/(1-math.Pow(0.999, float64(s)))) + 1e-8)
		}
	}
	if !slices.Equal(got.Params, want.Params) {
		t.Errorf("params %v, second method %v", got.Params, want.Params)
	}
	if slices.Equal(got.Params[:h], start.Params[:h]) || !slices.Equal(got.Params[h:], start.Params[h:]) {
		t.Errorf("baselines %v from %v and weights %v from %v: want the baselines moved, the weights kept", got.Params[:h], start.Params[:h], got.Params[h:], start.Params[h:])
	}
}

func TestPersonalizeRefusesFractionalGate(t *testing.T) {
	// The blends rewrite the merchant's model in the global standardisation,
	// exact only for 0/1 gating indicators: another value is an error naming
	// the row and the indicator, not a silently wrong blend.
	schema := gatedSchema(t)
	truth := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0.9, -0.4, 0.6})
	rows := gatedRows(t, truth, 30, []int{0, 1}, 3)
	rows[7].X[2] = 0.5
	global := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0, 0, 0})
	_, err := Personalize(context.Background(), global, rows, PersonalizeOptions{})
	if err == nil || !strings.Contains(err.Error(), "row 7") || !strings.Contains(err.Error(), "gating indicator has_gap is 0.5") {
		t.Errorf("got %v, want an error naming row 7 and has_gap = 0.5", err)
	}
	if _, err := FitBlend(context.Background(), global, rows, 0.5, PersonalizeOptions{}); err == nil || !strings.Contains(err.Error(), "has_gap") {
		t.Errorf("fit blend: got %v, want an error naming has_gap", err)
	}
}

func TestPersonalizeEarlier(t *testing.T) {
	// With an earlier global model the candidates are judged on the latest
	// cutoff's rows only. Second method: the merchant's own model fitted by
	// LocalOnly on the earlier cutoffs' rows, every candidate built as a model
	// of its own (as in TestCrossFitSecondMethod, from the earlier global
	// model), its AUC by metrics.AUC on the latest rows (one cutoff: one
	// stratum). With a single cutoff there is nothing earlier, and the
	// candidates are cross-fitted as without the option.
	schema := gatedSchema(t)
	truth := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0.9, -0.4, 0.6})
	rows := gatedRows(t, truth, 120, []int{0, 1, 2}, 21)
	global := linearModel(t, schema, hazard.ComputeStandardization(rows, 3), []float64{0.2, 0.1, 0.1})
	earlier := linearModel(t, schema, hazard.FixedStandardization(schema), []float64{0.6, -0.2, 0.1})
	opt := PersonalizeOptions{Seed: 2, Earlier: earlier}
	p, err := Personalize(context.Background(), global, rows, opt)
	if err != nil {
		t.Fatal(err)
	}
	var fit, latest []feature.Row
	for _, r := range rows {
		if r.Cutoff == 2 {
			latest = append(latest, r)
		} else {
			fit = append(fit, r)
		}
	}
	local, err := LocalOnly(context.Background(), schema, fit, opt.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Candidates) != len(DefaultBlends) {
		t.Fatalf("%d candidates, want %d", len(p.Candidates), len(DefaultBlends))
	}
	for i, a := range DefaultBlends {
		m := candidateModel(t, earlier, local, a)
		var s []float64
		var y []bool
		for _, r := range latest {
			v, err := m.Score(r.X)
			if err != nil {
				t.Fatal(err)
			}
			s, y = append(s, v), append(y, r.Label >= 1)
		}
		want, err := metrics.AUC(s, y)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Candidates[i].AUC; math.Abs(got-want) > 1e-12 {
			t.Errorf("α %g: AUC %v, second method %v", a, got, want)
		}
	}
	one := gatedRows(t, truth, 120, []int{0}, 22)
	with, err := Personalize(context.Background(), global, one, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Earlier = nil
	without, err := Personalize(context.Background(), global, one, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(with.Candidates) != len(DefaultBlends) || !slices.Equal(with.Candidates, without.Candidates) {
		t.Errorf("one cutoff: candidates %v with an earlier model, %v without", with.Candidates, without.Candidates)
	}
}

func TestPersonalizeKeepsRhythmModel(t *testing.T) {
	// The blends mix two linear models' parameters; a global model with the
	// rhythm term has more of them (before, a chosen blend indexed past the
	// merchant's own model's parameters): it is kept, with the reason.
	schema, err := feature.NewSchema([]string{"recency_days", "gap_mean_days", "gap_std_days", "has_gap"})
	if err != nil {
		t.Fatal(err)
	}
	global, err := hazard.Initial(schema, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if err := global.EnableRhythm(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 7))
	var rows []feature.Row
	for i := range 100 {
		for c := range 2 {
			x := make([]float64, schema.Len())
			for j := range x {
				x[j] = 1 + 3*rng.Float64()
			}
			x[slices.Index(schema.Names, "has_gap")] = 1
			rows = append(rows, feature.Row{Customer: fmt.Sprint("c", i), Cutoff: c, X: x, Label: rng.IntN(global.Horizon + 1)})
		}
	}
	p, err := Personalize(context.Background(), global, rows, PersonalizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Choice != ChoiceGlobal || !strings.Contains(p.Reason, "rhythm") || !slices.Equal(p.Model.Params, global.Params) {
		t.Errorf("got %s (%q), want the global model kept for its rhythm term", p.Choice, p.Reason)
	}
}
