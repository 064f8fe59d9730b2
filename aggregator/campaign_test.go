package aggregator_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// campaignPolicy is testPolicy with m1 and m2 only and a retraining block.
func campaignPolicy(t *testing.T, retraining string) *policies.Policy {
	t.Helper()
	src := strings.Split(testPolicy, "merchants:")[0] + "merchants:\n  m1: {}\n  m2: {}\nretraining:\n" + retraining
	p, err := policies.Parse("campaign.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	campaignTrainCut = []time.Time{time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)}
	campaignEvalCut  = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
)

func campaignConfig(planned int) aggregator.RoundConfig {
	return aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: 2, PlannedRounds: planned, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30,
		Cutoffs:    campaignTrainCut,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: campaignEvalCut, Sigma: 20, Edges: []float64{0.1, 0.5}},
	}
}

// Evaluation histograms (bins of P(30d) < 0.1, < 0.5, ≥ 0.5 × outcomes within
// 7 days, days 8–30, none), 350 customers per merchant as their DP counts say.
// good sums to model/fedeval's hand-worked case scaled by 100: AUC@30 8.5/12.
// flat puts everyone in one bin: every positive ties every negative, AUC 1/2.
var (
	goodHist = map[string][]float64{
		"m1": {0, 60, 140, 50, 60, 40, 0, 0, 0},
		"m2": {0, 40, 160, 50, 40, 60, 0, 0, 0},
	}
	flatHist = []float64{0, 0, 0, 100, 75, 175, 0, 0, 0}
)

// evaluateAll submits both merchants' histograms to the evaluation-only round open now.
func evaluateAll(t *testing.T, f *fed, r *replica, hist func(m string) []float64) protocol.Round {
	t.Helper()
	round := mustRound(t, r, "m1")
	if !round.Plan.EvaluationOnly() {
		t.Fatalf("%s: plan %+v, want evaluation-only", round.ID, round.Plan)
	}
	for _, m := range []string{"m1", "m2"} {
		u := protocol.Update{Version: protocol.Version, Round: round.ID, Merchant: m, BaseVersion: round.BaseVersion,
			SchemaHash: f.update(t, round, m).SchemaHash,
			Evaluation: &protocol.Evaluation{Cutoff: round.Plan.Evaluation.Cutoff, Counts: append([]float64(nil), hist(m)...), Sigma: 20}}
		if _, err := r.svc.Submit(context.Background(), m, f.seal(t, u)); err != nil {
			t.Fatalf("%s evaluation in %s: %v", m, round.ID, err)
		}
	}
	return round
}

// trainOnce has both merchants send an honest update to the training round open now.
func trainOnce(t *testing.T, f *fed, r *replica) protocol.Round {
	t.Helper()
	round := mustRound(t, r, "m1")
	if round.Plan.Steps != 5 || round.Plan.Evaluation != nil || round.State.Terminal() {
		t.Fatalf("%s (%s): plan %+v, want an open training round", round.ID, round.State, round.Plan)
	}
	for _, m := range []string{"m1", "m2"} {
		if _, err := f.submitHonest(t, r, m); err != nil {
			t.Fatalf("%s in %s: %v", m, round.ID, err)
		}
	}
	return round
}

// campaignAudit returns the audit records of the campaign actions, in order.
func campaignAudit(t *testing.T, r *replica) []audit.Record {
	t.Helper()
	es, err := r.store.AuditEntries(context.Background(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, e := range es {
		if strings.HasPrefix(e.Action, "campaign.") || strings.HasPrefix(e.Action, "evaluation.") {
			var rec audit.Record
			b, _ := json.Marshal(e)
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}

// TestCampaignRetrainsOnAUCDrop walks the schedule on both stores with a
// fake clock: campaign 1 trains one round and evaluates its version (the
// baseline, AUC@30 8.5/12); nothing opens until the evaluation falls due 30
// days later; the scheduled evaluation finds AUC@30 1/2, a drop of 0.2083 >
// 0.02, so campaign 2 opens at cutoffs moved forward by the whole days from
// the configured evaluation cutoff (2026-09-01) to the latest one whose
// outcomes are known (2026-11-27, 30 days before the clock's 2026-12-27 12:01),
// 87 days; it publishes version 3 and evaluates it. The plan (2 campaigns,
// 1 scheduled evaluation) has no room for a second scheduled evaluation:
// it is skipped for budget.
func TestCampaignRetrainsOnAUCDrop(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			p := campaignPolicy(t, "  evaluate_every: 30d\n  auc_drop: 0.02\n  campaign_rounds: 1\n  planned_evaluations: 1\n")
			f := newFedPolicy(t, b, campaignConfig(2), p)
			f.customers["m1"], f.customers["m2"] = 350, 350
			r := f.start(t)
			if _, err := r.svc.CurrentRound(ctx, "m1"); err == nil {
				t.Fatal("a round is open before the first campaign")
			}
			f.enrol(t, r, "m1", "m2")
			tick(t, r) // campaign 1 opens round 1
			round := trainOnce(t, f, r)
			if !slicesEqualTime(round.Plan.Cutoffs, campaignTrainCut) {
				t.Errorf("campaign 1 cutoffs %v, want the configured %v", round.Plan.Cutoffs, campaignTrainCut)
			}
			tick(t, r) // version 2, then its evaluation at publication
			ev := evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
			if ev.BaseVersion != 2 || !ev.Plan.Evaluation.Cutoff.Equal(campaignEvalCut) {
				t.Fatalf("evaluation at publication: base %d cutoff %v, want 2 and %v", ev.BaseVersion, ev.Plan.Evaluation.Cutoff, campaignEvalCut)
			}
			tick(t, r)
			st, err := r.svc.Campaign(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The baseline is the lower of the AUCs with one merchant left
			// out: m2's alone, 20300/28600 (published: 8.5/12).
			if st.Phase != aggregator.CampaignIdle || st.BaselineVersion != 2 || math.Abs(st.BaselineAUC-20300.0/28600) > 1e-9 {
				t.Fatalf("after campaign 1: %+v, want idle with baseline 20300/28600 for version 2", st)
			}
			f.clock.Add(29 * 24 * time.Hour) // not due yet: no round
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != ev.Seq {
				t.Fatalf("round %s opened before the evaluation was due", got.ID)
			}
			f.clock.Add(24*time.Hour + time.Minute) // 2026-12-27 12:01
			tick(t, r)
			sched := evaluateAll(t, f, r, func(string) []float64 { return flatHist })
			if want := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC); sched.BaseVersion != 2 || !sched.Plan.Evaluation.Cutoff.Equal(want) {
				t.Fatalf("scheduled evaluation: base %d cutoff %v, want 2 and %v", sched.BaseVersion, sched.Plan.Evaluation.Cutoff, want)
			}
			tick(t, r)      // the evaluation publishes; the AUC drop opens campaign 2
			clear(f.counts) // new cutoffs: the clients release a new count
			round = trainOnce(t, f, r)
			shift := 87 * 24 * time.Hour
			if want := []time.Time{campaignTrainCut[0].Add(shift), campaignTrainCut[1].Add(shift)}; !slicesEqualTime(round.Plan.Cutoffs, want) {
				t.Errorf("campaign 2 cutoffs %v, want %v", round.Plan.Cutoffs, want)
			}
			tick(t, r)
			ev2 := evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
			if ev2.BaseVersion != 3 || !ev2.Plan.Evaluation.Cutoff.Equal(campaignEvalCut.Add(shift)) {
				t.Errorf("campaign 2 evaluation: base %d cutoff %v, want 3 and %v", ev2.BaseVersion, ev2.Plan.Evaluation.Cutoff, campaignEvalCut.Add(shift))
			}
			tick(t, r)
			f.clock.Add(31 * 24 * time.Hour)
			tick(t, r) // due, but the plan held one scheduled evaluation
			if got := mustRound(t, r, "m1"); got.Seq != ev2.Seq {
				t.Errorf("round %s opened although no merchant can afford it", got.ID)
			}

			recs := campaignAudit(t, r)
			var actions []string
			for _, rec := range recs {
				actions = append(actions, rec.Action+":"+rec.Details["decision"])
			}
			want := []string{"campaign.open:", "campaign.complete:", "evaluation.open:", "campaign.decide:retrain", "campaign.complete:", "evaluation.skip:"}
			if strings.Join(actions, " ") != strings.Join(want, " ") {
				t.Fatalf("campaign audit trail %v, want %v", actions, want)
			}
			d := recs[3].Details
			for k, v := range map[string]string{
				"evaluated_auc": "0.5000", "evaluated_auc_leave_one_out_max": "0.5000", "baseline_auc": "0.7098", "auc_drop": "0.2098", "auc_drop_threshold": "0.02",
				"model_version": "2", "model_age": "30.0d", "affordable": "2", "needed": "2", "campaign": "2", "cutoff_shift": "87.0d",
			} {
				if d[k] != v {
					t.Errorf("decision detail %s = %q, want %q (all: %v)", k, d[k], v, d)
				}
			}
			if !strings.Contains(d["budgets"], "m1 ε ") || !strings.Contains(recs[3].Reason, "campaign 2 opens: AUC@30 0.5000 (0.5000 with any one merchant left out) is 0.2098 below the baseline 0.7098") {
				t.Errorf("decision: reason %q budgets %q", recs[3].Reason, d["budgets"])
			}
			if !strings.HasPrefix(recs[5].Reason, "evaluation skipped: budget: 0 of 2 merchants") {
				t.Errorf("skip reason %q", recs[5].Reason)
			}
			// What each merchant spent is the plan's releases, composed: 2
			// rounds of 5 steps, 2 counts, 3 evaluations — the whole cap.
			bs, err := r.svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			eps, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: 0.02, Z: round.Plan.NoiseMultiplier, Steps: 10},
				{Mechanism: dp.Gaussian, Q: 1, Z: 30, Steps: 2},
				{Mechanism: dp.Gaussian, Q: 1, Z: 20, Steps: 3},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, bu := range bs {
				if math.Abs(bu.Epsilon-eps) > 1e-9 || math.Abs(eps-1) > 1e-3 {
					t.Errorf("%s spent ε %v, want %v ≈ the cap 1", bu.Merchant, bu.Epsilon, eps)
				}
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestCampaignSkippedForBudget: a version older than max_model_age is
// retrained without an evaluation first, unless the merchants cannot afford
// a campaign: the plan held one campaign, which the first training spent.
// The decision is audited as skipped, with the budgets, and no round opens.
func TestCampaignSkippedForBudget(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	p := campaignPolicy(t, "  evaluate_every: 30d\n  auc_drop: 0.02\n  max_model_age: 20d\n  campaign_rounds: 1\n  planned_evaluations: 0\n")
	f := newFedPolicy(t, b, campaignConfig(1), p)
	f.customers["m1"], f.customers["m2"] = 350, 350
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	trainOnce(t, f, r)
	tick(t, r)
	ev := evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
	tick(t, r)
	f.clock.Add(31 * 24 * time.Hour)
	tick(t, r)
	if got := mustRound(t, r, "m1"); got.Seq != ev.Seq {
		t.Fatalf("round %s opened although the budgets are spent", got.ID)
	}
	recs := campaignAudit(t, r)
	last := recs[len(recs)-1]
	if last.Action != "campaign.decide" || last.Details["decision"] != "skip" || last.Details["evaluated"] != "false" ||
		!strings.HasPrefix(last.Reason, "campaign skipped: budget: 0 of 2 merchants can afford 1 rounds") ||
		!strings.Contains(last.Reason, "version 2 is 31.0d old (max 20.0d)") {
		t.Fatalf("last campaign record %s %q %v, want a budget skip of the age trigger", last.Action, last.Reason, last.Details)
	}
	st, err := r.svc.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != aggregator.CampaignIdle || st.Campaign != 1 {
		t.Errorf("state after the skip %+v, want campaign 1 idle", st)
	}
	// The next decision is a period later, not every tick.
	tick(t, r)
	if n := len(campaignAudit(t, r)); n != len(recs) {
		t.Errorf("%d campaign records after another tick, want %d", n, len(recs))
	}
}

func slicesEqualTime(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// TestCampaignsOffAfterReload: a reload that removes the retraining block
// between campaigns (no round open) opens the next round at once, audited
// as campaign.stop, and rounds follow one another again.
func TestCampaignsOffAfterReload(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	p := campaignPolicy(t, "  evaluate_every: 30d\n  auc_drop: 0.02\n  campaign_rounds: 1\n")
	cfg := campaignConfig(4)
	f := newFedPolicy(t, b, cfg, p)
	f.customers["m1"], f.customers["m2"] = 350, 350
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	trainOnce(t, f, r)
	tick(t, r)
	ev := evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
	tick(t, r)
	if got := mustRound(t, r, "m1"); got.Seq != ev.Seq || !got.State.Terminal() {
		t.Fatalf("round %s (%s) open between campaigns", got.ID, got.State)
	}
	plain, err := policies.Parse("plain.yaml", []byte(strings.Split(testPolicy, "merchants:")[0]+"merchants:\n  m1: {}\n  m2: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:test", plain, cfg); err != nil {
		t.Fatal(err)
	}
	tick(t, r)
	next := trainOnce(t, f, r)
	if next.Seq != ev.Seq+1 {
		t.Errorf("round after the reload: %s, want seq %d", next.ID, ev.Seq+1)
	}
	tick(t, r)
	if got := mustRound(t, r, "m1"); got.Seq != next.Seq+1 || got.State.Terminal() {
		t.Errorf("round after %s: %s (%s), want the next one open", next.ID, got.ID, got.State)
	}
	if n := auditActions(t, r.store)["campaign.stop ok"]; n != 1 {
		t.Errorf("%d campaign.stop entries, want 1", n)
	}
}

// TestCampaignDecisionWithInfeasibleMerchant: between campaigns a reload
// adds merchant m3 with ε cap 0.001, below what its customer count and
// evaluation alone would spend, and m3 enrols. When the next campaign
// decision fell due, the budget check asked for m3's plan noise, which does
// not exist, and returned the error: every tick failed and retraining never
// resumed. m3 now counts as a merchant that cannot afford the campaign (its
// reason in the decision's details) and the decision is taken.
func TestCampaignDecisionWithInfeasibleMerchant(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	const ret = "  evaluate_every: 30d\n  auc_drop: 0.02\n  max_model_age: 20d\n  campaign_rounds: 1\n  planned_evaluations: 0\n"
	p := campaignPolicy(t, ret)
	f := newFedPolicy(t, b, campaignConfig(1), p)
	f.customers["m1"], f.customers["m2"] = 350, 350
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	trainOnce(t, f, r)
	tick(t, r)
	evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
	tick(t, r)

	src := strings.Split(testPolicy, "merchants:")[0] + "merchants:\n  m1: {}\n  m2: {}\n  m3: {epsilon_cap: 0.001}\nretraining:\n" + ret
	p3, err := policies.Parse("campaign3.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", p3, f.cfg); err != nil {
		t.Fatal(err)
	}
	f.enrol(t, r, "m3")
	f.clock.Add(31 * 24 * time.Hour)
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatalf("tick at the campaign decision: %v", err)
	}
	recs := campaignAudit(t, r)
	last := recs[len(recs)-1]
	if last.Action != "campaign.decide" || last.Details["decision"] != "skip" || !strings.Contains(last.Reason, "of 3 merchants") {
		t.Fatalf("last campaign record %s %q %v, want a decision over 3 merchants", last.Action, last.Reason, last.Details)
	}
}
