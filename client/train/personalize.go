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

// PersonalizeOptions configures Personalize. Zero values take the defaults.
type PersonalizeOptions struct {
	// Blends are the weights α to try, most global first (default DefaultBlends);
	// each in [0, 1].
	Blends []float64
	// Folds is the number of customer folds of the cross-fitting (default 5).
	Folds int
	// MinPositives is the number of rows with a purchase within the horizon,
	// over all labelled cutoffs, that a choice needs at all (default 10); with
	// fewer, Personalize keeps the global model.
	MinPositives int
	// Steps and LearningRate drive the full-batch Adam refit of the baseline
	// hazards (defaults 200 and 0.05; the step size decays linearly to a tenth
	// over the run).
	Steps        int
	LearningRate float64
	// Seed seeds the folds, the bootstrap and the merchant's own models.
	Seed uint64
}

func (o *PersonalizeOptions) defaults() error {
	if o.Blends == nil {
		o.Blends = DefaultBlends
	}
	if o.Folds == 0 {
		o.Folds = 5
	}
	if o.MinPositives == 0 {
		o.MinPositives = 10
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
	for _, a := range o.Blends {
		if !(a >= 0 && a <= 1) {
			return fmt.Errorf("blend weight %v, want in [0, 1]", a)
		}
	}
	switch {
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
	// AUC is the out-of-fold AUC of P(buy within the horizon), comparing buyers
	// with non-buyers of the same cutoff only.
	AUC float64 `json:"auc"`
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
	// Reason says why the global model was kept without a comparison (too few
	// buyers or customers); empty when the choice was made by cross-fitting.
	Reason string
	// Candidates are the models compared, most global first.
	Candidates []Candidate
}

// Describe says in a phrase which model scores, for a command's output.
func (p Personalization) Describe() string {
	switch {
	case p.Reason != "":
		return fmt.Sprintf("%s model (%s)", p.Choice, p.Reason)
	case p.Choice == ChoiceBlend:
		return fmt.Sprintf("global model blended with the merchant's own (weight %g on its own, chosen by cross-fitting)", p.Blend)
	default:
		return fmt.Sprintf("%s model (chosen by cross-fitting on own customers)", p.Choice)
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
//  1. with fewer than MinPositives buyers over all rows, or fewer customers than
//     Folds, keep the global model as published;
//  2. cross-fit: deal the customers (seeded) into Folds folds; for each fold,
//     fit the merchant's own models on the other folds' customers (every
//     cutoff) — the local-only model (LocalOnly) and the same model in the
//     global model's standardisation — and score the fold's customers with the
//     global model, those two, and each blend α of DefaultBlends (score
//     (1 − α)·f_global + α·f_own; α = 1 is the local-only model itself);
//  3. each candidate's AUC compares buyers with non-buyers of the same cutoff
//     (so the drift of the purchase rate between cutoffs does not count), on
//     out-of-fold scores: the merchant's own models never see the customers
//     they are judged on, and the global model saw them only through DP
//     updates merged with every other merchant's;
//  4. choose the candidate with the highest AUC, the more global one on a tie
//     (out-of-fold scores that rank the merchant's customers alike cannot
//     tell the candidates apart). A tolerance of one or half a bootstrap
//     standard error towards the more global candidate was measured and lost
//     on the cdnow-100 validation run (docs/benchmarks.md): with out-of-fold
//     scores the highest AUC is already an honest estimate;
//  5. fit the choice on every row: α = 0 is the global model with its baseline
//     hazards refitted (recalibrated), α = 1 LocalOnly, and a blend mixes the
//     two models' parameters, then refits the baselines.
func Personalize(ctx context.Context, global *hazard.Model, rows []feature.Row, opt PersonalizeOptions) (Personalization, error) {
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
	if global.Kind != hazard.KindLinear {
		return keep("blends need a linear global model"), nil
	}
	groups := GroupByCustomer(rows)
	if pos := positives(rows); pos < opt.MinPositives || len(groups) < opt.Folds {
		return keep(fmt.Sprintf("too few to choose: %d buyers and %d customers, want %d and %d", pos, len(groups), opt.MinPositives, opt.Folds)), nil
	}
	cv, err := crossFit(ctx, global, groups, opt)
	if err != nil {
		return Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	out := Personalization{}
	for i, a := range opt.Blends {
		out.Candidates = append(out.Candidates, Candidate{Choice: blendChoice(a), Blend: a, AUC: cv.auc[i]})
	}
	a := opt.Blends[cv.best]
	m, err := FitBlend(ctx, global, rows, a, opt)
	if err != nil {
		return Personalization{}, fmt.Errorf("personalize: fit %s: %w", blendChoice(a), err)
	}
	out.Model, out.Choice, out.Blend = m, blendChoice(a), a
	return out, nil
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
	switch a {
	case 0:
		return fineTune(ctx, global, rows, math.Inf(1), opt)
	case 1:
		return LocalOnly(ctx, global.Schema, rows, opt.Seed)
	}
	own, err := ownModel(ctx, global, rows, opt.Seed)
	if err != nil {
		return nil, err
	}
	mix := make([]float64, len(global.Params))
	for j := range mix {
		mix[j] = (1-a)*global.Params[j] + a*own.Params[j]
	}
	return fineTune(ctx, clone(global, mix), rows, math.Inf(1), opt)
}

// ownModel is LocalOnly in the global model's standardisation, so that its
// parameters and the global model's can be mixed.
func ownModel(ctx context.Context, global *hazard.Model, rows []feature.Row, seed uint64) (*hazard.Model, error) {
	cutoffs := map[int]bool{}
	for _, r := range rows {
		cutoffs[r.Cutoff] = true
	}
	std := global.Std
	m, _, err := hazard.Train(ctx, global.Schema, rows, hazard.TrainOptions{Kind: hazard.KindLinear, EarlyStopping: len(cutoffs) > 1, L2: 1e-4, Seed: seed, Std: &std})
	if err != nil {
		return nil, fmt.Errorf("own model: %w", err)
	}
	return m, nil
}

// LocalOnly trains the non-private hazard model of one merchant's rows alone,
// as the merchant could without a federation: a linear model with the engine's
// reference settings (L2 1e-4; early stopping on the latest cutoff when there are
// two or more).
func LocalOnly(ctx context.Context, schema feature.Schema, rows []feature.Row, seed uint64) (*hazard.Model, error) {
	cutoffs := map[int]bool{}
	for _, r := range rows {
		cutoffs[r.Cutoff] = true
	}
	m, _, err := hazard.Train(ctx, schema, rows, hazard.TrainOptions{Kind: hazard.KindLinear, EarlyStopping: len(cutoffs) > 1, L2: 1e-4, Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("local-only model: %w", err)
	}
	return m, nil
}

// fineTune minimises Σ NLL(rows) + τ/2·‖w − w_global‖² over the baselines b and
// the score parameters w, from the global model, by full-batch Adam (divided by
// the number of rows so that one step size fits every merchant; the minimiser is
// the same). τ = +Inf keeps w and refits b alone.
func fineTune(ctx context.Context, global *hazard.Model, rows []feature.Row, tau float64, opt PersonalizeOptions) (*hazard.Model, error) {
	m := clone(global, global.Params)
	groups := GroupByCustomer(rows)
	n := float64(len(rows))
	p := m.Params
	g := make([]float64, len(p))
	mom, vel := make([]float64, len(p)), make([]float64, len(p))
	const b1, b2, eps = 0.9, 0.999, 1e-8
	for s := 1; s <= opt.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fine-tune: %w", err)
		}
		clear(g)
		for _, c := range groups {
			if _, err := m.CustomerLoss(c, g); err != nil {
				return nil, fmt.Errorf("fine-tune: %w", err)
			}
		}
		lr := opt.LearningRate * (1 - 0.9*float64(s-1)/float64(max(opt.Steps-1, 1)))
		c1 := 1 - math.Pow(b1, float64(s))
		c2 := 1 - math.Pow(b2, float64(s))
		for j := range p {
			if j >= m.Horizon && math.IsInf(tau, 1) {
				continue
			}
			d := g[j] / n
			if j >= m.Horizon {
				d += tau * (p[j] - global.Params[j]) / n
			}
			mom[j] = b1*mom[j] + (1-b1)*d
			vel[j] = b2*vel[j] + (1-b2)*d*d
			p[j] -= lr * (mom[j] / c1) / (math.Sqrt(vel[j]/c2) + eps)
		}
	}
	for _, x := range p {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("fine-tune: diverged")
		}
	}
	return m, nil
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
