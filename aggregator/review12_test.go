package aggregator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestRollbackWithdraws: a rollback from v4 to v2 withdraws v4 and its
// parent v3 (refused when fetched, listed as withdrawn at the seq of the
// rollback's entry, read back from the log), cancels the round training
// from v4 (review 14: before, that round published a v5 withdrawn at
// birth), rounds train from v2, and an explicit rollback to v3 restores v3
// alone.
func TestRollbackWithdraws(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Minute})
			for range 3 { // v2, v3, v4
				if _, err := f.submitHonest(t, r, "m1"); err != nil {
					t.Fatal(err)
				}
				tick(t, r)
			}
			// Round 5 trains from v4; its update is in when v4 is withdrawn;
			// the rollback cancels it.
			rollbackDuringRound(t, f, r, 2)

			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var seq uint64
			for _, e := range es {
				if e.Action == "model.rollback" {
					if seq != 0 {
						t.Fatalf("two rollback entries")
					}
					seq = e.Seq
					if e.Details["from"] != "4" || e.Details["to"] != "2" || e.Details["withdrawn"] != "3,4" || e.Details["cancelled_round"] != "round-000005" {
						t.Errorf("rollback entry details %v, want from 4 to 2 withdrawn 3,4, cancelled_round round-000005", e.Details)
					}
				}
			}
			if seq == 0 {
				t.Fatal("no rollback entry")
			}
			for _, v := range []int{3, 4} {
				_, err := r.svc.Model(ctx, v)
				var we *aggregator.WithdrawnError
				if !errors.As(err, &we) || !errors.Is(err, aggregator.ErrWithdrawn) || we.Version != v || we.Seq != int64(seq) {
					t.Errorf("model %d: got %v, want withdrawn at seq %d", v, err, seq)
				}
			}
			ms, err := r.svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]bool{1: false, 2: false, 3: true, 4: true}
			for _, m := range ms {
				if w, ok := want[m.Version]; !ok || m.Withdrawn != w || (w && (m.WithdrawnSeq != int64(seq) || !m.WithdrawnAt.Equal(f.clock.Now().Add(-time.Minute).Truncate(time.Millisecond)))) {
					t.Errorf("listed v%d withdrawn %v at %v seq %d, want %v at seq %d", m.Version, m.Withdrawn, m.WithdrawnAt, m.WithdrawnSeq, w, seq)
				}
			}
			if got := mustRound(t, r, "m1"); got.BaseVersion != 2 {
				t.Errorf("next round trains from v%d, want v2", got.BaseVersion)
			}
			if mv, err := r.svc.Model(ctx, 2); err != nil || mv.Withdrawn || !mv.Active {
				t.Errorf("v2: %+v, %v; want active, not withdrawn", mv.Withdrawn, err)
			}

			// Rolling forward to v3 restores it; v4 stays withdrawn.
			if err := r.svc.Rollback(ctx, "admin:alice", 3); err != nil {
				t.Fatal(err)
			}
			if mv, err := r.svc.Model(ctx, 3); err != nil || !mv.Active || mv.Withdrawn {
				t.Errorf("v3 after the rollback to it: active %v withdrawn %v, %v; want restored and active", mv.Active, mv.Withdrawn, err)
			}
			if _, err := r.svc.Model(ctx, 4); !errors.Is(err, aggregator.ErrWithdrawn) {
				t.Errorf("v4 after v3 was restored: %v, want still withdrawn", err)
			}
			es, err = r.store.AuditEntries(ctx, seq+1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var restored int
			for _, e := range es {
				if e.Action == "model.rollback" {
					restored++
					if e.Details["restored"] != "3" || e.Details["withdrawn"] != "" {
						t.Errorf("rollback to v3 details %v, want restored 3, nothing withdrawn", e.Details)
					}
				}
			}
			if restored != 1 {
				t.Errorf("%d rollback entries after the first, want 1", restored)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestRollbackDuringRoundRefusesBase: after a rollback during a round, a
// merchant asking for the round is not given the withdrawn version to train
// on: the rollback cancelled the round (review 14; before, the round stayed
// open and the merchant was refused with the withdrawn version), so it gets
// the next round, on the operator's version.
func TestRollbackDuringRoundRefusesBase(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Minute})
			if _, err := f.submitHonest(t, r, "m1"); err != nil { // v2
				t.Fatal(err)
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.BaseVersion != 2 {
				t.Fatalf("round trains from v%d, want v2", got.BaseVersion)
			}
			if err := r.svc.Rollback(ctx, "admin:alice", 1); err != nil {
				t.Fatal(err)
			}
			if got := mustRound(t, r, "m1"); got.BaseVersion != 1 || got.State != protocol.RoundOpen {
				t.Errorf("current round %s on v%d (%s), want a round on v1, open", got.ID, got.BaseVersion, got.State)
			}
			if _, err := r.svc.Model(ctx, 2); !errors.Is(err, aggregator.ErrWithdrawn) {
				t.Errorf("v2 after the rollback: %v, want withdrawn", err)
			}
		})
	}
}
