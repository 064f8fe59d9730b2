package aggregator_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/policies"
)

// TestReloadNonFiniteRoundConfigRefused (hardening review, session 18): NaN
// passed every "< 0" check of the round configuration and +Inf every "> 0"
// one, so a reload with norm_bound NaN silently fell back to the derived
// bound, an Inf server_lr made the next merged model non-finite, an l2 or
// count_noise of NaN went out in every plan. Each is now refused with
// ErrPolicy and audited; the plan of the next round is the old one.
func TestReloadNonFiniteRoundConfigRefused(t *testing.T) {
	ctx := context.Background()
	base := aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, L2: 0.001, CountNoise: 40}
	f := newFed(t, sqliteBackend(t), base)
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	nan, inf := math.NaN(), math.Inf(1)
	for _, tt := range []struct {
		name string
		set  func(*aggregator.RoundConfig)
	}{
		{"l2 NaN", func(c *aggregator.RoundConfig) { c.L2 = nan }},
		{"l2 +Inf", func(c *aggregator.RoundConfig) { c.L2 = inf }},
		{"norm bound NaN", func(c *aggregator.RoundConfig) { c.NormBound = nan }},
		{"norm bound +Inf", func(c *aggregator.RoundConfig) { c.NormBound = inf }},
		{"count noise +Inf", func(c *aggregator.RoundConfig) { c.CountNoise = inf }},
		{"server lr +Inf", func(c *aggregator.RoundConfig) { c.ServerLR = inf }},
		{"server tau +Inf", func(c *aggregator.RoundConfig) { c.ServerTau = inf }},
		{"learning rate NaN", func(c *aggregator.RoundConfig) { c.LearningRate = nan }},
		{"evaluation sigma +Inf", func(c *aggregator.RoundConfig) {
			c.Evaluation = &aggregator.EvaluationConfig{Cutoff: time.Date(1998, 6, 1, 0, 0, 0, 0, time.UTC), Sigma: inf}
		}},
	} {
		cfg := base
		tt.set(&cfg)
		if _, err := r.svc.Reload(ctx, "admin:ops", f.policy, cfg); !errors.Is(err, aggregator.ErrPolicy) {
			t.Errorf("reload with %s: got %v, want ErrPolicy", tt.name, err)
		}
	}
	if _, err := r.svc.CancelRound(ctx, "admin:ops", "", "open a round under the configuration in force"); err != nil {
		t.Fatal(err)
	}
	p := mustRound(t, r, "m1").Plan
	if p.L2 != base.L2 || p.CountNoise != base.CountNoise {
		t.Errorf("next plan: l2 %v count noise %v, want the configuration before the refused reloads (%v, %v)", p.L2, p.CountNoise, base.L2, base.CountNoise)
	}
	if got := auditActions(t, r.store)["config.reload denied"]; got != 9 {
		t.Errorf("config.reload denied entries: %d, want 9", got)
	}
	f.verifyAudit(t, r)
}

// TestRefusalReasonBounded: a refused update's audit reason quotes what the
// payload says (the merchant it names, say). Attack: an enrolled merchant
// seals a 1 MB merchant id in an otherwise empty payload, so that nothing is
// debited, and sends it again and again: each refusal wrote a 1 MB entry to
// the append-only audit log, which keeps it forever. The reason is now cut
// to 1 KiB, as a refused reload's is.
func TestRefusalReasonBounded(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	round := mustRound(t, r, "m1")
	big := strings.Repeat("é", 500_000)
	env := f.seal(t, protocol.Update{Merchant: "m1", Round: round.ID, BaseVersion: round.BaseVersion}, func(o *sealOpts) {
		o.payload = []byte(`{"version":1,"merchant":"` + big + `","round":"` + round.ID + `"}`)
	})
	if _, err := r.svc.Submit(ctx, "m1", env); !errors.Is(err, protocol.ErrInvalidUpdate) {
		t.Fatalf("payload naming another merchant: got %v, want ErrInvalidUpdate", err)
	}
	es, err := r.store.AuditEntries(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Action != "round.update.accept" || last.Outcome != audit.OutcomeDenied {
		t.Fatalf("last entry %s %s, want the denied update", last.Action, last.Outcome)
	}
	if n := len(last.Reason); n > 1100 || !utf8.ValidString(last.Reason) || !strings.Contains(last.Reason, "payload names merchant") {
		t.Errorf("refusal reason of %d bytes (valid UTF-8 %v), want at most about 1 KiB naming the refusal", n, utf8.ValidString(last.Reason))
	}
}

// TestStopAndCancelReasonNUL: a merchant's stop reason (POST
// /v1/merchants/me:stop) and an admin's cancel reason are free text. With a
// NUL in it, on SQLite the merchant was stopped and the round cancelled but
// their audit entries could not be appended ("reason is not valid UTF-8
// without NUL"); the stopped merchant's reason then went into the reason of
// the round it closed early, whose close and the next round's opening never
// reached the log either. On PostgreSQL the store refused the NUL. Such a
// reason is now refused (ErrPolicy, audited as denied) before anything
// changes, on both stores, and the log verifies.
func TestStopAndCancelReasonNUL(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f, r := fedWithM1(t, b, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
			for _, reason := range []string{"a\x00b", "a\xffb"} {
				if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: reason}); !errors.Is(err, aggregator.ErrPolicy) {
					t.Errorf("stop with reason %q: got %v, want ErrPolicy", reason, err)
				}
				if _, err := r.svc.CancelRound(ctx, "admin:ops", "", reason); !errors.Is(err, aggregator.ErrPolicy) {
					t.Errorf("cancel with reason %q: got %v, want ErrPolicy", reason, err)
				}
			}
			tick(t, r)
			if got := mustRound(t, r, "m1"); got.Seq != 2 || got.State != protocol.RoundOpen {
				t.Errorf("round after the refused stop and cancel: %d %s, want 2 still open", got.Seq, got.State)
			}
			acts := auditActions(t, r.store)
			if acts["merchant.stop denied"] != 2 || acts["round.cancel denied"] != 2 {
				t.Errorf("audit %v, want 2 denied stops and 2 denied cancels", acts)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestReloadByUnloggableActorAudited: the actor of an audited action is
// "role:subject" from the caller's token, and a token's subject was any
// string, NUL included. Reload installs the new configuration and then
// appends its audit entry: with such an actor the entry was refused ("actor
// is not valid UTF-8 without NUL") after the new policy was already in force,
// an unaudited configuration change. appendAudit now stores such text with
// U+FFFD in place of the bad bytes, so the entry is always written (the
// tokens themselves are refused: auth.TestSubjectControlCharacters).
func TestReloadByUnloggableActorAudited(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	p2 := policyCap2(t)
	if _, err := r.svc.Reload(ctx, "admin:ops\x00", p2, f.cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r.svc.Policy().Hash() != p2.Hash() {
		t.Fatal("the new policy is not in force")
	}
	es, err := r.store.AuditEntries(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Action != "config.reload" || last.Actor != "admin:ops\uFFFD" || last.Outcome != audit.OutcomeOK {
		t.Errorf("last entry %s by %q (%s), want the reload by admin:ops\\uFFFD", last.Action, last.Actor, last.Outcome)
	}
	f.verifyAudit(t, r)
}

// TestReloadNotInForceWithoutItsEntry: Reload installed the new policy and
// then appended its config.reload entry; when the audit log could not take
// it (a store outage; here the log is closed), the call failed but the new
// policy stayed in force, unaudited. The entry is now appended first and the
// policy installed only once it is durable.
func TestReloadNotInForceWithoutItsEntry(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	p2 := policyCap2(t)
	if err := r.log.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Reload(ctx, "admin:ops", p2, f.cfg); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("reload with the audit log down: got %v, want audit.ErrClosed", err)
	}
	if got := r.svc.Policy().Hash(); got != f.policy.Hash() {
		t.Errorf("policy in force %s after a reload that could not be audited, want the old %s", got, f.policy.Hash())
	}
}

// policyCap2 is testPolicy with every merchant's ε cap 2 instead of 1.
func policyCap2(t *testing.T) *policies.Policy {
	t.Helper()
	p, err := policies.Parse("p2.yaml", []byte(strings.Replace(testPolicy, "epsilon_cap: 1.0", "epsilon_cap: 2.0", 1)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStopAuditedAfterOutage: StopMerchant marked the merchant stopped and
// then appended merchant.stop; with the audit log down the merchant stayed
// stopped (and rounds closed early on its account) with no entry, ever. The
// entry is now staged in the transaction that stops the merchant (the
// outbox, as for cancel and rollback): the call still fails, and the next
// replica's tick writes the entry.
func TestStopAuditedAfterOutage(t *testing.T) {
	ctx := context.Background()
	f := newFed(t, sqliteBackend(t), aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1})
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	if err := r.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.StopMerchant(ctx, "m1", protocol.MerchantStop{Reason: "local cap reached"}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("stop with the audit log down: got %v, want audit.ErrClosed", err)
	}
	r.store.Close()
	r2 := f.start(t)
	f.clock.Add(time.Minute) // past the outbox's repair delay
	tick(t, r2)
	if acts := auditActions(t, r2.store); acts["merchant.stop ok"] != 1 {
		t.Errorf("audit after the outage %v, want the merchant.stop entry", acts)
	}
	f.verifyAudit(t, r2)
}
