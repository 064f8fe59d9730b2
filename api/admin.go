package api

import (
	"context"
	"net/http"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// RoundAdmin is what the round administration routes need of the
// aggregator (aggregator.Service has it). Options.Rounds; without it those
// routes answer 503.
type RoundAdmin interface {
	CancelRound(ctx context.Context, actor, id, reason string) (protocol.RoundState, error)
	StopMerchant(ctx context.Context, merchantID string, stop protocol.MerchantStop) error
}

// Reloader re-reads the configuration and policy and installs them
// (Options.Reload); actor is the admin asking.
type Reloader func(ctx context.Context, actor string) (protocol.Reload, error)

var (
	errNoRoundAdmin = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server cannot cancel rounds or stop merchants"}
	errNoReload     = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server cannot reload its configuration"}
)

// maxReasonBytes bounds the free-text reasons these routes record.
const maxReasonBytes = 512

// adminRoutes are the round and configuration administration routes.
func (s *Server) adminRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodPost, "/v1/rounds:cancel", rolesAdmin, "cancelRound",
			"Fail the open round (or the one named) and open the next with the configuration in force. Audited.",
			protocol.RoundCancel{}, http.StatusOK, protocol.RoundCancel{}, []int{400, 404, 409, 415, 503}, s.cancelRound},
		{http.MethodPost, "/v1/merchants/me:stop", rolesMerchant, "stopMerchant",
			"The token's merchant sends no more updates (its own privacy cap is reached): rounds stop waiting for it until it asks for a round again. Audited.",
			protocol.MerchantStop{}, http.StatusOK, protocol.MerchantStop{}, []int{400, 403, 404, 415, 429, 503}, s.stopMerchant},
		{http.MethodPost, "/v1/config:reload", rolesAdmin, "reloadConfig",
			"Re-read the aggregator's configuration and policy files and use them from the next round on, without a restart. Audited with the new policy hash.",
			nil, http.StatusOK, protocol.Reload{}, []int{422, 503}, s.reloadConfig},
	}
}

func (s *Server) cancelRound(w http.ResponseWriter, r *http.Request) error {
	if s.rounds == nil {
		return errNoRoundAdmin
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	var req protocol.RoundCancel
	if err := decodeJSON(w, r, s.maxJSON, &req); err != nil {
		return err
	}
	if len(req.Reason) > maxReasonBytes || len(req.Round) > 64 {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: `fields "round" (at most 64 bytes) and "reason" (at most 512 bytes): too long`}
	}
	if _, err := s.rounds.CancelRound(r.Context(), actor(c), req.Round, req.Reason); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, req)
}

func (s *Server) stopMerchant(w http.ResponseWriter, r *http.Request) error {
	if s.rounds == nil {
		return errNoRoundAdmin
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	id, err := merchantOf(c)
	if err != nil {
		return err
	}
	var req protocol.MerchantStop
	if err := decodeJSON(w, r, s.maxJSON, &req); err != nil {
		return err
	}
	if len(req.Reason) > maxReasonBytes {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: `field "reason": at most 512 bytes`}
	}
	if err := s.rounds.StopMerchant(r.Context(), id, req); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, req)
}

func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request) error {
	if s.reload == nil {
		return errNoReload
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	out, err := s.reload(r.Context(), actor(c))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
