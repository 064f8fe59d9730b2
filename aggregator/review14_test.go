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
)

// TestRollbackCancelsRound: a rollback that withdraws the version the open
// round trains from cancels that round in the same operation (its entry
// names the round), so a merchant that fetched the round before the
// rollback is refused before decryption at no charge, naming the round and
// the rollback; the update accepted before the rollback stays charged, and
// the next round trains from the operator's version. Budgets are checked
// against dp.Epsilon of the releases each merchant made.
func TestRollbackCancelsRound(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			for _, m := range []string{"m1", "m2"} { // round 1 publishes v2
				if _, err := f.submitHonest(t, r, m); err != nil {
					t.Fatal(err)
				}
			}
			tick(t, r)
			r1 := mustRound(t, r, "m1")
			if r1.BaseVersion != 2 || !r1.Selected {
				t.Fatalf("round %s trains from v%d (m1 selected %v), want v2 with m1", r1.ID, r1.BaseVersion, r1.Selected)
			}
			r2 := mustRound(t, r, "m2")
			if _, err := f.submitHonest(t, r, "m1"); err != nil { // charged, released
				t.Fatal(err)
			}
			late := f.seal(t, f.update(t, r2, "m2")) // m2 fetched the round before the rollback

			if err := r.svc.Rollback(ctx, "admin:alice", 1); err != nil {
				t.Fatal(err)
			}
			_, err := r.svc.Submit(ctx, "m2", late)
			if !errors.Is(err, aggregator.ErrRoundClosed) || !strings.Contains(err.Error(), r1.ID) || !strings.Contains(err.Error(), "rollback to version 1") {
				t.Fatalf("update to the round on withdrawn v2: got %v, want ErrRoundClosed naming %s and the rollback", err, r1.ID)
			}

			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var rollbacks, cancels, refusals int
			for _, e := range es {
				switch {
				case e.Action == "model.rollback":
					rollbacks++
					if e.Details["cancelled_round"] != r1.ID || e.Details["withdrawn"] != "2" {
						t.Errorf("rollback entry details %v, want cancelled_round %s, withdrawn 2", e.Details, r1.ID)
					}
				case e.Action == "round.cancel":
					cancels++
					if e.Object != "round/"+r1.ID || e.Actor != "admin:alice" || !strings.Contains(e.Reason, "rollback to version 1") {
						t.Errorf("cancel entry %s by %s: %q, want %s by admin:alice naming the rollback", e.Object, e.Actor, e.Reason, r1.ID)
					}
				case e.Action == "round.update.accept" && e.Outcome != "ok":
					refusals++
					if e.Details["payload"] != "" || e.Details["debited"] != "" {
						t.Errorf("refusal entry details %v: want nothing decrypted or debited", e.Details)
					}
				}
			}
			if rollbacks != 1 || cancels != 1 || refusals != 1 {
				t.Errorf("%d rollback, %d cancel, %d refusal entries; want 1 each", rollbacks, cancels, refusals)
			}

			p := r1.Plan
			sgd := dp.Release{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps}
			count := dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1}
			want := map[string][]dp.Release{
				"m1": {withSteps(sgd, 2*p.Steps), count}, // rounds 1 and 2
				"m2": {sgd, count},                       // round 1 only
			}
			budgets, err := r.svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, bg := range budgets {
				rels, ok := want[bg.Merchant]
				if !ok {
					continue
				}
				eps, _, err := dp.Epsilon(rels, 1e-6, dp.AccountantOptions{})
				if err != nil {
					t.Fatal(err)
				}
				wantReleases := map[string]int{"m1": 3, "m2": 2}[bg.Merchant]
				if bg.Releases != wantReleases || math.Abs(bg.Epsilon-eps) > 1e-9*eps {
					t.Errorf("%s: %d releases, ε %v; want %d, ε %v", bg.Merchant, bg.Releases, bg.Epsilon, wantReleases, eps)
				}
			}

			next := mustRound(t, r, "m2")
			if next.Seq != r1.Seq+1 || next.BaseVersion != 1 || next.State != protocol.RoundOpen {
				t.Fatalf("next round seq %d base v%d %s, want seq %d on v1, open", next.Seq, next.BaseVersion, next.State, r1.Seq+1)
			}
			if _, err := f.submitHonest(t, r, "m2"); err != nil {
				t.Errorf("m2 in the round on v1: %v", err)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestRollbackCancelsSecureRound: the same for a secure round: the rollback
// of the version it trains from fails it, naming the rollback, and the next
// round opens on the operator's version.
func TestRollbackCancelsSecureRound(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			sr := playSecure(t, b, playOpts{}) // publishes v2
			svc := sr.svc.Load()
			open := mustRound(t, sr.replica, "m1")
			if open.BaseVersion != 2 || open.Plan.Secure == nil {
				t.Fatalf("round %s on v%d (secure %v), want a secure round on v2", open.ID, open.BaseVersion, open.Plan.Secure != nil)
			}
			if err := svc.Rollback(ctx, "admin:alice", 1); err != nil {
				t.Fatal(err)
			}
			st, err := svc.SecureStatus(ctx, "m1", open.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != protocol.RoundFailed || !strings.Contains(st.Reason, "rollback to version 1") {
				t.Errorf("round %s: %s, %q; want failed naming the rollback", open.ID, st.State, st.Reason)
			}
			next := mustRound(t, sr.replica, "m1")
			if next.Seq != open.Seq+1 || next.BaseVersion != 1 {
				t.Errorf("next round seq %d on v%d, want %d on v1", next.Seq, next.BaseVersion, open.Seq+1)
			}
			es, err := sr.replica.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range es {
				if e.Action == "model.rollback" {
					found = e.Details["cancelled_round"] == open.ID
				}
			}
			if !found {
				t.Errorf("rollback entry does not name %s as cancelled", open.ID)
			}
			sr.f.verifyAudit(t, sr.replica)
		})
	}
}
