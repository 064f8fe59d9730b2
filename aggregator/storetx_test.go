package aggregator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
)

// TestStoreTx checks the Tx contract every backend implements: sentinels for
// missing rows and conflicts, conditional writes, and round claiming that
// skips rows another transaction holds.
func TestStoreTx(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t).(aggregator.Store)
			at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
			in := func(fn func(tx aggregator.Tx) error) error { return st.InTx(ctx, fn) }
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			m := aggregator.Merchant{ID: "m1", Region: "eu", TimeZone: "UTC", PublicKey: make([]byte, 32), EnrolledAt: at}
			must(in(func(tx aggregator.Tx) error { return tx.InsertMerchant(ctx, m) }))
			if err := in(func(tx aggregator.Tx) error { return tx.InsertMerchant(ctx, m) }); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("second InsertMerchant: got %v, want ErrConflict", err)
			}
			if err := in(func(tx aggregator.Tx) error { _, err := tx.Merchant(ctx, "nope"); return err }); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("missing merchant: got %v, want ErrNotFound", err)
			}
			must(in(func(tx aggregator.Tx) error {
				got, err := tx.Merchant(ctx, "m1")
				if err != nil {
					return err
				}
				if got.ID != m.ID || got.Region != "eu" || !got.EnrolledAt.Equal(at) || len(got.PublicKey) != 32 || got.Revoked {
					t.Errorf("merchant round trip: got %+v, want %+v", got, m)
				}
				return nil
			}))

			r := aggregator.RoundRecord{ID: "r1", Seq: 1, State: protocol.RoundOpen, OpenedAt: at, Deadline: at.Add(time.Hour),
				Quorum: 2, Selected: []string{"m1"}, BaseVersion: 1, Plan: protocol.TrainingPlan{Steps: 3, Cutoffs: []time.Time{at}}}
			must(in(func(tx aggregator.Tx) error {
				ok, err := tx.InsertRound(ctx, r)
				if err != nil || !ok {
					t.Errorf("InsertRound: got %v, %v, want true, nil", ok, err)
				}
				ok, err = tx.InsertRound(ctx, r)
				if err != nil || ok {
					t.Errorf("InsertRound again: got %v, %v, want false, nil", ok, err)
				}
				got, err := tx.Round(ctx, "r1", aggregator.LockShare)
				if err != nil {
					return err
				}
				if got.Seq != 1 || got.Quorum != 2 || got.Plan.Steps != 3 || !got.Plan.Cutoffs[0].Equal(at) || !got.Deadline.Equal(r.Deadline) {
					t.Errorf("round round trip: got %+v", got)
				}
				if err := tx.SetRoundState(ctx, "r1", protocol.RoundCollecting, protocol.RoundFailed, "", at); !errors.Is(err, aggregator.ErrConflict) {
					t.Errorf("SetRoundState from the wrong state: got %v, want ErrConflict", err)
				}
				return nil
			}))

			head := aggregator.BudgetHead{Merchant: "m1", Version: 1, Epsilon: 0.25, Releases: 2, LastRelease: at}
			must(in(func(tx aggregator.Tx) error {
				got, err := tx.LockBudget(ctx, "m1")
				if err != nil {
					return err
				}
				if got.Version != 0 || got.Releases != 0 {
					t.Errorf("fresh budget: got %+v", got)
				}
				if err := tx.AdvanceBudget(ctx, head, 0); err != nil {
					return err
				}
				if err := tx.AdvanceBudget(ctx, head, 0); !errors.Is(err, aggregator.ErrConflict) {
					t.Errorf("AdvanceBudget from a stale version: got %v, want ErrConflict", err)
				}
				row := aggregator.LedgerRow{Merchant: "m1", Seq: 1, Release: dp.Release{Mechanism: dp.Gaussian, Q: 0.1, Z: 1.5, Steps: 4}, Round: "r1", Update: "u1", Epsilon: 0.2, At: at}
				return tx.InsertLedger(ctx, row)
			}))
			// A failed statement aborts a PostgreSQL transaction: conflicts are checked alone.
			if err := in(func(tx aggregator.Tx) error {
				return tx.InsertLedger(ctx, aggregator.LedgerRow{Merchant: "m1", Seq: 1, Release: dp.Release{Steps: 1}, At: at})
			}); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("ledger row twice: got %v, want ErrConflict", err)
			}
			if err := in(func(tx aggregator.Tx) error {
				if err := tx.InsertLedger(ctx, aggregator.LedgerRow{Merchant: "m1", Seq: 9, Release: dp.Release{Steps: 1}, At: at}); err != nil {
					return err
				}
				return errors.New("roll back")
			}); err == nil {
				t.Fatal("want the rollback error")
			}
			must(in(func(tx aggregator.Tx) error {
				rows, err := tx.Ledger(ctx, "m1")
				if err != nil {
					return err
				}
				if len(rows) != 1 || rows[0].Release.Z != 1.5 || rows[0].Release.Steps != 4 || !rows[0].At.Equal(at) {
					t.Errorf("ledger after a rolled-back insert: got %+v, want the one committed row", rows)
				}
				fresh, err := tx.InsertNonce(ctx, "m1", []byte("n1"), at)
				if err != nil || !fresh {
					t.Errorf("first nonce: got %v, %v", fresh, err)
				}
				fresh, err = tx.InsertNonce(ctx, "m1", []byte("n1"), at)
				if err != nil || fresh {
					t.Errorf("nonce again: got %v, %v, want false", fresh, err)
				}
				if n, err := tx.PruneNonces(ctx, at.Add(time.Millisecond)); err != nil || n != 1 {
					t.Errorf("prune: got %d, %v, want 1", n, err)
				}
				u := aggregator.UpdateRecord{ID: "u1", Round: "r1", Merchant: "m1", EnvelopeSHA256: []byte{1}, Nonce: []byte{2},
					Delta: []float64{0.5, -1e-300}, Release: protocol.Release{Steps: 1}, Customers: protocol.NoisyCount{Value: 3, Sigma: 4}, Epsilon: 0.2, AcceptedAt: at}
				if err := tx.InsertUpdate(ctx, u); err != nil {
					return err
				}
				got, err := tx.UpdateByEnvelope(ctx, []byte{1})
				if err != nil {
					return err
				}
				if got.ID != "u1" || got.Delta[1] != -1e-300 || got.Customers.Sigma != 4 || got.Audited {
					t.Errorf("update round trip: got %+v", got)
				}
				if all, audited, err := tx.CountUpdates(ctx, "r1"); err != nil || all != 1 || audited != 0 {
					t.Errorf("CountUpdates: got %d, %d, %v, want 1, 0", all, audited, err)
				}
				return tx.MarkAudited(ctx, "u1")
			}))
			if err := in(func(tx aggregator.Tx) error {
				return tx.InsertUpdate(ctx, aggregator.UpdateRecord{ID: "u2", Round: "r1", Merchant: "m1", EnvelopeSHA256: []byte{3}, Nonce: []byte{4}, AcceptedAt: at})
			}); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("second update of m1 in r1: got %v, want ErrConflict", err)
			}
			must(in(func(tx aggregator.Tx) error {
				if all, audited, err := tx.CountUpdates(ctx, "r1"); err != nil || all != 1 || audited != 1 {
					t.Errorf("CountUpdates after MarkAudited: got %d, %d, %v, want 1, 1", all, audited, err)
				}
				if _, err := tx.ActiveVersion(ctx); !errors.Is(err, aggregator.ErrNotFound) {
					t.Errorf("active version of an empty registry: got %v, want ErrNotFound", err)
				}
				return nil
			}))

			// The acceptance pair reads and writes what the separate methods do.
			must(in(func(tx aggregator.Tx) error {
				st, err := tx.StartAcceptance(ctx, aggregator.AcceptanceCheck{Merchant: "m1", EnvelopeSHA256: []byte{1}, Nonce: []byte("n2"), At: at, Round: "r1", LockCollecting: true})
				if err != nil {
					return err
				}
				if st.Budget.Version != 1 || st.Duplicate == nil || st.Duplicate.ID != "u1" || st.Merchant.ID != "m1" || !st.FreshNonce || !st.HasUpdate || st.RoundLocked {
					t.Errorf("StartAcceptance for u1's envelope in open r1: got %+v, want version 1, duplicate u1, fresh nonce, an update in r1, r1 not locked", st)
				}
				st, err = tx.StartAcceptance(ctx, aggregator.AcceptanceCheck{Merchant: "m1", EnvelopeSHA256: []byte{9}, Nonce: []byte("n2"), At: at, Round: "r2", LockCollecting: true})
				if err != nil {
					return err
				}
				if st.Duplicate != nil || st.FreshNonce || st.HasUpdate || st.RoundLocked {
					t.Errorf("StartAcceptance with a seen nonce, new envelope, missing round: got %+v", st)
				}
				if _, err := tx.StartAcceptance(ctx, aggregator.AcceptanceCheck{Merchant: "nope", EnvelopeSHA256: []byte{9}, Nonce: []byte("n3"), At: at, Round: "r1"}); !errors.Is(err, aggregator.ErrNotFound) {
					t.Errorf("StartAcceptance for an unknown merchant: got %v, want ErrNotFound", err)
				}
				return nil
			}))
			r2 := r
			r2.ID, r2.Seq, r2.State = "r2", 2, protocol.RoundCollecting
			u2 := aggregator.UpdateRecord{ID: "u2", Round: "r2", Merchant: "m1", EnvelopeSHA256: []byte{5}, Nonce: []byte{6}, Delta: []float64{1}, AcceptedAt: at}
			ledger := []aggregator.LedgerRow{
				{Merchant: "m1", Seq: 2, Release: dp.Release{Mechanism: dp.Gaussian, Q: 0.1, Z: 1.5, Steps: 4}, Round: "r2", Update: "u2", Epsilon: 0.3, At: at},
				{Merchant: "m1", Seq: 3, Release: dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1}, Round: "r2", Update: "u2", Epsilon: 0.31, At: at},
			}
			next := aggregator.BudgetHead{Merchant: "m1", Version: 2, Epsilon: 0.31, Releases: 3, LastRelease: at}
			must(in(func(tx aggregator.Tx) error {
				if _, err := tx.InsertRound(ctx, r2); err != nil {
					return err
				}
				st, err := tx.StartAcceptance(ctx, aggregator.AcceptanceCheck{Merchant: "m1", EnvelopeSHA256: []byte{5}, Nonce: []byte("n4"), At: at, Round: "r2", LockCollecting: true})
				if err != nil {
					return err
				}
				if !st.RoundLocked || st.HasUpdate || st.Duplicate != nil {
					t.Errorf("StartAcceptance in collecting r2: got %+v, want r2 locked, no update", st)
				}
				return tx.FinishAcceptance(ctx, u2, ledger, next, 1)
			}))
			u3 := u2
			u3.ID, u3.Round, u3.EnvelopeSHA256 = "u3", "r3", []byte{7}
			if err := in(func(tx aggregator.Tx) error {
				r3 := r
				r3.ID, r3.Seq, r3.State = "r3", 3, protocol.RoundFailed
				if _, err := tx.InsertRound(ctx, r3); err != nil {
					return err
				}
				return tx.FinishAcceptance(ctx, u3, nil, aggregator.BudgetHead{Merchant: "m1", Version: 2}, 1)
			}); !errors.Is(err, aggregator.ErrConflict) || !strings.Contains(err.Error(), "advance budget") {
				t.Errorf("FinishAcceptance from a stale budget version: got %v, want ErrConflict from the budget head", err)
			}
			must(in(func(tx aggregator.Tx) error {
				rows, err := tx.Ledger(ctx, "m1")
				if err != nil {
					return err
				}
				got, err := tx.LockBudget(ctx, "m1")
				if err != nil {
					return err
				}
				if len(rows) != 3 || rows[2].Epsilon != 0.31 || got.Version != 2 || got.Releases != 3 {
					t.Errorf("after FinishAcceptance: got %d ledger rows, head %+v, want 3 rows and version 2", len(rows), got)
				}
				if _, err := tx.UpdateByEnvelope(ctx, []byte{7}); !errors.Is(err, aggregator.ErrNotFound) {
					t.Errorf("update of the refused FinishAcceptance: got %v, want ErrNotFound (rolled back)", err)
				}
				return tx.SetRoundState(ctx, "r2", protocol.RoundCollecting, protocol.RoundFailed, "test", at)
			}))
			must(in(func(tx aggregator.Tx) error {
				// r3 was rolled back with its FinishAcceptance: r2 then r1, newest first.
				for _, c := range []struct {
					limit int
					want  []string
				}{{1, []string{"r2"}}, {5, []string{"r2", "r1"}}} {
					rs, err := tx.RecentRounds(ctx, c.limit)
					if err != nil {
						return err
					}
					var got []string
					for _, rr := range rs {
						got = append(got, rr.ID+":"+string(rr.State))
					}
					want := map[string]string{"r1": "r1:open", "r2": "r2:failed"}
					var wantS []string
					for _, id := range c.want {
						wantS = append(wantS, want[id])
					}
					if strings.Join(got, ",") != strings.Join(wantS, ",") {
						t.Errorf("RecentRounds(%d): got %v, want %v", c.limit, got, wantS)
					}
				}
				if _, err := tx.RecentRounds(ctx, 0); err == nil {
					t.Error("RecentRounds(0): got no error")
				}
				return nil
			}))

			if b.name != "postgres" {
				return
			}
			// SKIP LOCKED: while one transaction holds the round, another claims nothing.
			held, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
			go func() {
				done <- in(func(tx aggregator.Tx) error {
					rs, err := tx.ClaimRounds(ctx)
					if err != nil || len(rs) != 1 {
						t.Errorf("first claim: got %d rounds, %v, want 1", len(rs), err)
					}
					close(held)
					<-release
					return nil
				})
			}()
			<-held
			must(in(func(tx aggregator.Tx) error {
				rs, err := tx.ClaimRounds(ctx)
				if err != nil || len(rs) != 0 {
					t.Errorf("claim while held: got %d rounds, %v, want 0", len(rs), err)
				}
				return nil
			}))
			close(release)
			must(<-done)
		})
	}
}
