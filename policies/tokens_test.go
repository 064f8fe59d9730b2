package policies

import (
	"strings"
	"testing"
	"time"
)

const tokensBase = `version: 1
federation: t
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
`

// TestTokenMaxTTL: tokens.max_ttl bounds each role it names, leaves the
// others to the API's default, survives Format, and changes the hash only
// when written.
func TestTokenMaxTTL(t *testing.T) {
	plain := mustParse(t, "plain.yaml", tokensBase)
	p := mustParse(t, "tokens.yaml", tokensBase+"tokens:\n  max_ttl: {partner: 720h, merchant: \"2160h\"}\n")
	for _, tt := range []struct {
		role string
		want time.Duration
		ok   bool
	}{
		{"partner", 30 * 24 * time.Hour, true},
		{"merchant", 90 * 24 * time.Hour, true},
		{"admin", 0, false},
		{"compliance", 0, false},
	} {
		if got, ok := p.MaxTokenTTL(tt.role); got != tt.want || ok != tt.ok {
			t.Errorf("MaxTokenTTL(%s) = %v, %v; want %v, %v", tt.role, got, ok, tt.want, tt.ok)
		}
		if _, ok := plain.MaxTokenTTL(tt.role); ok {
			t.Errorf("policy without tokens: MaxTokenTTL(%s) set", tt.role)
		}
	}
	if p.Hash() == plain.Hash() {
		t.Error("tokens.max_ttl does not change the hash")
	}
	if empty := mustParse(t, "empty.yaml", tokensBase+"tokens: {max_ttl: {}}\n"); empty.Hash() != plain.Hash() {
		t.Error("an empty tokens.max_ttl changes the hash")
	}
	again := mustParse(t, "formatted.yaml", string(p.Format()))
	if again.Hash() != p.Hash() {
		t.Errorf("Format loses tokens.max_ttl:\n%s", p.Format())
	}
}

func TestTokenMaxTTLErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"tokens: {max_ttl: {partner: 876000h}}", "max_ttl.partner: must be in (0, 8784h0m0s], got 876000h"},
		{"tokens: {max_ttl: {partner: 0s}}", "max_ttl.partner: must be in (0, 8784h0m0s]"},
		{"tokens: {max_ttl: {partner: -1h}}", "max_ttl.partner: must be in"},
		{"tokens: {max_ttl: {partner: 30d}}", `max_ttl.partner: "30d" is not a duration such as 720h`},
		{"tokens: {max_ttl: {partner: 720}}", "max_ttl.partner: want a string"},
		{"tokens: {max_ttl: {root: 1h}}", `max_ttl: "root" is not a role`},
		{"tokens: {ttl: {partner: 1h}}", `unknown key "ttl"`},
		{"tokens: [1]", "tokens: want a mapping"},
	}
	for _, tt := range tests {
		_, err := Parse("bad.yaml", []byte(tokensBase+tt.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "bad.yaml:11:") {
			t.Errorf("%s: got %v, want bad.yaml:11:…%s", tt.yaml, err, tt.want)
		}
	}
}
