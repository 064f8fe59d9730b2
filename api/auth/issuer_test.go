package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func newTestIssuer(t *testing.T, k SigningKey) *Issuer {
	t.Helper()
	i, err := NewIssuer(IssuerOptions{
		Key:  k,
		Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 1024)),
		Now:  func() time.Time { return testNow.Add(500 * time.Millisecond) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestIssueWireFormat decodes an issued token by hand and checks every header
// field and claim, and the signature with crypto/ed25519 directly.
func TestIssueWireFormat(t *testing.T) {
	tok, _, err := newTestIssuer(t, key1).Issue(Grant{Subject: "crm-app", Role: RolePartner, Merchants: []string{"m2", "m1"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("got %d segments, want 3", len(p))
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var h map[string]any
	if err := json.Unmarshal(dec(p[0]), &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "EdDSA" || h["typ"] != "kairos+jwt" || h["kid"] != "k1" || len(h) != 3 {
		t.Errorf("header: got %v, want exactly alg EdDSA, typ kairos+jwt, kid k1", h)
	}
	var c map[string]any
	if err := json.Unmarshal(dec(p[1]), &c); err != nil {
		t.Fatal(err)
	}
	now := float64(testNow.Unix()) // the issuer truncates to seconds
	want := map[string]any{
		"iss": "kairos-aggregator", "sub": "crm-app", "role": "partner",
		"exp": now + 3600, "iat": now, "nbf": now,
		"jti": base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16)),
	}
	for k, w := range want {
		if c[k] != w {
			t.Errorf("claim %s: got %v, want %v", k, c[k], w)
		}
	}
	if got, _ := json.Marshal(c["aud"]); string(got) != `["kairos-api"]` {
		t.Errorf("aud: got %s, want [\"kairos-api\"]", got)
	}
	if got, _ := json.Marshal(c["merchants"]); string(got) != `["m2","m1"]` {
		t.Errorf("merchants: got %s, want [\"m2\",\"m1\"]", got)
	}
	if !ed25519.Verify(key1.Private.Public().(ed25519.PublicKey), []byte(p[0]+"."+p[1]), dec(p[2])) {
		t.Error("signature does not verify with crypto/ed25519")
	}
}

func TestIssueThenVerify(t *testing.T) {
	iss := newTestIssuer(t, key1)
	v := newTestVerifier(t, nil)
	grants := []Grant{
		{Subject: "ops", Role: RoleAdmin, TTL: time.Hour},
		{Subject: "m1", Role: RoleMerchant, Merchants: []string{"m1"}, TTL: time.Minute},
		{Subject: "crm", Role: RolePartner, Merchants: []string{"m1", "m3"}, TTL: 24 * time.Hour},
		{Subject: "auditor", Role: RoleCompliance, TTL: time.Hour},
	}
	for _, g := range grants {
		tok, issued, err := iss.Issue(g)
		if err != nil {
			t.Fatalf("Issue(%+v): %v", g, err)
		}
		got, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("Verify(Issue(%+v)): %v", g, err)
		}
		if got.Subject != g.Subject || got.Role != g.Role || strings.Join(got.Merchants, ",") != strings.Join(g.Merchants, ",") ||
			got.ID != issued.ID || !got.ExpiresAt.Equal(testNow.Add(g.TTL)) {
			t.Errorf("Verify(Issue(%+v)): got %+v, want the grant back with exp %v", g, got, testNow.Add(g.TTL))
		}
	}
}

func TestIssueRefusesBadGrants(t *testing.T) {
	iss := newTestIssuer(t, key1)
	tests := []struct {
		name string
		g    Grant
		want error // nil: any error
	}{
		{"no subject", Grant{Role: RoleAdmin, TTL: time.Hour}, nil},
		{"zero ttl", Grant{Subject: "a", Role: RoleAdmin}, nil},
		{"negative ttl", Grant{Subject: "a", Role: RoleAdmin, TTL: -time.Second}, nil},
		{"unknown role", Grant{Subject: "a", Role: "root", TTL: time.Hour}, ErrInvalidRole},
		{"merchant without merchant", Grant{Subject: "m1", Role: RoleMerchant, TTL: time.Hour}, ErrInvalidMerchants},
		{"merchant for another", Grant{Subject: "m1", Role: RoleMerchant, Merchants: []string{"m2"}, TTL: time.Hour}, ErrInvalidMerchants},
		{"partner without merchants", Grant{Subject: "p", Role: RolePartner, TTL: time.Hour}, ErrInvalidMerchants},
		{"compliance with merchants", Grant{Subject: "c", Role: RoleCompliance, Merchants: []string{"m1"}, TTL: time.Hour}, ErrInvalidMerchants},
	}
	for _, tt := range tests {
		_, _, err := iss.Issue(tt.g)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: got error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestIssueDistinctIDs(t *testing.T) {
	iss, err := NewIssuer(IssuerOptions{Key: key1})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 100 {
		_, c, err := iss.Issue(Grant{Subject: "a", Role: RoleAdmin, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("jti %q issued twice", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestNewIssuerOptions(t *testing.T) {
	for _, o := range []IssuerOptions{
		{Key: SigningKey{Private: key1.Private}},
		{Key: SigningKey{ID: "k", Private: key1.Private[:32]}},
	} {
		if _, err := NewIssuer(o); err == nil {
			t.Errorf("NewIssuer(kid %q, %d-byte key): got nil error, want one", o.Key.ID, len(o.Key.Private))
		}
	}
}

func BenchmarkIssue(b *testing.B) {
	iss, err := NewIssuer(IssuerOptions{Key: key1})
	if err != nil {
		b.Fatal(err)
	}
	g := Grant{Subject: "crm", Role: RolePartner, Merchants: []string{"m1", "m2"}, TTL: time.Hour}
	for b.Loop() {
		if _, _, err := iss.Issue(g); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	v := newTestVerifier(b, nil)
	tok := forge(b, goodHeader(), goodClaims(), edSign(key1))
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
