package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// Choices Personalize can make.
const (
	ChoiceGlobal       = "global"       // the federated model as published
	ChoiceRecalibrated = "recalibrated" // the global model with the merchant's own baseline hazards
	ChoiceFineTuned    = "fine-tuned"   // the global model fine-tuned with a proximal penalty
	ChoiceLocal        = "local-only"   // a model trained on the merchant's rows alone
)

// DefaultStrengths are the proximal strengths τ Personalize tries, strongest
// first. The penalty τ/2·‖w − w_global‖² on the score function's parameters w
// (not the baseline hazards, which are the merchant's own base rate and move
// freely) is added to the summed (not averaged) negative log-likelihood of the
// merchant's rows, so it acts as a Gaussian prior centred on the global model
// worth a fixed amount of evidence: a merchant with few rows stays near the
// global model and one with many moves further, at the same τ. That is why the
// grid needs no tuning per merchant.
var DefaultStrengths = []float64{3000, 300, 30}

// PersonalizeOptions configures Personalize. Zero values take the defaults.
type PersonalizeOptions struct {
	// Strengths are the proximal strengths τ to try (default DefaultStrengths).
	Strengths []float64
	// MinPositives is the number of rows with a purchase within the horizon that
	// the validation cutoff and the cutoffs before it must each hold for a choice
	// to be made at all (default 10); with fewer, Personalize keeps the global model.
	MinPositives int
	// Steps and LearningRate drive the full-batch Adam fine-tuning (defaults 200
	// and 0.05; the step size decays linearly to a tenth over the run).
	Steps        int
	LearningRate float64
	// Seed seeds the local-only candidate's training.
	Seed uint64
}

func (o *PersonalizeOptions) defaults() error {
	if o.Strengths == nil {
		o.Strengths = DefaultStrengths
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
	for _, s := range o.Strengths {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("proximal strength %v, want finite and > 0", s)
		}
	}
	switch {
	case o.MinPositives < 0 || o.Steps < 0:
		return fmt.Errorf("min positives %d and steps %d, want ≥ 0", o.MinPositives, o.Steps)
	case !(o.LearningRate > 0) || math.IsInf(o.LearningRate, 0):
		return fmt.Errorf("learning rate %v, want finite and > 0", o.LearningRate)
	}
	return nil
}

// Candidate is one model Personalize compared on the validation cutoff.
type Candidate struct {
	Choice string `json:"choice"`
	// Strength is τ for ChoiceFineTuned, else 0.
	Strength float64 `json:"strength,omitempty"`
	// ValidationAUC is the AUC of P(buy within the horizon), and
	// ValidationLoss the mean negative log-likelihood per row, on the validation
	// cutoff of the model fitted on the cutoffs before it.
	ValidationAUC  float64 `json:"validation_auc"`
	ValidationLoss float64 `json:"validation_loss"`
}

// Personalization is the model a merchant scores its own customers with.
type Personalization struct {
	// Model is the chosen model, refitted on every row (a copy: the global model
	// is not modified).
	Model *hazard.Model
	// Choice is one of ChoiceGlobal, ChoiceFineTuned and ChoiceLocal; Strength is
	// τ when fine-tuned.
	Choice   string
	Strength float64
	// Reason says why the global model was kept without a comparison (too few
	// positives, a single cutoff); empty when the choice was made on validation.
	Reason string
	// Candidates are the models compared, in the order tried.
	Candidates []Candidate
}

// Describe says in a phrase which model scores, for a command's output.
func (p Personalization) Describe() string {
	switch {
	case p.Reason != "":
		return fmt.Sprintf("%s model (%s)", p.Choice, p.Reason)
	case p.Choice == ChoiceFineTuned:
		return fmt.Sprintf("global model fine-tuned on own customers (proximal τ = %g)", p.Strength)
	default:
		return fmt.Sprintf("%s model (chosen on the validation cutoff)", p.Choice)
	}
}

// Personalize adapts the federated global model to the merchant's own customers
// for the merchant's own scoring. The result never leaves the merchant, so it is
// trained without DP; the registry keeps only the global model.
//
// rows are the merchant's labelled rows at cutoffs whose label windows end before
// the moment to be scored. The rule, the same for every merchant:
//
//  1. the latest cutoff is the validation cutoff; the others are the fitting cutoffs;
//  2. with fewer than MinPositives buyers at either, keep the global model as
//     published;
//  3. fit on the fitting cutoffs: the global model with only its baseline
//     hazards refitted to the merchant (recalibrated: same ranking, the
//     merchant's own level and timing), the global model fine-tuned at each
//     proximal strength τ (DefaultStrengths), and a model of the merchant's rows
//     alone (LocalOnly);
//  4. measure each candidate's AUC of P(buy within the horizon) on the
//     validation customers and choose the first, in the order recalibrated,
//     strongest τ … weakest τ, local-only, whose AUC is within one
//     Hanley–McNeil standard error of the highest AUC: a merchant moves away from
//     the global model's ranking only as far as its own data can show is worth
//     it (the AUC, not the likelihood, because under CDNOW's drift the
//     likelihood at a later cutoff rewards whichever model happens to match
//     that cutoff's purchase rate, not the one that ranks customers best);
//  5. refit the choice on every row (fitting and validation cutoffs).
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
	last := slices.MaxFunc(rows, func(a, b feature.Row) int { return a.Cutoff - b.Cutoff }).Cutoff
	var fit, val []feature.Row
	for _, r := range rows {
		if r.Cutoff == last {
			val = append(val, r)
		} else {
			fit = append(fit, r)
		}
	}
	if len(fit) == 0 {
		return keep("a single labelled cutoff"), nil
	}
	if pf, pv := positives(fit), positives(val); pf < opt.MinPositives || pv < opt.MinPositives {
		return keep(fmt.Sprintf("too few buyers to choose: %d fitting, %d validation, want %d each", pf, pv, opt.MinPositives)), nil
	}
	type cand struct {
		Candidate
		refit func([]feature.Row) (*hazard.Model, error)
	}
	cands := []cand{{Candidate: Candidate{Choice: ChoiceRecalibrated}, refit: func(rs []feature.Row) (*hazard.Model, error) {
		return fineTune(ctx, global, rs, math.Inf(1), opt)
	}}}
	for _, tau := range opt.Strengths {
		cands = append(cands, cand{Candidate: Candidate{Choice: ChoiceFineTuned, Strength: tau}, refit: func(rs []feature.Row) (*hazard.Model, error) {
			return fineTune(ctx, global, rs, tau, opt)
		}})
	}
	cands = append(cands, cand{Candidate: Candidate{Choice: ChoiceLocal}, refit: func(rs []feature.Row) (*hazard.Model, error) {
		return LocalOnly(ctx, global.Schema, rs, opt.Seed)
	}})
	highest := -1
	var out Personalization
	for i := range cands {
		m, err := cands[i].refit(fit)
		if err != nil {
			return Personalization{}, fmt.Errorf("personalize: %s: %w", cands[i].Choice, err)
		}
		if _, cands[i].ValidationAUC, cands[i].ValidationLoss, err = validate(m, val); err != nil {
			return Personalization{}, fmt.Errorf("personalize: %s: %w", cands[i].Choice, err)
		}
		out.Candidates = append(out.Candidates, cands[i].Candidate)
		if highest < 0 || cands[i].ValidationAUC > cands[highest].ValidationAUC {
			highest = i
		}
	}
	// The first candidate (the most conservative) within one standard error of
	// the highest AUC: a difference the validation customers cannot tell from
	// noise does not move the merchant away from the global model.
	se := aucStandardError(cands[highest].ValidationAUC, positives(val), len(val)-positives(val))
	best := highest
	for i := range highest {
		if cands[i].ValidationAUC >= cands[highest].ValidationAUC-se {
			best = i
			break
		}
	}
	m, err := cands[best].refit(rows)
	if err != nil {
		return Personalization{}, fmt.Errorf("personalize: refit %s: %w", cands[best].Choice, err)
	}
	out.Model, out.Choice, out.Strength = m, cands[best].Choice, cands[best].Strength
	return out, nil
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

// validate returns m's P(buy within the horizon) for each row, their AUC and m's
// mean negative log-likelihood per row on rows.
func validate(m *hazard.Model, rows []feature.Row) (p []float64, auc, nll float64, err error) {
	p = make([]float64, len(rows))
	y := make([]bool, len(rows))
	for i, r := range rows {
		f, err := m.Score(r.X)
		if err != nil {
			return nil, 0, 0, err
		}
		pr := m.PredictScore(f)
		p[i], y[i] = pr.Within[len(pr.Within)-1], r.Label >= 1
	}
	if auc, err = metrics.AUC(p, y); err != nil {
		return nil, 0, 0, err
	}
	for _, c := range GroupByCustomer(rows) {
		l, err := m.CustomerLoss(c, nil)
		if err != nil {
			return nil, 0, 0, err
		}
		nll += l
	}
	return p, auc, nll / float64(len(rows)), nil
}

// aucStandardError is the Hanley–McNeil (1982) standard error of an AUC a
// measured on pos positives and neg negatives.
func aucStandardError(a float64, pos, neg int) float64 {
	q1, q2 := a/(2-a), 2*a*a/(1+a)
	np, nn := float64(pos), float64(neg)
	v := (a*(1-a) + (np-1)*(q1-a*a) + (nn-1)*(q2-a*a)) / (np * nn)
	return math.Sqrt(max(v, 0))
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
