package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ProblemTypeBase prefixes every problem type the Kairos API sends.
const ProblemTypeBase = "https://kairos-fl.github.io/kairos/problems/"

// Problem types of the Kairos API (RFC 7807 "type" members). A caller acts on
// these, not on titles or details, which are for people.
const (
	TypeInvalidRequest   = ProblemTypeBase + "invalid-request"        // 400: bad JSON, unknown field, bad path parameter
	TypeUnsupportedMedia = ProblemTypeBase + "unsupported-media-type" // 415
	TypeTooLarge         = ProblemTypeBase + "too-large"              // 413: body over the route's limit
	TypeUnauthorized     = ProblemTypeBase + "unauthorized"           // 401: no bearer token, or one that failed verification
	TypeForbidden        = ProblemTypeBase + "forbidden"              // 403: the token's role or merchant may not do this
	TypeMovedPermanently = ProblemTypeBase + "moved-permanently"      // 301: the path is not in canonical form; Location is
	TypeNotFound         = ProblemTypeBase + "not-found"              // 404
	TypeMethodNotAllowed = ProblemTypeBase + "method-not-allowed"     // 405
	TypeConflict         = ProblemTypeBase + "conflict"               // 409: e.g. merchant already enrolled
	TypeWithdrawn        = ProblemTypeBase + "withdrawn"              // 410: the model version was withdrawn by a rollback
	TypeInvalidEnvelope  = ProblemTypeBase + "invalid-envelope"       // 400: envelope framing, decryption or digest
	TypeInvalidUpdate    = ProblemTypeBase + "invalid-update"         // 400: payload shape or finiteness
	TypeStaleEnvelope    = ProblemTypeBase + "stale-envelope"         // 400: created too long ago or in the future (check the clock)
	TypeBadSignature     = ProblemTypeBase + "bad-signature"          // 401: envelope signature or signer unknown
	TypeSignerRevoked    = ProblemTypeBase + "signer-revoked"         // 403
	TypeRoundMismatch    = ProblemTypeBase + "round-mismatch"         // 409: envelope for another round; fetch the current one
	TypeRoundClosed      = ProblemTypeBase + "round-closed"           // 409: the round no longer accepts updates
	TypeReplay           = ProblemTypeBase + "replay"                 // 409: nonce seen before
	TypeSecureStage      = ProblemTypeBase + "secure-stage"           // 409: a secure round's message for a stage that is not (or no longer) open
	TypeNotSelected      = ProblemTypeBase + "not-selected"           // 403: merchant not sampled for this round
	TypeBudgetExhausted  = ProblemTypeBase + "budget-exhausted"       // 403: the release would exceed the merchant's ε cap
	TypePolicyViolation  = ProblemTypeBase + "policy-violation"       // 422: declared DP parameters or merchant refused by the policy
	TypeRateLimited      = ProblemTypeBase + "rate-limited"           // 429: a partner over its policy's rate; see RetryAfter
	TypeUnavailable      = ProblemTypeBase + "unavailable"            // 503: not ready, or a dependency failed
	TypeInternal         = ProblemTypeBase + "internal"               // 500
)

// Problem is an RFC 7807 problem document returned by the API. It is the error
// every Client method returns for a non-2xx answer; match it with errors.As.
type Problem struct {
	Status   int    `json:"status"`
	Type     string `json:"type"`
	Title    string `json:"title"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID is the server's id of the request, for its logs.
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	name := strings.TrimPrefix(p.Type, ProblemTypeBase)
	if name == "" || name == "about:blank" {
		name = strings.ToLower(http.StatusText(p.Status))
	}
	if p.Detail == "" {
		return fmt.Sprintf("kairos api: %d %s", p.Status, name)
	}
	return fmt.Sprintf("kairos api: %d %s: %s", p.Status, name, p.Detail)
}

// Temporary reports whether the same request may succeed later unchanged:
// rate limits, timeouts and server-side failures.
func (p *Problem) Temporary() bool {
	return p.Status == http.StatusTooManyRequests || p.Status == http.StatusRequestTimeout || p.Status >= 500
}

// IsProblem reports whether err is, or wraps, a *Problem of the given type.
func IsProblem(err error, problemType string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Type == problemType
}
