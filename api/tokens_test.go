package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
)

// TestRevokeToken: an admin revokes the partner's token through the API; the
// next request with it is refused with 401 by a verifier that reads the
// store's revocations, other tokens still work, and the audit log holds one
// token.revoke entry naming the admin, with the token id as its HMAC.
// Refusals: no jti, an expiry in the past, a non-admin caller.
func TestRevokeToken(t *testing.T) {
	ctx := context.Background()
	f := newRealFixture(t, aggregator.RoundConfig{Deadline: time.Minute}, Options{})
	rv, ok := f.store.(auth.RevocationStore)
	if !ok {
		t.Fatal("the store does not implement auth.RevocationStore")
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{
		Keys: f.jwks, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience, Revocations: rv, RevocationTTL: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Options{Service: f.svc, Verifier: v, Issuer: f.issuer, JWKS: f.jwks, Revoker: f.svc})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	do := func(method, path, token, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	partner := f.tokens["partner"]
	claims, err := v.Verify(ctx, partner)
	if err != nil {
		t.Fatal(err)
	}
	if got := do("GET", "/v1/models", partner, ""); got != 200 {
		t.Fatalf("partner before revocation: %d, want 200", got)
	}
	until := claims.ExpiresAt.Time.UTC().Format(time.RFC3339)
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no jti", f.tokens["admin"], `{"jti":"","expires_at":"` + until + `"}`, 400},
		{"past expiry", f.tokens["admin"], `{"jti":"` + claims.ID + `","expires_at":"2001-01-01T00:00:00Z"}`, 422},
		{"unknown field", f.tokens["admin"], `{"jti":"` + claims.ID + `","expires_at":"` + until + `","why":"x"}`, 400},
		{"compliance caller", f.tokens["compliance"], `{"jti":"` + claims.ID + `","expires_at":"` + until + `"}`, 403},
		{"partner revoking itself", partner, `{"jti":"` + claims.ID + `","expires_at":"` + until + `"}`, 403},
	} {
		if got := do("POST", "/v1/tokens:revoke", c.token, c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := do("GET", "/v1/models", partner, ""); got != 200 {
		t.Fatalf("partner after refused revocations: %d, want 200", got)
	}
	if got := do("POST", "/v1/tokens:revoke", f.tokens["admin"], `{"jti":"`+claims.ID+`","expires_at":"`+until+`"}`); got != 200 {
		t.Fatalf("admin revocation: %d, want 200", got)
	}
	if got := do("GET", "/v1/models", partner, ""); got != 401 {
		t.Errorf("partner after revocation: %d, want 401", got)
	}
	if got := do("GET", "/v1/models", f.tokens["m1"], ""); got != 200 {
		t.Errorf("another token after the revocation: %d, want 200", got)
	}
	src := f.store.(audit.Source)
	es, err := src.AuditEntries(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.HashIdentifier(f.keys.AuditHMAC, claims.ID)
	var ok200, denied int
	for _, e := range es {
		if e.Action != "token.revoke" {
			continue
		}
		switch e.Outcome {
		case audit.OutcomeOK:
			ok200++
			if e.Actor != "admin:ops" || e.Identifiers["token"] != want || bytes.Contains([]byte(e.Reason), []byte(claims.ID)) {
				t.Errorf("revocation entry: actor %q, token identifier %q (want %q)", e.Actor, e.Identifiers["token"], want)
			}
		case audit.OutcomeDenied:
			denied++
		}
	}
	if ok200 != 1 || denied != 1 {
		t.Errorf("audit: %d token.revoke ok and %d denied entries, want 1 and 1 (the past expiry)", ok200, denied)
	}
}
