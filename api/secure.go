package api

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// SecureService is implemented by a Service that runs secure-aggregation
// rounds (*aggregator.Service); without it the secure routes answer 404.
type SecureService interface {
	SubmitSecure(ctx context.Context, merchantID string, envelope []byte) (protocol.SecureReceipt, error)
	SecureStatus(ctx context.Context, merchantID, roundID string) (protocol.SecureStatus, error)
}

func (s *Server) secureService() (SecureService, error) {
	ss, ok := s.svc.(SecureService)
	if !ok {
		return nil, &httpError{status: http.StatusNotFound, typ: typeNotFound, detail: "this aggregator runs no secure aggregation"}
	}
	return ss, nil
}

func (s *Server) submitSecure(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.secureService()
	if err != nil {
		return err
	}
	merchant, env, err := s.readEnvelope(w, r)
	if err != nil {
		return err
	}
	rc, err := ss.SubmitSecure(r.Context(), merchant, env)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, rc)
}

func (s *Server) secureStatus(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.secureService()
	if err != nil {
		return err
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	merchant, err := merchantOf(c)
	if err != nil {
		return err
	}
	st, err := ss.SecureStatus(r.Context(), merchant, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}
