package aggregator_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/hazard"
)

func mustRound(t testing.TB, r *replica, merchant string) protocol.Round {
	t.Helper()
	round, err := r.svc.CurrentRound(context.Background(), merchant)
	if err != nil {
		t.Fatalf("current round: %v", err)
	}
	return round
}

func tick(t testing.TB, r *replica) {
	t.Helper()
	if err := r.svc.Tick(context.Background()); err != nil {
		t.Fatalf("tick: %v", err)
	}
}

// TestRoundLifecycle walks the state machine: open → collecting → (deadline,
// quorum missed) failed → next round → collecting → (deadline, quorum met)
// aggregating → published, and the early close when every sampled merchant sent.
func TestRoundLifecycle(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 2})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2", "m3")

			// Round 1 opened before anyone enrolled: Tick replaces it by round 2 with all three sampled.
			if got := mustRound(t, r, "m1"); got.Seq != 1 || got.State != protocol.RoundOpen || got.Selected {
				t.Fatalf("before tick: got seq %d state %s selected %v, want 1 open false", got.Seq, got.State, got.Selected)
			}
			tick(t, r)
			round := mustRound(t, r, "m1")
			if round.Seq != 2 || round.State != protocol.RoundOpen || !round.Selected || round.BaseVersion != 1 || round.Quorum != 2 {
				t.Fatalf("round after tick: got %+v, want seq 2 open selected base 1 quorum 2", round)
			}

			// One update: collecting; quorum 2 missed at the deadline → failed, next opens.
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			if got := mustRound(t, r, "m1").State; got != protocol.RoundCollecting {
				t.Fatalf("after one update: got state %s, want collecting", got)
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 2 || got.State != protocol.RoundCollecting {
				t.Fatalf("tick before deadline: got seq %d %s, want 2 collecting", got.Seq, got.State)
			}
			f.clock.Add(time.Minute)
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 3 || got.State != protocol.RoundOpen || got.BaseVersion != 1 {
				t.Fatalf("after missed quorum: got seq %d %s base %d, want 3 open base 1", got.Seq, got.State, got.BaseVersion)
			}
			// A straggler for the failed round is refused.
			late := f.update(t, round, "m2")
			if _, err := r.svc.Submit(ctx, "m2", f.seal(t, late)); !errors.Is(err, aggregator.ErrRoundClosed) {
				t.Fatalf("late update: got %v, want ErrRoundClosed", err)
			}

			// Round 3: two of three by the deadline → published as version 2.
			for _, m := range []string{"m1", "m2"} {
				if _, err := f.submitHonest(t, r, m); err != nil {
					t.Fatalf("submit %s: %v", m, err)
				}
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 3 {
				t.Fatalf("before deadline with quorum: got seq %d, want 3 (wait for stragglers)", got.Seq)
			}
			f.clock.Add(time.Minute)
			tick(t, r)
			next := mustRound(t, r, "m3")
			if next.Seq != 4 || next.BaseVersion != 2 || next.State != protocol.RoundOpen {
				t.Fatalf("after publish: got seq %d base %d %s, want 4 base 2 open", next.Seq, next.BaseVersion, next.State)
			}
			mv, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mv.Version != 2 || mv.Parent != 1 || mv.Round != "round-000003" || !mv.Active || len(mv.Contributions) != 2 {
				t.Fatalf("active model: got v%d parent %d round %q active %v %d contributions, want v2 parent 1 round-000003 active 2",
					mv.Version, mv.Parent, mv.Round, mv.Active, len(mv.Contributions))
			}
			budgets, err := r.svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range mv.Contributions {
				for _, b := range budgets {
					if b.Merchant == c.Merchant && b.Epsilon != c.Epsilon {
						t.Errorf("contribution %s: got ε %v, want the ledger's %v", c.Merchant, c.Epsilon, b.Epsilon)
					}
				}
				if math.Abs(c.Weight-0.5) > 1e-12 {
					t.Errorf("contribution %s: got weight %v, want 0.5 (equal DP counts)", c.Merchant, c.Weight)
				}
			}

			// Round 4: all three sampled merchants send → closes before the deadline.
			for _, m := range []string{"m1", "m2", "m3"} {
				if _, err := f.submitHonest(t, r, m); err != nil {
					t.Fatalf("submit %s: %v", m, err)
				}
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 5 || got.BaseVersion != 3 {
				t.Fatalf("after everyone sent: got seq %d base %d, want 5 base 3", got.Seq, got.BaseVersion)
			}
			acts := auditActions(t, r.store)
			for k, want := range map[string]int{
				"merchant.enrol ok": 3, "round.update.accept ok": 6, "round.update.accept denied": 1,
				"round.fail error": 2, "round.publish ok": 2, "round.aggregate ok": 2, "round.open ok": 5,
			} {
				if acts[k] != want {
					t.Errorf("audit %q: got %d entries, want %d (all: %v)", k, acts[k], want, acts)
				}
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestPublishMath checks a published version against the merge computed by hand:
// FedAvg weighted by the DP counts (shares 1/2, 1/3, 1/6: the largest just at
// the default cap of half the weight), then one FedAdam step from zero
// moments, which moves every coordinate by lr·(1−β₁)·Δ/(√((1−β₂)Δ²)+τ). The
// version names the derived norm bound LR·Steps·C·(1 + z·√d/(q·m)).
func TestPublishMath(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 3})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2", "m3")
	tick(t, r)
	round := mustRound(t, r, "m1")
	u1, u2, u3 := f.update(t, round, "m1"), f.update(t, round, "m2"), f.update(t, round, "m3")
	for i := range u1.Delta {
		u1.Delta[i], u2.Delta[i], u3.Delta[i] = 0.1, -0.2, 0.4
	}
	u1.Customers.Value, u2.Customers.Value, u3.Customers.Value = 300, 200, 100
	for _, u := range []protocol.Update{u1, u2, u3} {
		if _, err := r.svc.Submit(ctx, u.Merchant, f.seal(t, u)); err != nil {
			t.Fatal(err)
		}
	}
	tick(t, r)
	base, err := hazard.Unmarshal(round.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	mv, err := r.svc.Model(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		t.Fatal(err)
	}
	d := 0.1/2 - 0.2/3 + 0.4/6 // 0.05
	step := 0.01 * 0.1 * d / (math.Sqrt(0.01*d*d) + 1e-3)
	for i := range got.Params {
		if want := base.Params[i] + step; math.Abs(got.Params[i]-want) > 1e-12 {
			t.Fatalf("param %d: got %v, want %v", i, got.Params[i], want)
		}
	}
	if w := mv.Contributions[0].Weight; math.Abs(w-0.5) > 1e-12 {
		t.Errorf("weight of m1: got %v, want 0.5", w)
	}
	p := round.Plan // LR 0.5, 10 steps, C 1, q 0.05; m = 100 in testPolicy
	bound := 0.5 * 10 * 1 * (1 + p.NoiseMultiplier*math.Sqrt(float64(len(base.Params)))/(0.05*100))
	if want := fmt.Sprintf("fedavg norm≤%.6g share≤0.5 + fedadam(lr=0.01, tau=0.001, t=1)", bound); mv.Merge != want {
		t.Errorf("merge: got %q, want %q", mv.Merge, want)
	}
}

// TestPlanCalibration checks the served plan against the accountant: the
// planned rounds of DP-SGD plus one count (released once) spend the cap (to the calibration's
// precision), and one more round would exceed it.
func TestPlanCalibration(t *testing.T) {
	b := backends(t)[0]
	cfg := aggregator.RoundConfig{Deadline: time.Minute, PlannedRounds: 8, StepsPerRound: 5, SamplingRate: 0.02, CountNoise: 30}
	f := newFed(t, b, cfg)
	r := f.start(t)
	f.enrol(t, r, "m1", "poor")
	for _, tc := range []struct {
		merchant string
		cap      float64
	}{{"m1", 1}, {"poor", 0.5}} {
		p := mustRound(t, r, tc.merchant).Plan
		if p.ClipNorm != 1 || p.Delta != 1e-6 || p.Steps != 5 || p.SamplingRate != 0.02 || p.CountNoise != 30 {
			t.Fatalf("%s plan: got %+v", tc.merchant, p)
		}
		spend := func(rounds int) float64 {
			eps, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: 0.02, Z: p.NoiseMultiplier, Steps: 5 * rounds},
				{Mechanism: dp.Gaussian, Q: 1, Z: 30, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return eps
		}
		if got := spend(8); got > tc.cap*(1+1e-9) || got < tc.cap*0.99 {
			t.Errorf("%s: 8 planned rounds at z=%v spend ε %v, want just below %v", tc.merchant, p.NoiseMultiplier, got, tc.cap)
		}
		if got := spend(9); got <= tc.cap {
			t.Errorf("%s: a 9th round spends ε %v, want above the cap %v", tc.merchant, got, tc.cap)
		}
		if p.NoiseMultiplier < 0.5 {
			t.Errorf("%s: z %v below the policy minimum 0.5", tc.merchant, p.NoiseMultiplier)
		}
	}
}
