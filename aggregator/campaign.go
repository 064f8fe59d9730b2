package aggregator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/policies"
)

// Drift-triggered retraining. With a retraining block in the policy
// (policies.Retraining) rounds no longer open one after another for ever:
// they run in campaigns. A campaign is CampaignRounds training rounds
// followed by one evaluation-only round of the version they published (its
// evaluation at publication, the baseline). Between campaigns no round is
// open; every EvaluateEvery the aggregator opens an evaluation-only round of
// the active version at the latest cutoff whose 30-day outcome window has
// passed, and when it publishes decides: a new campaign opens when AUC@30
// fell more than AUCDrop below the baseline, or the active version is older
// than MaxModelAge (then without spending an evaluation first), and only if
// at least max(MinMerchants, Quorum) merchants can afford the whole campaign
// under their caps. Every decision is audited with its inputs. The schedule
// lives in the store (Tx.CampaignState), so a restarted or second replica
// carries on where the first stopped.
//
// A campaign trains and evaluates at the configured cutoffs moved forward by
// whole days, so that its evaluation cutoff is the latest one whose outcome
// window has passed when it opens: retraining learns from the recent
// population, and its baseline is out of time exactly as the first one was.

// Campaign phases (CampaignState.Phase); "" before the first campaign.
const (
	CampaignTraining   = "training"   // the campaign's training rounds, then its evaluation at publication
	CampaignEvaluating = "evaluating" // a scheduled evaluation round is in flight
	CampaignIdle       = "idle"       // between campaigns
)

// labelWindow is the outcome window of an evaluation cutoff.
const labelWindow = 30 * 24 * time.Hour

// CampaignState is the persisted retraining schedule.
type CampaignState struct {
	Campaign int    // number of the current or last campaign (the first training is 1)
	Phase    string // CampaignTraining, CampaignEvaluating, CampaignIdle or ""
	Reason   string // why the current campaign opened
	OpenedAt time.Time
	// TrainedAtStart is the number of published training versions when the
	// campaign opened.
	TrainedAtStart int
	// Shift moves the configured cutoffs forward for this campaign.
	Shift time.Duration
	// BaselineVersion and BaselineAUC are the version the campaign published
	// and its AUC@30 at publication; BaselineAt is zero when that evaluation
	// is unknown (it missed its quorum): the next scheduled evaluation becomes
	// the baseline.
	BaselineVersion int
	BaselineAUC     float64
	BaselineAt      time.Time
	// LastEvalAt is when the last scheduled evaluation fell due (or the
	// campaign ended): the next falls due EvaluateEvery later.
	LastEvalAt time.Time
	// EvalSeq is the seq of the scheduled evaluation round in flight (0: none).
	EvalSeq   int64
	UpdatedAt time.Time
}

// Campaign returns the retraining schedule (the zero state without a
// retraining policy or before the first tick).
func (s *Service) Campaign(ctx context.Context) (CampaignState, error) {
	var st CampaignState
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		st, err = tx.CampaignState(ctx)
		return err
	})
	if err != nil {
		return CampaignState{}, fmt.Errorf("campaign: %w", err)
	}
	return st, nil
}

func (s *Service) retraining() (policies.Retraining, bool) { return s.pol().Retraining() }

// campaignPlanCounts are the releases a merchant's budget plan holds in
// campaign mode besides its DP-SGD steps: one customer count per campaign
// (each campaign's cutoffs are new), and one evaluation at publication per
// campaign plus the planned scheduled evaluations. ok is false without a
// retraining policy.
func (s *Service) campaignPlanCounts() (counts, evaluations int, ok bool) {
	ret, on := s.retraining()
	if !on {
		return 0, 0, false
	}
	campaigns := (s.rc().PlannedRounds + ret.CampaignRounds - 1) / ret.CampaignRounds
	return campaigns, campaigns + ret.PlannedEvaluations, true
}

// planCounts are the count and evaluation releases planNoise plans for.
func (s *Service) planCounts() (counts, evaluations int) {
	if c, e, ok := s.campaignPlanCounts(); ok {
		return c, e
	}
	return 1, s.rc().evaluations()
}

// evaluationParams is the evaluation plan at cutoff, with the configured σ
// and edges (fedeval's defaults without an evaluation configuration).
func (s *Service) evaluationParams(cutoff time.Time) *protocol.EvaluationPlan {
	p := &protocol.EvaluationPlan{Cutoff: cutoff.UTC(), Edges: fedeval.DefaultEdges(), Sigma: 10}
	if e := s.rc().Evaluation; e != nil {
		p.Edges, p.Sigma = slices.Clone(e.Edges), e.Sigma
	}
	return p
}

// anchorCutoff is the first campaign's evaluation cutoff: the configured
// one, else 30 days after the last training cutoff.
func (s *Service) anchorCutoff() time.Time {
	if e := s.rc().Evaluation; e != nil {
		return e.Cutoff
	}
	var last time.Time
	for _, c := range s.rc().Cutoffs {
		if c.After(last) {
			last = c
		}
	}
	return last.Add(labelWindow)
}

// scheduledCutoff is the latest midnight (UTC) whose 30-day outcome window
// has passed at now.
func scheduledCutoff(now time.Time) time.Time {
	return now.UTC().Add(-labelWindow).Truncate(24 * time.Hour)
}

// shiftAt is the whole number of days a campaign opened at now moves the
// configured cutoffs by: its evaluation cutoff is then the latest one
// (scheduledCutoff) at or after the configured one.
func (s *Service) shiftAt(now time.Time) time.Duration {
	d := scheduledCutoff(now).Sub(s.anchorCutoff())
	if d <= 0 {
		return 0
	}
	return d - d%(24*time.Hour)
}

func trainedVersions(vs []ModelRecord) int {
	n := 0
	for _, v := range vs {
		if v.Round != "" {
			n++
		}
	}
	return n
}

// planCampaignRound shapes round r in campaign mode and reports whether it
// opens at all: a campaign's training round, its evaluation at publication,
// or the scheduled evaluation Tick asked for; no round otherwise.
func (s *Service) planCampaignRound(ctx context.Context, tx Tx, r *RoundRecord, ids []string, ret policies.Retraining) (bool, error) {
	st, err := tx.CampaignState(ctx)
	if err != nil {
		return false, err
	}
	evalOnly := func(cutoff time.Time) {
		r.Plan.Steps = 0
		r.Plan.Evaluation = s.evaluationParams(cutoff)
		r.Selected = sample(ids, 1, s.rc().Quorum, s.rc().Seed, r.Seq)
	}
	switch st.Phase {
	case CampaignTraining:
		for i := range r.Plan.Cutoffs {
			r.Plan.Cutoffs[i] = r.Plan.Cutoffs[i].Add(st.Shift)
		}
		vs, err := tx.Models(ctx)
		if err != nil {
			return false, err
		}
		if trainedVersions(vs)-st.TrainedAtStart < ret.CampaignRounds {
			return true, nil
		}
		if r.Seq > 1 {
			prev, err := tx.Round(ctx, roundID(r.Seq-1), LockNone)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return false, err
			}
			if err == nil && prev.Plan.EvaluationOnly() && prev.BaseVersion == r.BaseVersion {
				return false, nil // evaluated (or tried to) already: the campaign ends
			}
		}
		evalOnly(s.anchorCutoff().Add(st.Shift))
		return true, nil
	case CampaignEvaluating:
		if r.Seq != st.EvalSeq {
			return false, nil
		}
		evalOnly(scheduledCutoff(r.OpenedAt))
		return true, nil
	}
	return false, nil
}

// campaignTick advances the retraining schedule once no round is running:
// it opens the first campaign, ends a campaign whose rounds are done,
// opens a scheduled evaluation when one is due, and decides on retraining
// when one has finished.
func (s *Service) campaignTick(ctx context.Context) error {
	ret, on := s.retraining()
	if !on {
		return s.campaignsOff(ctx)
	}
	var ps []staged
	err := s.store.InTx(ctx, func(tx Tx) error {
		ps = nil
		now := s.now().UTC()
		st, err := tx.CampaignState(ctx)
		if err != nil {
			return err
		}
		next := int64(1)
		latest, err := tx.LatestRound(ctx)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case !latest.State.Terminal():
			return nil
		default:
			next = latest.Seq + 1
		}
		vs, err := tx.Models(ctx)
		if err != nil {
			return err
		}
		activeV, err := tx.ActiveVersion(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(vs, func(v ModelRecord) bool { return v.Version == activeV })
		if i < 0 {
			return fmt.Errorf("campaign: active version %d: %w", activeV, ErrNotFound)
		}
		c := campaignStep{s: s, tx: tx, ret: ret, st: st, now: now, next: next, active: vs[i], trained: trainedVersions(vs)}
		if err := c.step(ctx, latest); err != nil {
			return err
		}
		ps = c.ps
		return nil
	})
	if err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	return s.flush(ctx, ps)
}

// campaignsOff returns a federation whose policy no longer has a retraining
// block (a reload removed it) to one round after another: between campaigns
// no round is open, and outside campaign mode only a round's end opens the
// next, so the next round is opened here, once.
func (s *Service) campaignsOff(ctx context.Context) error {
	var ps []staged
	err := s.store.InTx(ctx, func(tx Tx) error {
		ps = nil
		st, err := tx.CampaignState(ctx)
		if err != nil || st.Phase == "" {
			return err
		}
		now := s.now().UTC()
		next, running := int64(1), false
		latest, err := tx.LatestRound(ctx)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			next, running = latest.Seq+1, !latest.State.Terminal()
		}
		st.Phase, st.EvalSeq, st.UpdatedAt = "", 0, now
		if err := tx.SetCampaignState(ctx, st); err != nil {
			return err
		}
		rec := audit.Record{Actor: SystemActor, Action: "campaign.stop", Object: "campaign/" + strconv.Itoa(st.Campaign), Outcome: audit.OutcomeOK,
			Reason: "the policy has no retraining block: rounds follow one another again"}
		p, err := stage(ctx, tx, fmt.Sprintf("campaign/%d/campaign.stop/%d", st.Campaign, now.UnixNano()), rec, now)
		if err != nil {
			return err
		}
		ps = append(ps, p)
		if running {
			return nil // its end opens the next
		}
		r, err := s.openRound(ctx, tx, next, now)
		if err != nil || r == nil {
			return err
		}
		more, err := s.stageTransitions(ctx, tx, []transition{{round: *r, action: "round.open"}}, now)
		ps = append(ps, more...)
		return err
	})
	if err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	return s.flush(ctx, ps)
}

// campaignStep is one campaignTick inside its transaction.
type campaignStep struct {
	s       *Service
	tx      Tx
	ret     policies.Retraining
	st      CampaignState
	now     time.Time
	next    int64 // the seq a round opened now gets
	active  ModelRecord
	trained int
	ps      []staged
}

func (c *campaignStep) step(ctx context.Context, latest RoundRecord) error {
	st := &c.st
	switch st.Phase {
	case "":
		*st = CampaignState{Campaign: 1, Phase: CampaignTraining, Reason: "initial training", OpenedAt: c.now,
			TrainedAtStart: c.trained, LastEvalAt: c.now}
		rec := c.record("campaign.open", "campaign 1: initial training")
		c.detailsCampaign(rec)
		return c.openWith(ctx, rec)
	case CampaignTraining:
		if c.trained-st.TrainedAtStart < c.ret.CampaignRounds {
			return nil // rounds stopped opening (max rounds): nothing to schedule
		}
		auc, se, ok := evaluatedIn(c.active, latest)
		st.Phase, st.LastEvalAt, st.BaselineVersion = CampaignIdle, c.now, c.active.Version
		st.BaselineAUC, st.BaselineAt = 0, time.Time{}
		reason := fmt.Sprintf("campaign %d published version %d; its evaluation at publication failed (%s): the next scheduled evaluation is the baseline",
			st.Campaign, c.active.Version, latest.Reason)
		// The baseline is the lowest AUC@30 with any one merchant left out:
		// one merchant's histogram cannot raise it.
		base, _ := leftOut(c.active, auc)
		if ok {
			st.BaselineAUC, st.BaselineAt = base, c.now
			reason = fmt.Sprintf("campaign %d published version %d with AUC@30 %.4f ± %.4f at publication (%.4f with any one merchant left out: the baseline)",
				st.Campaign, c.active.Version, auc, se, base)
		}
		rec := c.record("campaign.complete", reason)
		c.detailsCampaign(rec)
		rec.Details["baseline_auc"] = fmtAUC(base, ok)
		if ok {
			rec.Details["published_auc"] = fmtAUC(auc, ok)
			rec.Details["baseline_auc_se"] = strconv.FormatFloat(se, 'f', 4, 64)
		}
		rec.Details["next_evaluation"] = c.now.Add(c.ret.EvaluateEvery).Format(time.RFC3339)
		return c.save(ctx, rec)
	case CampaignEvaluating:
		auc, se, ok := evaluatedIn(c.active, latest)
		if latest.Seq != st.EvalSeq {
			ok = false // not the round asked for (an operator cancelled it): no evaluation
		}
		st.Phase, st.EvalSeq = CampaignIdle, 0
		return c.decide(ctx, auc, se, ok, true, latest.Reason)
	case CampaignIdle:
		if c.now.Before(st.LastEvalAt.Add(c.ret.EvaluateEvery)) {
			return nil
		}
		st.LastEvalAt = c.now
		if c.ret.MaxModelAge > 0 && c.age() > c.ret.MaxModelAge {
			// Old enough to retrain whatever the evaluation would say: spend nothing on it.
			return c.decide(ctx, 0, 0, false, false, "")
		}
		plan := c.s.evaluationParams(scheduledCutoff(c.now))
		b, err := c.budgets(ctx, func(policies.MerchantPolicy) ([]dp.Release, error) { return []dp.Release{fedeval.Cost(plan)}, nil })
		if err != nil {
			return err
		}
		if b.affordable < b.needed {
			rec := c.record("evaluation.skip", fmt.Sprintf("evaluation skipped: budget: %d of %d merchants can afford an evaluation, %d needed", b.affordable, b.merchants, b.needed))
			b.details(rec)
			return c.save(ctx, rec)
		}
		st.Phase, st.EvalSeq = CampaignEvaluating, c.next
		rec := c.record("evaluation.open", fmt.Sprintf("scheduled evaluation of version %d at cutoff %s in %s", c.active.Version, plan.Cutoff.Format(time.DateOnly), roundID(c.next)))
		rec.Details["cutoff"] = plan.Cutoff.Format(time.RFC3339)
		b.details(rec)
		return c.openWith(ctx, rec)
	}
	return fmt.Errorf("unknown campaign phase %q", st.Phase)
}

// decide takes the retraining decision after a scheduled evaluation
// (evaluated; ok when it gave an AUC) or because the model is too old.
func (c *campaignStep) decide(ctx context.Context, auc, se float64, ok, evaluated bool, roundReason string) error {
	st := &c.st
	hasBase := st.BaselineVersion == c.active.Version && !st.BaselineAt.IsZero()
	var why []string
	drop := math.NaN()
	// A drop counts only when it is seen with any one merchant's histogram
	// left out (the highest such AUC against the baseline, itself the lowest
	// at publication): one merchant's histograms, plausible as they may be,
	// cannot open a campaign that makes every merchant spend ε.
	lo, hi := leftOut(c.active, auc)
	switch {
	case ok && hasBase:
		drop = st.BaselineAUC - hi
		if drop > c.ret.AUCDrop {
			why = append(why, fmt.Sprintf("AUC@30 %.4f (%.4f with any one merchant left out) is %.4f below the baseline %.4f (threshold %g)", auc, hi, drop, st.BaselineAUC, c.ret.AUCDrop))
		}
	case ok:
		// No baseline for this version (its evaluation at publication
		// failed): this evaluation becomes it.
		st.BaselineVersion, st.BaselineAUC, st.BaselineAt = c.active.Version, lo, c.now
	}
	age := c.age()
	if c.ret.MaxModelAge > 0 && age > c.ret.MaxModelAge {
		why = append(why, fmt.Sprintf("version %d is %s old (max %s)", c.active.Version, days(age), days(c.ret.MaxModelAge)))
	}
	fill := func(rec *audit.Record) {
		rec.Details["evaluated"] = strconv.FormatBool(evaluated)
		rec.Details["evaluated_auc"] = fmtAUC(auc, ok)
		if ok {
			rec.Details["evaluated_auc_se"] = strconv.FormatFloat(se, 'f', 4, 64)
			rec.Details["evaluated_auc_leave_one_out_max"] = fmtAUC(hi, ok)
		}
		rec.Details["baseline_auc"] = fmtAUC(st.BaselineAUC, hasBase)
		rec.Details["baseline_version"] = strconv.Itoa(st.BaselineVersion)
		if !math.IsNaN(drop) {
			rec.Details["auc_drop"] = strconv.FormatFloat(drop, 'f', 4, 64)
		}
		rec.Details["auc_drop_threshold"] = strconv.FormatFloat(c.ret.AUCDrop, 'g', -1, 64)
		rec.Details["model_version"] = strconv.Itoa(c.active.Version)
		rec.Details["model_age"] = days(age)
		if c.ret.MaxModelAge > 0 {
			rec.Details["max_model_age"] = days(c.ret.MaxModelAge)
		}
	}
	if len(why) == 0 {
		reason := fmt.Sprintf("keep version %d: AUC@30 %s against the baseline %s", c.active.Version, fmtAUC(auc, ok), fmtAUC(st.BaselineAUC, hasBase))
		if evaluated && !ok {
			reason = fmt.Sprintf("keep version %d: the scheduled evaluation gave no AUC (%s)", c.active.Version, roundReason)
		}
		rec := c.record("campaign.decide", reason)
		rec.Details["decision"] = "keep"
		fill(rec)
		return c.save(ctx, rec)
	}
	shift := c.s.shiftAt(c.now)
	b, err := c.budgets(ctx, func(mp policies.MerchantPolicy) ([]dp.Release, error) { return c.s.campaignCost(mp, shift) })
	if err != nil {
		return err
	}
	rec := c.record("campaign.decide", "")
	fill(rec)
	b.details(rec)
	rec.Details["campaign_rounds"] = strconv.Itoa(c.ret.CampaignRounds)
	if b.affordable < b.needed {
		rec.Details["decision"] = "skip"
		rec.Reason = fmt.Sprintf("campaign skipped: budget: %d of %d merchants can afford %d rounds and an evaluation, %d needed (%s)",
			b.affordable, b.merchants, c.ret.CampaignRounds, b.needed, strings.Join(why, "; "))
		return c.save(ctx, rec)
	}
	*st = CampaignState{Campaign: st.Campaign + 1, Phase: CampaignTraining, Reason: strings.Join(why, "; "), OpenedAt: c.now,
		TrainedAtStart: c.trained, Shift: shift, LastEvalAt: c.now}
	rec.Details["decision"] = "retrain"
	rec.Reason = fmt.Sprintf("campaign %d opens: %s", st.Campaign, st.Reason)
	c.detailsCampaign(rec)
	return c.openWith(ctx, rec)
}

// campaignCost is what a campaign at shift costs merchant mp: its DP-SGD
// steps, a customer count at the new cutoffs, and the evaluation at publication.
func (s *Service) campaignCost(mp policies.MerchantPolicy, shift time.Duration) ([]dp.Release, error) {
	z, err := s.planNoise(mp)
	if err != nil {
		return nil, err
	}
	ret, _ := s.retraining()
	return []dp.Release{
		{Mechanism: dp.Gaussian, Q: s.rc().SamplingRate, Z: z, Steps: s.rc().StepsPerRound * ret.CampaignRounds},
		{Mechanism: dp.Gaussian, Q: 1, Z: s.rc().CountNoise, Steps: 1},
		fedeval.Cost(s.evaluationParams(s.anchorCutoff().Add(shift))),
	}, nil
}

// budgetCheck is who can afford a planned set of releases.
type budgetCheck struct {
	merchants, affordable, needed int
	lines                         []string
}

func (b budgetCheck) details(rec *audit.Record) {
	rec.Details["merchants"] = strconv.Itoa(b.merchants)
	rec.Details["affordable"] = strconv.Itoa(b.affordable)
	rec.Details["needed"] = strconv.Itoa(b.needed)
	rec.Details["budgets"] = strings.Join(b.lines, "; ")
}

// budgets composes every active merchant's ledger with the releases cost
// gives it and counts those that stay within their cap (dp.Filter's rule).
// A merchant that said it stopped, or is revoked, cannot take part.
func (c *campaignStep) budgets(ctx context.Context, cost func(policies.MerchantPolicy) ([]dp.Release, error)) (budgetCheck, error) {
	ms, err := c.tx.Merchants(ctx)
	if err != nil {
		return budgetCheck{}, err
	}
	b := budgetCheck{needed: max(c.ret.MinMerchants, c.s.rc().Quorum)}
	for _, m := range ms {
		if m.Revoked {
			continue
		}
		mp, err := c.s.pol().Merchant(m.ID)
		if err != nil {
			continue // no longer in the policy: refused at its next request
		}
		b.merchants++
		rows, err := c.tx.Ledger(ctx, m.ID)
		if err != nil {
			return budgetCheck{}, err
		}
		groups, err := summarize(rows)
		if err != nil {
			return budgetCheck{}, fmt.Errorf("ledger of %s: %w", m.ID, err)
		}
		// At the δ in force: the ε stored with the last row is at the δ of
		// its debit, which a reload may have changed since.
		spent := 0.0
		if len(groups) > 0 {
			if spent, err = c.s.acct.epsilon(groups, mp.Delta); err != nil {
				return budgetCheck{}, fmt.Errorf("budget of %s: %w", m.ID, err)
			}
		}
		rs, err := cost(mp)
		if errors.Is(err, dp.ErrBudgetExhausted) {
			// Its cap cannot hold even the campaign's count and evaluation
			// (a policy reloaded with a smaller cap): no noise makes the
			// campaign fit, so it cannot afford it; the decision goes on.
			b.lines = append(b.lines, fmt.Sprintf("%s ε %.4g of %.4g: no plan fits its cap", m.ID, spent, mp.EpsilonCap))
			continue
		}
		if err != nil {
			return budgetCheck{}, err
		}
		eps, _, err := c.s.acct.compose(groups, rs, mp.Delta)
		if err != nil {
			return budgetCheck{}, fmt.Errorf("budget of %s: %w", m.ID, err)
		}
		after := eps[len(eps)-1]
		fits := after <= mp.EpsilonCap*(1+dp.FilterTolerance) && m.Stopped == ""
		if fits {
			b.affordable++
		}
		note := ""
		if m.Stopped != "" {
			note = " stopped"
		}
		b.lines = append(b.lines, fmt.Sprintf("%s ε %.4g→%.4g of %.4g%s", m.ID, spent, after, mp.EpsilonCap, note))
	}
	return b, nil
}

// openWith saves the state, stages rec and opens the next round, which
// planCampaignRound shapes from the saved state.
func (c *campaignStep) openWith(ctx context.Context, rec *audit.Record) error {
	if err := c.save(ctx, rec); err != nil {
		return err
	}
	r, err := c.s.openRound(ctx, c.tx, c.next, c.now)
	if err != nil || r == nil {
		return err
	}
	ps, err := c.s.stageTransitions(ctx, c.tx, []transition{{round: *r, action: "round.open"}}, c.now)
	c.ps = append(c.ps, ps...)
	return err
}

// save writes the state and stages rec.
func (c *campaignStep) save(ctx context.Context, rec *audit.Record) error {
	c.st.UpdatedAt = c.now
	if err := c.tx.SetCampaignState(ctx, c.st); err != nil {
		return err
	}
	id := fmt.Sprintf("campaign/%d/%s/%d", c.st.Campaign, rec.Action, c.now.UnixNano())
	p, err := stage(ctx, c.tx, id, *rec, c.now)
	if err != nil {
		return err
	}
	c.ps = append(c.ps, p)
	return nil
}

func (c *campaignStep) record(action, reason string) *audit.Record {
	return &audit.Record{Actor: SystemActor, Action: action, Object: "campaign/" + strconv.Itoa(c.st.Campaign),
		Outcome: audit.OutcomeOK, Reason: reason, Details: map[string]string{}}
}

func (c *campaignStep) detailsCampaign(rec *audit.Record) {
	rec.Object = "campaign/" + strconv.Itoa(c.st.Campaign)
	rec.Details["campaign"] = strconv.Itoa(c.st.Campaign)
	rec.Details["cutoff_shift"] = days(c.st.Shift)
	rec.Details["evaluation_cutoff"] = c.s.anchorCutoff().Add(c.st.Shift).UTC().Format(time.RFC3339)
	rec.Details["first_round"] = roundID(c.next)
}

// age is how long the active version has been published.
func (c *campaignStep) age() time.Duration { return c.now.Sub(c.active.PublishedAt) }

// evaluatedIn returns the AUC@30 (and its standard error) that round r, an
// evaluation-only round of version v, stored on v; ok is false when r is
// not that or gave no metrics (quorum missed, or the noise left it undefined).
func evaluatedIn(v ModelRecord, r RoundRecord) (auc, se float64, ok bool) {
	if r.State != protocol.RoundPublished || !r.Plan.EvaluationOnly() || r.BaseVersion != v.Version {
		return 0, 0, false
	}
	if seq, has := v.Metrics["round_seq"]; !has || seq != float64(r.Seq) {
		return 0, 0, false
	}
	auc, ok = v.Metrics["auc_30"]
	return auc, v.Metrics["auc_30_se"], ok
}

// leftOut returns the lowest and highest AUC@30 with any one merchant's
// histogram left out that the evaluation auc stored on v (evaluatedIn) was
// published with; both are auc when one merchant evaluated.
func leftOut(v ModelRecord, auc float64) (lo, hi float64) {
	lo, okLo := v.Metrics["auc_30_loo_min"]
	hi, okHi := v.Metrics["auc_30_loo_max"]
	if !okLo || !okHi {
		return auc, auc
	}
	return lo, hi
}

func fmtAUC(auc float64, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatFloat(auc, 'f', 4, 64)
}

// days writes d in days.
func days(d time.Duration) string {
	return strconv.FormatFloat(d.Hours()/24, 'f', 1, 64) + "d"
}
