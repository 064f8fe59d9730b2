package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/hazard"
)

func TestEnrol(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFed(t, b, aggregator.RoundConfig{})
	r := f.start(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	m, err := r.svc.Enrol(ctx, "admin:alice", aggregator.Merchant{ID: "m1", TimeZone: "America/New_York", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "m1" || m.TimeZone != "America/New_York" || m.Region != "" || m.Revoked || !m.EnrolledAt.Equal(f.clock.Now()) {
		t.Fatalf("enrolled: got %+v", m)
	}
	cases := []struct {
		name string
		m    aggregator.Merchant
		want error
	}{
		{"again", aggregator.Merchant{ID: "m1", PublicKey: pub}, aggregator.ErrConflict},
		{"not in policy", aggregator.Merchant{ID: "stranger", PublicKey: pub}, aggregator.ErrPolicy},
		{"bad id", aggregator.Merchant{ID: "../m1", PublicKey: pub}, aggregator.ErrPolicy},
		{"short key", aggregator.Merchant{ID: "m2", PublicKey: pub[:31]}, aggregator.ErrPolicy},
		{"bad time zone", aggregator.Merchant{ID: "m2", TimeZone: "Mars/Olympus", PublicKey: pub}, aggregator.ErrPolicy},
		{"region not the policy's", aggregator.Merchant{ID: "m2", Region: "eu", PublicKey: pub}, aggregator.ErrPolicy},
	}
	for _, tc := range cases {
		if _, err := r.svc.Enrol(ctx, "admin:alice", tc.m); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	ms, err := r.svc.Merchants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID != "m1" || !ms[0].PublicKey.Equal(pub) {
		t.Fatalf("merchants: got %+v, want only m1 with its key", ms)
	}
	acts := auditActions(t, r.store)
	if acts["merchant.enrol ok"] != 1 || acts["merchant.enrol denied"] != len(cases) {
		t.Errorf("audit: got %v, want 1 ok and %d denied enrolments", acts, len(cases))
	}
	if _, err := r.svc.CurrentRound(ctx, "m2"); !errors.Is(err, aggregator.ErrNotFound) {
		t.Errorf("current round of an unenrolled merchant: got %v, want ErrNotFound", err)
	}
}

// TestRegistryAndRollback publishes two versions, rolls back to the first
// and checks that the next round trains from it and the registry says so.
func TestRegistryAndRollback(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute})
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	for range 2 {
		if _, err := f.submitHonest(t, r, "m1"); err != nil {
			t.Fatal(err)
		}
		tick(t, r)
	}
	models, err := r.svc.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 3 || !models[2].Active || models[1].Active || models[2].Parent != 2 || models[2].Model != nil {
		t.Fatalf("models: got %+v, want v1..v3 with v3 active, parent 2, no model bytes in the list", models)
	}
	v3 := models[2]
	if v3.PolicyHash != f.policy.Hash() || !strings.HasPrefix(v3.Merge, "fedavg norm≤") || !strings.HasSuffix(v3.Merge, " share≤0.5 + fedadam(lr=0.01, tau=0.001, t=2)") || len(v3.Contributions) != 1 || v3.Contributions[0].Delta != 1e-6 {
		t.Fatalf("v3 lineage: got %+v", v3)
	}
	if err := r.svc.Rollback(ctx, "admin:alice", 9); !errors.Is(err, aggregator.ErrNotFound) {
		t.Fatalf("rollback to a missing version: got %v, want ErrNotFound", err)
	}
	if err := r.svc.Rollback(ctx, "admin:alice", 2); err != nil {
		t.Fatal(err)
	}
	active, err := r.svc.Model(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if active.Version != 2 || !active.Active {
		t.Fatalf("active after rollback: got v%d active %v, want v2", active.Version, active.Active)
	}
	if _, err := hazard.Unmarshal(active.Model, active.SchemaHash); err != nil {
		t.Fatalf("active model file: %v", err)
	}
	// The open round (seq 4) trained from v3, which the rollback withdrew:
	// the rollback cancelled it and opened round 5 from the active v2
	// (review 14; review round 3's TestRollbackDuringRoundStays covers an
	// update sent before).
	if got := mustRound(t, r, "m1"); got.BaseVersion != 2 || got.Seq != 5 {
		t.Fatalf("round after rollback: got seq %d base %d, want 5 base 2", got.Seq, got.BaseVersion)
	}
	if err := r.svc.Rollback(ctx, "admin:alice", 2); err != nil { // to the active version: withdraws nothing
		t.Fatal(err)
	}
	if mv, err := r.svc.Model(ctx, 2); err != nil || !mv.Active || mv.Withdrawn {
		t.Fatalf("v2 after a rollback to itself: active %v withdrawn %v (%v)", mv.Active, mv.Withdrawn, err)
	}
	counts, err := r.svc.RoundCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[protocol.RoundPublished] != 2 || counts[protocol.RoundFailed] != 2 || counts[protocol.RoundOpen] != 1 {
		t.Errorf("round counts: got %v, want 2 published, 2 failed, 1 open", counts)
	}
	if acts := auditActions(t, r.store); acts["model.rollback ok"] != 2 || acts["model.rollback denied"] != 1 {
		t.Errorf("rollback audit: got %v", acts)
	}
}

// TestBudgetExhaustion: with a budget planned for 2 rounds, the third update
// is refused; the aggregator decrypted it, so its DP-SGD release is in the
// ledger, which now passes the cap by exactly that release.
func TestBudgetExhaustion(t *testing.T) {
	b := backends(t)[0]
	f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, PlannedRounds: 2})
	r := f.start(t)
	f.enrol(t, r, "poor")
	tick(t, r)
	for i := range 3 {
		_, err := f.submitHonest(t, r, "poor")
		switch {
		case i < 2 && err != nil:
			t.Fatalf("update %d: %v", i+1, err)
		case i == 2 && !errors.Is(err, errBudget):
			t.Fatalf("update 3: got %v, want ErrBudgetExhausted", err)
		}
		tick(t, r)
	}
	p := mustRound(t, r, "poor").Plan
	want, _, err := dp.Epsilon([]dp.Release{
		{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: 3 * p.Steps},
		{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
	}, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := budgetOf(t, r, "poor")
	if got.Cap != 0.5 || got.Releases != 4 || math.Abs(got.Epsilon-want) > 1e-9*want || want <= 0.5 {
		t.Fatalf("budget: got %+v, want cap 0.5, 4 releases (steps, count, steps, refused steps), ε %v above the cap", got, want)
	}
}

var errBudget = dp.ErrBudgetExhausted
