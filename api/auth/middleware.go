package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
)

type claimsKey struct{}

// WithClaims returns a copy of ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the verified claims Middleware put into ctx.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware verifies the request's bearer token (RFC 6750) and calls next
// with the claims in the request context (see ClaimsFrom). A request without
// a token gets 401 with a bare Bearer challenge; a bad token 401 with
// error="invalid_token"; a revocation store failure 503. Bodies are RFC 7807
// problem documents (ProblemUnauthorized, ProblemUnavailable) that name the
// sentinel, never the underlying cause.
func Middleware(v *Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearer(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos"`)
			writeProblem(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		c, err := v.Verify(r.Context(), token)
		switch {
		case errors.Is(err, ErrTokenInvalid):
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos", error="invalid_token"`)
			writeProblem(w, r, http.StatusUnauthorized, publicReason(err))
			return
		case err != nil:
			writeProblem(w, r, http.StatusServiceUnavailable, "token could not be checked")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
	})
}

// RequireRole lets a request through to next only when Middleware verified
// claims with one of roles; otherwise 403 with error="insufficient_scope"
// (or 401 when no claims are present at all).
func RequireRole(next http.Handler, roles ...Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos"`)
			writeProblem(w, r, http.StatusUnauthorized, "no verified token")
			return
		}
		if !slices.Contains(roles, c.Role) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos", error="insufficient_scope"`)
			writeProblem(w, r, http.StatusForbidden, "role "+string(c.Role)+" may not do this")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireMerchant lets a request through to next only when the verified
// claims may access the merchant that merchantOf names in the request (a path
// variable, say); see Claims.MayAccess. Otherwise 403, or 401 without claims.
func RequireMerchant(next http.Handler, merchantOf func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos"`)
			writeProblem(w, r, http.StatusUnauthorized, "no verified token")
			return
		}
		if !c.MayAccess(merchantOf(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kairos", error="insufficient_scope"`)
			writeProblem(w, r, http.StatusForbidden, "token does not grant this merchant")
			return
		}
		next.ServeHTTP(w, r)
	})
}

var errNoToken = errors.New("no bearer token")

// bearer extracts the token from the one Authorization header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return "", errNoToken
	}
	scheme, token, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errNoToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", errNoToken
	}
	return token, nil
}

// publicReason is the sentinel text of a verification error, without the
// "verify token:" prefix or any cause.
func publicReason(err error) string {
	for _, e := range []error{
		ErrTokenMalformed, ErrWrongAlgorithm, ErrWrongType, ErrUnknownKey, ErrBadSignature,
		ErrTokenExpired, ErrTokenNotYetValid, ErrWrongIssuer, ErrWrongAudience, ErrMissingClaim,
		ErrInvalidRole, ErrInvalidMerchants, ErrTokenRevoked, ErrTokenLifetime,
	} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return ErrTokenInvalid.Error()
}

// Problem types of the refusals Middleware, RequireRole and RequireMerchant
// answer (RFC 7807 "type" members): the Kairos API's own URIs, which
// api/apiclient names TypeUnauthorized, TypeForbidden and TypeUnavailable.
const (
	ProblemUnauthorized = "https://kairos-fl.github.io/kairos/problems/unauthorized" // 401: no token, or one that failed verification
	ProblemForbidden    = "https://kairos-fl.github.io/kairos/problems/forbidden"    // 403: the token's role or merchants do not grant this
	ProblemUnavailable  = "https://kairos-fl.github.io/kairos/problems/unavailable"  // 503: the revocation list could not be read
)

// writeProblem answers an RFC 7807 problem of the type for status, with the
// request's path as its instance and the request id, when the server set
// one on the response already, as its request_id.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	typ := ProblemForbidden
	switch status {
	case http.StatusUnauthorized:
		typ = ProblemUnauthorized
	case http.StatusServiceUnavailable:
		typ = ProblemUnavailable
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	doc := map[string]any{
		"type":     typ,
		"title":    http.StatusText(status),
		"status":   status,
		"detail":   detail,
		"instance": r.URL.Path,
	}
	if id := w.Header().Get("X-Request-Id"); id != "" {
		doc["request_id"] = id
	}
	_ = json.NewEncoder(w).Encode(doc)
}
