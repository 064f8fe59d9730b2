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
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1")
			tick(t, r)
			if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "local cap reached"}); err != nil {
				t.Fatal(err)
			}
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
