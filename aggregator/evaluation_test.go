package aggregator_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// TestFederatedEvaluation runs a federation with evaluations on both stores:
// the first training round asks for an evaluation of the initial model
// (Every: 2), the second does not, and after the two planned rounds an
// evaluation-only round evaluates the final version. The metrics stored on a
// version come from the sum of the merchants' histograms; here the histograms
// are exact (the aggregator cannot tell) and their sum is, per bin of
// (within 7, days 8–30, none): (0, 100, 300), (100, 100, 100), (0, 0, 0) —
// the hand-worked case of model/fedeval's TestComputeHandWorked scaled by 100:
// AUC@30 8.5/12, AUC@7 5/6, PR-AUC@30 37/63, 3/7 bought within 30 days.
// Each merchant's ledger holds every release, and the plan's noise is
// calibrated with the evaluations in it.
func TestFederatedEvaluation(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r, cut := evaluationFed(t, b)
			halves := map[string][]float64{
				"m1": {0, 60, 140, 50, 60, 40, 0, 0, 0},
				"m2": {0, 40, 160, 50, 40, 60, 0, 0, 0},
			}
			eval := func(m string) *protocol.Evaluation {
				return &protocol.Evaluation{Cutoff: cut, Counts: append([]float64(nil), halves[m]...), Sigma: 20}
			}
			submit := func(u protocol.Update) (protocol.Receipt, error) {
				return r.svc.Submit(ctx, u.Merchant, f.seal(t, u))
			}

			// Round 1 trains and evaluates the initial model.
			round := mustRound(t, r, "m1")
			if round.Plan.Evaluation == nil || round.Plan.Steps != 5 || round.BaseVersion != 1 {
				t.Fatalf("first round: plan %+v base %d, want 5 steps with an evaluation of version 1", round.Plan, round.BaseVersion)
			}
			// (declaring no release, so that the refusal debits nothing)
			probe := f.update(t, round, "m1")
			probe.Release, probe.Customers = protocol.Release{}, protocol.NoisyCount{}
			if _, err := submit(probe); !errors.Is(err, protocol.ErrInvalidUpdate) {
				t.Fatalf("update without the evaluation: got %v, want ErrInvalidUpdate", err)
			}
			for _, m := range []string{"m1", "m2"} {
				u := f.update(t, mustRound(t, r, m), m)
				u.Evaluation = eval(m)
				if _, err := submit(u); err != nil {
					t.Fatalf("%s: %v", m, err)
				}
				f.countReleased(m, round.ID)
			}
			tick(t, r)
			checkMetrics(t, r, 1)

			// Round 2 only trains.
			round = mustRound(t, r, "m1")
			if round.Plan.Evaluation != nil || round.BaseVersion != 2 {
				t.Fatalf("second round: evaluation %+v base %d, want none and 2", round.Plan.Evaluation, round.BaseVersion)
			}
			for _, m := range []string{"m1", "m2"} {
				if _, err := f.submitHonest(t, r, m); err != nil {
					t.Fatalf("%s: %v", m, err)
				}
			}
			tick(t, r)

			// Round 3 evaluates version 3 and trains nothing.
			round = mustRound(t, r, "m1")
			if !round.Plan.EvaluationOnly() || round.BaseVersion != 3 || !round.Selected {
				t.Fatalf("third round: plan %+v base %d selected %v, want evaluation-only of version 3", round.Plan, round.BaseVersion, round.Selected)
			}
			// (A delta here is refused: protocol's TestValidateEvaluation. Sent
			// to the aggregator, its refusal would debit the evaluation it
			// carries, and the plan leaves no room for that.)
			bad := protocol.Update{Version: protocol.Version, Round: round.ID, Merchant: "m1", BaseVersion: 3,
				SchemaHash: f.update(t, round, "m1").SchemaHash}
			var last protocol.Receipt
			for _, m := range []string{"m1", "m2"} {
				u := bad
				u.Merchant, u.Delta, u.Evaluation = m, nil, eval(m)
				var err error
				if last, err = submit(u); err != nil {
					t.Fatalf("%s evaluation-only: %v", m, err)
				}
			}
			tick(t, r)
			checkMetrics(t, r, 3)
			models, err := r.svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(models) != 3 {
				t.Errorf("%d model versions, want 3 (the evaluation round publishes none)", len(models))
			}
			if next := mustRound(t, r, "m1"); next.Plan.Evaluation != nil || next.Plan.Steps != 5 {
				t.Errorf("round after the evaluation: plan %+v, want training without evaluation", next.Plan)
			}

			// Ledger: 2 rounds of 5 steps, one count, 2 evaluations at σ 20.
			z := round.Plan.NoiseMultiplier
			spend := func(evals int) float64 {
				eps, _, err := dp.Epsilon([]dp.Release{
					{Mechanism: dp.Gaussian, Q: 0.02, Z: z, Steps: 10},
					{Mechanism: dp.Gaussian, Q: 1, Z: 30, Steps: 1},
					{Mechanism: dp.Gaussian, Q: 1, Z: 20, Steps: evals},
				}, 1e-6, dp.AccountantOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return eps
			}
			if want := spend(2); math.Abs(last.Epsilon-want) > 1e-9*want {
				t.Errorf("m2's ε after the evaluation: %v, want %v", last.Epsilon, want)
			}
			// The plan spends the cap with its evaluations in it.
			if got := spend(2); got > 1+1e-9 || got < 0.99 {
				t.Errorf("planned spend with evaluations %v, want just below the cap 1", got)
			}
			budgets, err := r.svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, bu := range budgets {
				if bu.Merchant == "m1" && bu.Releases != 5 {
					t.Errorf("m1 made %d releases, want 5 (steps, count, evaluation; steps; evaluation)", bu.Releases)
				}
			}
			f.verifyAudit(t, r)
		})
	}
}

// evaluationFed starts a federation of m1 and m2 (DP counts 350, the
// histograms' totals) whose first round trains and evaluates version 1 at
// cutoff 1998-03-01 (σ 20, edges 0.1 and 0.5; every second round), of two
// planned rounds.
func evaluationFed(t *testing.T, b backend) (*fed, *replica, time.Time) {
	t.Helper()
	cut := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	cfg := aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: 2, PlannedRounds: 2, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: cut, Sigma: 20, Edges: []float64{0.1, 0.5}, Every: 2},
	}
	f := newFed(t, b, cfg)
	f.customers["m1"], f.customers["m2"] = 350, 350
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	return f, r, cut
}

func checkMetrics(t *testing.T, r *replica, version int) {
	t.Helper()
	mv, err := r.svc.Model(context.Background(), version)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"auc_30": 8.5 / 12, "auc_7": 5.0 / 6, "pr_auc_30": 37.0 / 63, "positive_rate_30": 3.0 / 7, "customers": 700,
		"merchants": 2, "noise_sigma": math.Sqrt(800), "cutoff_unix": float64(time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC).Unix()),
	} {
		if got, ok := mv.Metrics[k]; !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("version %d: %s = %v (present %v), want %v", version, k, got, ok, want)
		}
	}
	if se := mv.Metrics["auc_30_se"]; !(se > 0 && se < 0.1) {
		t.Errorf("version %d: auc_30_se %v, want a small positive standard error", version, se)
	}
}

// TestFailedEvaluationNotRepeated: an evaluation-only round that misses its
// quorum is followed by a training round, not by the same evaluation again.
func TestFailedEvaluationNotRepeated(t *testing.T) {
	b := backends(t)[0]
	cut := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	f := newFed(t, b, aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: 2, PlannedRounds: 1, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: cut, Sigma: 20, Edges: []float64{0.1, 0.5}},
	})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	for _, m := range []string{"m1", "m2"} {
		if _, err := f.submitHonest(t, r, m); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	tick(t, r)
	eval := mustRound(t, r, "m1")
	if !eval.Plan.EvaluationOnly() || eval.BaseVersion != 2 {
		t.Fatalf("round after the planned one: %+v base %d, want evaluation-only of version 2", eval.Plan, eval.BaseVersion)
	}
	f.clock.Add(2 * time.Minute) // nobody evaluates: the quorum is missed
	tick(t, r)
	next := mustRound(t, r, "m1")
	if next.Seq != eval.Seq+1 || next.Plan.EvaluationOnly() || next.Plan.Evaluation != nil || next.Plan.Steps != 5 {
		t.Errorf("round after the failed evaluation: seq %d plan %+v, want seq %d training without evaluation", next.Seq, next.Plan, eval.Seq+1)
	}
}

// TestEvaluationNoiseCannotStallPublish: the evaluation σ a merchant
// declares is only bounded below (more noise is its own choice), and the
// plausibility check widens with it. Attack: m2 declares σ = 1e200 with
// ordinary counts. Before, it was accepted (its plausible range overflowed to
// ±Inf, its ε debit was ~0), the sum's σ overflowed, the standard errors
// failed, and publish returned that error on every tick: the round stayed
// aggregating and the federation stopped for good. Now such a histogram is
// refused at acceptance (its plausible range is not finite); a merely huge
// σ (3e153, accepted) gives metrics whose standard error overflows to +Inf,
// which the store cannot hold (before: "json: unsupported value: +Inf" on
// every tick), so the evaluation is noted as undefined; and whatever the
// accepted histograms give (a noise sum that overflows, metrics that are
// undefined), publish notes it in the round's reason instead of failing
// (TestRecordEvaluationUndefined).
func TestEvaluationNoiseCannotStallPublish(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r, cut := evaluationFed(t, b)
			round := mustRound(t, r, "m1")
			counts := []float64{0, 60, 140, 50, 60, 40, 0, 0, 0}
			submit := func(m string, sigma float64) error {
				u := f.update(t, mustRound(t, r, m), m)
				u.Evaluation = &protocol.Evaluation{Cutoff: cut, Counts: append([]float64(nil), counts...), Sigma: sigma}
				_, err := r.svc.Submit(ctx, m, f.seal(t, u))
				return err
			}
			if err := submit("m1", 20); err != nil {
				t.Fatal(err)
			}
			if err := submit("m2", 1e200); !errors.Is(err, aggregator.ErrPolicy) {
				t.Fatalf("evaluation σ 1e200: got %v, want ErrPolicy (its plausible range is unbounded)", err)
			}
			if err := submit("m2", 3e153); err != nil {
				t.Fatalf("evaluation σ 3e153: %v", err)
			}
			if err := r.svc.Tick(ctx); err != nil {
				t.Fatalf("tick after a huge-σ evaluation: %v", err)
			}
			mv, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mv.Version != 2 || mv.Round != round.ID {
				t.Fatalf("active version %d from %q, want 2 from %s", mv.Version, mv.Round, round.ID)
			}
			v1, err := r.svc.Model(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			// The point estimates exist, but the spread of that noise overflows
			// (customers_se = +Inf): nothing is stored, the reason says why.
			if len(v1.Metrics) != 0 {
				t.Errorf("version 1 metrics %v, want none", v1.Metrics)
			}
			if rr := roundSummary(t, r, round.ID); !strings.Contains(rr.Reason, "evaluation of version 1 from 2 merchants undefined") {
				t.Errorf("round %s's reason %q does not say the evaluation is undefined", rr.ID, rr.Reason)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestRecordEvaluationUndefined: seven merchants each declare the largest
// evaluation σ whose plausible range is still finite for 6 cells (5.4e153,
// σ² ≈ 2.9e307); each is accepted, but the sum of their variances overflows,
// so no standard error exists. Before, publish returned that as an error on
// every tick (the round stuck in aggregating, the federation stopped); now
// the version is published and the round's reason says the evaluation is
// undefined, and the evaluated version gets no metrics.
func TestRecordEvaluationUndefined(t *testing.T) {
	ids := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"}
	pol := strings.Replace(testPolicy, "  m1: {}\n", "  m1: {}\n  m5: {}\n  m6: {}\n  m7: {}\n", 1)
	p, err := policies.Parse("test.yaml", []byte(pol))
	if err != nil {
		t.Fatal(err)
	}
	b := backends(t)[0]
	ctx := context.Background()
	cut := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	cfg := aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: len(ids), PlannedRounds: 2, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: cut, Sigma: 20, Edges: []float64{0.5}, Every: 2},
	}
	f := newFedPolicy(t, b, cfg, p)
	r := f.start(t)
	f.enrol(t, r, ids...)
	tick(t, r)
	round := mustRound(t, r, "m1")
	for _, m := range ids {
		f.customers[m] = 300
		u := f.update(t, mustRound(t, r, m), m)
		u.Evaluation = &protocol.Evaluation{Cutoff: cut, Counts: []float64{10, 40, 100, 20, 30, 100}, Sigma: 5.4e153}
		if _, err := r.svc.Submit(ctx, m, f.seal(t, u)); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatalf("tick: %v", err)
	}
	mv, err := r.svc.Model(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Version != 2 || mv.Round != round.ID {
		t.Fatalf("active version %d from %q, want 2 from %s", mv.Version, mv.Round, round.ID)
	}
	if v1, err := r.svc.Model(ctx, 1); err != nil || len(v1.Metrics) != 0 {
		t.Errorf("version 1 metrics %v (%v), want none", v1.Metrics, err)
	}
	if rr := roundSummary(t, r, round.ID); !strings.Contains(rr.Reason, "evaluation of version 1 from 7 merchants undefined") {
		t.Errorf("round %s's reason %q does not say the evaluation is undefined", rr.ID, rr.Reason)
	}
}
