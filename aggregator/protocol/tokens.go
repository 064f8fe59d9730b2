package protocol

import "time"

// TokenRequest is the body of POST /v1/tokens (admin): the token to issue.
// Merchants is the merchant scope: exactly the subject for role merchant,
// at least one merchant for role partner, none for admin and compliance.
type TokenRequest struct {
	Subject   string   `json:"subject"`
	Role      string   `json:"role"`
	Merchants []string `json:"merchants,omitempty"`
	// TTLSeconds is the token's lifetime; at most the policy's tokens.max_ttl
	// for the role (30 days for admin, partner and compliance, 90 for
	// merchants by default).
	TTLSeconds int64 `json:"ttl_seconds"`
}

// IssuedToken is the answer of POST /v1/tokens: the signed token, shown
// once, and what revoking it needs (POST /v1/tokens:revoke takes TokenID as
// jti and ExpiresAt).
type IssuedToken struct {
	Token     string    `json:"token"`
	TokenID   string    `json:"token_id"`
	Subject   string    `json:"subject"`
	Role      string    `json:"role"`
	Merchants []string  `json:"merchants,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is the answer of GET /v1/session (any role): what the bearer
// token grants, as the server verified it. A console reads it to show the
// sign-in; the server checks the role again on every call.
type Session struct {
	Subject   string    `json:"subject"`
	Role      string    `json:"role"`
	Merchants []string  `json:"merchants,omitempty"`
	TokenID   string    `json:"token_id"`
	ExpiresAt time.Time `json:"expires_at"`
}
