package aggregator_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestStopFloodBounded: POST /v1/merchants/me:stop wrote an audit entry
// for every call. A merchant token (a malicious merchant, or a stolen
// token) that sent a stop with a NUL in its reason, refused and changing
// nothing, grew the never-pruned log by one entry per request, outside
// the window that bounds refused submissions (round 3, row 10); a stop
// of a merchant already stopped changed nothing either and was audited
// each time. Now a refused stop shares the merchant's refusal window (30
// audited one by one a minute, the rest counted in one summary), and a
// stop of a stopped merchant is answered without a change or an entry.
func TestStopFloodBounded(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			const flood = 200
			for i := range flood {
				err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "bad\x00" + strconv.Itoa(i)})
				if !errors.Is(err, aggregator.ErrPolicy) {
					t.Fatalf("stop %d with a NUL: %v, want ErrPolicy", i, err)
				}
			}
			for i := range flood {
				if err := r.svc.StopMerchant(ctx, "m2", protocol.MerchantStop{Reason: "cap reached " + strconv.Itoa(i)}); err != nil {
					t.Fatalf("stop %d of m2: %v", i, err)
				}
			}
			acts := auditActions(t, r.store)
			if got := acts["merchant.stop denied"]; got != aggregator.MaxAuditedRefusals {
				t.Errorf("refused stops audited one by one: %d, want %d", got, aggregator.MaxAuditedRefusals)
			}
			if got := acts["merchant.stop ok"]; got != 1 {
				t.Errorf("stops of m2 audited: %d, want 1 (the first; the others changed nothing)", got)
			}
			f.clock.Add(aggregator.RefusalWindow)
			tick(t, r)
			if got := auditActions(t, r.store)["round.update.refusals denied"]; got != 1 {
				t.Errorf("summaries after the window: %d, want 1", got)
			}
			// Asking for a round resumes m2; a stop after that is a change again.
			if _, err := r.svc.CurrentRound(ctx, "m2"); err != nil {
				t.Fatal(err)
			}
			if err := r.svc.StopMerchant(ctx, "m2", protocol.MerchantStop{Reason: "cap reached again"}); err != nil {
				t.Fatal(err)
			}
			acts = auditActions(t, r.store)
			if acts["merchant.stop ok"] != 2 || acts["merchant.resume ok"] != 1 {
				t.Errorf("after a resume: %d stops and %d resumes audited, want 2 and 1", acts["merchant.stop ok"], acts["merchant.resume ok"])
			}
			f.verifyAudit(t, r)
		})
	}
}
