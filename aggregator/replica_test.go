package aggregator_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// stop closes a replica's audit log and store, as a shutdown (or, for the
// store, a crash: nothing is flushed that was not committed).
func (r *replica) stop() {
	r.log.Close()
	r.store.Close()
}

// TestRestartResume stops the aggregator mid-round (collecting) and again
// between closing a round and publishing it (aggregating); a new Service over
// the same database resumes both where they were.
func TestRestartResume(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 2})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2", "m3")
			tick(t, r)
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			before := budgetOf(t, r, "m1")
			r.stop()

			r = f.start(t)
			round := mustRound(t, r, "m2")
			if round.Seq != 2 || round.State != protocol.RoundCollecting {
				t.Fatalf("after restart: got seq %d %s, want 2 collecting", round.Seq, round.State)
			}
			if got := budgetOf(t, r, "m1"); got != before {
				t.Fatalf("budget after restart: got %+v, want %+v", got, before)
			}
			if _, err := f.submitHonest(t, r, "m2"); err != nil {
				t.Fatal(err)
			}
			// A crash right after Tick's first transaction leaves the round aggregating.
			err := r.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
				return tx.SetRoundState(ctx, round.ID, protocol.RoundCollecting, protocol.RoundAggregating, "test", f.clock.Now())
			})
			if err != nil {
				t.Fatal(err)
			}
			r.stop()

			r = f.start(t)
			if got := mustRound(t, r, "m1").State; got != protocol.RoundAggregating {
				t.Fatalf("after second restart: got %s, want aggregating", got)
			}
			tick(t, r)
			mv, err := r.svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mv.Version != 2 || mv.Round != round.ID || len(mv.Contributions) != 2 {
				t.Fatalf("published after restart: got v%d round %s %d contributions, want v2 %s 2", mv.Version, mv.Round, len(mv.Contributions), round.ID)
			}
			if got := mustRound(t, r, "m1"); got.Seq != 3 || got.BaseVersion != 2 {
				t.Fatalf("next round: got seq %d base %d, want 3 base 2", got.Seq, got.BaseVersion)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestExactlyOncePublish runs two Services (replicas, each with its own
// connection pool and audit log) over one database and calls Tick from both
// concurrently: the round is closed, published and followed by exactly one
// next round, once.
func TestExactlyOncePublish(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 2})
			r1 := f.start(t)
			r2 := f.start(t)
			f.enrol(t, r1, "m1", "m2", "m3")
			tick(t, r2)
			// Submissions land on either replica.
			for i, m := range []string{"m1", "m2", "m3"} {
				r := []*replica{r1, r2}[i%2]
				if _, err := f.submitHonest(t, r, m); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for i := range 16 {
				r := []*replica{r1, r2}[i%2]
				wg.Go(func() {
					if err := r.svc.Tick(ctx); err != nil {
						t.Errorf("tick: %v", err)
					}
				})
			}
			wg.Wait()
			models, err := r1.svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(models) != 2 || !models[1].Active || models[1].Round != "round-000002" {
				t.Fatalf("models: got %+v, want v1 and v2 (from round-000002, active)", models)
			}
			next := mustRound(t, r2, "m1")
			if next.Seq != 3 || next.State != protocol.RoundOpen || next.BaseVersion != 2 {
				t.Fatalf("next round: got seq %d %s base %d, want 3 open base 2", next.Seq, next.State, next.BaseVersion)
			}
			acts := auditActions(t, r1.store)
			for k, want := range map[string]int{"round.aggregate ok": 1, "round.publish ok": 1, "round.open ok": 3, "round.update.accept ok": 3} {
				if acts[k] != want {
					t.Errorf("audit %q: got %d, want %d (all %v)", k, acts[k], want, acts)
				}
			}
			f.verifyAudit(t, r1)
		})
	}
}

// TestReplicasUnderLoad: two replicas over one database, merchants submitting
// through either while both tick concurrently, for several rounds. Every
// accepted update is merged exactly once, every round is published once, and
// each merchant was debited exactly twice per accepted update.
func TestReplicasUnderLoad(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			rs := []*replica{f.start(t), f.start(t)}
			ms := []string{"m1", "m2", "m3", "m4"}
			f.enrol(t, rs[0], ms...)
			tick(t, rs[1])
			const rounds = 4
			accepted := map[string]int{}
			var mu sync.Mutex
			for k := range rounds {
				var wg sync.WaitGroup
				stop := make(chan struct{})
				for i := range 2 {
					wg.Go(func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							if err := rs[i].svc.Tick(ctx); err != nil {
								t.Errorf("tick: %v", err)
								return
							}
							time.Sleep(2 * time.Millisecond)
						}
					})
				}
				var sub sync.WaitGroup
				for i, m := range ms {
					sub.Go(func() {
						rc, err := f.submitHonest(t, rs[(i+k)%2], m)
						if err != nil {
							t.Errorf("round %d, %s: %v", k, m, err)
							return
						}
						mu.Lock()
						accepted[rc.Round]++
						mu.Unlock()
					})
				}
				sub.Wait()
				// Every sampled merchant sent: the next Tick publishes the round.
				for range 50 {
					if mustRound(t, rs[0], "m1").Seq == int64(k+3) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				close(stop)
				wg.Wait()
			}
			models, err := rs[0].svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(models) != rounds+1 {
				t.Fatalf("got %d versions, want %d", len(models), rounds+1)
			}
			seen := map[string]bool{}
			for _, mv := range models[1:] {
				if seen[mv.Round] {
					t.Errorf("round %s published twice", mv.Round)
				}
				seen[mv.Round] = true
				if len(mv.Contributions) != accepted[mv.Round] {
					t.Errorf("version %d (%s): %d contributions, %d accepted updates", mv.Version, mv.Round, len(mv.Contributions), accepted[mv.Round])
				}
			}
			for _, m := range ms {
				// DP-SGD every round, the customer count in the first only.
				if got := budgetOf(t, rs[1], m).Releases; got != rounds+1 {
					t.Errorf("%s: %d ledger releases, want %d", m, got, rounds+1)
				}
			}
			acts := auditActions(t, rs[0].store)
			if acts["round.publish ok"] != rounds || acts["round.update.accept ok"] != rounds*len(ms) {
				t.Errorf("audit: %v", acts)
			}
			f.verifyAudit(t, rs[0])
		})
	}
}
