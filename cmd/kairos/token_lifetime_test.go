package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestServeRefusesLongLivedTokens reproduces issue 10 item 5's 100-year
// token against `kairos aggregator serve` on loopback: a token signed with
// the aggregator's own key but living 100 years was accepted for as long as
// it lived. serve now refuses a token whose lifetime (exp − iat) exceeds its
// role's bound: the policy's tokens.max_ttl (here partner: 1h) or auth's
// default (30 days; 90 for merchants). kairos token issue refuses to mint
// one.
func TestServeRefusesLongLivedTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	if _, err := runAgg(t, "migrate", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	a, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	const century = 100 * 365 * 24 * time.Hour
	partner := func(ttl time.Duration) auth.Grant {
		return auth.Grant{Subject: "crm-demo", Role: auth.RolePartner, Merchants: []string{"cdnow-1"}, TTL: ttl}
	}
	admin := func(ttl time.Duration) auth.Grant { return auth.Grant{Subject: "ops", Role: auth.RoleAdmin, TTL: ttl} }
	type tokenCase struct {
		name  string
		grant auth.Grant
		want  int
	}
	check := func(tests []tokenCase) {
		t.Helper()
		agg := startServe(t, "--dir", dir, "--no-migrate")
		defer agg.stop(t)
		for _, tt := range tests {
			tok, err := aggIssue(a, tt.grant)
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, agg.base+"/v1/models", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p apiclient.Problem
			_ = json.NewDecoder(res.Body).Decode(&p)
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Errorf("%s: got %d %+v, want %d", tt.name, res.StatusCode, p, tt.want)
				continue
			}
			if tt.want == 401 && (p.Type != apiclient.TypeUnauthorized || p.Detail != auth.ErrTokenLifetime.Error()) {
				t.Errorf("%s: problem %+v, want type unauthorized, detail %q", tt.name, p, auth.ErrTokenLifetime)
			}
		}
	}
	// The example policy sets no tokens.max_ttl: auth's defaults.
	check([]tokenCase{
		{"partner, 100 years", partner(century), 401},
		{"partner, 31 days (default 30)", partner(31 * 24 * time.Hour), 401},
		{"partner, 30 days", partner(30 * 24 * time.Hour), 200},
		{"admin, 100 years", admin(century), 401},
		{"admin, 30 days", admin(30 * 24 * time.Hour), 200},
	})
	// A policy bound replaces the default for its role.
	policy := filepath.Join(dir, config.PolicyFile)
	f, err := os.OpenFile(policy, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("tokens:\n  max_ttl: {partner: 1h}\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	check([]tokenCase{
		{"partner, 2 hours (policy: 1h)", partner(2 * time.Hour), 401},
		{"partner, 1 hour", partner(time.Hour), 200},
		{"admin, 30 days", admin(30 * 24 * time.Hour), 200},
	})

	issue := func(ttl string, more ...string) error {
		_, err := runToken(t, append([]string{"issue", "--keys", filepath.Join(dir, config.KeysDir), "--role", "partner",
			"--subject", "crm-demo", "--merchants", "cdnow-1", "--ttl", ttl}, more...)...)
		return err
	}
	for _, tt := range []struct {
		ttl, policy string
		ok          bool
	}{
		{"876000h", "", false},
		{"721h", "", false},
		{"720h", "", true},
		{"2h", policy, false},
		{"1h", policy, true},
	} {
		var more []string
		if tt.policy != "" {
			more = []string{"--policy", tt.policy}
		}
		err := issue(tt.ttl, more...)
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "exceeds")) {
			t.Errorf("token issue --ttl %s %v: got %v, want ok %v", tt.ttl, more, err, tt.ok)
		}
	}
}
