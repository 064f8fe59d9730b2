// Package auth issues and verifies the Kairos API's bearer tokens: EdDSA
// (Ed25519) JWTs with a pinned algorithm, a Kairos-specific "typ", key ids that
// rotate, a role and a merchant scope, and a revocation list. It also writes
// and reads the JWKS document that lets partner apps and replicas verify tokens,
// and offers a small net/http middleware.
//
// Verification fails closed: a token is accepted only when its header names
// alg "EdDSA", typ "kairos+jwt" and a known kid; its signature verifies; iss,
// aud, sub, exp, iat and jti are present and valid (nbf when present); its role
// is known and its merchant list fits the role; and the revocation store says
// its jti is not revoked. Every rejection is one of the sentinel errors below,
// and each of them except ErrRevocationUnavailable matches ErrTokenInvalid
// under errors.Is, so an HTTP layer maps ErrTokenInvalid to 401 and anything
// else to 5xx.
//
// A Verifier caches the tokens that passed, keyed by the SHA-256 of their
// bytes, for at most 30 s and never past their exp, so that a partner app
// that reuses its token pays for one signature check rather than one per
// request. The revocation store's answer is reused for at most 1 s: a token
// revoked in the store is refused by every replica within a second (see
// VerifierOptions.RevocationTTL to change or remove that bound).
package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults used by the issuer and the CLI.
const (
	DefaultIssuer   = "kairos-aggregator"
	DefaultAudience = "kairos-api"
	// TokenType is the JOSE "typ" header of every Kairos token. A dedicated
	// type (RFC 8725 section 3.11) keeps other JWTs signed by the same key,
	// should there ever be any, from being accepted as API tokens.
	TokenType = "kairos+jwt"
	// Algorithm is the only JOSE "alg" Kairos signs with or accepts.
	Algorithm = "EdDSA"
)

// Role is what a token's subject may do.
type Role string

// The roles a token may carry.
const (
	RoleAdmin      Role = "admin"      // federation operator: enrol merchants, manage rounds
	RoleMerchant   Role = "merchant"   // one merchant's client: fetch rounds, upload updates
	RolePartner    Role = "partner"    // partner app: predictions for the merchants it was granted
	RoleCompliance Role = "compliance" // reviewer: budgets and the audit log, read only
)

// DefaultMaxTTL is the longest lifetime (exp − iat) a Verifier accepts for
// a token of role unless VerifierOptions.MaxTTL says otherwise: 90 days for
// merchant tokens (the API issues them at enrolment for that long), 30 days
// for the others. A stolen token is good for at most that.
func DefaultMaxTTL(role Role) time.Duration {
	if role == RoleMerchant {
		return 90 * 24 * time.Hour
	}
	return 30 * 24 * time.Hour
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleMerchant, RolePartner, RoleCompliance:
		return true
	}
	return false
}

// Claims is the payload of a Kairos token.
type Claims struct {
	jwt.RegisteredClaims
	// Role is what the subject may do.
	Role Role `json:"role"`
	// Merchants is the merchant scope: for RoleMerchant exactly one id, equal
	// to the subject; for RolePartner the merchants it may query; empty for
	// the other roles.
	Merchants []string `json:"merchants,omitempty"`
}

// MayAccess reports whether the claims grant access to data of merchant id:
// admins may act on every merchant, merchants on themselves, partners on the
// merchants listed in their token, compliance on none (it reads federation-wide
// reports, not merchant data).
func (c *Claims) MayAccess(merchant string) bool {
	switch c.Role {
	case RoleAdmin:
		return true
	case RoleMerchant, RolePartner:
		return merchant != "" && slices.Contains(c.Merchants, merchant)
	}
	return false
}

// validateScope checks the role and the merchant list against each other.
func validateScope(role Role, subject string, merchants []string) error {
	if !role.Valid() {
		return fmt.Errorf("%w: %q is not admin, merchant, partner or compliance", ErrInvalidRole, role)
	}
	if !plainText(subject) {
		return fmt.Errorf("%w: subject holds invalid UTF-8 or a control character", ErrTokenMalformed)
	}
	for i, m := range merchants {
		if m == "" || slices.Contains(merchants[:i], m) {
			return fmt.Errorf("%w: empty or repeated merchant id", ErrInvalidMerchants)
		}
		if !plainText(m) {
			return fmt.Errorf("%w: a merchant id holds invalid UTF-8 or a control character", ErrInvalidMerchants)
		}
	}
	switch role {
	case RoleMerchant:
		if len(merchants) != 1 || merchants[0] != subject {
			return fmt.Errorf("%w: a merchant token names exactly one merchant, its subject", ErrInvalidMerchants)
		}
	case RolePartner:
		if len(merchants) == 0 {
			return fmt.Errorf("%w: a partner token names at least one merchant", ErrInvalidMerchants)
		}
	default:
		if len(merchants) != 0 {
			return fmt.Errorf("%w: role %s takes no merchants", ErrInvalidMerchants, role)
		}
	}
	return nil
}

// plainText reports whether s is valid UTF-8 without control characters. The
// subject and merchant ids become the actor and merchant of audit entries and
// log lines: a NUL makes the entry unwritable, a newline forges a log line.
func plainText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// tokenError is a rejection reason. It matches ErrTokenInvalid under errors.Is
// so that callers can tell "bad token" (401) from "could not decide" (5xx).
type tokenError struct{ msg string }

func (e *tokenError) Error() string { return e.msg }

// Is makes every tokenError match ErrTokenInvalid.
func (e *tokenError) Is(target error) bool { return target == ErrTokenInvalid }

// Errors returned by Verify. All but ErrRevocationUnavailable match
// ErrTokenInvalid.
var (
	// ErrTokenInvalid matches every reason a token was rejected.
	ErrTokenInvalid = errors.New("token invalid")

	ErrTokenMalformed   error = &tokenError{"token malformed"}
	ErrWrongAlgorithm   error = &tokenError{"token algorithm not accepted"}
	ErrWrongType        error = &tokenError{"token type not accepted"}
	ErrUnknownKey       error = &tokenError{"token signed with an unknown key"}
	ErrBadSignature     error = &tokenError{"token signature invalid"}
	ErrTokenExpired     error = &tokenError{"token expired"}
	ErrTokenNotYetValid error = &tokenError{"token not valid yet"}
	ErrWrongIssuer      error = &tokenError{"token issuer not accepted"}
	ErrWrongAudience    error = &tokenError{"token audience not accepted"}
	ErrMissingClaim     error = &tokenError{"token lacks a required claim"}
	ErrInvalidRole      error = &tokenError{"token role invalid"}
	ErrInvalidMerchants error = &tokenError{"token merchant scope invalid for its role"}
	ErrTokenRevoked     error = &tokenError{"token revoked"}
	ErrTokenLifetime    error = &tokenError{"token lifetime exceeds the maximum for its role"}

	// ErrRevocationUnavailable means the revocation store could not answer;
	// the token is refused (fail closed) but is not known to be bad.
	ErrRevocationUnavailable = errors.New("token revocation status unavailable")
)
