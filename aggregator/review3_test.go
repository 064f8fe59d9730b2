package aggregator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestResumeAuditedAfterOutage (review round 3): a stopped merchant that
// asks for the current round is sampled again (merchant.resume), the mirror
// of a stop. The resume was committed and its entry appended afterwards:
// with the audit log down the call failed, yet the merchant stayed resumed
// (its stop cleared, sampled in the next rounds) and no merchant.resume
// entry was ever written. As for a stop (6b), the entry is staged with the
// change and appended once the log is back.
func TestResumeAuditedAfterOutage(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
			if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "local cap reached"}); err != nil {
				t.Fatal(err)
			}
			f.clock.Add(aggregator.MinStoppedFor) // a request within it does not resume (TestStopResumeAlternationBounded)
			if err := r.log.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.svc.CurrentRound(ctx, "m1"); err == nil {
				t.Fatal("current round with the audit log down: no error")
			}
			r.store.Close()
			r2 := f.start(t)
			f.clock.Add(time.Minute) // past the outbox's repair delay
			tick(t, r2)
			ms, err := r2.svc.Merchants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resumed := len(ms) == 1 && ms[0].Stopped == ""
			acts := auditActions(t, r2.store)
			if resumed && acts["merchant.resume ok"] != 1 {
				t.Errorf("m1 resumed (stop cleared) with audit %v: want its merchant.resume entry", acts)
			}
			f.verifyAudit(t, r2)
		})
	}
}

// TestRollbackDuringRoundStays (review round 3, superseded by review 14):
// an operator rolls back a bad version (v3, say poisoned) while a round that
// trains from it is collecting. That round published its version (v4,
// parent v3) and made it active: the rollback was silently undone. Round 3
// kept the round publishing, inactive; since withdrawn versions exist
// (round 8 row 12) that version would be withdrawn at birth, so the
// rollback now cancels the round: no v4, the round failed naming the
// rollback, the active version the operator's and the next round trains
// from it. The update accepted before stays charged (TestRollbackCancelsRound).
func TestRollbackDuringRoundStays(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Minute})
			for range 2 { // v2, v3
				if _, err := f.submitHonest(t, r, "m1"); err != nil {
					t.Fatal(err)
				}
				tick(t, r)
			}
			// Round 4 trains from v3; its update is in when v3 is withdrawn.
			rollbackDuringRound(t, f, r, 2)
			active, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if active.Version != 2 {
				t.Errorf("active after the rollback: v%d (parent %d), want v2, the operator's rollback", active.Version, active.Parent)
			}
			ms, err := r.svc.Models(ctx)
			if err != nil || len(ms) != 3 {
				t.Fatalf("models: %d, %v; want 3 (no version from the cancelled round)", len(ms), err)
			}
			if got := mustRound(t, r, "m1"); got.BaseVersion != 2 {
				t.Errorf("next round %s trains from v%d, want v2", got.ID, got.BaseVersion)
			}
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			cancelled := false
			for _, e := range es {
				if e.Action == "round.cancel" && e.Object == "round/round-000004" && e.Details["state"] == "failed" &&
					strings.Contains(e.Reason, "rollback to version 2") {
					cancelled = true
				}
			}
			if !cancelled {
				t.Errorf("no round.cancel entry of round-000004 naming the rollback")
			}
			f.verifyAudit(t, r)
		})
	}
}

// fedWithM1 starts a federation on b with merchant m1 enrolled and its first
// round open.
func fedWithM1(t *testing.T, b backend, cfg aggregator.RoundConfig) (*fed, *replica) {
	t.Helper()
	f := newFed(t, b, cfg)
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	return f, r
}

// rollbackDuringRound has m1 send its update to the open round, rolls back to
// version to, and lets the round's deadline (a minute) pass and the round
// publish.
func rollbackDuringRound(t *testing.T, f *fed, r *replica, to int) {
	t.Helper()
	if _, err := f.submitHonest(t, r, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Rollback(context.Background(), "admin:alice", to); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	tick(t, r)
}
