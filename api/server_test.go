package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

func enrolBodyIn(t *testing.T, id, region string) []byte {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	b, err := json.Marshal(protocol.EnrolRequest{ID: id, Region: region, TimeZone: "Europe/Berlin", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestMerchantBinding: a merchant token reaches only its own round and can
// submit only its own envelopes, whatever the path says.
func TestMerchantBinding(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{})
	r, err := f.svc.CurrentRound(t.Context(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, envMerchant, pathRound string
		want                                int
		wantType                            string
	}{
		{"foreign envelope", "m1", "m2", r.ID, 403, apiclient.TypeForbidden},
		{"other merchant's token", "m2", "m1", r.ID, 403, apiclient.TypeForbidden},
		{"path round differs", "m1", "m1", "round-999999", 400, apiclient.TypeInvalidRequest},
		{"partner", "partner", "m1", r.ID, 403, apiclient.TypeForbidden},
		{"admin", "admin", "m1", r.ID, 403, apiclient.TypeForbidden},
		{"own", "m1", "m1", r.ID, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, "POST", "/v1/rounds/"+tt.pathRound+"/updates", f.tokens[tt.token], "application/octet-stream", f.honest(t, tt.envMerchant))
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want >= 400 {
				if p := problemOf(t, rec); p.Type != tt.wantType {
					t.Errorf("got type %q, want %q", p.Type, tt.wantType)
				}
				return
			}
			var rc protocol.Receipt
			if err := json.Unmarshal(rec.Body.Bytes(), &rc); err != nil || rc.Merchant != tt.token {
				t.Errorf("receipt %+v (%v), want one for %s", rc, err, tt.token)
			}
		})
	}
	// Only the own submission reached the ledger.
	bs, err := f.svc.Budgets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if want := map[string]int{"m1": 2}[b.Merchant]; b.Releases != want {
			t.Errorf("%s has %d ledger releases, want %d", b.Merchant, b.Releases, want)
		}
	}
}

// TestErrorMapping injects each service outcome and checks status, type and
// that the public detail is the sentinel's text, not the wrapped cause.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err      error
		status   int
		typ      string
		public   bool // the whole error text is the detail
		internal bool // logged at error level
	}{
		{dp.ErrBudgetExhausted, 403, apiclient.TypeBudgetExhausted, true, false},
		{seal.ErrReplay, 409, apiclient.TypeReplay, false, false},
		{seal.ErrRoundMismatch, 409, apiclient.TypeRoundMismatch, false, false},
		{seal.ErrStale, 400, apiclient.TypeStaleEnvelope, false, false},
		{seal.ErrBadSignature, 401, apiclient.TypeBadSignature, false, false},
		{seal.ErrUnknownSigner, 401, apiclient.TypeBadSignature, false, false},
		{seal.ErrRevokedSigner, 403, apiclient.TypeSignerRevoked, false, false},
		{seal.ErrDecrypt, 400, apiclient.TypeInvalidEnvelope, false, false},
		{seal.ErrDigestMismatch, 400, apiclient.TypeInvalidEnvelope, false, false},
		{&seal.MalformedError{Offset: 7, Reason: "x"}, 400, apiclient.TypeInvalidEnvelope, true, false},
		{seal.ErrTooLarge, 413, apiclient.TypeTooLarge, true, false},
		{protocol.ErrInvalidUpdate, 400, apiclient.TypeInvalidUpdate, true, false},
		{aggregator.ErrRoundClosed, 409, apiclient.TypeRoundClosed, true, false},
		{aggregator.ErrNotSelected, 403, apiclient.TypeNotSelected, true, false},
		{aggregator.ErrPolicy, 422, apiclient.TypePolicyViolation, true, false},
		{aggregator.ErrConflict, 409, apiclient.TypeConflict, true, false},
		{aggregator.ErrNotFound, 404, apiclient.TypeNotFound, false, false},
		{aggregator.ErrAudit, 503, apiclient.TypeUnavailable, false, true},
		{errors.New("disk on fire"), 500, apiclient.TypeInternal, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.err.Error(), func(t *testing.T) {
			var logs bytes.Buffer
			wrapped := fmt.Errorf("submit: wrapped-cause: %w", tt.err)
			svc := &fakeService{err: wrapped}
			f := newFixture(t, svc, Options{Logger: testLogger(&logs)})
			rec := f.do(t, "POST", "/v1/rounds/r1/updates", f.tokens["m1"], "application/octet-stream", f.envelope(t, "m1", "r1"))
			if rec.Code != tt.status {
				t.Fatalf("got status %d, want %d", rec.Code, tt.status)
			}
			p := problemOf(t, rec)
			wantDetail := "internal error"
			switch {
			case tt.public:
				wantDetail = wrapped.Error()
			case tt.status != 500:
				wantDetail = tt.err.Error()
			}
			if p.Type != tt.typ || p.Detail != wantDetail || p.Instance != "/v1/rounds/r1/updates" || p.RequestID == "" || p.RequestID != rec.Header().Get("X-Request-Id") {
				t.Errorf("got problem %+v, want type %q, detail %q, instance the path, a request id", p, tt.typ, wantDetail)
			}
			if !tt.public && strings.Contains(rec.Body.String(), "wrapped-cause") {
				t.Errorf("the wrapped cause leaked into the body: %s", rec.Body)
			}
			if !strings.Contains(logs.String(), "wrapped-cause") || !strings.Contains(logs.String(), p.RequestID) {
				t.Errorf("the cause and request id were not logged: %s", logs.String())
			}
			if tt.internal != strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("logged at error level = %v, want %v", !tt.internal, tt.internal)
			}
		})
	}
}

// TestBodyLimits checks 413 for bodies over the limit, with and without a
// declared Content-Length, and that a body at the limit passes.
func TestBodyLimits(t *testing.T) {
	const envLimit = 64 << 10
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{MaxJSONBytes: 300, MaxEnvelopeBytes: envLimit})
	env := f.honest(t, "m1")
	if len(env) > envLimit {
		t.Fatalf("test envelope is %d bytes, over the test limit", len(env))
	}
	r, _ := f.svc.CurrentRound(t.Context(), "m1")
	updates := "/v1/rounds/" + r.ID + "/updates"
	padded := func(n int) []byte { // a valid enrol request padded with spaces to n bytes
		b := enrolBodyIn(t, "new-1", "")
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	tests := []struct {
		name, path, ct, token string
		body                  []byte
		chunked               bool
		want                  int
	}{
		{"json over limit", "/v1/merchants", "application/json", "admin", padded(301), false, 413},
		{"json over limit chunked", "/v1/merchants", "application/json", "admin", padded(301), true, 413},
		{"json at limit", "/v1/merchants", "application/json", "admin", padded(300), false, 201},
		{"envelope over limit", updates, "application/octet-stream", "m1", append(env, make([]byte, envLimit+1-len(env))...), false, 413},
		{"envelope over limit chunked", updates, "application/octet-stream", "m1", make([]byte, envLimit+5000), true, 413},
		{"envelope within limit", updates, "application/octet-stream", "m1", env, false, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tt.path, bytes.NewReader(tt.body))
			if tt.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Content-Type", tt.ct)
			req.Header.Set("Authorization", "Bearer "+f.tokens[tt.token])
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 413 {
				if p := problemOf(t, rec); p.Type != apiclient.TypeTooLarge {
					t.Errorf("got type %q, want %q", p.Type, apiclient.TypeTooLarge)
				}
			}
		})
	}
}

// TestDecodeJSON checks that bad enrolment bodies are refused with a detail
// naming the field or position.
func TestDecodeJSON(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := `{"id":"m3","time_zone":"Europe/Berlin","public_key":"` + key + `"}`
	tests := []struct {
		name, ct, body string
		want           int
		detail         string // substring of the problem detail
	}{
		{"good", "application/json", good, 201, ""},
		{"charset param", "application/json; charset=utf-8", good, 201, ""},
		{"wrong media type", "text/plain", good, 415, `want application/json`},
		{"no media type", "", good, 415, `want application/json`},
		{"unknown field", "application/json", `{"id":"m3","time_zone":"UTC","public_key":"` + key + `","admin":true}`, 400, `unknown field "admin"`},
		{"trailing data", "application/json", good + ` {}`, 400, "trailing data"},
		{"trailing garbage", "application/json", good + `x`, 400, "trailing data"},
		{"wrong type", "application/json", `{"id":7,"time_zone":"UTC","public_key":"` + key + `"}`, 400, `field "id"`},
		{"syntax", "application/json", `{"id":"m3",}`, 400, "invalid JSON at byte"},
		{"empty", "application/json", ``, 400, "empty body"},
		{"truncated", "application/json", `{"id":"m3"`, 400, "truncated"},
		{"array", "application/json", `[]`, 400, "where protocol.EnrolRequest"},
		{"bad id", "application/json", `{"id":"../x","time_zone":"UTC","public_key":"` + key + `"}`, 400, `field "id"`},
		{"bad zone", "application/json", `{"id":"m3","time_zone":"Mars/Olympus","public_key":"` + key + `"}`, 400, `field "time_zone"`},
		{"no zone", "application/json", `{"id":"m3","public_key":"` + key + `"}`, 400, `field "time_zone": required`},
		{"short key", "application/json", `{"id":"m3","time_zone":"UTC","public_key":"AAAA"}`, 400, `field "public_key": 3 bytes`},
		{"key not base64", "application/json", `{"id":"m3","time_zone":"UTC","public_key":"!!"}`, 400, `invalid base64 in a binary field at its byte 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRealFixture(t, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{})
			rec := f.do(t, "POST", "/v1/merchants", f.tokens["admin"], tt.ct, []byte(tt.body))
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want != 201 {
				if p := problemOf(t, rec); !strings.Contains(p.Detail, tt.detail) {
					t.Errorf("got detail %q, want it to contain %q", p.Detail, tt.detail)
				}
				if ms, err := f.svc.Merchants(t.Context()); err != nil || len(ms) != 2 {
					t.Errorf("refused request changed the merchants: %d, %v", len(ms), err)
				}
			}
		})
	}
}

// TestEnrolIssuesMerchantToken checks the enrolment answer: the merchant as
// stored, and a token the server's own verifier accepts as that merchant's.
func TestEnrolIssuesMerchantToken(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{})
	rec := f.do(t, "POST", "/v1/merchants", f.tokens["admin"], "application/json", enrolBodyIn(t, "m3", ""))
	if rec.Code != 201 {
		t.Fatalf("got %d: %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/merchants/m3" {
		t.Errorf("Location = %q", loc)
	}
	var e protocol.Enrolment
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if e.Merchant.ID != "m3" || e.Merchant.TimeZone != "Europe/Berlin" || len(e.Merchant.PublicKey) != 32 || e.Merchant.EnrolledAt.IsZero() {
		t.Errorf("got merchant %+v", e.Merchant)
	}
	// The audit log names the admin from the token as the actor.
	entries, err := f.store.AuditEntries(t.Context(), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, en := range entries {
		if en.Action == "merchant.enrol" {
			actors = append(actors, en.Actor)
		}
	}
	if got := actors[len(actors)-1]; got != "admin:ops" {
		t.Errorf("got enrolment actor %q, want admin:ops (all: %v)", got, actors)
	}
	// The new token works on the merchant route and names the merchant.
	rec = f.do(t, "GET", "/v1/rounds/current", e.Token, "", nil)
	if rec.Code != 200 {
		t.Fatalf("enrolment token on /v1/rounds/current: %d %s", rec.Code, rec.Body)
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Keys: f.jwks, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience, Revocations: auth.NewMemoryRevocations(nil)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(t.Context(), e.Token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != auth.RoleMerchant || c.Subject != "m3" || len(c.Merchants) != 1 || c.Merchants[0] != "m3" {
		t.Errorf("got claims role %s subject %s merchants %v", c.Role, c.Subject, c.Merchants)
	}
	if d := c.ExpiresAt.Sub(c.IssuedAt.Time); d != DefaultMerchantTokenTTL {
		t.Errorf("got token lifetime %v, want %v", d, DefaultMerchantTokenTTL)
	}
	if !e.TokenExpiresAt.Equal(c.ExpiresAt.Time) {
		t.Errorf("token_expires_at %v, claims exp %v", e.TokenExpiresAt, c.ExpiresAt)
	}
}

func TestPathParameters(t *testing.T) {
	f := newRealFixture(t, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{})
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/models/0", 400},
		{"GET", "/v1/models/-1", 400},
		{"GET", "/v1/models/x", 400},
		{"GET", "/v1/models/+1", 400},
		{"GET", "/v1/models/99999999999999999999999", 400},
		{"GET", "/v1/models/2", 404},
		{"POST", "/v1/models/2:rollback", 404},
		{"GET", "/v1/models/1", 200},
		{"GET", "/v1/models/active", 200},
		{"POST", "/v1/models/0:rollback", 400},
		{"POST", "/v1/models/x:rollback", 405}, // matches GET /v1/models/{version} only
		{"DELETE", "/v1/models", 405},
		{"GET", "/v1/nothing", 404},
		{"GET", "/", 404},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := f.do(t, tt.method, tt.path, f.tokens["admin"], "", nil)
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want >= 400 {
				problemOf(t, rec)
			}
		})
	}
}
