package aggregator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

func budgetOf(t testing.TB, r *replica, merchant string) aggregator.Budget {
	t.Helper()
	bs, err := r.svc.Budgets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Merchant == merchant {
			return b
		}
	}
	t.Fatalf("no budget row for %s", merchant)
	return aggregator.Budget{}
}

// TestRefusals submits one bad envelope or payload per refusal reason and
// checks the sentinel, that each was audited as denied, and what was
// debited: nothing for an envelope refused before decryption (or a payload
// that declares nothing readable), and the DP-SGD release and the customer
// count it declares for a payload refused after decryption — the aggregator
// has seen them.
func TestRefusals(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	round := mustRound(t, r, "m1")
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	type sealFn = func(*sealOpts)
	cases := []struct {
		name   string
		as     string // submitting merchant (default m1)
		update func(*protocol.Update)
		seal   []sealFn
		env    func([]byte) []byte
		want   error
		seen   bool // refused after decryption: its two releases are debited
	}{
		{name: "signed by a stranger", seal: []sealFn{func(o *sealOpts) { o.key = stranger }}, want: seal.ErrBadSignature},
		{name: "signed as another merchant", seal: []sealFn{func(o *sealOpts) { o.header.MerchantID = "m2"; o.key = f.merchant["m2"] }}, want: seal.ErrUnknownSigner},
		{name: "not enrolled", as: "m3", update: func(u *protocol.Update) { u.Merchant = "m3" }, want: seal.ErrUnknownSigner},
		{name: "not in the policy", as: "zz", want: aggregator.ErrPolicy},
		{name: "stale", seal: []sealFn{func(o *sealOpts) { o.header.CreatedAt = o.header.CreatedAt.Add(-time.Hour) }}, want: seal.ErrStale},
		{name: "from the future", seal: []sealFn{func(o *sealOpts) { o.header.CreatedAt = o.header.CreatedAt.Add(time.Hour) }}, want: seal.ErrStale},
		{name: "ciphertext tampered", env: func(e []byte) []byte { e[len(e)-1] ^= 1; return e }, want: seal.ErrBadSignature},
		{name: "garbage", env: func([]byte) []byte { return []byte("not an envelope") }, want: seal.ErrMalformed},
		{name: "too large", env: func([]byte) []byte { return make([]byte, 5<<20) }, want: seal.ErrTooLarge},
		{name: "unknown round", update: func(u *protocol.Update) { u.Round = "round-999999" }, want: aggregator.ErrNotFound},
		{name: "stale base version", update: func(u *protocol.Update) { u.BaseVersion = 7 }, want: aggregator.ErrConflict},
		{name: "payload names another merchant", seal: []sealFn{func(o *sealOpts) { o.header.MerchantID = "m1"; o.key = f.merchant["m1"] }}, update: func(u *protocol.Update) { u.Merchant = "m2" }, want: protocol.ErrInvalidUpdate, seen: true},
		{name: "schema hash", update: func(u *protocol.Update) { u.SchemaHash = "sha256:00" }, want: protocol.ErrInvalidUpdate, seen: true},
		{name: "delta length", update: func(u *protocol.Update) { u.Delta = u.Delta[1:] }, want: protocol.ErrInvalidUpdate, seen: true},
		{name: "protocol version", update: func(u *protocol.Update) { u.Version = 2 }, want: protocol.ErrInvalidUpdate, seen: true},
		{name: "unknown payload field", seal: []sealFn{func(o *sealOpts) { o.payload = []byte(`{"version":1,"extra":true}`) }}, want: protocol.ErrInvalidUpdate},
		{name: "noise below plan", update: func(u *protocol.Update) { u.Release.NoiseMultiplier *= 0.9 }, want: aggregator.ErrPolicy, seen: true},
		{name: "clip norm", update: func(u *protocol.Update) { u.Release.ClipNorm = 2 }, want: aggregator.ErrPolicy, seen: true},
		{name: "sampling rate above plan", update: func(u *protocol.Update) { u.Release.SamplingRate *= 2 }, want: aggregator.ErrPolicy, seen: true},
		{name: "steps above plan", update: func(u *protocol.Update) { u.Release.Steps++ }, want: aggregator.ErrPolicy, seen: true},
		{name: "too few customers", update: func(u *protocol.Update) { u.Customers.Value = 99 }, want: aggregator.ErrPolicy, seen: true},
		{name: "count noise below plan", update: func(u *protocol.Update) { u.Customers.Sigma = 1 }, want: aggregator.ErrPolicy, seen: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as := tc.as
			if as == "" {
				as = "m1"
			}
			u := f.update(t, round, "m1")
			if tc.update != nil {
				tc.update(&u)
			}
			opts := tc.seal
			if as != "m1" && f.merchant[as] == nil {
				opts = append([]sealFn{func(o *sealOpts) { o.key = stranger }}, opts...)
			}
			env := f.seal(t, u, opts...)
			if tc.env != nil {
				env = tc.env(env)
			}
			before := budgetOf(t, r, "m1").Releases
			_, err := r.svc.Submit(ctx, as, env)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			want := before
			if tc.seen {
				want += 2
			}
			if got := budgetOf(t, r, "m1").Releases; got != want {
				t.Errorf("m1's releases: got %d, want %d", got, want)
			}
		})
	}
	if got := auditActions(t, r.store)["round.update.accept denied"]; got != len(cases) {
		t.Errorf("denied audit entries: got %d, want %d", got, len(cases))
	}
	if got := budgetOf(t, r, "m2").Releases; got != 0 {
		t.Errorf("m2's releases after refusals: got %d, want 0", got)
	}
	// After all that, m2's honest update is still accepted, once.
	if _, err := f.submitHonest(t, r, "m2"); err != nil {
		t.Fatalf("honest update: %v", err)
	}
	if _, err := f.submitHonest(t, r, "m2"); !errors.Is(err, aggregator.ErrConflict) {
		t.Fatalf("second update in the round: got %v, want ErrConflict", err)
	}
	f.verifyAudit(t, r)
}

func TestNotSelected(t *testing.T) {
	b := backends(t)[0]
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, SampleFraction: 0.5, Seed: 7})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2", "m3", "m4")
	tick(t, r)
	var in, out []string
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		if mustRound(t, r, m).Selected {
			in = append(in, m)
		} else {
			out = append(out, m)
		}
	}
	if len(in) != 2 || len(out) != 2 {
		t.Fatalf("sampled %v, left out %v, want 2 and 2", in, out)
	}
	if _, err := f.submitHonest(t, r, out[0]); !errors.Is(err, aggregator.ErrNotSelected) {
		t.Fatalf("update from unsampled %s: got %v, want ErrNotSelected", out[0], err)
	}
	if _, err := f.submitHonest(t, r, in[0]); err != nil {
		t.Fatalf("update from sampled %s: %v", in[0], err)
	}
}

// fixedNonce is a rand that always yields the same 16 bytes.
type fixedNonce [seal.NonceSize]byte

func (n fixedNonce) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = n[i%len(n)]
	}
	return len(p), nil
}

// TestDuplicateAndReplay: the same envelope twice returns the first receipt
// with Duplicate and debits nothing, even after it went stale; a different
// envelope reusing the nonce is a replay.
func TestDuplicateAndReplay(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: 3 * time.Hour})
			r := f.start(t)
			f.enrol(t, r, "m1")
			tick(t, r)
			round := mustRound(t, r, "m1")
			nonce := fixedNonce{1, 2, 3}
			u := f.update(t, round, "m1")
			env := f.seal(t, u, func(o *sealOpts) { o.rand = nonce })
			first, err := r.svc.Submit(ctx, "m1", env)
			if err != nil {
				t.Fatal(err)
			}
			if first.Duplicate || first.Epsilon <= 0 || first.EpsilonCap != 1 || first.Delta != 1e-6 {
				t.Fatalf("first receipt: got %+v", first)
			}
			before := budgetOf(t, r, "m1")
			f.clock.Add(time.Hour) // beyond MaxSkew: only a known envelope can still be answered
			again, err := r.svc.Submit(ctx, "m1", bytes.Clone(env))
			if err != nil {
				t.Fatalf("resubmit: %v", err)
			}
			if !again.Duplicate || again.UpdateID != first.UpdateID || again.Epsilon != first.Epsilon || !again.AcceptedAt.Equal(first.AcceptedAt) {
				t.Fatalf("resubmit: got %+v, want the first receipt %+v with Duplicate", again, first)
			}
			if after := budgetOf(t, r, "m1"); after != before || after.Releases != 2 {
				t.Fatalf("budget after duplicate: got %+v, want %+v with 2 releases", after, before)
			}
			// Another merchant presenting m1's envelope gets nothing.
			f.enrol(t, r, "m2")
			if _, err := r.svc.Submit(ctx, "m2", env); !errors.Is(err, seal.ErrUnknownSigner) {
				t.Fatalf("m1's envelope from m2: got %v, want ErrUnknownSigner", err)
			}
			if after := budgetOf(t, r, "m1"); after != before {
				t.Fatalf("budget after m2's attempt: got %+v, want %+v", after, before)
			}
			// Same nonce, different payload (a forged or replayed variant): this
			// Service accepted the nonce in the round, so it is refused before
			// decryption and nothing is debited.
			u.Delta[0] += 1
			replay := f.seal(t, u, func(o *sealOpts) { o.rand = nonce })
			if _, err := r.svc.Submit(ctx, "m1", replay); !errors.Is(err, seal.ErrReplay) {
				t.Fatalf("nonce reuse: got %v, want ErrReplay", err)
			}
			if after := budgetOf(t, r, "m1"); after != before {
				t.Fatalf("budget after replay: got %+v, want %+v", after, before)
			}
		})
	}
}

// TestBudgetRace races 63 submissions of one merchant, each for its own open
// round, after a first one released its customer count, when its budget fits
// exactly k rounds: exactly k−1 racers are accepted, the rest refused with
// dp.ErrBudgetExhausted; the receipts' ε is what the accountant gives for k
// rounds of DP-SGD and one count, within the cap; and the ledger holds the
// DP-SGD releases of the refused racers the aggregator decrypted, each once:
// at least one, and none once a debit took the ledger past the cap.
func TestBudgetRace(t *testing.T) {
	const k, n = 5, 64
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Hour, PlannedRounds: k, StepsPerRound: 5, SamplingRate: 0.02})
			r := f.start(t)
			f.enrol(t, r, "m1")
			tick(t, r)
			cur := mustRound(t, r, "m1")
			// The state machine opens one round at a time; insert n open rounds
			// directly so that one merchant can race itself across them.
			envs := make([][]byte, n)
			err := r.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
				for i := range n {
					rr := aggregator.RoundRecord{
						ID: fmt.Sprintf("race-%02d", i), Seq: int64(100 + i), State: protocol.RoundOpen,
						OpenedAt: f.clock.Now(), Deadline: f.clock.Now().Add(time.Hour), Quorum: 1,
						Selected: []string{"m1"}, BaseVersion: cur.BaseVersion, Plan: cur.Plan,
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
			// The first submission releases the customer count; the racing ones
			// send it again, as a client does.
			first := cur
			first.ID = "race-00"
			if _, err := r.svc.Submit(ctx, "m1", f.seal(t, f.update(t, first, "m1"))); err != nil {
				t.Fatal(err)
			}
			f.countReleased("m1", first.ID)
			for i := 1; i < n; i++ {
				round := cur
				round.ID = fmt.Sprintf("race-%02d", i)
				envs[i] = f.seal(t, f.update(t, round, "m1"))
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			receipts := make([]protocol.Receipt, n)
			for i := 1; i < n; i++ {
				wg.Go(func() { receipts[i], errs[i] = r.svc.Submit(ctx, "m1", envs[i]) })
			}
			wg.Wait()
			accepted, exhausted := 0, 0
			for i, err := range errs {
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, dp.ErrBudgetExhausted):
					exhausted++
				default:
					t.Errorf("submission %d: %v", i, err)
				}
			}
			if accepted != k || exhausted != n-k {
				t.Fatalf("got %d accepted and %d exhausted, want %d and %d", accepted, exhausted, k, n-k)
			}
			want, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: 0.02, Z: cur.Plan.NoiseMultiplier, Steps: 5 * k},
				{Mechanism: dp.Gaussian, Q: 1, Z: cur.Plan.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want > 1+dp.FilterTolerance {
				t.Fatalf("k rounds spend ε %v, above the cap 1", want)
			}
			for i, rc := range receipts {
				if errs[i] == nil && rc.Epsilon > want*(1+1e-9) {
					t.Errorf("submission %d: receipt ε %v above k rounds' %v", i, rc.Epsilon, want)
				}
			}
			// Racers refused after decryption were debited; once one such debit
			// took the ledger past the cap, the rest were refused before
			// decryption (TestNoDecryptionPastTheCap). At least one was decrypted:
			// only a debit past the cap refuses before decryption.
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			decrypted := 0
			for _, e := range es {
				if e.Action == "round.update.accept" && e.Outcome == audit.OutcomeDenied && e.Details["payload"] != "" {
					decrypted++
				}
			}
			if decrypted < 1 || decrypted > n-k {
				t.Fatalf("%d refusals decrypted, want 1…%d", decrypted, n-k)
			}
			seen, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: 0.02, Z: cur.Plan.NoiseMultiplier, Steps: 5 * (k + decrypted)},
				{Mechanism: dp.Gaussian, Q: 1, Z: cur.Plan.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := budgetOf(t, r, "m1")
			if got.Releases != k+decrypted+1 || math.Abs(got.Epsilon-seen) > 1e-9*seen {
				t.Fatalf("budget: got %d releases ε %v, want %d releases ε %v (every round seen)", got.Releases, got.Epsilon, k+decrypted+1, seen)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestReusedCount: a customer count sent again is accepted without a debit
// only when it is exactly the count the merchant's accepted update released in
// the round it names. The refused variants were decrypted: their counts (and
// their DP-SGD releases) are debited as new releases.
func TestReusedCount(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, PlannedRounds: 20})
			r := f.start(t)
			f.enrol(t, r, "m1")
			tick(t, r)
			first := mustRound(t, r, "m1")
			if _, err := f.submitHonest(t, r, "m1"); err != nil {
				t.Fatal(err)
			}
			tick(t, r)
			if got := budgetOf(t, r, "m1").Releases; got != 2 {
				t.Fatalf("after the first round: %d releases, want 2 (steps and count)", got)
			}
			round := mustRound(t, r, "m1")
			for name, c := range map[string]protocol.NoisyCount{
				"other value":   {Value: 1001, Sigma: round.Plan.CountNoise, ReleasedIn: first.ID},
				"other noise":   {Value: 1000, Sigma: 2 * round.Plan.CountNoise, ReleasedIn: first.ID},
				"unknown round": {Value: 1000, Sigma: round.Plan.CountNoise, ReleasedIn: "round-999999"},
				"its own round": {Value: 1000, Sigma: round.Plan.CountNoise, ReleasedIn: round.ID},
			} {
				u := f.update(t, round, "m1")
				u.Customers = c
				if _, err := r.svc.Submit(ctx, "m1", f.seal(t, u)); !errors.Is(err, protocol.ErrInvalidUpdate) {
					t.Errorf("%s: got %v, want ErrInvalidUpdate", name, err)
				}
			}
			u := f.update(t, round, "m1")
			if u.Customers.ReleasedIn != first.ID {
				t.Fatalf("honest second update names %q, want %q", u.Customers.ReleasedIn, first.ID)
			}
			rc, err := r.svc.Submit(ctx, "m1", f.seal(t, u))
			if err != nil {
				t.Fatal(err)
			}
			// First round: steps and count; four refused: steps and a count
			// each (one at twice the noise); the reuse: steps only.
			want, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: round.Plan.SamplingRate, Z: round.Plan.NoiseMultiplier, Steps: 6 * round.Plan.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: round.Plan.CountNoise, Steps: 4},
				{Mechanism: dp.Gaussian, Q: 1, Z: 2 * round.Plan.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := budgetOf(t, r, "m1"); got.Releases != 11 || math.Abs(rc.Epsilon-want) > 1e-9*want {
				t.Errorf("after the reuse: %d releases, ε %v; want 11 and %v", got.Releases, rc.Epsilon, want)
			}
		})
	}
}
