package aggregator_test

import (
	"context"
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

// TestRollbackDuringRoundStays (review round 3): an operator rolls back a
// bad version (v3, say poisoned) while a round that trains from it is
// collecting. That round published its version (v4, parent v3) and made it
// active: the rollback was silently undone, and partners were served a
// descendant of the version the operator withdrew. The round still
// publishes (its updates were accepted and debited), but the version stays
// inactive and the round's reason says why; the next round trains from the
// version the operator chose.
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
			// Round 3 trains from v3; its update is in when v3 is withdrawn.
			rollbackDuringRound(t, f, r, 2)
			active, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if active.Version != 2 {
				t.Errorf("active after the in-flight round published: v%d (parent %d), want v2, the operator's rollback", active.Version, active.Parent)
			}
			// v4 is listed, not served: it is withdrawn with v3 (round 8 row 12).
			ms, err := r.svc.Models(ctx)
			if err != nil || len(ms) != 4 {
				t.Fatalf("models: %d, %v; want 4", len(ms), err)
			}
			if v4 := ms[3]; v4.Version != 4 || v4.Parent != 3 || v4.Active || !v4.Withdrawn {
				t.Errorf("v4: version %d parent %d active %v withdrawn %v, want published from v3, not active, withdrawn", v4.Version, v4.Parent, v4.Active, v4.Withdrawn)
			}
			if got := mustRound(t, r, "m1"); got.BaseVersion != 2 {
				t.Errorf("next round %s trains from v%d, want v2", got.ID, got.BaseVersion)
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
