package api

import (
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/dp"
)

// TestClientOverLoopback runs apiclient against the real server on a loopback
// listener.
func TestClientOverLoopback(t *testing.T) {
	svc := &fakeService{budgets: []aggregator.Budget{{Merchant: "m1", Cap: 1, Delta: 1e-6, Epsilon: 0.5, Releases: 2}}}
	f := newFixture(t, svc, Options{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := t.Context()
	client := func(token string) *apiclient.Client {
		c, err := apiclient.New(ts.URL+"/", f.tokens[token], apiclient.WithHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin, m1, compliance := client("admin"), client("m1"), client("compliance")

	pub, _, _ := ed25519.GenerateKey(nil)
	e, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: "m1", Region: "eu", TimeZone: "Europe/Berlin", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if e.Merchant.ID != "m1" || !e.Merchant.PublicKey.Equal(pub) || e.Token == "" {
		t.Errorf("enrolment %+v", e)
	}
	ms, err := admin.Merchants(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != "m1" || ms[0].TimeZone != "Europe/Berlin" {
		t.Errorf("merchants: %+v, %v", ms, err)
	}

	r, err := m1.CurrentRound(ctx)
	if err != nil || r.ID != "r1" || !r.Selected || r.Quorum != 2 {
		t.Fatalf("current round: %+v, %v", r, err)
	}
	rc, err := m1.SubmitUpdate(ctx, r.ID, f.envelope(t, "m1", r.ID))
	if err != nil || rc.UpdateID != "u1" || rc.Merchant != "m1" || rc.Epsilon != 0.25 {
		t.Fatalf("submit: %+v, %v", rc, err)
	}
	mvs, err := m1.Models(ctx)
	if err != nil || len(mvs) != 1 || mvs[0].Version != 1 {
		t.Errorf("models: %+v, %v", mvs, err)
	}
	if mv, err := m1.Model(ctx, 0); err != nil || !mv.Active {
		t.Errorf("active model: %+v, %v", mv, err)
	}
	if mv, err := admin.Rollback(ctx, 1); err != nil || mv.Version != 1 {
		t.Errorf("rollback: %+v, %v", mv, err)
	}
	bs, err := compliance.Budgets(ctx)
	if err != nil || len(bs) != 1 || bs[0].Merchant != "m1" || bs[0].Epsilon != 0.5 || bs[0].Releases != 2 {
		t.Errorf("budgets: %+v, %v", bs, err)
	}
	keys, err := client("none").JWKS(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != f.jwks[0].ID {
		t.Errorf("jwks: %+v, %v", keys, err)
	}
	if err := client("none").Ready(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}

	// Problems come back as *apiclient.Problem.
	tests := []struct {
		name   string
		call   func() error
		status int
		typ    string
	}{
		{"no token", func() error { _, err := client("none").Models(ctx); return err }, 401, "about:blank"},
		{"wrong role", func() error { _, err := m1.Budgets(ctx); return err }, 403, "about:blank"},
		{"not found", func() error { _, err := m1.Model(ctx, 7); return err }, 404, apiclient.TypeNotFound},
		{"foreign envelope", func() error { _, err := m1.SubmitUpdate(ctx, "r1", f.envelope(t, "m2", "r1")); return err }, 403, apiclient.TypeForbidden},
		{"budget", func() error {
			svc.err = dp.ErrBudgetExhausted
			defer func() { svc.err = nil }()
			_, err := m1.SubmitUpdate(ctx, "r1", f.envelope(t, "m1", "r1"))
			return err
		}, 403, apiclient.TypeBudgetExhausted},
		{"internal", func() error {
			svc.err = errors.New("boom")
			defer func() { svc.err = nil }()
			_, err := m1.CurrentRound(ctx)
			return err
		}, 500, apiclient.TypeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			p, ok := errors.AsType[*apiclient.Problem](err)
			if !ok {
				t.Fatalf("got %T %v, want *apiclient.Problem", err, err)
			}
			if p.Status != tt.status || p.Type != tt.typ {
				t.Errorf("got %d %s, want %d %s", p.Status, p.Type, tt.status, tt.typ)
			}
			if !apiclient.IsProblem(err, tt.typ) {
				t.Errorf("IsProblem(err, %q) = false", tt.typ)
			}
			if p.Temporary() != (tt.status >= 500) {
				t.Errorf("Temporary() = %v for %d", p.Temporary(), tt.status)
			}
		})
	}
}
