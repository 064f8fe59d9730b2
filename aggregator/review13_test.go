package aggregator_test

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// TestNoDecryptionPastTheCap: m1's update of one round is accepted, then an
// operator lowers its ε cap to half of what it has spent (a reload), and
// m1's client, whose own cap is higher (or whose state.json was restored
// from a backup), keeps sending an honest update every round. Each was
// decrypted, refused for the budget and, the aggregator having seen it,
// debited past the cap: the ledger grew by a DP-SGD release a round, for
// ever. A ledger already past the cap can take no release (ε only grows
// with the ledger), so the update is now refused before decryption and
// debits nothing: the ledger keeps round 1's two releases, its ε what
// dp.Epsilon gives for them. The last update goes to a second replica that
// never read m1's ledger.
func TestNoDecryptionPastTheCap(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			first := mustRound(t, r, "m1")
			rc, err := f.submitHonest(t, r, "m1")
			if err != nil {
				t.Fatal(err)
			}
			p := first.Plan
			spent, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(rc.Epsilon-spent) > 1e-9*spent {
				t.Fatalf("receipt ε %v, want %v", rc.Epsilon, spent)
			}
			lowered := strings.Replace(testPolicy, "  m1: {}\n", "  m1: {epsilon_cap: "+strconv.FormatFloat(spent/2, 'g', -1, 64)+"}\n", 1)
			reloadPolicy(t, r, f, lowered)
			pol, err := policies.Parse("p.yaml", []byte(lowered))
			if err != nil {
				t.Fatal(err)
			}
			f.policy = pol
			var r2 *replica
			for i := range 3 {
				f.clock.Add(time.Minute)
				tick(t, r)
				at := r
				if i == 2 {
					r2 = f.start(t)
					at = r2
				}
				round := mustRound(t, at, "m1")
				if !round.Selected || round.ID == first.ID {
					t.Fatalf("round %d: %s selected %v, want a new round with m1", i, round.ID, round.Selected)
				}
				if _, err := f.submitHonest(t, at, "m1"); !errors.Is(err, dp.ErrBudgetExhausted) {
					t.Fatalf("round %s past the cap: got %v, want dp.ErrBudgetExhausted", round.ID, err)
				}
			}
			for _, at := range []*replica{r, r2} {
				if got := budgetOf(t, at, "m1"); got.Releases != 2 || math.Abs(got.Epsilon-spent) > 1e-9*spent {
					t.Errorf("budget of m1: %d releases ε %v, want 2 and %v (round 1's alone)", got.Releases, got.Epsilon, spent)
				}
			}
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, e := range es {
				if e.Action != "round.update.accept" || e.Outcome != "denied" {
					continue
				}
				refused++
				if e.Details["payload"] != "" || e.Details["debited"] != "" {
					t.Errorf("refusal %d was decrypted: details %v", e.Seq, e.Details)
				}
			}
			if refused != 3 {
				t.Errorf("%d refusals audited, want 3", refused)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestBudgetRaceTwoReplicas: TestBudgetRace across two Services on one
// database (two serve replicas behind a balancer): m1's budget fits exactly
// k rounds, and 63 updates, each for its own open round, race through both
// replicas at once after a first one released the count. Exactly k−1 racers
// are accepted (the budget head's row lock and its version check serialise
// the debits across replicas), every receipt's ε is at most that of k rounds,
// computed by dp.Epsilon, and the budget head is what dp.Epsilon gives for
// the releases in the ledger. Then one update sealed twice (two envelopes,
// one payload) and one envelope sent twice race through both replicas in a
// fresh round: one acceptance each, nothing debited twice.
func TestBudgetRaceTwoReplicas(t *testing.T) {
	const k, n = 5, 64
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, PlannedRounds: k, StepsPerRound: 5, SamplingRate: 0.02})
			rs := []*replica{f.start(t), f.start(t)}
			f.enrol(t, rs[0], "m1", "m2")
			tick(t, rs[0])
			cur := mustRound(t, rs[1], "m1")
			insertOpenRounds(t, rs[0], f, cur, "race-", n+2, "m1", "m2")
			first := cur
			first.ID = "race-00"
			if _, err := rs[1].svc.Submit(ctx, "m1", f.seal(t, f.update(t, first, "m1"))); err != nil {
				t.Fatal(err)
			}
			f.countReleased("m1", first.ID)
			envs := make([][]byte, n)
			for i := 1; i < n; i++ {
				round := cur
				round.ID = fmt.Sprintf("race-%02d", i)
				envs[i] = f.seal(t, f.update(t, round, "m1"))
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			receipts := make([]protocol.Receipt, n)
			for i := 1; i < n; i++ {
				wg.Go(func() { receipts[i], errs[i] = rs[i%2].svc.Submit(ctx, "m1", envs[i]) })
			}
			wg.Wait()
			accepted := 1
			for i, err := range errs[1:] {
				switch {
				case err == nil:
					accepted++
				case !errors.Is(err, dp.ErrBudgetExhausted):
					t.Errorf("submission %d: %v", i+1, err)
				}
			}
			if accepted != k {
				t.Fatalf("%d rounds accepted, want %d", accepted, k)
			}
			sgd := dp.Release{Mechanism: dp.Gaussian, Q: 0.02, Z: cur.Plan.NoiseMultiplier, Steps: 5}
			count := dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: cur.Plan.CountNoise, Steps: 1}
			kRounds, _, err := dp.Epsilon([]dp.Release{withSteps(sgd, 5*k), count}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if kRounds > 1+dp.FilterTolerance {
				t.Fatalf("k rounds spend ε %v, above the cap 1", kRounds)
			}
			for i, rc := range receipts {
				if errs[i] == nil && i > 0 && rc.Epsilon > kRounds*(1+1e-9) {
					t.Errorf("submission %d: receipt ε %v above k rounds' %v", i, rc.Epsilon, kRounds)
				}
			}
			ledgerMatches := func(when string) aggregator.Budget {
				t.Helper()
				got := budgetOf(t, rs[0], "m1")
				want, _, err := dp.Epsilon([]dp.Release{withSteps(sgd, 5*(got.Releases-1)), count}, 1e-6, dp.AccountantOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.Releases < k+1 || math.Abs(got.Epsilon-want) > 1e-9*want {
					t.Fatalf("%s: budget %d releases ε %v, want ≥ %d releases and ε %v for them", when, got.Releases, got.Epsilon, k+1, want)
				}
				return got
			}
			ledgerMatches("after the race")

			// m2: one payload in two envelopes, and one envelope twice, racing
			// through both replicas in one round each.
			for _, same := range []bool{false, true} {
				round := cur
				round.ID = fmt.Sprintf("race-%02d", n)
				if same {
					round.ID = fmt.Sprintf("race-%02d", n+1)
				}
				u := f.update(t, round, "m2")
				pair := [2][]byte{f.seal(t, u), nil}
				if pair[1] = pair[0]; !same {
					pair[1] = f.seal(t, u)
				}
				before := budgetOf(t, rs[0], "m2")
				var errs [2]error
				var rcs [2]protocol.Receipt
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() { rcs[i], errs[i] = rs[i].svc.Submit(ctx, "m2", pair[i]) })
				}
				wg.Wait()
				ok := 0
				for i := range 2 {
					switch {
					case errs[i] == nil && !rcs[i].Duplicate:
						ok++
					case errs[i] == nil && !same:
						t.Errorf("two envelopes: a duplicate receipt for envelope %d", i)
					case errs[i] != nil && same:
						t.Errorf("one envelope twice: %v", errs[i])
					}
				}
				if ok != 1 {
					t.Fatalf("same envelope %v: %d acceptances (%v), want 1", same, ok, errs)
				}
				if u.Customers.ReleasedIn == "" {
					f.countReleased("m2", round.ID)
				}
				wantRows := 1 // the DP-SGD steps; the count too in m2's first round
				if before.Releases == 0 {
					wantRows = 2
				}
				if got := budgetOf(t, rs[1], "m2"); got.Releases != before.Releases+wantRows {
					t.Errorf("same envelope %v: %d releases after, want %d", same, got.Releases, before.Releases+wantRows)
				}
			}
			want, _, err := dp.Epsilon([]dp.Release{withSteps(sgd, 10), count}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := budgetOf(t, rs[0], "m2"); math.Abs(got.Epsilon-want) > 1e-9*want {
				t.Errorf("m2: ε %v, want %v (two rounds and one count)", got.Epsilon, want)
			}
			f.verifyAudit(t, rs[0])
		})
	}
}

func withSteps(r dp.Release, steps int) dp.Release {
	r.Steps = steps
	return r
}

// insertOpenRounds inserts n open rounds prefix00… like cur, selecting ids:
// the state machine opens one round at a time.
func insertOpenRounds(t *testing.T, r *replica, f *fed, cur protocol.Round, prefix string, n int, ids ...string) {
	t.Helper()
	ctx := context.Background()
	err := r.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
		for i := range n {
			rr := aggregator.RoundRecord{
				ID: fmt.Sprintf("%s%02d", prefix, i), Seq: int64(100 + i), State: protocol.RoundOpen,
				OpenedAt: f.clock.Now(), Deadline: f.clock.Now().Add(time.Hour), Quorum: 1,
				Selected: ids, BaseVersion: cur.BaseVersion, Plan: cur.Plan,
			}
			if ok, err := tx.InsertRound(ctx, rr); err != nil || !ok {
				return fmt.Errorf("insert %s (inserted %v): %w", rr.ID, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRemovedAndReaddedKeepsBudget: an operator removes m1 from the policy
// (a reload) and adds it back. Its budget does not start over: enrolment
// rows and ledgers are never deleted, enrolling it again is refused, and its
// next accepted update's ε is that of both rounds and the one count, computed
// by dp.Epsilon. Merchant ids are ASCII and compared byte for byte, so "M1"
// is another merchant, refused while the policy does not name it.
func TestRemovedAndReaddedKeepsBudget(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			first := mustRound(t, r, "m1")
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			reloadPolicy(t, r, f, strings.Replace(testPolicy, "  m1: {}\n", "", 1))
			if _, err := r.svc.Enrol(ctx, "admin:test", aggregator.Merchant{ID: "M1", PublicKey: make([]byte, 32)}); !errors.Is(err, aggregator.ErrPolicy) {
				t.Errorf("enrol M1: got %v, want ErrPolicy", err)
			}
			reloadPolicy(t, r, f, testPolicy)
			if _, err := r.svc.Enrol(ctx, "admin:test", aggregator.Merchant{ID: "m1", PublicKey: make([]byte, 32)}); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("enrol m1 again: got %v, want ErrConflict", err)
			}
			f.clock.Add(time.Minute)
			tick(t, r)
			if round := mustRound(t, r, "m1"); round.ID == first.ID || !round.Selected {
				t.Fatalf("no new round for m1: %+v", round)
			}
			rc, err := f.submitHonest(t, r, "m1")
			if err != nil {
				t.Fatal(err)
			}
			p := first.Plan
			want, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: 2 * p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(rc.Epsilon-want) > 1e-9*want {
				t.Errorf("receipt ε %v after re-adding, want %v (both rounds)", rc.Epsilon, want)
			}
			if got := budgetOf(t, r, "m1"); got.Releases != 3 || math.Abs(got.Epsilon-want) > 1e-9*want {
				t.Errorf("budget of m1: %d releases ε %v, want 3 and %v", got.Releases, got.Epsilon, want)
			}
		})
	}
}

// TestBudgetsAtTheDeltaInForce: m1's update is accepted at the policy's
// δ 1e-6, then a reload lowers δ to 1e-9. Budgets (GET /v1/budgets, the
// kairos_epsilon_spent metric) gave the ε stored at the last debit, at
// 1e-6, beside the cap and the δ now in force: ε understated for the δ it
// names, a merchant over its cap shown under it. It is now the ledger's ε at
// the δ in force, what dp.Epsilon gives for the two releases at 1e-9 (and
// at 1e-6 again once δ is restored), on a second replica too.
func TestBudgetsAtTheDeltaInForce(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			p := mustRound(t, r, "m1").Plan
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			rels := []dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}
			for _, delta := range []string{"1e-9", "1e-6"} {
				doc := strings.Replace(testPolicy, "delta: 1e-6", "delta: "+delta, 1)
				reloadPolicy(t, r, f, doc)
				pol, err := policies.Parse("p.yaml", []byte(doc))
				if err != nil {
					t.Fatal(err)
				}
				f.policy = pol
				d, _ := strconv.ParseFloat(delta, 64)
				want, _, err := dp.Epsilon(rels, d, dp.AccountantOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i, at := range []*replica{r, f.start(t)} {
					got := budgetOf(t, at, "m1")
					if got.Delta != d || got.Releases != 2 || math.Abs(got.Epsilon-want) > 1e-9*want {
						t.Errorf("δ %s, replica %d: budget ε %v at δ %v (%d releases), want %v at %v (2)", delta, i, got.Epsilon, got.Delta, got.Releases, want, d)
					}
				}
			}
		})
	}
}

// faultStore injects a failure into the acceptance and publish
// transactions after their writes and before the commit, as a crash there
// would: the transaction must roll back whole.
type faultStore struct {
	aggregator.Store
	mu     sync.Mutex
	finish int // FinishAcceptance calls still to fail
	model  int // InsertModel calls still to fail
}

var errInjected = errors.New("injected fault")

func (s *faultStore) InTx(ctx context.Context, fn func(aggregator.Tx) error) error {
	return s.Store.InTx(ctx, func(tx aggregator.Tx) error { return fn(&faultTx{Tx: tx, s: s}) })
}

type faultTx struct {
	aggregator.Tx
	s *faultStore
}

func (t *faultTx) FinishAcceptance(ctx context.Context, u aggregator.UpdateRecord, ledger []aggregator.LedgerRow, next aggregator.BudgetHead, prev int64) error {
	if err := t.Tx.FinishAcceptance(ctx, u, ledger, next, prev); err != nil {
		return err
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.s.finish > 0 {
		t.s.finish--
		return errInjected
	}
	return nil
}

func (t *faultTx) InsertModel(ctx context.Context, m aggregator.ModelRecord) (bool, error) {
	ok, err := t.Tx.InsertModel(ctx, m)
	if err != nil {
		return ok, err
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.s.model > 0 {
		t.s.model--
		return false, errInjected
	}
	return ok, nil
}

// TestAcceptanceAndDebitAtomicUnderFaults: a failure after the update, its
// ledger rows and the budget head were written, before the commit (a crash
// there), leaves none of them: the submission fails as an error, m1's
// budget is untouched, and the same envelope sent again (as the client's
// pending upload is) is accepted and debited once. A failure while publishing
// leaves the round to the next tick, which merges the update once; the
// version's contribution carries the ledger's ε, dp.Epsilon of the DP-SGD
// steps and the count.
func TestAcceptanceAndDebitAtomicUnderFaults(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1")
			fs := &faultStore{Store: r.store.(aggregator.Store), finish: 1, model: 1}
			svc, err := aggregator.New(ctx, aggregator.Options{
				Store: fs, Policy: f.policy, Keys: f.agg, Audit: r.log, Now: f.clock.Now, Rounds: f.cfg,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			round, err := svc.CurrentRound(ctx, "m1")
			if err != nil {
				t.Fatal(err)
			}
			env := f.seal(t, f.update(t, round, "m1"))
			if _, err := svc.Submit(ctx, "m1", env); !errors.Is(err, errInjected) {
				t.Fatalf("submission with a fault before the commit: got %v, want the fault", err)
			}
			if got := budgetOf(t, r, "m1"); got.Releases != 0 || got.Epsilon != 0 {
				t.Fatalf("budget after the fault: %d releases ε %v, want none", got.Releases, got.Epsilon)
			}
			rc, err := svc.Submit(ctx, "m1", env)
			if err != nil || rc.Duplicate {
				t.Fatalf("the same envelope again: %+v, %v; want accepted", rc, err)
			}
			p := round.Plan
			want, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := budgetOf(t, r, "m1"); got.Releases != 2 || math.Abs(got.Epsilon-want) > 1e-9*want || math.Abs(rc.Epsilon-want) > 1e-9*want {
				t.Fatalf("after acceptance: %d releases ε %v, receipt ε %v; want 2 and %v", got.Releases, got.Epsilon, rc.Epsilon, want)
			}
			// Every sampled merchant sent: the tick publishes, and fails once.
			if err := svc.Tick(ctx); !errors.Is(err, errInjected) {
				t.Fatalf("tick with a fault in publish: got %v, want the fault", err)
			}
			if err := svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			mv, err := svc.Model(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mv.Version != 2 || mv.Round != round.ID || len(mv.Contributions) != 1 || math.Abs(mv.Contributions[0].Epsilon-want) > 1e-9*want {
				t.Fatalf("published v%d from %s with %+v, want v2 from %s with m1 at ε %v", mv.Version, mv.Round, mv.Contributions, round.ID, want)
			}
			if got := budgetOf(t, r, "m1"); got.Releases != 2 {
				t.Fatalf("after publish: %d releases, want 2", got.Releases)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestCampaignDecisionSpentAtTheDeltaInForce: the campaign decision's
// audit entry lists each merchant's "ε spent→after of cap". After a reload
// lowering δ from 1e-6 to 1e-9, "spent" was the ε stored with the ledger's
// last row, at 1e-6, beside an "after" at 1e-9: the entry showed the
// campaign adding more than it does. Both are now at the δ in force: spent
// is dp.Epsilon of m1's ledger rows at 1e-9.
func TestCampaignDecisionSpentAtTheDeltaInForce(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	const ret = "  evaluate_every: 30d\n  auc_drop: 0.02\n  max_model_age: 20d\n  campaign_rounds: 1\n  planned_evaluations: 0\n"
	f := newFedPolicy(t, b, campaignConfig(1), campaignPolicy(t, ret))
	f.customers["m1"], f.customers["m2"] = 350, 350
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	trainOnce(t, f, r)
	tick(t, r)
	evaluateAll(t, f, r, func(m string) []float64 { return goodHist[m] })
	tick(t, r)
	src := strings.Replace(strings.Split(testPolicy, "merchants:")[0], "delta: 1e-6", "delta: 1e-9", 1) + "merchants:\n  m1: {}\n  m2: {}\nretraining:\n" + ret
	p, err := policies.Parse("campaign-delta.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", p, f.cfg); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(31 * 24 * time.Hour)
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatalf("tick at the campaign decision: %v", err)
	}
	var rels []dp.Release
	err = r.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
		rows, err := tx.Ledger(ctx, "m1")
		for _, l := range rows {
			rels = append(rels, l.Release)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	spent, _, err := dp.Epsilon(rels, 1e-9, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := dp.Epsilon(rels, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%.4g", spent) == fmt.Sprintf("%.4g", stored) {
		t.Fatalf("ε %v at 1e-9 and %v at 1e-6 print alike", spent, stored)
	}
	recs := campaignAudit(t, r)
	last := recs[len(recs)-1]
	if last.Action != "campaign.decide" {
		t.Fatalf("last campaign record %s, want campaign.decide", last.Action)
	}
	if want := fmt.Sprintf("m1 ε %.4g→", spent); !strings.Contains(last.Details["budgets"], want) {
		t.Errorf("decision's budgets %q, want %q (ε at δ 1e-9; %.4g is at 1e-6)", last.Details["budgets"], want, stored)
	}
}
