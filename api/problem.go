package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

// Problem types, shared with the client.
const (
	typeInvalidRequest   = apiclient.TypeInvalidRequest
	typeUnsupportedMedia = apiclient.TypeUnsupportedMedia
	typeTooLarge         = apiclient.TypeTooLarge
	typeForbidden        = apiclient.TypeForbidden
	typeNotFound         = apiclient.TypeNotFound
	typeMethodNotAllowed = apiclient.TypeMethodNotAllowed
	typeUnavailable      = apiclient.TypeUnavailable
	typeInternal         = apiclient.TypeInternal
)

// handlerFunc is an HTTP handler that returns its failure instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// httpError is an error with its public face: a status, a problem type and a
// detail safe to show the caller. cause, if any, is only logged.
type httpError struct {
	status int
	typ    string
	detail string
	cause  error
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return e.detail + ": " + e.cause.Error()
	}
	return e.detail
}

func (e *httpError) Unwrap() error { return e.cause }

// problemDoc is the RFC 7807 body.
type problemDoc struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// handle adapts a handlerFunc: a returned error becomes a problem document.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// errorMap lists the service's and the seal's outcomes a caller acts on, with
// the status and problem type each gets. The first match wins, so the order
// matters only for errors that wrap several sentinels. For refusals marked
// public the whole error text is the detail: it tells the caller what to fix
// (the policy's minimum noise, the expected shape) and holds nothing the
// caller does not already know. Signature and signer failures say only which
// check failed.
var errorMap = []struct {
	err    error
	status int
	typ    string
	public bool
}{
	{dp.ErrBudgetExhausted, http.StatusForbidden, apiclient.TypeBudgetExhausted, true},
	{seal.ErrTooLarge, http.StatusRequestEntityTooLarge, apiclient.TypeTooLarge, true},
	{seal.ErrReplay, http.StatusConflict, apiclient.TypeReplay, false},
	{seal.ErrRoundMismatch, http.StatusConflict, apiclient.TypeRoundMismatch, false},
	{seal.ErrStale, http.StatusBadRequest, apiclient.TypeStaleEnvelope, false},
	{seal.ErrBadSignature, http.StatusUnauthorized, apiclient.TypeBadSignature, false},
	{seal.ErrUnknownSigner, http.StatusUnauthorized, apiclient.TypeBadSignature, false},
	{seal.ErrRevokedSigner, http.StatusForbidden, apiclient.TypeSignerRevoked, false},
	{seal.ErrMissingSignature, http.StatusBadRequest, apiclient.TypeInvalidEnvelope, false},
	{seal.ErrMalformed, http.StatusBadRequest, apiclient.TypeInvalidEnvelope, true},
	{seal.ErrRecipientKind, http.StatusBadRequest, apiclient.TypeInvalidEnvelope, false},
	{seal.ErrDecrypt, http.StatusBadRequest, apiclient.TypeInvalidEnvelope, false},
	{seal.ErrDigestMismatch, http.StatusBadRequest, apiclient.TypeInvalidEnvelope, false},
	{protocol.ErrInvalidUpdate, http.StatusBadRequest, apiclient.TypeInvalidUpdate, true},
	{protocol.ErrSecureStage, http.StatusConflict, apiclient.TypeSecureStage, true},
	{aggregator.ErrRoundClosed, http.StatusConflict, apiclient.TypeRoundClosed, true},
	{aggregator.ErrNotSelected, http.StatusForbidden, apiclient.TypeNotSelected, true},
	{aggregator.ErrPolicy, http.StatusUnprocessableEntity, apiclient.TypePolicyViolation, true},
	{aggregator.ErrConflict, http.StatusConflict, apiclient.TypeConflict, true},
	{aggregator.ErrWithdrawn, http.StatusGone, apiclient.TypeWithdrawn, true},
	{aggregator.ErrNotFound, http.StatusNotFound, apiclient.TypeNotFound, false},
	// Committed but not audited: no success answer (fail closed); a retry of
	// the same envelope is answered as a duplicate.
	{aggregator.ErrAudit, http.StatusServiceUnavailable, apiclient.TypeUnavailable, false},
}

// classify returns the public face of err.
func classify(err error) *httpError {
	if he, ok := errors.AsType[*httpError](err); ok {
		return he
	}
	for _, m := range errorMap {
		if errors.Is(err, m.err) {
			detail := m.err.Error()
			if m.public {
				detail = err.Error()
			}
			return &httpError{status: m.status, typ: m.typ, detail: detail, cause: err}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "request canceled or timed out", cause: err}
	}
	return &httpError{status: http.StatusInternalServerError, typ: typeInternal, detail: "internal error", cause: err}
}

// writeError is the one place that turns an error into a response.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := classify(err)
	id := w.Header().Get("X-Request-Id")
	if id == "" {
		id = s.requestID()
		w.Header().Set("X-Request-Id", id)
	}
	level := slog.LevelInfo
	if he.status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", he.status), slog.String("type", strings.TrimPrefix(he.typ, apiclient.ProblemTypeBase)),
		slog.Any("err", err))
	writeProblem(w, problemDoc{
		Type:      he.typ,
		Title:     http.StatusText(he.status),
		Status:    he.status,
		Detail:    he.detail,
		Instance:  r.URL.Path,
		RequestID: id,
	})
}

func writeProblem(w http.ResponseWriter, p problemDoc) {
	h := w.Header()
	if p.Status == http.StatusServiceUnavailable {
		// Not ready or a dependency failed: worth a retry shortly.
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// newRequestIDs returns a generator of request ids: a random per-process
// prefix and a counter, unique across replicas without coordination.
func newRequestIDs() func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := hex.EncodeToString(b[:])
	var n atomic.Uint64
	return func() string {
		return prefix + "-" + strconv.FormatUint(n.Add(1), 10)
	}
}

// redirectClean answers a request whose path is not in canonical form (an
// empty segment, "." or ".."): 301 to the cleaned path, as gorilla/mux does,
// but with a problem document that says so instead of an empty body. It
// reports whether it answered.
func (s *Server) redirectClean(w http.ResponseWriter, r *http.Request) bool {
	p := cleanPath(r.URL.Path)
	if p == r.URL.Path {
		return false
	}
	u := *r.URL
	u.Path, u.RawPath = p, ""
	w.Header().Set("Location", u.String())
	s.writeError(w, r, &httpError{status: http.StatusMovedPermanently, typ: apiclient.TypeMovedPermanently,
		detail: "the path is not in canonical form: the resource is at " + p})
	return true
}

// cleanPath is gorilla/mux's canonical form of p: path.Clean, rooted, with a
// trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
