package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

func enrolBody(t *testing.T, id string) []byte {
	t.Helper()
	return enrolBodyIn(t, id, "eu")
}

func enrolBodyIn(t *testing.T, id, region string) []byte {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	b, err := json.Marshal(protocol.EnrolRequest{ID: id, Region: region, TimeZone: "Europe/Berlin", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRouteRoleMatrix sends every /v1 route with every kind of caller and
// checks the status: 401 without a valid token, 403 for a role the route does
// not admit, the route's success status otherwise.
func TestRouteRoleMatrix(t *testing.T) {
	f := newFixture(t, &fakeService{}, Options{})
	type route struct {
		method, path, ct string
		body             func() []byte
		ok               int
		roles            []string // token names admitted
	}
	routes := []route{
		{"POST", "/v1/merchants", "application/json", func() []byte { return enrolBody(t, "m9") }, 201, []string{"admin"}},
		{"GET", "/v1/merchants", "", nil, 200, []string{"admin"}},
		{"GET", "/v1/rounds/current", "", nil, 200, []string{"m1"}},
		{"POST", "/v1/rounds/r1/updates", "application/octet-stream", func() []byte { return f.envelope(t, "m1", "r1") }, 202, []string{"m1"}},
		{"GET", "/v1/models", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"GET", "/v1/models/1", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"GET", "/v1/models/active", "", nil, 200, []string{"admin", "m1", "partner", "compliance"}},
		{"POST", "/v1/models/1:rollback", "", nil, 200, []string{"admin"}},
		{"GET", "/v1/budgets", "", nil, 200, []string{"admin", "compliance"}},
	}
	for _, rt := range routes {
		for _, who := range tokenNames {
			t.Run(rt.method+" "+rt.path+" as "+who, func(t *testing.T) {
				var body []byte
				if rt.body != nil {
					body = rt.body()
				}
				rec := f.do(t, rt.method, rt.path, f.tokens[who], rt.ct, body)
				want := http.StatusForbidden
				switch {
				case who == "none" || who == "garbage" || who == "expired" || who == "foreign":
					want = http.StatusUnauthorized
				case contains(rt.roles, who):
					want = rt.ok
				}
				if rec.Code != want {
					t.Fatalf("got status %d, want %d (body %s)", rec.Code, want, rec.Body)
				}
				if want == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
				}
				if want >= 400 {
					problemOf(t, rec)
				}
				if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", cc)
				}
			})
		}
	}
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
	svc := &fakeService{}
	f := newFixture(t, svc, Options{})

	rec := f.do(t, "GET", "/v1/rounds/current", f.tokens["m2"], "", nil)
	var r protocol.Round
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != 200 {
		t.Fatalf("m2 current round: %d %s", rec.Code, rec.Body)
	}
	if r.Selected {
		t.Errorf("m2 got the round of m1 (selected=true); the merchant id must come from the token")
	}

	tests := []struct {
		name, token, envMerchant, envRound, pathRound string
		want                                          int
		wantType                                      string
	}{
		{"own", "m1", "m1", "r1", "r1", 202, ""},
		{"foreign envelope", "m1", "m2", "r1", "r1", 403, apiclient.TypeForbidden},
		{"other merchant's token", "m2", "m1", "r1", "r1", 403, apiclient.TypeForbidden},
		{"path round differs", "m1", "m1", "r1", "r2", 400, apiclient.TypeInvalidRequest},
		{"partner", "partner", "m1", "r1", "r1", 403, "about:blank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(svc.submits)
			rec := f.do(t, "POST", "/v1/rounds/"+tt.pathRound+"/updates", f.tokens[tt.token], "application/octet-stream",
				f.envelope(t, tt.envMerchant, tt.envRound))
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want >= 400 {
				if p := problemOf(t, rec); p.Type != tt.wantType {
					t.Errorf("got type %q, want %q", p.Type, tt.wantType)
				}
				if len(svc.submits) != before {
					t.Errorf("refused request reached the service")
				}
				return
			}
			if got := svc.submits[len(svc.submits)-1]; got != tt.token {
				t.Errorf("service saw merchant %q, want %q", got, tt.token)
			}
		})
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
			if p.Type != tt.typ || p.Detail != wantDetail || p.Instance != "/v1/rounds/r1/updates" || p.RequestID == "" {
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
	svc := &fakeService{}
	f := newFixture(t, svc, Options{MaxJSONBytes: 300, MaxEnvelopeBytes: 2000})
	env := f.envelope(t, "m1", "r1")
	if len(env) > 2000 {
		t.Fatalf("test envelope is %d bytes, over the 2000-byte test limit", len(env))
	}
	padded := func(n int) []byte { // a valid enrol request padded with spaces to n bytes
		b := enrolBody(t, "m7")
		return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
	}
	tests := []struct {
		name, path, ct, token string
		body                  []byte
		chunked               bool
		want                  int
	}{
		{"json at limit", "/v1/merchants", "application/json", "admin", padded(300), false, 201},
		{"json over limit", "/v1/merchants", "application/json", "admin", padded(301), false, 413},
		{"json over limit chunked", "/v1/merchants", "application/json", "admin", padded(301), true, 413},
		{"envelope over limit", "/v1/rounds/r1/updates", "application/octet-stream", "m1", append(env, make([]byte, 2001-len(env))...), false, 413},
		{"envelope over limit chunked", "/v1/rounds/r1/updates", "application/octet-stream", "m1", make([]byte, 5000), true, 413},
		{"envelope within limit", "/v1/rounds/r1/updates", "application/octet-stream", "m1", env, false, 202},
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
			svc := &fakeService{}
			f := newFixture(t, svc, Options{})
			rec := f.do(t, "POST", "/v1/merchants", f.tokens["admin"], tt.ct, []byte(tt.body))
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want != 201 {
				if p := problemOf(t, rec); !strings.Contains(p.Detail, tt.detail) {
					t.Errorf("got detail %q, want it to contain %q", p.Detail, tt.detail)
				}
				if len(svc.merchants) != 0 {
					t.Errorf("refused request reached the service")
				}
			}
		})
	}
}

// TestEnrolIssuesMerchantToken checks the enrolment answer: the merchant as
// stored, and a token the server's own verifier accepts as that merchant's.
func TestEnrolIssuesMerchantToken(t *testing.T) {
	svc := &fakeService{}
	f := newFixture(t, svc, Options{})
	rec := f.do(t, "POST", "/v1/merchants", f.tokens["admin"], "application/json", enrolBody(t, "shop-4"))
	if rec.Code != 201 {
		t.Fatalf("got %d: %s", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/merchants/shop-4" {
		t.Errorf("Location = %q", loc)
	}
	var e protocol.Enrolment
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if e.Merchant.ID != "shop-4" || e.Merchant.TimeZone != "Europe/Berlin" || e.Merchant.Region != "eu" || len(e.Merchant.PublicKey) != 32 {
		t.Errorf("got merchant %+v", e.Merchant)
	}
	if got, want := svc.actors, []string{"admin:ops"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("got actors %v, want %v", got, want)
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
	if c.Role != auth.RoleMerchant || c.Subject != "shop-4" || len(c.Merchants) != 1 || c.Merchants[0] != "shop-4" {
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
	f := newFixture(t, &fakeService{}, Options{})
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
			problemOf(t, rec)
		})
	}
}
