package evaluate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// Selection chooses the hazard model's score function on the merchant's own
// data (Config.Select): the configured (linear) model or a nonlinear
// alternative, by an inner validation split inside the training cutoffs.
//
// The inner split moves the test cutoff back to the latest training cutoff
// and trains on the training cutoffs whose label windows end by then; the
// test cutoff's window is never read. Both candidates are trained there as
// Run would train them (level carry included) and scored on the latest
// training cutoff's customers at 30 days. The alternative is kept only if it
// wins on all three measures the suite reports: its AUC@30 exceeds the base's
// by more than Z DeLong standard errors of the paired difference, its
// PR-AUC@30 is not lower and its Brier@30 not higher. The chosen candidate is
// then trained on every training cutoff. With no inner split (one training
// cutoff, or no buyer or non-buyer at the inner test cutoff) the base is kept.
//
// The rule and its evidence are in docs/benchmarks.md ("A model chosen on the
// merchant's own data"). It applies to non-private training only: under DP
// the choice would read the customers' data again outside the budget, so a
// private run trains the base model.
type Selection struct {
	// Alternative is the nonlinear candidate's training settings
	// (DefaultMLPOptions); its Seed and Meta are the run's.
	Alternative hazard.TrainOptions
	// Z is the number of standard errors the alternative's AUC@30 gain must
	// exceed (default DefaultSelectionZ).
	Z float64
}

// DefaultSelectionZ is one-sided 5%: the alternative must beat the base at
// the level a one-sided DeLong test would call significant.
const DefaultSelectionZ = 1.645

// DefaultSelection is the choice `kairos eval` makes by default: the linear
// model unless the 16-unit MLP wins the inner split.
func DefaultSelection() *Selection {
	return &Selection{Alternative: DefaultMLPOptions(), Z: DefaultSelectionZ}
}

// SelectionReport is what the choice saw and decided.
type SelectionReport struct {
	// Chosen is the kind trained on every training cutoff.
	Chosen string
	// Reason says in a sentence why.
	Reason string
	// InnerTest is the inner split's test cutoff (the latest training cutoff)
	// and InnerTrain its training cutoffs; both empty without an inner split.
	InnerTest  time.Time
	InnerTrain []time.Time
	// Customers and Buyers are the inner test rows and those that bought
	// within 30 days.
	Customers, Buyers int
	// Base and Alternative are the candidates' inner scores at 30 days; SE is
	// DeLong's standard error of Alternative.AUC − Base.AUC.
	Base, Alternative InnerScore
	SE                float64
}

// InnerScore is one candidate's 30-day scores on the inner test cutoff.
type InnerScore struct {
	Kind              string
	AUC, PRAUC, Brier float64
}

// innerCutoffs returns the training cutoffs of the inner split of train
// (sorted), whose test cutoff is the latest, train[len(train)−1]: the
// indices of the earlier cutoffs whose label windows end by it (none: no
// inner split).
func innerCutoffs(train []time.Time) []int {
	var inner []int
	for i := range len(train) - 1 {
		if !train[i].Add(model.Horizon * model.Day).After(train[len(train)-1]) {
			inner = append(inner, i)
		}
	}
	return inner
}

// choose returns the training settings of the candidate the inner split
// picks between base and cfg.Select.Alternative (see Selection).
func (p *Prepared) choose(ctx context.Context, cfg Config, base hazard.TrainOptions) (hazard.TrainOptions, *SelectionReport, error) {
	sel := *cfg.Select
	if sel.Z == 0 {
		sel.Z = DefaultSelectionZ
	}
	alt := sel.Alternative
	alt.Seed, alt.Meta = base.Seed, base.Meta
	rep := &SelectionReport{Chosen: base.Kind}
	train := innerCutoffs(p.train)
	test := len(p.train) - 1
	if len(train) == 0 {
		rep.Reason = fmt.Sprintf("%s kept: no inner validation split (it needs two training cutoffs %d days apart)", base.Kind, model.Horizon)
		return base, rep, nil
	}
	rep.InnerTest = p.train[test]
	for _, c := range train {
		rep.InnerTrain = append(rep.InnerTrain, p.train[c])
	}
	var inner *Prepared
	var err error
	if p.classic == nil {
		inner, err = p.inner(test, train)
	} else {
		// Classic features are fitted up to the test cutoff: build afresh.
		inner, err = Prepare(p.events, Config{Dataset: cfg.Dataset, TestCutoff: rep.InnerTest, TrainCutoffs: rep.InnerTrain,
			Location: p.build.Location, Allow: p.build.Allow, Classic: cfg.Classic})
	}
	if err != nil {
		// Too few buyers or non-buyers at the inner cutoff to rank: no evidence.
		rep.Reason = fmt.Sprintf("%s kept: the inner split at %s cannot be scored: %v", base.Kind, rep.InnerTest.Format(time.DateOnly), err)
		rep.InnerTest, rep.InnerTrain = time.Time{}, nil
		return base, rep, nil
	}
	var probs [2][]float64
	var scores [2]InnerScore
	for k, o := range []hazard.TrainOptions{base, alt} {
		o.OwnDay = false // the choice reads probabilities only
		r, err := inner.Run(ctx, Config{Dataset: cfg.Dataset, Seed: cfg.Seed, Methods: []string{MethodHazard}, Hazard: o, NoLevelCarry: cfg.NoLevelCarry})
		if err != nil && k == 1 && ctx.Err() == nil {
			// The alternative could not be trained here: the base stands.
			rep.Reason = fmt.Sprintf("%s kept: %s could not be trained on the inner split: %v", base.Kind, o.Kind, err)
			return base, rep, nil
		}
		if err != nil {
			return hazard.TrainOptions{}, nil, fmt.Errorf("model choice: %s on the inner split: %w", o.Kind, err)
		}
		if probs[k], err = within30(r.Model, inner.testRows); err != nil {
			return hazard.TrainOptions{}, nil, fmt.Errorf("model choice: %s on the inner split: %w", o.Kind, err)
		}
		m := r.Methods[0]
		scores[k] = InnerScore{Kind: o.Kind, AUC: m.AUC[model.Horizon], PRAUC: m.PRAUC[model.Horizon], Brier: m.Brier[model.Horizon]}
	}
	labels := make([]bool, len(inner.testRows))
	for i, r := range inner.testRows {
		labels[i] = r.Label > 0 && r.Label <= model.Horizon
		if labels[i] {
			rep.Buyers++
		}
	}
	rep.Customers = len(labels)
	rep.Base, rep.Alternative = scores[0], scores[1]
	d, err := metrics.DeLong(probs[1], probs[0], labels)
	if err != nil {
		rep.Reason = fmt.Sprintf("%s kept: the inner split at %s cannot be compared: %v", base.Kind, rep.InnerTest.Format(time.DateOnly), err)
		return base, rep, nil
	}
	rep.SE = d.SE
	keep, why := decide(scores[0], scores[1], d.SE, sel.Z)
	rep.Reason = why
	if keep {
		rep.Chosen = alt.Kind
		return alt, rep, nil
	}
	return base, rep, nil
}

// decide applies Selection's rule to the candidates' inner scores: keep the
// alternative only if its AUC gain exceeds z standard errors se and its
// PR-AUC is not lower and its Brier not higher. why says so in a sentence.
func decide(base, alt InnerScore, se, z float64) (keep bool, why string) {
	gain := alt.AUC - base.AUC
	switch {
	case !(gain > z*se):
		return false, fmt.Sprintf("%s kept: %s's inner AUC@30 gain %+.4f is not above %g standard errors (%.4f)", base.Kind, alt.Kind, gain, z, z*se)
	case alt.PRAUC < base.PRAUC:
		return false, fmt.Sprintf("%s kept: %s's inner PR-AUC@30 is lower (%.4f < %.4f)", base.Kind, alt.Kind, alt.PRAUC, base.PRAUC)
	case alt.Brier > base.Brier:
		return false, fmt.Sprintf("%s kept: %s's inner Brier@30 is higher (%.5f > %.5f)", base.Kind, alt.Kind, alt.Brier, base.Brier)
	}
	return true, fmt.Sprintf("%s chosen: inner AUC@30 %+.4f (%.1f standard errors), PR-AUC@30 %+.4f, Brier@30 %+.5f against %s",
		alt.Kind, gain, gain/se, alt.PRAUC-base.PRAUC, alt.Brier-base.Brier, base.Kind)
}

// within30 is hm's P(buy within 30 days) for every row.
func within30(hm *hazard.Model, rows []feature.Row) ([]float64, error) {
	hi := slices.Index(hazard.Horizons[:], model.Horizon)
	out := make([]float64, len(rows))
	for i, r := range rows {
		p, err := hm.Predict(r.X)
		if err != nil {
			return nil, err
		}
		out[i] = p.Within[hi]
	}
	return out, nil
}
