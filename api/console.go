package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/compliance/report"
)

// The routes the web console (package console) reads besides the older
// ones: who the token is, the federation's rounds and merchants, the
// compliance report's data as JSON, the audit export, and token issue.

// StatusSource reports the federation's recent rounds and merchants
// (aggregator.Service does).
type StatusSource interface {
	Status(ctx context.Context, limit int) (protocol.FederationStatus, error)
}

// TokenAuditor records an issued token in the audit log before it is handed
// out (aggregator.Service does).
type TokenAuditor interface {
	RecordTokenIssued(ctx context.Context, actor, jti, subject, role string, merchants []string, expiresAt time.Time) error
}

// defaultStatusRounds is how many rounds GET /v1/federation returns by default.
const defaultStatusRounds = 50

// maxStatusRounds bounds GET /v1/federation's rounds parameter
// (aggregator.MaxStatusRounds).
const maxStatusRounds = 500

// complianceData is the answer of GET /v1/compliance: report.Gather's
// report, the data GET /v1/report renders, as JSON.
type complianceData struct {
	Generated  time.Time               `json:"generated"`
	Source     string                  `json:"source,omitempty"`
	Federation string                  `json:"federation"`
	PolicyHash string                  `json:"policy_hash"`
	Budgets    []compliance.Budget     `json:"budgets"`
	Models     []protocol.ModelVersion `json:"models"`
	Policies   []compliance.PolicySeen `json:"policies"`
	Audit      auditVerification       `json:"audit"`
	Witness    witnessStatus           `json:"witness"`
}

// auditVerification is report.Verification on the wire.
type auditVerification struct {
	OK          bool   `json:"ok"`
	Entries     uint64 `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	Head        string `json:"head"`
	Unpinned    uint64 `json:"unpinned"`
	Failure     string `json:"failure,omitempty"`
	// Line is the verification result in the report's sentence.
	Line string `json:"line"`
}

// witnessStatus says whether the audit log was also checked against the
// checkpoints a witness kept outside the database (audit.witness).
type witnessStatus struct {
	Configured bool `json:"configured"`
	// Checkpoints is how many checkpoints the witness holds; the verification
	// above covered them.
	Checkpoints int       `json:"checkpoints"`
	LastSeq     uint64    `json:"last_seq,omitempty"`
	LastTime    time.Time `json:"last_time,omitzero"`
	// Error says why the witness could not be read; the verification then
	// covered the database's own checkpoints only.
	Error string `json:"error,omitempty"`
}

func (s *Server) consoleRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodGet, "/v1/session", rolesModels, "session",
			"What the bearer token grants (subject, role, merchant scope, id, expiry) as the server verified it.",
			nil, http.StatusOK, protocol.Session{}, []int{429}, s.session},
		{http.MethodGet, "/v1/federation", rolesCompliance, "federationStatus",
			"The most recent rounds, newest first, with the updates each accepted against its quorum, and every enrolled merchant's " +
				"part in the live round and its budget. Query parameter: rounds (1..500, default 50).",
			nil, http.StatusOK, protocol.FederationStatus{}, []int{400, 503}, s.federationStatus},
		{http.MethodGet, "/v1/compliance", rolesCompliance, "complianceData",
			"The data of the compliance report (GET /v1/report) as JSON, from the same report.Gather: every budget with its ε after each release, " +
				"the model registry, the policy history, and the audit log's verification, against the witness's checkpoints too when one is configured.",
			nil, http.StatusOK, complianceData{}, []int{503}, s.complianceData},
		{http.MethodGet, "/v1/audit/export", rolesCompliance, "auditExport",
			"The whole audit log with its signed checkpoints as JSON lines (audit.Export), the file `kairos compliance audit verify --file` checks offline.",
			nil, http.StatusOK, document{mediaType: "application/jsonl", desc: "JSON lines: entries and checkpoints (audit.Export)"},
			[]int{503}, s.auditExport},
		{http.MethodPost, "/v1/tokens", rolesAdmin, "issueToken",
			"Issue an API token; the token is recorded in the audit log (its id and subject as HMACs) before it is returned, and shown only in this answer.",
			protocol.TokenRequest{}, http.StatusCreated, protocol.IssuedToken{}, []int{400, 413, 415, 503}, s.issueToken},
	}
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) error {
	c, err := claims(r)
	if err != nil {
		return err
	}
	out := protocol.Session{Subject: c.Subject, Role: string(c.Role), Merchants: c.Merchants, TokenID: c.ID}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.UTC()
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) federationStatus(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "rounds" {
			return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf("unknown query parameter %q (want rounds)", k)}
		}
	}
	limit := defaultStatusRounds
	if v := q.Get("rounds"); v != "" || len(q["rounds"]) > 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxStatusRounds || len(q["rounds"]) != 1 {
			return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest,
				detail: fmt.Sprintf("query parameter rounds: %q is not one integer in 1..%d", v, maxStatusRounds)}
		}
		limit = n
	}
	if s.status == nil {
		return &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server has no federation status source"}
	}
	st, err := s.status.Status(r.Context(), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// witnessed adds the audit witness's checkpoints (when the server has one)
// to the log src.Audit reads, so that a report verifies the log against
// them too, and returns the witness's status.
func (s *Server) witnessed(ctx context.Context, src *report.Sources) witnessStatus {
	var ws witnessStatus
	if s.witness == nil {
		return ws
	}
	ws.Configured = true
	cps, err := s.witness(ctx)
	if err != nil {
		ws.Error = err.Error()
		return ws
	}
	ws.Checkpoints = len(cps)
	for _, c := range cps {
		if c.Seq >= ws.LastSeq {
			ws.LastSeq, ws.LastTime = c.Seq, c.Time.UTC()
		}
	}
	src.Audit = audit.Witnessed(src.Audit, cps)
	return ws
}

func (s *Server) complianceData(w http.ResponseWriter, r *http.Request) error {
	src, err := s.reportSources()
	if err != nil {
		return err
	}
	ws := s.witnessed(r.Context(), &src)
	rep, err := report.Gather(r.Context(), src)
	if err != nil {
		return err
	}
	v := rep.Audit
	freshWriteDeadline(w) // verifying the whole log took its time
	return writeJSON(w, http.StatusOK, complianceData{
		Generated: rep.Generated, Source: rep.Source, Federation: rep.Federation, PolicyHash: rep.PolicyHash,
		Budgets: nonNil(rep.Budgets), Models: nonNil(rep.Models), Policies: nonNil(rep.Policies),
		Audit: auditVerification{OK: v.OK, Entries: v.Entries, Checkpoints: v.Checkpoints, Head: v.Head,
			Unpinned: v.Unpinned, Failure: v.Failure, Line: v.Line()},
		Witness: ws,
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	if s.auditSrc == nil {
		return errNoAudit
	}
	// Read the checkpoints once before writing, so that a store that cannot
	// be read gets a problem document rather than an empty file.
	if _, err := s.auditSrc.AuditCheckpoints(r.Context()); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Content-Disposition", `attachment; filename="kairos-audit.jsonl"`)
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	if err := audit.Export(r.Context(), s.auditSrc, &progressWriter{w: w, rc: http.NewResponseController(w), d: exportWriteTimeout}); err != nil {
		// The status is on the wire: a file cut short here would verify as
		// a shorter log, so the connection is aborted instead, which the
		// client sees as a failed download.
		s.log.Error("audit export failed after the response started", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// exportWriteTimeout bounds each write of an audit export, and the writing
// of an answer computed over the whole log (freshWriteDeadline). The server's
// WriteTimeout is a deadline for the whole response, which a log of some
// millions of entries outlasts: the export would be cut off for good once
// the log had grown. The deadline moves with progress instead, so a reader
// that stops reading is still dropped.
const exportWriteTimeout = time.Minute

// freshWriteDeadline gives an answer computed over the whole audit log
// (verified on every call) exportWriteTimeout to be written from now:
// serve's WriteTimeout runs from the request's arrival, so once verifying a
// grown log took longer, such an answer could never be written at all.
func freshWriteDeadline(w http.ResponseWriter) {
	// An error means the writer cannot move deadlines (a recorder in
	// tests); the server's own timeout then stands.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(exportWriteTimeout))
}

// progressWriter moves the connection's write deadline d ahead of each write.
type progressWriter struct {
	w  io.Writer
	rc *http.ResponseController
	d  time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	// An error means the writer cannot move deadlines (a recorder in
	// tests); the server's own timeout then stands.
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.d))
	return p.w.Write(b)
}

// maxIssueTTL is the longest lifetime POST /v1/tokens grants when the
// server has no TokenMaxTTL.
func (s *Server) maxIssueTTL(role auth.Role) time.Duration {
	if s.tokenMaxTTL != nil {
		return s.tokenMaxTTL(role)
	}
	return auth.DefaultMaxTTL(role)
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) error {
	if s.tokenAudit == nil {
		return &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server cannot record issued tokens in the audit log"}
	}
	c, err := claims(r)
	if err != nil {
		return err
	}
	var req protocol.TokenRequest
	if err := decodeJSON(w, r, s.maxJSON, &req); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
	}
	role := auth.Role(req.Role)
	if !role.Valid() {
		return bad(`field "role": %q is not admin, merchant, partner or compliance`, req.Role)
	}
	if req.Subject == "" || len(req.Subject) > 256 {
		return bad(`field "subject": required, at most 256 bytes`)
	}
	limit := s.maxIssueTTL(role)
	// Compared in seconds: time.Duration(req.TTLSeconds)*time.Second wraps
	// for ttl_seconds ≥ 2^63/10^9 and let such a value past the limit.
	if req.TTLSeconds < 60 || req.TTLSeconds > int64(limit/time.Second) {
		return bad(`field "ttl_seconds": %d, want 60..%d (the longest %s token lifetime the policy accepts)`, req.TTLSeconds, int64(limit/time.Second), role)
	}
	tok, tc, err := s.issuer.Issue(auth.Grant{Subject: req.Subject, Role: role, Merchants: req.Merchants, TTL: time.Duration(req.TTLSeconds) * time.Second})
	if err != nil {
		// The grant was checked above except for the merchant scope.
		return bad(`fields "role" and "merchants": %v`, err)
	}
	exp := tc.ExpiresAt.UTC()
	if err := s.tokenAudit.RecordTokenIssued(r.Context(), actor(c), tc.ID, tc.Subject, string(tc.Role), tc.Merchants, exp); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, protocol.IssuedToken{
		Token: tok, TokenID: tc.ID, Subject: tc.Subject, Role: string(tc.Role), Merchants: tc.Merchants, ExpiresAt: exp,
	})
}
