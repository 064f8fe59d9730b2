package aggregator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/policies"
)

// TestRoundClosesWhenOthersStopped: m1 sends, m2 says it stopped (its own
// cap), m3 is still expected → the round waits; once m3 stops too, the next
// Tick publishes the round long before its hour-long deadline, and the next
// round samples only m1. m2 asking for a round again makes it sampled again.
func TestRoundClosesWhenOthersStopped(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2", "m3")
			tick(t, r) // round 1 had no merchants: round 2 samples all three
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			if err := r.svc.StopMerchant(ctx, "m2", protocol.MerchantStop{Reason: "local privacy cap reached", LocalEpsilonCap: 0.8, LocalDelta: 1e-6}); err != nil {
				t.Fatal(err)
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 2 || got.State != protocol.RoundCollecting {
				t.Fatalf("m3 still expected: got round %d %s, want 2 collecting", got.Seq, got.State)
			}
			if err := r.svc.StopMerchant(ctx, "m3", protocol.MerchantStop{Reason: "shutting down"}); err != nil {
				t.Fatal(err)
			}
			f.clock.Add(time.Second) // far from the deadline
			tick(t, r)
			got := mustRound(t, r, "m1")
			if got.Seq != 3 || got.State != protocol.RoundOpen || got.BaseVersion != 2 {
				t.Fatalf("after every other merchant stopped: got round %d %s base %d, want 3 open base 2", got.Seq, got.State, got.BaseVersion)
			}
			ms, err := r.svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 2 || len(ms[1].Contributions) != 1 || ms[1].Contributions[0].Merchant != "m1" {
				t.Fatalf("models: got %+v, want version 2 from m1 alone", ms)
			}
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var reason string
			for _, e := range es {
				if e.Action == "round.aggregate" && e.Object == "round/round-000002" {
					reason = e.Reason
				}
			}
			for _, want := range []string{"1 of 3", "m2: local privacy cap reached", "m3: shutting down"} {
				if !strings.Contains(reason, want) {
					t.Errorf("round.aggregate reason %q lacks %q", reason, want)
				}
			}
			// Round 3 was opened after both stopped: only m1 is sampled.
			if mustRound(t, r, "m1").Selected != true {
				t.Error("m1 not sampled in round 3")
			}
			// m2 asks again (a restarted client): it is no longer stopped, and
			// is sampled from the next round on.
			f.clock.Add(aggregator.MinStoppedFor) // not within it (TestStopResumeAlternationBounded)
			if mustRound(t, r, "m2").Selected {
				t.Error("stopped m2 sampled in round 3")
			}
			if _, err := r.svc.CancelRound(ctx, "admin:test", "", "resample"); err != nil {
				t.Fatal(err)
			}
			if got := mustRound(t, r, "m2"); got.Seq != 4 || !got.Selected {
				t.Errorf("after m2 resumed: round %d selected %v, want 4 true", got.Seq, got.Selected)
			}
			acts := auditActions(t, r.store)
			if acts["merchant.stop ok"] != 2 || acts["merchant.resume ok"] != 1 {
				t.Errorf("audit: %v, want 2 merchant.stop ok and 1 merchant.resume ok", acts)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestCancelRoundAndReload: a reload changes the cutoffs of rounds opened
// from then on, not the open round's; cancelling the open round applies them
// at once. Both are audited, the reload with the new policy hash; a published
// round cannot be cancelled, an unknown one is not found.
func TestCancelRoundAndReload(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	if got := mustRound(t, r, "m1"); got.Seq != 2 || len(got.Plan.Cutoffs) != 0 {
		t.Fatalf("round 2: seq %d cutoffs %v, want 2 and none", got.Seq, got.Plan.Cutoffs)
	}
	p2, err := policies.Parse("p2.yaml", []byte(strings.Replace(testPolicy, "epsilon_cap: 1.0", "epsilon_cap: 2.0", 1)))
	if err != nil {
		t.Fatal(err)
	}
	cut := []time.Time{time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(1997, 11, 1, 0, 0, 0, 0, time.UTC)}
	out, err := r.svc.Reload(ctx, "admin:ops", p2, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, Cutoffs: cut})
	if err != nil {
		t.Fatal(err)
	}
	if out.PolicyHash != p2.Hash() || out.PreviousPolicyHash != f.policy.Hash() || out.PolicyHash == out.PreviousPolicyHash {
		t.Fatalf("reload: got %+v, want %s after %s", out, p2.Hash(), f.policy.Hash())
	}
	if got := mustRound(t, r, "m1"); got.Seq != 2 || len(got.Plan.Cutoffs) != 0 || got.PolicyHash != p2.Hash() {
		t.Fatalf("open round after reload: seq %d cutoffs %v policy %s; want its old plan under the new policy", got.Seq, got.Plan.Cutoffs, got.PolicyHash)
	}
	if _, err := r.svc.CancelRound(ctx, "admin:ops", "", "apply the new cutoffs"); err != nil {
		t.Fatal(err)
	}
	got := mustRound(t, r, "m1")
	if got.Seq != 3 || got.State != protocol.RoundOpen || len(got.Plan.Cutoffs) != 2 || !got.Plan.Cutoffs[1].Equal(cut[1]) {
		t.Fatalf("after cancel: round %d %s cutoffs %v, want 3 open with %v", got.Seq, got.State, got.Plan.Cutoffs, cut)
	}
	if _, err := r.svc.CancelRound(ctx, "admin:ops", "round-000002", ""); !errors.Is(err, aggregator.ErrConflict) {
		t.Errorf("cancel a failed round: got %v, want ErrConflict", err)
	}
	if _, err := r.svc.CancelRound(ctx, "admin:ops", "round-000099", ""); !errors.Is(err, aggregator.ErrNotFound) {
		t.Errorf("cancel an unknown round: got %v, want ErrNotFound", err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", p2, aggregator.RoundConfig{Quorum: -1}); !errors.Is(err, aggregator.ErrPolicy) {
		t.Errorf("reload with quorum -1: got %v, want ErrPolicy", err)
	}
	es, err := r.store.AuditEntries(ctx, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var reloads, cancels []string
	for _, e := range es {
		switch e.Action {
		case "config.reload":
			reloads = append(reloads, string(e.Outcome)+" "+e.Actor+" "+e.Details["policy_hash"])
		case "round.cancel":
			cancels = append(cancels, string(e.Outcome)+" "+e.Actor+" "+e.Object)
		}
	}
	wantReloads := []string{"ok admin:ops " + p2.Hash(), "denied admin:ops " + p2.Hash()}
	if strings.Join(reloads, "|") != strings.Join(wantReloads, "|") {
		t.Errorf("config.reload entries: got %q, want %q", reloads, wantReloads)
	}
	wantCancels := []string{"ok admin:ops round/round-000002", "denied admin:ops round/round-000002", "denied admin:ops round/round-000099"}
	if strings.Join(cancels, "|") != strings.Join(wantCancels, "|") {
		t.Errorf("round.cancel entries: got %q, want %q", cancels, wantCancels)
	}
	f.verifyAudit(t, r)
}

// TestReloadRefusesSecureWithoutItsPolicy: turning secure aggregation on by
// reload is refused (and audited as denied) while the policy sets no
// aggregation.min_cohort, and so is secure aggregation beside a retraining
// block; the rounds in force stay plain.
func TestReloadRefusesSecureWithoutItsPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	secure := aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, SecureAggregation: true}
	if _, err := r.svc.Reload(ctx, "admin:ops", f.policy, secure); !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "min_cohort") {
		t.Errorf("secure without min_cohort: got %v, want ErrPolicy naming min_cohort", err)
	}
	withCohort := strings.Split(testPolicy, "merchants:")[0] + "merchants:\n  m1: {}\n  m2: {}\n"
	withCohort = strings.Replace(withCohort, "aggregation:\n", "aggregation:\n  min_cohort: 2\n", 1)
	if !strings.Contains(withCohort, "min_cohort: 2") {
		withCohort += "aggregation:\n  min_cohort: 2\n"
	}
	both := withCohort + "retraining:\n  evaluate_every: 30d\n  auc_drop: 0.02\n  campaign_rounds: 1\n"
	p, err := policies.Parse("both.yaml", []byte(both))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", p, secure); !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "retraining") {
		t.Errorf("secure beside retraining: got %v, want ErrPolicy naming retraining", err)
	}
	ok, err := policies.Parse("cohort.yaml", []byte(withCohort))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", ok, secure); err != nil {
		t.Errorf("secure with min_cohort 2: %v", err)
	}
	es, err := r.store.AuditEntries(ctx, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Action == "config.reload" {
			got = append(got, string(e.Outcome))
		}
	}
	if strings.Join(got, " ") != "denied denied ok" {
		t.Errorf("config.reload outcomes %v, want denied denied ok", got)
	}
}

// reloadDuringRound has m1 and m2 send updates to the open round, reloads
// policy (testPolicy edited by edit) and ticks past the deadline: the tick
// must publish version 2 from m1's update alone, the round's reason naming
// m2's left out. It returns the replica for more.
func reloadDuringRound(t *testing.T, edit func(string) string) (*fed, *replica) {
	t.Helper()
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	round := mustRound(t, r, "m1")
	for _, m := range []string{"m1", "m2"} {
		if _, err := f.submitHonest(t, r, m); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	reloadPolicy(t, r, f, edit(testPolicy))
	f.clock.Add(time.Minute)
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatalf("tick after the reload: %v", err)
	}
	mv, err := r.svc.Model(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Version != 2 || mv.Round != round.ID || len(mv.Contributions) != 1 || mv.Contributions[0].Merchant != "m1" {
		t.Fatalf("published: v%d from %q with %+v, want v2 from %s with m1 alone", mv.Version, mv.Round, mv.Contributions, round.ID)
	}
	if rr := roundSummary(t, r, round.ID); !strings.Contains(rr.Reason, "left out the updates of m2") {
		t.Errorf("round %s's reason %q does not name m2's update left out", rr.ID, rr.Reason)
	}
	return f, r
}

func reloadPolicy(t *testing.T, r *replica, f *fed, doc string) {
	t.Helper()
	p, err := policies.Parse("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(context.Background(), "admin:ops", p, f.cfg); err != nil {
		t.Fatal(err)
	}
}

func roundSummary(t *testing.T, r *replica, id string) protocol.RoundSummary {
	t.Helper()
	st, err := r.svc.Status(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range st.Rounds {
		if rr.ID == id {
			return rr
		}
	}
	t.Fatalf("round %s not in the status", id)
	return protocol.RoundSummary{}
}

// TestReloadRemovingMerchantDuringRound: m1 and m2 have updates accepted in
// the open round; a reload then removes m2 from the policy (a misbehaving
// merchant cut off). Before, publish looked up every contributor's policy and
// failed on m2 on every tick: the round stayed aggregating and the federation
// stopped until m2 was put back. Now m2's update is left out of the merge
// (it stays debited) with a note in the round's reason, and m1's is
// published; a round left with no update from a merchant in the policy fails.
func TestReloadRemovingMerchantDuringRound(t *testing.T) {
	without := func(ids ...string) func(string) string {
		return func(doc string) string {
			for _, id := range ids {
				doc = strings.Replace(doc, "  "+id+": {}\n", "", 1)
			}
			return doc
		}
	}
	f, r := reloadDuringRound(t, without("m2"))

	// Next round: m1 sends, then m1 is removed too: nothing left to merge.
	next := mustRound(t, r, "m1")
	if _, err := f.submitHonest(t, r, "m1"); err != nil {
		t.Fatal(err)
	}
	reloadPolicy(t, r, f, without("m1", "m2")(testPolicy))
	f.clock.Add(time.Minute)
	if err := r.svc.Tick(context.Background()); err != nil {
		t.Fatalf("tick after every contributor left the policy: %v", err)
	}
	if rr := roundSummary(t, r, next.ID); rr.State != protocol.RoundFailed {
		t.Errorf("round %s: %s (%s), want failed", rr.ID, rr.State, rr.Reason)
	}
	f.verifyAudit(t, r)
}

// TestReloadInfeasibleCapDuringRound: as above, but the reload lowers m2's ε
// cap to 0.001, below what its customer count alone spends, so no plan
// exists for it. Before, publish derived the norm bound from every
// contributor's plan and failed on m2's on every tick (the federation
// stopped); now m2's update is left out like that of a merchant no longer
// in the policy.
func TestReloadInfeasibleCapDuringRound(t *testing.T) {
	f, r := reloadDuringRound(t, func(doc string) string {
		return strings.Replace(doc, "  m2: {}\n", "  m2: {epsilon_cap: 0.001}\n", 1)
	})
	f.verifyAudit(t, r)
}

// TestConcurrentReloads: a SIGHUP and an API call reload at the same moment.
// Reload took the previous policy, appended its entry and installed its
// policy without holding anything across the three, so the two could
// interleave: the policy in force was then not the one of the last
// config.reload entry, and an entry's previous_policy_hash not the policy it
// replaced. Reloads are serialised now: after every pair, the policy in force
// is the last entry's, and every entry's previous hash is its predecessor's.
// Run with -race.
func TestConcurrentReloads(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	ps := []*policies.Policy{f.policy, policyCap2(t)}
	if ps[0].Hash() == ps[1].Hash() {
		t.Fatal("the two policies hash alike")
	}
	for i := range 60 {
		var wg sync.WaitGroup
		for j, actor := range []string{"admin:sighup", "admin:api"} {
			wg.Go(func() {
				if _, err := r.svc.Reload(ctx, actor, ps[(i+j)%2], f.cfg); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		es, err := r.store.AuditEntries(ctx, 1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var last map[string]string
		for _, e := range es {
			if e.Action != "config.reload" || e.Outcome != audit.OutcomeOK {
				continue
			}
			if last != nil && e.Details["previous_policy_hash"] != last["policy_hash"] {
				t.Fatalf("pair %d: entry %d replaced policy %s, the entry before installed %s", i, e.Seq, e.Details["previous_policy_hash"], last["policy_hash"])
			}
			last = e.Details
		}
		if got := r.svc.Policy().Hash(); got != last["policy_hash"] {
			t.Fatalf("pair %d: policy %s in force, the last config.reload entry installed %s", i, got, last["policy_hash"])
		}
	}
}
