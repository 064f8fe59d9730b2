package policies

import (
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Token lifetimes. A policy may bound the lifetime (exp − iat) of the API
// tokens the aggregator accepts, per role:
//
//	tokens:
//	  max_ttl: { partner: 720h, merchant: 2160h, admin: 720h, compliance: 720h }
//
// A role the policy leaves out gets the API's default (api/auth.DefaultMaxTTL:
// 30 days, 90 for merchants).

// MaxTokenTTL is the longest token lifetime any policy may allow.
const MaxTokenTTL = 366 * 24 * time.Hour

// tokenRoles are the roles tokens.max_ttl may name.
var tokenRoles = []string{"admin", "merchant", "partner", "compliance"}

// MaxTokenTTL returns the longest lifetime the policy allows an API token of
// role (admin, merchant, partner or compliance), and false when the policy
// sets none for it.
func (p *Policy) MaxTokenTTL(role string) (time.Duration, bool) {
	d, ok := p.tokenTTL[role]
	return d, ok
}

// tokensBlock reads the tokens mapping: max_ttl per role.
func (p *parser) tokensBlock(n *yaml.Node) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, kv := range p.mapping(n, "tokens") {
		if kv.key.Value != "max_ttl" {
			p.unknown(kv.key)
			continue
		}
		for _, r := range p.mapping(kv.value, "max_ttl") {
			role := r.key.Value
			if !slices.Contains(tokenRoles, role) {
				p.errorf(r.key, "max_ttl: %q is not a role (admin, merchant, partner, compliance)", role)
				continue
			}
			s, ok := p.str(r.value, "max_ttl."+role)
			if !ok {
				continue
			}
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				p.errorf(r.value, "max_ttl.%s: %q is not a duration such as 720h", role, s)
			case d <= 0 || d > MaxTokenTTL:
				p.errorf(r.value, "max_ttl.%s: must be in (0, %v], got %s", role, MaxTokenTTL, s)
			default:
				out[role] = d
			}
		}
	}
	return out
}
