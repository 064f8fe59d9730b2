package aggregator_test

import (
	"context"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestStopResumeAlternationBounded: a merchant token alternating
// POST /v1/merchants/me:stop with a request for the current round (which
// resumes a stopped merchant) made a real change each time, each audited:
// an entry per request at the merchant's request rate, in a log never
// pruned. A stopped merchant now stays stopped for aggregator.MinStoppedFor
// after its stop: a request for the round within it answers without
// resuming it (no change, no entry), and the first one after resumes it,
// audited as before. No change that takes effect goes unaudited: the
// stopped state read back matches the entries at every step.
func TestStopResumeAlternationBounded(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
			stopped := func() bool {
				t.Helper()
				ms, err := r.svc.Merchants(ctx)
				if err != nil || len(ms) != 1 {
					t.Fatalf("merchants: %+v, %v", ms, err)
				}
				return ms[0].Stopped != ""
			}
			const flood = 200
			for i := range flood {
				if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "cap reached"}); err != nil {
					t.Fatalf("stop %d: %v", i, err)
				}
				if _, err := r.svc.CurrentRound(ctx, "m1"); err != nil {
					t.Fatalf("current round %d: %v", i, err)
				}
				f.clock.Add(10 * time.Millisecond)
			}
			acts := auditActions(t, r.store)
			if acts["merchant.stop ok"] != 1 || acts["merchant.resume ok"] != 0 || !stopped() {
				t.Errorf("after %d stops and requests within %v: %d stops and %d resumes audited, stopped %v; want 1, 0, stopped",
					flood, aggregator.MinStoppedFor, acts["merchant.stop ok"], acts["merchant.resume ok"], stopped())
			}
			// MinStoppedFor after the stop, the next request resumes it.
			f.clock.Add(aggregator.MinStoppedFor - flood*10*time.Millisecond)
			if _, err := r.svc.CurrentRound(ctx, "m1"); err != nil {
				t.Fatal(err)
			}
			acts = auditActions(t, r.store)
			if acts["merchant.resume ok"] != 1 || stopped() {
				t.Errorf("a request %v after the stop: %d resumes audited, stopped %v; want 1, resumed", aggregator.MinStoppedFor, acts["merchant.resume ok"], stopped())
			}
			// A stop right after the resume is a change again, audited.
			if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "cap reached again"}); err != nil {
				t.Fatal(err)
			}
			if acts = auditActions(t, r.store); acts["merchant.stop ok"] != 2 || !stopped() {
				t.Errorf("a stop after the resume: %d stops audited, stopped %v; want 2, stopped", acts["merchant.stop ok"], stopped())
			}
			f.verifyAudit(t, r)
		})
	}
}
