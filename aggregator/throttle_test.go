package aggregator_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/crypto/seal"
)

// TestRefusalFloodBounded: a stolen merchant token sending garbage envelopes
// (refused before decryption, nothing debited) wrote one audit entry per
// request, so the never-pruned log grew at the attacker's request rate.
// Now each window audits MaxAuditedRefusals of them one by one and one entry
// counts the rest, written at the merchant's next refusal after the window
// or by Tick; refusals are still answered as refusals. Another merchant's
// refusals are not held back by the first one's flood.
func TestRefusalFloodBounded(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			const flood = 500
			for i := range flood {
				if _, err := r.svc.Submit(ctx, "m1", []byte("garbage "+strconv.Itoa(i))); !errors.Is(err, seal.ErrMalformed) {
					t.Fatalf("submission %d: %v, want ErrMalformed", i, err)
				}
			}
			if _, err := r.svc.Submit(ctx, "m2", []byte("garbage")); !errors.Is(err, seal.ErrMalformed) {
				t.Fatal(err)
			}
			// m2's secure-round messages share its window: one refusal
			// above, so 29 of 40 garbage messages are audited one by one.
			for i := range 40 {
				if _, err := r.svc.SubmitSecure(ctx, "m2", []byte("garbage "+strconv.Itoa(i))); err == nil {
					t.Fatalf("secure garbage %d accepted", i)
				}
			}
			acts := auditActions(t, r.store)
			if got := acts["round.secure.message denied"]; got != aggregator.MaxAuditedRefusals-1 {
				t.Errorf("secure refusals audited one by one: %d, want %d", got, aggregator.MaxAuditedRefusals-1)
			}
			if got := acts["round.update.accept denied"]; got != aggregator.MaxAuditedRefusals+1 {
				t.Errorf("refusals audited one by one: %d, want %d (m1's first %d, m2's one)", got, aggregator.MaxAuditedRefusals+1, aggregator.MaxAuditedRefusals)
			}
			if got := acts["round.update.refusals denied"]; got != 0 {
				t.Errorf("summaries before the window is over: %d, want 0", got)
			}
			// The window closes; Tick writes the count of the rest.
			f.clock.Add(aggregator.RefusalWindow)
			tick(t, r)
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var sums []string
			for _, e := range es {
				if e.Action == "round.update.refusals" {
					sums = append(sums, e.Object+" "+e.Details["suppressed"])
				}
			}
			want := []string{"merchant/m1 " + strconv.Itoa(flood-aggregator.MaxAuditedRefusals), "merchant/m2 11"}
			slices.Sort(sums)
			if !slices.Equal(sums, want) {
				t.Errorf("summaries %q, want %q", sums, want)
			}
			// A new window audits again, one by one.
			if _, err := r.svc.Submit(ctx, "m1", []byte("garbage again")); !errors.Is(err, seal.ErrMalformed) {
				t.Fatal(err)
			}
			if got := auditActions(t, r.store)["round.update.accept denied"]; got != aggregator.MaxAuditedRefusals+2 {
				t.Errorf("after the window: %d refusals audited, want %d", got, aggregator.MaxAuditedRefusals+2)
			}
			f.verifyAudit(t, r)
		})
	}
}
