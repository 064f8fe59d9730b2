package protocol

import (
	"crypto/ed25519"
	"time"
)

// EnrolRequest is the body of POST /v1/merchants: what the federation operator
// knows about a merchant joining. PublicKey is the merchant's raw 32-byte
// Ed25519 signing key (base64 in JSON), the key its sealed updates are checked
// against.
type EnrolRequest struct {
	ID        string            `json:"id"`
	Region    string            `json:"region,omitempty"`
	TimeZone  string            `json:"time_zone"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

// MerchantInfo is an enrolled merchant as the API reports it.
type MerchantInfo struct {
	ID        string            `json:"id"`
	Region    string            `json:"region,omitempty"`
	TimeZone  string            `json:"time_zone"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	Revoked   bool              `json:"revoked"`
	// Stopped is why the merchant said it sends no more updates; empty
	// while it takes part.
	Stopped    string    `json:"stopped,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// Enrolment is the answer to POST /v1/merchants: the merchant as stored and a
// merchant-role token bound to its id, to be handed to the merchant out of band.
type Enrolment struct {
	Merchant       MerchantInfo `json:"merchant"`
	Token          string       `json:"token"`
	TokenExpiresAt time.Time    `json:"token_expires_at"`
}

// BudgetInfo is one merchant's privacy ledger summary, as GET /v1/budgets
// reports it: the cumulative ε at Delta after Releases releases, against Cap.
type BudgetInfo struct {
	Merchant    string    `json:"merchant"`
	Cap         float64   `json:"epsilon_cap"`
	Delta       float64   `json:"delta"`
	Epsilon     float64   `json:"epsilon"`
	Releases    int       `json:"releases"`
	LastRelease time.Time `json:"last_release,omitzero"`
	// Statement says in plain language what the numbers mean: privacy unit,
	// adjacency, accountant, spent against the cap.
	Statement string `json:"statement,omitempty"`
}

// TokenRevocation is the body of POST /v1/tokens:revoke (admin) and its
// answer: the token id (the JWT's jti) refused from now until ExpiresAt,
// which should be the token's own expiry (later is harmless; after it the
// token is refused for having expired).
type TokenRevocation struct {
	JTI       string    `json:"jti"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RoundCancel is the body of POST /v1/rounds:cancel: the round to cancel
// (empty: the latest round) and why. The round fails with that reason and
// the next one opens with the current configuration.
type RoundCancel struct {
	Round  string `json:"round,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MerchantStop is the body of POST /v1/merchants/me:stop: a merchant says it
// will send no more updates (its own privacy cap is reached, say), so that
// rounds stop waiting for it.
type MerchantStop struct {
	Reason string `json:"reason"`
	// LocalEpsilonCap and LocalDelta are the merchant's own cap, when it
	// stopped at it; the compliance report draws it on the merchant's chart.
	LocalEpsilonCap float64 `json:"local_epsilon_cap,omitempty"`
	LocalDelta      float64 `json:"local_delta,omitempty"`
}

// Reload is the answer to POST /v1/config:reload: the policy now in force.
type Reload struct {
	PolicyHash         string `json:"policy_hash"`
	PreviousPolicyHash string `json:"previous_policy_hash"`
	Merchants          int    `json:"merchants"`
	Partners           int    `json:"partners"`
	// Note says what the reload does not change (the open round's plan).
	Note string `json:"note,omitempty"`
}
