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
)

// evalFed is a federation of m1, m2 and m3 that trains one round (each
// merchant releasing the DP count customers[m]) and then opens the
// evaluation-only round of version 2 (three bins, σ 20 per cell).
func evalFed(t *testing.T, b backend, customers map[string]float64) (*fed, *replica, protocol.Round) {
	t.Helper()
	cut := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	f := newFed(t, b, aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: 2, PlannedRounds: 1, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: cut, Sigma: 20, Edges: []float64{0.1, 0.5}},
	})
	for m, c := range customers {
		f.customers[m] = c
	}
	r := f.start(t)
	f.enrol(t, r, "m1", "m2", "m3")
	tick(t, r)
	for _, m := range []string{"m1", "m2", "m3"} {
		if _, err := f.submitHonest(t, r, m); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	tick(t, r)
	round := mustRound(t, r, "m1")
	if !round.Plan.EvaluationOnly() || round.BaseVersion != 2 {
		t.Fatalf("round after training: plan %+v base %d, want the evaluation-only round of version 2", round.Plan, round.BaseVersion)
	}
	return f, r, round
}

// evaluate submits merchant's evaluation histogram in the evaluation-only round.
func evaluate(t *testing.T, f *fed, r *replica, round protocol.Round, merchant string, counts []float64) error {
	t.Helper()
	u := protocol.Update{
		Version: protocol.Version, Round: round.ID, Merchant: merchant, BaseVersion: round.BaseVersion,
		SchemaHash: f.update(t, round, merchant).SchemaHash,
		Evaluation: &protocol.Evaluation{Cutoff: round.Plan.Evaluation.Cutoff, Counts: counts, Sigma: 20},
	}
	_, err := r.svc.Submit(context.Background(), merchant, f.seal(t, u))
	return err
}

// honestHalf is m1's and m2's histogram: together the hand-worked case of
// checkMetrics, (0, 100, 300), (100, 100, 100), (0, 0, 0).
func honestHalf() []float64 { return []float64{0, 50, 150, 50, 50, 50, 0, 0, 0} }

// TestFabricatedEvaluation: in the evaluation-only round m3, whose released
// customer count is 300, sends 1e9 customers in each of the cells that make
// a model look perfect (lowest bin: no purchase; highest bin: purchases).
// The histogram is refused before it is merged — a cell of 1e9 customers
// against a count of 300 (σ 30) is far above 1.5·300 + 6·√(30² + 9·20²) —
// and so is one whose cells are each plausible but whose total is not; the
// refusals are audited as denied with their reasons, and the version's metrics come from m1
// and m2 alone: the hand-worked AUC@30 8.5/12 on 700 customers.
func TestFabricatedEvaluation(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f, r, round := evalFed(t, b, map[string]float64{"m1": 350, "m2": 350, "m3": 300})
			for _, m := range []string{"m1", "m2"} {
				if err := evaluate(t, f, r, round, m, honestHalf()); err != nil {
					t.Fatalf("%s: %v", m, err)
				}
			}
			fake := []float64{0, 0, 1e9, 0, 0, 0, 1e9, 1e9, 0}
			err := evaluate(t, f, r, round, "m3", fake)
			if !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "cell 2 (bin 0, class 2) = 1e+09") {
				t.Fatalf("fabricated evaluation: got %v, want ErrPolicy naming cell 2's 1e9 customers", err)
			}
			// Every cell within the bound, the total not: 9 × 800 customers
			// against 300 + 6·√(30² + 9·20²) = 702.5 (and 1.5·300 + 402.5 = 852.5
			// for growth since the count).
			spread := []float64{800, 800, 800, 800, 800, 800, 800, 800, 800}
			if err := evaluate(t, f, r, round, "m3", spread); !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "7200 customers in total, outside [-102.5, 852.5]") {
				t.Fatalf("implausible total: got %v, want ErrPolicy naming the total and its range", err)
			}
			f.clock.Add(2 * time.Minute)
			tick(t, r)
			checkMetrics(t, r, 2)

			var denied []string
			es, err := r.store.AuditEntries(context.Background(), 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Action == "round.update.accept" && e.Outcome == "denied" {
					denied = append(denied, e.Reason)
				}
			}
			if len(denied) != 2 || !strings.Contains(denied[0], "evaluation: implausible evaluation histogram") {
				t.Errorf("denied acceptances in the audit log: %q, want the two refused evaluations with their reasons", denied)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestEvaluationShareCap: m3 released a count of 2,000 and sends a
// consistent histogram of 2,000 customers, all in the perfect cells. It is
// accepted, but holds 2000/2700 of the customers evaluated; the aggregate
// scales it to half (the default max_weight_share), 700 customers, so the
// sum is (0, 100, 650), (100, 100, 100), (350, 0, 0): AUC@30 =
// (100·650/2 + 200·650 + 200·100/2 + 350·750) / (650·750) = 435000/487500,
// where the uncapped sum would give 1735000/1820000.
func TestEvaluationShareCap(t *testing.T) {
	b := backends(t)[0]
	f, r, round := evalFed(t, b, map[string]float64{"m1": 350, "m2": 350, "m3": 2000})
	for _, m := range []string{"m1", "m2"} {
		if err := evaluate(t, f, r, round, m, honestHalf()); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	if err := evaluate(t, f, r, round, "m3", []float64{0, 0, 1000, 0, 0, 0, 1000, 0, 0}); err != nil {
		t.Fatalf("m3's consistent histogram: %v", err)
	}
	tick(t, r)
	mv, err := r.svc.Model(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mv.Metrics["auc_30"], 435000.0/487500; math.Abs(got-want) > 1e-9 {
		t.Errorf("AUC@30 %v, want %v (m3 at half the customers)", got, want)
	}
	if got := mv.Metrics["customers"]; math.Abs(got-1400) > 1e-9 {
		t.Errorf("customers %v, want 1400", got)
	}
}
