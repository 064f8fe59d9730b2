package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
)

// TokenRevoker revokes API tokens (Options.Revoker; aggregator.Service is
// one); without it POST /v1/tokens:revoke answers 503.
type TokenRevoker interface {
	RevokeToken(ctx context.Context, actor, jti string, expiresAt time.Time) error
}

var errNoRevoker = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server cannot revoke tokens"}

// tokenRoutes are the token administration routes.
func (s *Server) tokenRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodPost, "/v1/tokens:revoke", rolesAdmin, "revokeToken",
			"Refuse an API token (by its jti) from now until expires_at; every replica refuses it within the verifier's revocation TTL (1 s by default). Audited.",
			protocol.TokenRevocation{}, http.StatusOK, protocol.TokenRevocation{}, []int{400, 413, 415, 422, 503}, s.revokeToken},
	}
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	rv := s.revoker
	if rv == nil {
		return errNoRevoker
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	var req protocol.TokenRevocation
	if err := decodeJSON(w, r, s.maxJSON, &req); err != nil {
		return err
	}
	if req.JTI == "" || len(req.JTI) > auth.MaxTokenIDSize {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(`field "jti": required, at most %d bytes`, auth.MaxTokenIDSize)}
	}
	if req.ExpiresAt.IsZero() {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: `field "expires_at": required (RFC 3339), the token's expiry`}
	}
	if err := rv.RevokeToken(r.Context(), actor(c), req.JTI, req.ExpiresAt); err != nil {
		return err
	}
	req.ExpiresAt = req.ExpiresAt.UTC()
	return writeJSON(w, http.StatusOK, req)
}
