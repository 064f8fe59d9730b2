package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Choices Personalize can make.
const (
	ChoiceGlobal       = "global"       // the federated model as published
	ChoiceRecalibrated = "recalibrated" // the global model with the merchant's own baseline hazards
	ChoiceBlend        = "blend"        // the global and the merchant's own score functions, mixed
	ChoiceLocal        = "local-only"   // a model trained on the merchant's rows alone
)

// DefaultBlends are the weights α of the merchant's own model that Personalize
// tries, most global first: α = 0 is the recalibrated global model, α = 1 the
// local-only model, and in between the score function (1 − α)·f_global +
// α·f_own of a linear model whose parameters are that mix.
var DefaultBlends = []float64{0, 0.25, 0.5, 0.75, 1}

// DefaultZ is the margin, in standard errors of the paired difference, by
// which a more global candidate's out-of-fold AUC must beat the most local
// candidate's to be chosen: one standard error (a one-sided test at the 16%
// level). On both federated draws of the cdnow-100 validation run it was the
// margin that kept every size bucket at or above the merchants' own models
// and met the pooled gains under 300 customers; 1.645 (5%) gave a
// higher share of merchants but lost in 300-999 on one draw
// (docs/benchmarks.md).
const DefaultZ = 1.0

// PersonalizeOptions configures Personalize. Zero values take the defaults.
type PersonalizeOptions struct {
	// Blends are the weights α to try, most global first (default DefaultBlends);
	// each in [0, 1], increasing. The last, the most local, is the reference
	// the others must beat.
	Blends []float64
	// Z is the one-sided test's margin in standard errors (default DefaultZ;
	// must be ≥ 0).
	Z float64
	// Folds is the number of customer folds of the cross-fitting (default 5).
	Folds int
	// MinPositives is the number of rows with a purchase within the horizon,
	// over all labelled cutoffs, below which Personalize keeps the global model
	// (default 1: a merchant with no buyer has no model of its own to score
	// with).
	MinPositives int
	// Steps and LearningRate drive the full-batch Adam refit of the baseline
	// hazards (defaults 200 and 0.05; the step size decays linearly to a tenth
	// over the run).
	Steps        int
	LearningRate float64
	// Seed seeds the folds and the merchant's own models.
	Seed uint64
	// Earlier, when set, is a global model that has not seen the rows' latest
	// cutoff (an earlier registry version; same schema as the global model,
	// linear). The candidates are then judged on the rows of the latest cutoff
	// instead of by cross-fitting: the global and blended candidates from
	// Earlier, the merchant's own model fitted on the rows of the earlier
	// cutoffs. The chosen candidate is still fitted from the current global
	// model on every row. An experiment (docs/benchmarks.md): not used by
	// kairos client score.
	Earlier *hazard.Model
}

func (o *PersonalizeOptions) defaults() error {
	if o.Blends == nil {
		o.Blends = DefaultBlends
	}
	if o.Folds == 0 {
		o.Folds = 5
	}
	if o.MinPositives == 0 {
		o.MinPositives = 1
	}
	if o.Z == 0 {
		o.Z = DefaultZ
	}
	if o.Steps == 0 {
		o.Steps = 200
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.05
	}
	if len(o.Blends) == 0 {
		return errors.New("no blend weights")
	}
	for i, a := range o.Blends {
		if !(a >= 0 && a <= 1) {
			return fmt.Errorf("blend weight %v, want in [0, 1]", a)
		}
		if i > 0 && !(a > o.Blends[i-1]) {
			return fmt.Errorf("blend weights %v, want increasing (most global first)", o.Blends)
		}
	}
	switch {
	case !(o.Z >= 0) || math.IsInf(o.Z, 0):
		return fmt.Errorf("z %v, want finite and ≥ 0", o.Z)
	case o.Folds < 2:
		return fmt.Errorf("folds %d, want ≥ 2", o.Folds)
	case o.MinPositives < 0 || o.Steps < 0:
		return fmt.Errorf("min positives %d and steps %d, want ≥ 0", o.MinPositives, o.Steps)
	case !(o.LearningRate > 0) || math.IsInf(o.LearningRate, 0):
		return fmt.Errorf("learning rate %v, want finite and > 0", o.LearningRate)
	}
	return nil
}

// Candidate is one model Personalize compared by cross-fitting.
type Candidate struct {
	Choice string `json:"choice"`
	// Blend is the weight α of the merchant's own model.
	Blend float64 `json:"blend"`
	// AUC is the out-of-fold AUC of the candidate's score (which orders
	// P(buy within the horizon) within one model), comparing buyers with
	// non-buyers of the same cutoff and fold only (with Earlier: of the latest
	// cutoff).
	AUC float64 `json:"auc"`
	// SE is the standard error of AUC minus the most local candidate's
	// (DeLong's paired variance on the same out-of-fold scores, a customer's
	// rows at several cutoffs as one cluster); 0 for that candidate itself.
	SE float64 `json:"se"`
}

// Personalization is the model a merchant scores its own customers with.
type Personalization struct {
	// Model is the chosen model, fitted on every row (a copy: the global model
	// is not modified).
	Model *hazard.Model
	// Choice is one of the Choice… constants; Blend is its weight α of the
	// merchant's own model (0 global, 1 local-only).
	Choice string
	Blend  float64
	// Reason says why the choice was made without a comparison (the global
	// model: no buyer; the merchant's own model: too few customers to
	// cross-fit); empty when the choice was made by cross-fitting.
	Reason string
	// Candidates are the models compared, most global first.
	Candidates []Candidate
	// Local is the merchant's LocalOnly model on the same rows and seed, which
	// the comparison fitted (nil when the global model was kept without one),
	// so that a caller that also wants it need not fit it again.
	Local *hazard.Model
	// OwnDay is the own-rhythm day's weight fitted on the rows for Model (0:
	// the model's own day), and OwnDayMAE, OwnDayMAE0 the buyers' mean
	// absolute error of the predicted day with it and without it.
	OwnDay, OwnDayMAE, OwnDayMAE0 float64
}

// Describe says in a phrase which model scores, for a command's output.
func (p Personalization) Describe() string {
	d := p.describeModel()
	if p.OwnDay > 0 {
		d += fmt.Sprintf("; its predicted day weighed by each customer's own rhythm (weight %g: the own buyers' error %.2f days, %.2f without)",
			p.OwnDay, p.OwnDayMAE, p.OwnDayMAE0)
	}
	return d
}

func (p Personalization) describeModel() string {
	switch {
	case p.Reason != "":
		return fmt.Sprintf("%s model (%s)", p.Choice, p.Reason)
	case p.Choice == ChoiceBlend:
		return fmt.Sprintf("global model blended with the merchant's own (weight %g on its own, better than its own alone by cross-fitting)", p.Blend)
	case p.Choice == ChoiceLocal:
		return "local-only model (no more global candidate significantly better by cross-fitting on own customers)"
	default:
		return fmt.Sprintf("%s model (better than the merchant's own by cross-fitting on own customers)", p.Choice)
	}
}

// Personalize adapts the federated global model to the merchant's own customers
// for the merchant's own scoring. The result never leaves the merchant, so it is
// trained without DP; the registry keeps only the global model.
//
// rows are the merchant's labelled rows at cutoffs whose label windows end before
// the moment to be scored (no label of the scoring window is ever read). The
// rule, the same for every merchant:
//
//  1. with fewer than MinPositives buyers over all rows (default: none at
//     all), keep the global model as published: the merchant has nothing to
//     learn a model of its own from;
//  2. fit the merchant's own model on every row (LocalOnly: early stopping
//     picks its number of steps S); with fewer customers than Folds there is
//     nothing to cross-fit, and that model is the choice;
//  3. cross-fit: deal the customers (seeded) into Folds folds; for each fold,
//     fit the merchant's own model on the other folds' customers (every
//     cutoff) by LocalOnly's recipe for S steps, without early stopping of its
//     own, and score the fold's customers with the global model, that model,
//     and each blend α of Blends (score (1 − α)·f_global + α·f_own, f_own the
//     fold's model rewritten in the global model's standardisation; α = 1 is
//     the fold's model itself). S is the one number the folds take from the
//     fit on every row, whose early stopping saw the held-out customers' latest
//     rows: against a fold-by-fold early stopping (two training runs per fold)
//     it halves the cost of each fold's fit, and on the cdnow-100 validation
//     run it was no worse (docs/benchmarks.md);
//  4. each candidate's AUC compares buyers with non-buyers of the same cutoff
//     (so the drift of the purchase rate between cutoffs does not count) and
//     the same fold (each fold's model scores on a scale of its own: a
//     constant the baselines absorb, which would otherwise rank one fold's
//     customers against another's; this lifted every size bucket on the
//     cdnow-100 validation run, docs/benchmarks.md), on out-of-fold scores:
//     the merchant's own models never see the customers they are judged on,
//     and the global model saw them only through DP updates merged with every
//     other merchant's;
//  5. keep the most local candidate (α = 1, the merchant's own model) unless a
//     more global one beats it by a one-sided test: its AUC minus the local
//     candidate's exceeds Z (default 1) standard errors of that paired
//     difference (DeLong's variance on the same out-of-fold rows,
//     a customer's rows at several cutoffs as one cluster; delong.go). Of the
//     candidates that pass, choose the most local: the smallest step from
//     the merchant's own model that the evidence supports. A merchant's own
//     test AUC is noisy, so a move made on out-of-fold noise loses to its own
//     model about as often as it wins; on two federated draws of the
//     cdnow-100 validation run this rule raised the share of merchants at or
//     above their own model from 77% and 70% (highest AUC wins) to 90% and
//     81% at Z = 1 (96% and 91% at Z = 1.645), with the pooled gains the
//     issue asks for in the two small buckets and no bucket below the
//     merchants' own models (docs/benchmarks.md);
//  6. fit the choice on every row: α = 0 is the global model with its baseline
//     hazards refitted (recalibrated), α = 1 the model of step 2, and a blend
//     mixes the global model's parameters with those of step 2's model
//     rewritten in the global standardisation, then refits the baselines.
func Personalize(ctx context.Context, global *hazard.Model, rows []feature.Row, opt PersonalizeOptions) (Personalization, error) {
	p, err := personalize(ctx, global, rows, opt)
	if err != nil {
		return Personalization{}, err
	}
	// The chosen model's day, weighed by each customer's own rhythm where
	// the merchant's own buyers show it pays (hazard.Model.FitOwnDay); it
	// reads the same local rows and changes no probability.
	if p.OwnDay, p.OwnDayMAE, p.OwnDayMAE0, err = p.Model.FitOwnDay(rows); err != nil {
		return Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	return p, nil
}

// personalize is Personalize's choice of model.
func personalize(ctx context.Context, global *hazard.Model, rows []feature.Row, opt PersonalizeOptions) (Personalization, error) {
	if global == nil {
		return Personalization{}, errors.New("personalize: nil global model")
	}
	if err := opt.defaults(); err != nil {
		return Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	for i, r := range rows {
		if len(r.X) != global.Schema.Len() {
			return Personalization{}, fmt.Errorf("personalize: row %d: %w: got %d, want %d", i, hazard.ErrFeatureCount, len(r.X), global.Schema.Len())
		}
		if r.Label < 0 || r.Label > global.Horizon {
			return Personalization{}, fmt.Errorf("personalize: row %d: label %d outside 0..%d", i, r.Label, global.Horizon)
		}
	}
	keep := func(reason string) Personalization {
		return Personalization{Model: clone(global, global.Params), Choice: ChoiceGlobal, Reason: reason}
	}
	if len(rows) == 0 {
		return keep("no labelled rows"), nil
	}
	if global.Kind != hazard.KindLinear || global.Rhythm() {
		return keep("blends need a linear global model without the rhythm term"), nil
	}
	if err := checkGates(global.Schema, rows); err != nil {
		return Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	groups := GroupByCustomer(rows)
	if pos := positives(rows); pos < opt.MinPositives {
		return keep(fmt.Sprintf("too few buyers for a model of its own: %d, want %d", pos, opt.MinPositives)), nil
	}
	local, err := LocalOnly(ctx, global.Schema, rows, opt.Seed)
	if err != nil {
		return Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	if len(groups) < opt.Folds {
		return Personalization{Model: local, Choice: ChoiceLocal, Blend: 1, Local: local,
			Reason: fmt.Sprintf("too few customers to compare: %d, want %d", len(groups), opt.Folds)}, nil
	}
	var cv *crossFitted
	judged := false
	if e := opt.Earlier; e != nil {
		if e.Kind != hazard.KindLinear || e.Rhythm() || e.Schema.Hash != global.Schema.Hash {
			return Personalization{}, errors.New("personalize: the earlier global model is not a linear model of the global model's schema without the rhythm term")
		}
		if cv, judged, err = judgeLatest(ctx, e, rows, opt); err != nil {
			return Personalization{}, fmt.Errorf("personalize: %w", err)
		}
	}
	if !judged {
		if cv, err = crossFit(ctx, global, groups, local.Training.Steps, opt); err != nil {
			return Personalization{}, fmt.Errorf("personalize: %w", err)
		}
	}
	out := Personalization{Local: local}
	for i, a := range opt.Blends {
		out.Candidates = append(out.Candidates, Candidate{Choice: blendChoice(a), Blend: a, AUC: cv.auc[i], SE: cv.se[i]})
	}
	a := opt.Blends[cv.best]
	m, err := fitBlendFrom(ctx, global, local, rows, a, opt)
	if err != nil {
		return Personalization{}, fmt.Errorf("personalize: fit %s: %w", blendChoice(a), err)
	}
	out.Model, out.Choice, out.Blend = m, blendChoice(a), a
	return out, nil
}

// checkGates says which row has a gating indicator (feature.Spec.Gate) other
// than 0 or 1, or nil: restandardize, which the blends need, is exact only for
// 0/1 indicators, as the feature builder makes them.
func checkGates(schema feature.Schema, rows []feature.Row) error {
	var ind []int
	for _, k := range schema.Gates() {
		if k >= 0 && !slices.Contains(ind, k) {
			ind = append(ind, k)
		}
	}
	for i, r := range rows {
		for _, k := range ind {
			if v := r.X[k]; v != 0 && v != 1 {
				return fmt.Errorf("row %d (customer %s): gating indicator %s is %v, want 0 or 1", i, r.Customer, schema.Names[k], v)
			}
		}
	}
	return nil
}

func blendChoice(a float64) string {
	switch a {
	case 0:
		return ChoiceRecalibrated
	case 1:
		return ChoiceLocal
	}
	return ChoiceBlend
}

// FitBlend fits Personalize's candidate of weight a (of the merchant's own
// model, in [0, 1]) on rows: a = 0 the recalibrated global model, a = 1
// LocalOnly, in between the mixed parameters with the baselines refitted.
func FitBlend(ctx context.Context, global *hazard.Model, rows []feature.Row, a float64, opt PersonalizeOptions) (*hazard.Model, error) {
	if err := opt.defaults(); err != nil {
		return nil, fmt.Errorf("fit blend: %w", err)
	}
	if !(a >= 0 && a <= 1) {
		return nil, fmt.Errorf("fit blend: weight %v, want in [0, 1]", a)
	}
	if err := checkGates(global.Schema, rows); err != nil {
		return nil, fmt.Errorf("fit blend: %w", err)
	}
	var local *hazard.Model
	if a > 0 {
		var err error
		if local, err = LocalOnly(ctx, global.Schema, rows, opt.Seed); err != nil {
			return nil, fmt.Errorf("fit blend: %w", err)
		}
	}
	return fitBlendFrom(ctx, global, local, rows, a, opt)
}

// fitBlendFrom is FitBlend with the merchant's LocalOnly model on rows
// already fitted (unused, and may be nil, for a = 0).
func fitBlendFrom(ctx context.Context, global, local *hazard.Model, rows []feature.Row, a float64, opt PersonalizeOptions) (*hazard.Model, error) {
	switch a {
	case 0:
		return recalibrate(ctx, global, rows, opt)
	case 1:
		return local, nil
	}
	own, err := restandardize(local, global)
	if err != nil {
		return nil, err
	}
	mix := make([]float64, len(global.Params))
	for j := range mix {
		mix[j] = (1-a)*global.Params[j] + a*own[j]
	}
	return recalibrate(ctx, clone(global, mix), rows, opt)
}

// LocalOnly trains the non-private hazard model of one merchant's rows alone,
// as the merchant could without a federation: a linear model with the engine's
// reference settings (L2 1e-4; early stopping on the latest cutoff when there are
// two or more). The model's Training.Steps is the number of steps it took.
func LocalOnly(ctx context.Context, schema feature.Schema, rows []feature.Row, seed uint64) (*hazard.Model, error) {
	cutoffs := map[int]bool{}
	for _, r := range rows {
		cutoffs[r.Cutoff] = true
	}
	m, _, err := hazard.Train(ctx, schema, rows, localOptions(len(cutoffs) > 1, 0, seed))
	if err != nil {
		return nil, fmt.Errorf("local-only model: %w", err)
	}
	return m, nil
}

// localSteps is LocalOnly's recipe for a fixed number of steps, without early
// stopping: what LocalOnly fits when early stopping settles on steps.
func localSteps(ctx context.Context, schema feature.Schema, rows []feature.Row, steps int, seed uint64) (*hazard.Model, error) {
	m, _, err := hazard.Train(ctx, schema, rows, localOptions(false, steps, seed))
	if err != nil {
		return nil, fmt.Errorf("local model of %d steps: %w", steps, err)
	}
	return m, nil
}

func localOptions(earlyStopping bool, steps int, seed uint64) hazard.TrainOptions {
	return hazard.TrainOptions{Kind: hazard.KindLinear, EarlyStopping: earlyStopping, Steps: steps, L2: 1e-4, Seed: seed}
}

// recalibrate refits the baseline hazards b of start on rows, keeping its
// score weights: it minimises Σ NLL(rows) over b from start's baselines by
// full-batch Adam (divided by the number of rows so that one step size fits
// every merchant; the minimiser is the same), opt.Steps steps with the step
// size decaying linearly to a tenth. start must be linear without the rhythm
// term.
//
// With the weights fixed, a row's loss depends on its features only through
// its score f, so the steps run on the scores: a one-feature model whose
// feature is f (mean 0, scale 1, weight 1) has, with start's baselines, the
// same loss and baseline gradients to the bit, and each step reads one number
// per row instead of standardising every feature again.
func recalibrate(ctx context.Context, start *hazard.Model, rows []feature.Row, opt PersonalizeOptions) (*hazard.Model, error) {
	m := clone(start, start.Params)
	proxy, scored, err := scoreProxy(m, rows)
	if err != nil {
		return nil, fmt.Errorf("recalibrate: %w", err)
	}
	n := float64(len(rows))
	h := m.Horizon
	b := m.Params[:h]
	g := make([]float64, len(proxy.Params))
	mom, vel := make([]float64, h), make([]float64, h)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	for s := 1; s <= opt.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("recalibrate: %w", err)
		}
		copy(proxy.Params, b)
		clear(g)
		// One call over every row adds each row's gradient into g in the same
		// order as one call per customer would.
		if _, err := proxy.CustomerLoss(scored, g); err != nil {
			return nil, fmt.Errorf("recalibrate: %w", err)
		}
		lr := opt.LearningRate * (1 - 0.9*float64(s-1)/float64(max(opt.Steps-1, 1)))
		c1 := 1 - math.Pow(b1, float64(s))
		c2 := 1 - math.Pow(b2, float64(s))
		for j := range b {
			d := g[j] / n
			mom[j] = b1*mom[j] + (1-b1)*d
			vel[j] = b2*vel[j] + (1-b2)*d*d
			b[j] -= lr * (mom[j] / c1) / (math.Sqrt(vel[j]/c2) + eps)
		}
	}
	for _, x := range m.Params {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("recalibrate: diverged")
		}
	}
	return m, nil
}

// scoreProxy returns a one-feature linear model (feature mean 0, scale 1,
// weight 1, m's baselines) and rows whose only feature is m's score of each of
// rows, in customer order (GroupByCustomer), labels kept: with m's weights
// fixed, the proxy's loss on those rows is m's on rows.
func scoreProxy(m *hazard.Model, rows []feature.Row) (*hazard.Model, []feature.Row, error) {
	if m.Kind != hazard.KindLinear || m.Rhythm() {
		return nil, nil, errors.New("score proxy: want a linear model without the rhythm term")
	}
	// Any ungated feature will do: the proxy's feature is the score itself.
	schema, err := feature.NewSchema([]string{"recency_days"})
	if err != nil {
		return nil, nil, fmt.Errorf("score proxy: %w", err)
	}
	proxy, err := hazard.New(hazard.KindLinear, schema, hazard.Standardization{Mean: []float64{0}, Scale: []float64{1}}, 0, 0.5)
	if err != nil {
		return nil, nil, fmt.Errorf("score proxy: %w", err)
	}
	copy(proxy.Params, m.Params[:m.Horizon])
	proxy.Params[m.Horizon] = 1
	scored := make([]feature.Row, 0, len(rows))
	f := make([]float64, len(rows)) // one backing array for every row's feature
	for _, c := range GroupByCustomer(rows) {
		for _, r := range c {
			i := len(scored)
			v, err := m.Score(r.X)
			if err != nil {
				return nil, nil, fmt.Errorf("score proxy: %w", err)
			}
			f[i] = v
			scored = append(scored, feature.Row{Customer: r.Customer, Cutoff: r.Cutoff, Label: r.Label, X: f[i : i+1 : i+1]})
		}
	}
	return proxy, scored, nil
}

// positives counts the rows with a purchase within the horizon.
func positives(rows []feature.Row) int {
	n := 0
	for _, r := range rows {
		if r.Label >= 1 {
			n++
		}
	}
	return n
}

func clone(m *hazard.Model, params []float64) *hazard.Model {
	c := *m
	c.Params = slices.Clone(params)
	return &c
}
