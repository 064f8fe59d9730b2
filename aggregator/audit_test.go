package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/audit"
)

// flakyAudit is an audit store whose appends fail while down is set.
type flakyAudit struct {
	audit.Store
	down atomic.Bool
}

var errAuditDown = errors.New("audit store down")

func (f *flakyAudit) AppendAudit(ctx context.Context, es []audit.Entry, cs []audit.Checkpoint) error {
	if f.down.Load() {
		return errAuditDown
	}
	return f.Store.AppendAudit(ctx, es, cs)
}

// TestAuditFailClosed: when the audit entry of an accepted update cannot be
// written, Submit answers ErrAudit (no receipt), the update does not count for
// the round, and it counts again only once its entry is durable, written by
// Tick's repair or by the merchant's retry of the same envelope.
func TestAuditFailClosed(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 2})
			st := f.b.open(t)
			flaky := &flakyAudit{Store: st}
			log, err := audit.New(ctx, audit.Options{Store: flaky, HMACKey: f.agg.AuditHMAC, SigningKey: f.agg.Checkpoint, Now: f.clock.Now, CheckpointEvery: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { log.Close() })
			svc, err := aggregator.New(ctx, aggregator.Options{Store: st.(aggregator.Store), Policy: f.policy, Keys: f.agg, Audit: log, Now: f.clock.Now, Rounds: f.cfg})
			if err != nil {
				t.Fatal(err)
			}
			r := &replica{svc: svc, store: st, log: log}
			f.enrol(t, r, "m1", "m2")
			tick(t, r)

			flaky.down.Store(true)
			if _, err := f.submitHonest(t, r, "m1"); !errors.Is(err, aggregator.ErrAudit) {
				t.Fatalf("submit with the audit store down: got %v, want ErrAudit", err)
			}
			round := mustRound(t, r, "m2")
			env2 := f.seal(t, f.update(t, round, "m2"))
			if _, err := r.svc.Submit(ctx, "m2", env2); !errors.Is(err, aggregator.ErrAudit) {
				t.Fatalf("submit m2 with the audit store down: got %v, want ErrAudit", err)
			}
			flaky.down.Store(false)
			// Both updates are committed (and debited) but unaudited: all sampled
			// merchants sent, yet the round must not close on them.
			if got := budgetOf(t, r, "m1").Releases; got != 2 {
				t.Fatalf("m1 releases: got %d, want 2 (debited at commit)", got)
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != round.Seq {
				t.Fatalf("round closed on unaudited updates: now seq %d", got.Seq)
			}
			// m2 retries its envelope: the duplicate answer writes the missing entry.
			rc, err := r.svc.Submit(ctx, "m2", env2)
			if err != nil || !rc.Duplicate {
				t.Fatalf("retry: got %+v, %v, want a duplicate receipt", rc, err)
			}
			// m1 never retries: Tick repairs its entry once it is old enough.
			f.clock.Add(time.Minute)
			tick(t, r) // repairs m1; both audited; everyone sent → aggregating → published
			mv, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mv.Version != 2 || len(mv.Contributions) != 2 {
				t.Fatalf("after repair: got v%d with %d contributions, want v2 with 2", mv.Version, len(mv.Contributions))
			}
			acts := auditActions(t, st)
			if got := acts["round.update.accept ok"]; got != 2 {
				t.Errorf("accept entries: got %d, want 2 (one per update)", got)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestOutboxRepair: round transitions, an enrolment and a rollback committed
// while the audit store is down answer ErrAudit (or, for Tick, an error) and
// their records wait in the outbox; once it is back, Tick appends each of them
// exactly once.
func TestOutboxRepair(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute})
			st := f.b.open(t)
			flaky := &flakyAudit{Store: st}
			log, err := audit.New(ctx, audit.Options{Store: flaky, HMACKey: f.agg.AuditHMAC, SigningKey: f.agg.Checkpoint, Now: f.clock.Now, CheckpointEvery: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { log.Close() })
			svc, err := aggregator.New(ctx, aggregator.Options{Store: st.(aggregator.Store), Policy: f.policy, Keys: f.agg, Audit: log, Now: f.clock.Now, Rounds: f.cfg})
			if err != nil {
				t.Fatal(err)
			}
			r := &replica{svc: svc, store: st, log: log}
			f.enrol(t, r, "m1")

			flaky.down.Store(true)
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			if _, err := svc.Enrol(ctx, "admin:a", aggregator.Merchant{ID: "m2", PublicKey: pub}); !errors.Is(err, aggregator.ErrAudit) {
				t.Fatalf("enrol with the audit store down: got %v, want ErrAudit", err)
			}
			if err := svc.Rollback(ctx, "admin:a", 1); !errors.Is(err, aggregator.ErrAudit) {
				t.Fatalf("rollback with the audit store down: got %v, want ErrAudit", err)
			}
			if err := svc.Tick(ctx); !errors.Is(err, aggregator.ErrAudit) {
				t.Fatalf("tick with the audit store down: got %v, want ErrAudit", err)
			}
			// Committed regardless: m2 is enrolled, round 1 failed and round 2 opened.
			if got := mustRound(t, r, "m2"); got.Seq != 2 || !got.Selected {
				t.Fatalf("round after tick: got seq %d selected %v, want 2 true", got.Seq, got.Selected)
			}
			flaky.down.Store(false)
			tick(t, r) // too early: the records are younger than the repair delay
			before := auditActions(t, st)
			f.clock.Add(time.Minute / 2)
			f.clock.Add(time.Second)
			tick(t, r) // drains the outbox (round 2's deadline is still ahead)
			tick(t, r)
			acts := auditActions(t, st)
			for k, want := range map[string]int{"merchant.enrol ok": 2, "model.rollback ok": 1, "round.fail error": 1, "round.open ok": 2} {
				if acts[k] != want {
					t.Errorf("audit %q: got %d, want %d (before the drain %v, after %v)", k, acts[k], want, before, acts)
				}
			}
			f.verifyAudit(t, r)
		})
	}
}
