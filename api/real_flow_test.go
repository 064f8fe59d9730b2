package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/seal"
)

// TestRealRouteRoleMatrix is TestRouteRoleMatrix over the real service.
func TestRealRouteRoleMatrix(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	withReports(f)
	routes := []struct {
		method, path, ct string
		body             func() []byte
		ok               int
		roles            []string
	}{
		{"POST", "/v1/merchants", "application/json", func() []byte { return enrolBodyIn(t, "new-1", "") }, 201, []string{"admin"}},
		{"GET", "/v1/merchants", "", nil, 200, []string{"admin"}},
		{"GET", "/v1/rounds/current", "", nil, 200, []string{"m1"}},
		{"POST", "/v1/rounds/{id}/updates", "application/octet-stream", func() []byte { return f.honest(t, "m1") }, 202, []string{"m1"}},
		{"GET", "/v1/models", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"GET", "/v1/models/1", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"GET", "/v1/models/active", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"POST", "/v1/models/1:rollback", "", nil, 200, []string{"admin"}},
		{"GET", "/v1/budgets", "", nil, 200, []string{"admin", "compliance"}},
		// Merchants see no chart, not even their own: /v1/budgets is not theirs either.
		{"GET", "/v1/budgets/m1/chart.svg", "", nil, 200, []string{"admin", "compliance"}},
		{"GET", "/v1/budgets/m2/chart.svg", "", nil, 200, []string{"admin", "compliance"}},
		{"GET", "/v1/report", "", nil, 200, []string{"admin", "compliance"}},
	}
	r, err := f.svc.CurrentRound(t.Context(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes {
		path := strings.Replace(rt.path, "{id}", r.ID, 1)
		for _, who := range tokenNames {
			t.Run(rt.method+" "+rt.path+" as "+who, func(t *testing.T) {
				var body []byte
				if rt.body != nil {
					body = rt.body()
				}
				rec := f.do(t, rt.method, path, f.tokens[who], rt.ct, body)
				want := http403
				switch {
				case who == "none" || who == "garbage" || who == "expired" || who == "foreign":
					want = 401
				case contains(rt.roles, who):
					want = rt.ok
				}
				if rec.Code != want {
					t.Fatalf("got status %d, want %d (body %s)", rec.Code, want, rec.Body)
				}
				if want >= 400 {
					problemOf(t, rec)
				}
			})
		}
	}
}

const http403 = 403

// TestRealSubmissionOutcomes drives the real service through the API over
// loopback with apiclient and checks each outcome's status and problem type.
func TestRealSubmissionOutcomes(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := t.Context()
	client := func(name string) *apiclient.Client {
		t.Helper()
		c, err := apiclient.New(ts.URL, f.tokens[name], apiclient.WithHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	m1, m2, compliance := client("m1"), client("m2"), client("compliance")

	round, err := m1.CurrentRound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !round.Selected || round.State != protocol.RoundOpen || round.Recipient == "" || len(round.Model) == 0 {
		t.Fatalf("round %s (%s, selected %v, recipient %q, %d model bytes): want m1 selected in an open round with a model and a recipient",
			round.ID, round.State, round.Selected, round.Recipient, len(round.Model))
	}

	env := f.honest(t, "m1")
	rc, err := m1.SubmitUpdate(ctx, round.ID, env)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Merchant != "m1" || rc.Round != round.ID || !(rc.Epsilon > 0 && rc.Epsilon <= rc.EpsilonCap) || rc.EpsilonCap != 1 || rc.Duplicate {
		t.Errorf("receipt %+v", rc)
	}
	// The same envelope again is answered with the same receipt, marked duplicate.
	again, err := m1.SubmitUpdate(ctx, round.ID, env)
	if err != nil || !again.Duplicate || again.UpdateID != rc.UpdateID || again.Epsilon != rc.Epsilon {
		t.Errorf("resubmission: %+v, %v; want the first receipt marked duplicate", again, err)
	}

	nonce := [seal.NonceSize]byte{1, 2, 3}
	tests := []struct {
		name   string
		client *apiclient.Client
		round  string
		env    func() []byte
		status int
		typ    string
	}{
		{"second update in the round", m1, round.ID, func() []byte { return f.honest(t, "m1") }, 409, apiclient.TypeConflict},
		{"stale", m2, round.ID, func() []byte {
			return f.honest(t, "m2", func(_ *protocol.Update, h *seal.Header) { h.CreatedAt = h.CreatedAt.Add(-3 * time.Hour) })
		}, 400, apiclient.TypeStaleEnvelope},
		{"nonce reuse", m2, round.ID, func() []byte {
			first := f.honest(t, "m2", func(u *protocol.Update, h *seal.Header) { h.Nonce = nonce; u.Customers.Value = 400 })
			if _, err := m2.SubmitUpdate(ctx, round.ID, first); err != nil {
				t.Fatalf("first m2 update: %v", err)
			}
			return f.honest(t, "m2", func(_ *protocol.Update, h *seal.Header) { h.Nonce = nonce })
		}, 409, apiclient.TypeReplay},
		{"noise below plan", m2, round.ID, func() []byte {
			return f.honest(t, "m2", func(u *protocol.Update, _ *seal.Header) { u.Release.NoiseMultiplier /= 2 })
		}, 409, apiclient.TypeConflict}, // m2 already has its update in; conflict is checked first
		{"wrong shape", m1, round.ID, func() []byte {
			return f.honest(t, "m1", func(u *protocol.Update, _ *seal.Header) { u.Delta = u.Delta[1:] })
		}, 409, apiclient.TypeConflict},
		{"garbage", m1, round.ID, func() []byte { return []byte("definitely not an envelope") }, 400, apiclient.TypeInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.SubmitUpdate(ctx, tt.round, tt.env())
			p, ok := errors.AsType[*apiclient.Problem](err)
			if !ok {
				t.Fatalf("got %v, want a problem", err)
			}
			if p.Status != tt.status || p.Type != tt.typ {
				t.Errorf("got %d %s (%s), want %d %s", p.Status, p.Type, p.Detail, tt.status, tt.typ)
			}
		})
	}

	// Budgets and metrics agree with the receipt.
	bs, err := compliance.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got1 protocol.BudgetInfo
	for _, b := range bs {
		if b.Merchant == "m1" {
			got1 = b
		}
	}
	if got1.Epsilon != rc.Epsilon || got1.Cap != 1 || got1.Releases != 2 {
		t.Errorf("budget of m1 %+v, want ε %v from the receipt, cap 1, 2 releases (update and count)", got1, rc.Epsilon)
	}
	rec := f.do(t, "GET", "/metrics", f.tokens["compliance"], "", nil)
	for _, want := range []string{
		`kairos_updates_accepted_total{duplicate="true"} 1`,
		`kairos_updates_refused_total{reason="replay"} 1`,
		`kairos_updates_refused_total{reason="stale-envelope"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(rec.Body.String(), `kairos_epsilon_spent{merchant="m1"} `) {
		t.Errorf("metrics lack m1's ε")
	}
}

// TestRealMerchantsAndRollback covers the admin routes against the real service.
func TestRealMerchantsAndRollback(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := t.Context()
	admin, err := apiclient.New(ts.URL, f.tokens["admin"])
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := edKey()
	if _, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: "m3", Region: "eu", TimeZone: "Asia/Tokyo", PublicKey: pub}); !apiclient.IsProblem(err, apiclient.TypePolicyViolation) ||
		!strings.Contains(err.Error(), `region "eu"`) {
		t.Errorf("enrolment in a region the policy does not bind: got %v, want policy-violation naming the region", err)
	}
	e, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: "m3", TimeZone: "Asia/Tokyo", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if e.Merchant.ID != "m3" || e.Merchant.EnrolledAt.IsZero() {
		t.Errorf("enrolment %+v", e.Merchant)
	}
	// The issued token is a working merchant token for m3.
	m3, _ := apiclient.New(ts.URL, e.Token)
	if r, err := m3.CurrentRound(ctx); err != nil || r.ID == "" {
		t.Errorf("m3's new token: %+v, %v", r, err)
	}
	if _, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: "m3", TimeZone: "UTC", PublicKey: pub}); !apiclient.IsProblem(err, apiclient.TypeConflict) {
		t.Errorf("second enrolment of m3: got %v, want conflict", err)
	}
	if _, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: "stranger", TimeZone: "UTC", PublicKey: pub}); !apiclient.IsProblem(err, apiclient.TypePolicyViolation) {
		t.Errorf("enrolment of a merchant outside the policy: got %v, want policy-violation", err)
	}
	ms, err := admin.Merchants(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("merchants: %+v, %v", ms, err)
	}
	// A token for a merchant in the policy but never enrolled.
	ghost := issue(t, f.issuer, auth.Grant{Subject: "new-1", Role: auth.RoleMerchant, Merchants: []string{"new-1"}, TTL: time.Hour})
	gc, _ := apiclient.New(ts.URL, ghost)
	if _, err := gc.CurrentRound(ctx); !apiclient.IsProblem(err, apiclient.TypeNotFound) {
		t.Errorf("round for an unenrolled merchant: got %v, want not-found", err)
	}

	if _, err := admin.Rollback(ctx, 9); !apiclient.IsProblem(err, apiclient.TypeNotFound) {
		t.Errorf("rollback to a missing version: got %v, want not-found", err)
	}
	mv, err := admin.Rollback(ctx, 1)
	if err != nil || mv.Version != 1 || !mv.Active {
		t.Errorf("rollback to 1: %+v, %v", mv, err)
	}
	if err := admin.Ready(ctx); err != nil {
		t.Errorf("ready: %v", err)
	}
	mvs, err := admin.Models(ctx)
	if err != nil || len(mvs) != 1 || mvs[0].Version != 1 || !mvs[0].Active || mvs[0].PolicyHash == "" {
		t.Errorf("models: %+v, %v; want the initial version 1, active", mvs, err)
	}
	active, err := admin.Model(ctx, 0)
	if err != nil || active.Version != 1 || len(active.Model) == 0 {
		t.Errorf("active model: version %d, %d model bytes, %v", active.Version, len(active.Model), err)
	}
	anon, _ := apiclient.New(ts.URL, "")
	jwks, err := anon.JWKS(ctx)
	if err != nil || len(jwks) != 1 || jwks[0].ID != f.jwks[0].ID {
		t.Errorf("jwks: %+v, %v", jwks, err)
	}
}
