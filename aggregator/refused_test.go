package aggregator_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/dp"
)

// TestRefusedReleasesAccounted: m1 seals and signs an update whose DP-SGD
// noise is 10% below the plan. The aggregator decrypts it and refuses it
// (policy), and — having seen its delta and its customer count — debits both
// as declared: the ledger, the budget API and the compliance view all give
// ε of (q, 0.9·z, steps) and the count (σ), computed here by dp.Epsilon. The
// refusal's audit entry says what was debited. The same payload sealed in a
// new envelope is refused again but not debited twice, and an update refused
// before decryption (its round's deadline passed) debits nothing.
func TestRefusedReleasesAccounted(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			round := mustRound(t, r, "m1")
			p := round.Plan
			u := f.update(t, round, "m1")
			u.Release.NoiseMultiplier = 0.9 * p.NoiseMultiplier
			if _, err := r.svc.Submit(ctx, "m1", f.seal(t, u)); !errors.Is(err, aggregator.ErrPolicy) {
				t.Fatalf("noise below the plan: got %v, want ErrPolicy", err)
			}
			want, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: 0.9 * p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				if got := budgetOf(t, r, "m1"); got.Releases != 2 || math.Abs(got.Epsilon-want) > 1e-9*want {
					t.Errorf("%s: budget %d releases ε %v, want 2 and %v", when, got.Releases, got.Epsilon, want)
				}
				bs, err := compliance.LoadBudgets(ctx, r.store.(aggregator.Store), f.policy)
				if err != nil {
					t.Fatal(err)
				}
				for _, cb := range bs {
					if cb.Merchant == "m1" && (cb.Releases != 2 || math.Abs(cb.Epsilon-want) > 1e-9*want) {
						t.Errorf("%s: compliance view of m1: %d releases ε %v, want 2 and %v", when, cb.Releases, cb.Epsilon, want)
					}
				}
			}
			check("after the refusal")

			// The same payload in a fresh envelope: refused, not debited again.
			if _, err := r.svc.Submit(ctx, "m1", f.seal(t, u)); !errors.Is(err, aggregator.ErrPolicy) {
				t.Fatalf("same payload again: got %v, want ErrPolicy", err)
			}
			check("after the same payload again")

			// Refused before decryption: nothing seen, nothing debited.
			f.clock.Add(2 * time.Minute)
			if _, err := f.submitHonest(t, r, "m2"); !errors.Is(err, aggregator.ErrRoundClosed) {
				t.Fatalf("after the deadline: got %v, want ErrRoundClosed", err)
			}
			if got := budgetOf(t, r, "m2"); got.Releases != 0 {
				t.Errorf("m2 after a refusal before decryption: %d releases, want 0", got.Releases)
			}
			check("at the end")

			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var debited []string
			for _, e := range es {
				if e.Action == "round.update.accept" && e.Outcome == "denied" {
					debited = append(debited, e.Details["debited"])
					if e.Details["debited"] == "2 releases" {
						if got, err := strconv.ParseFloat(e.Details["epsilon"], 64); err != nil || math.Abs(got-want) > 1e-9*want {
							t.Errorf("audited ε %q, want %v", e.Details["epsilon"], want)
						}
					}
				}
			}
			if strings.Join(debited, "|") != "2 releases|before|" {
				t.Errorf("audited debits of the refusals: %q, want 2 releases, before, and none", debited)
			}
			f.verifyAudit(t, r)
		})
	}
}

// TestRefusedUnaccountable: a refused update declaring DP-SGD noise so small
// that no Rényi order bounds it (z = 1e-200), or none at all (z = 0), cannot be
// given an ε: its count is debited, the DP-SGD release is named in the
// refusal's audit entry as unaccountable, and the submission is refused as
// such (policy or invalid update), never failed.
func TestRefusedUnaccountable(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute})
	r := f.start(t)
	f.enrol(t, r, "m1", "m2")
	tick(t, r)
	for _, tc := range []struct {
		merchant string
		z        float64
		want     error
	}{{"m1", 1e-200, aggregator.ErrPolicy}, {"m2", 0, protocol.ErrInvalidUpdate}} {
		u := f.update(t, mustRound(t, r, tc.merchant), tc.merchant)
		u.Release.NoiseMultiplier = tc.z
		if _, err := r.svc.Submit(ctx, tc.merchant, f.seal(t, u)); !errors.Is(err, tc.want) {
			t.Fatalf("%s with z = %v: got %v, want %v", tc.merchant, tc.z, err, tc.want)
		}
		if got := budgetOf(t, r, tc.merchant); got.Releases != 1 {
			t.Errorf("%s: %d releases, want 1 (the count)", tc.merchant, got.Releases)
		}
	}
	es, err := r.store.AuditEntries(ctx, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == "round.update.accept" && e.Outcome == "denied" {
			n++
			if e.Details["debited"] != "1 releases" || !strings.Contains(e.Details["unaccountable"], "DP-SGD") && !strings.Contains(e.Details["unaccountable"], "unbounded") {
				t.Errorf("refusal details %v, want 1 release debited and the DP-SGD release unaccountable", e.Details)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d denied acceptances audited, want 2", n)
	}
}
