package aggregator_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
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

// blockStore holds the first acceptance armed with block inside its
// transaction, after FinishAcceptance wrote the update, its ledger rows and
// the budget head, until release is closed; events records the order of
// that acceptance's commit and what the test adds.
type blockStore struct {
	aggregator.Store
	entered, release chan struct{}

	mu     sync.Mutex
	armed  bool
	events []string
}

func (s *blockStore) event(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *blockStore) InTx(ctx context.Context, fn func(aggregator.Tx) error) error {
	blocked := false
	err := s.Store.InTx(ctx, func(tx aggregator.Tx) error { return fn(&blockTx{Tx: tx, s: s, blocked: &blocked}) })
	if blocked && err == nil {
		s.event("acceptance committed")
	}
	return err
}

type blockTx struct {
	aggregator.Tx
	s       *blockStore
	blocked *bool
}

func (t *blockTx) FinishAcceptance(ctx context.Context, u aggregator.UpdateRecord, ledger []aggregator.LedgerRow, next aggregator.BudgetHead, prev int64) error {
	if err := t.Tx.FinishAcceptance(ctx, u, ledger, next, prev); err != nil {
		return err
	}
	t.s.mu.Lock()
	armed := t.s.armed
	t.s.armed = false
	t.s.mu.Unlock()
	if armed {
		*t.blocked = true
		close(t.s.entered)
		<-t.s.release
	}
	return nil
}

// signalHandler closes waits when the service logs that a reload waits for
// acceptances in flight.
type signalHandler struct {
	once  *sync.Once
	waits chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "config.reload waits for acceptances in flight" {
		h.once.Do(func() { close(h.waits) })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestReloadWaitsForAcceptanceInFlight: m1's update is held inside its
// acceptance transaction (judged on the old cap, 1) while a reload lowers
// m1's and m2's caps below what one round spends. Before, Submit read the
// policy before its transaction and Reload did not wait: the reload
// returned while the acceptance under the old cap was still to commit. The
// reload now waits (it says so in the log, the test's signal) and returns
// only after the acceptance committed; m2's round and update, after the
// reload returned, are judged on the new cap. Expected ε: dp.Epsilon of each
// update's DP-SGD steps and count.
func TestReloadWaitsForAcceptanceInFlight(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			bs := &blockStore{Store: r.store.(aggregator.Store), entered: make(chan struct{}), release: make(chan struct{})}
			waits := make(chan struct{})
			svc, err := aggregator.New(ctx, aggregator.Options{
				Store: bs, Policy: f.policy, Keys: f.agg, Audit: r.log, Now: f.clock.Now, Rounds: f.cfg,
				Logger: slog.New(signalHandler{once: &sync.Once{}, waits: waits}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			round1, err := svc.CurrentRound(ctx, "m1")
			if err != nil {
				t.Fatal(err)
			}
			round2, err := svc.CurrentRound(ctx, "m2")
			if err != nil {
				t.Fatal(err)
			}
			if !round1.Selected || !round2.Selected {
				t.Fatalf("round %s: m1 selected %v, m2 %v; want both", round1.ID, round1.Selected, round2.Selected)
			}
			p := round1.Plan
			one, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			newCap := 0.9 * one
			c := strconv.FormatFloat(newCap, 'g', -1, 64)
			lowered := strings.Replace(testPolicy, "  m1: {}\n  m2: {}\n", "  m1: {epsilon_cap: "+c+"}\n  m2: {epsilon_cap: "+c+"}\n", 1)
			if lowered == testPolicy {
				t.Fatal("policy edit did not apply")
			}
			pol, err := policies.Parse("lowered.yaml", []byte(lowered))
			if err != nil {
				t.Fatal(err)
			}

			bs.mu.Lock()
			bs.armed = true
			bs.mu.Unlock()
			type result struct {
				rc  protocol.Receipt
				err error
			}
			accepted := make(chan result, 1)
			env1 := f.seal(t, f.update(t, round1, "m1"))
			go func() {
				rc, err := svc.Submit(ctx, "m1", env1)
				accepted <- result{rc, err}
			}()
			<-bs.entered
			reloaded := make(chan error, 1)
			go func() {
				_, err := svc.Reload(ctx, "admin:ops", pol, f.cfg)
				bs.event("reload returned")
				reloaded <- err
			}()
			select {
			case err := <-reloaded:
				close(bs.release)
				<-accepted
				t.Fatalf("reload returned (%v) while m1's acceptance under the old cap was in flight", err)
			case <-waits:
			}
			close(bs.release)
			got := <-accepted
			if got.err != nil || math.Abs(got.rc.Epsilon-one) > 1e-9*one || got.rc.EpsilonCap != 1 {
				t.Fatalf("m1's acceptance in flight: %+v, %v; want accepted at ε %v under the old cap 1", got.rc, got.err, one)
			}
			if err := <-reloaded; err != nil {
				t.Fatal(err)
			}
			bs.mu.Lock()
			events := slices.Clone(bs.events)
			bs.mu.Unlock()
			if want := []string{"acceptance committed", "reload returned"}; !slices.Equal(events, want) {
				t.Fatalf("events %q, want %q", events, want)
			}

			// Started after the reload returned: judged on the new cap. m2's
			// plan is calibrated to it (a larger noise multiplier than the
			// plan m1 trained on), its receipt names it, and its ε is
			// dp.Epsilon of the releases that plan makes, within the cap.
			round2, err = svc.CurrentRound(ctx, "m2")
			if err != nil {
				t.Fatal(err)
			}
			if round2.Plan.NoiseMultiplier <= p.NoiseMultiplier {
				t.Fatalf("m2's plan after the reload: noise multiplier %v, want above %v (the old cap's)", round2.Plan.NoiseMultiplier, p.NoiseMultiplier)
			}
			p2 := round2.Plan
			want2, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p2.SamplingRate, Z: p2.NoiseMultiplier, Steps: p2.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p2.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rc2, err := svc.Submit(ctx, "m2", f.seal(t, f.update(t, round2, "m2")))
			if err != nil || rc2.EpsilonCap != newCap || math.Abs(rc2.Epsilon-want2) > 1e-9*want2 || rc2.Epsilon > newCap*(1+dp.FilterTolerance) {
				t.Fatalf("m2 after the reload: %+v, %v; want accepted at ε %v under the new cap %v", rc2, err, want2, newCap)
			}
			budgets, err := svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantEps := map[string]float64{"m1": one, "m2": want2}
			for _, bg := range budgets {
				w, ok := wantEps[bg.Merchant]
				if !ok {
					continue
				}
				if bg.Releases != 2 || math.Abs(bg.Epsilon-w) > 1e-9*w || bg.Cap != newCap {
					t.Errorf("%s: %d releases, ε %v of cap %v; want 2, ε %v of cap %v", bg.Merchant, bg.Releases, bg.Epsilon, bg.Cap, w, newCap)
				}
			}
			f.verifyAudit(t, r)
		})
	}
}
