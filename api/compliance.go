package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/compliance/report"
)

// checkpointList is the answer of GET /v1/audit/checkpoints.
type checkpointList struct {
	Checkpoints []compliance.AuditCheckpoint `json:"checkpoints"`
}

// complianceRoutes are the audit routes of the compliance role (and admin).
func (s *Server) complianceRoutes() []apiRoute {
	return []apiRoute{
		{http.MethodGet, "/v1/audit", rolesCompliance, "queryAudit",
			"A page of the audit log in seq order, filtered by actor, action, time range and identifier HMAC; " +
				"pass the answer's next as after for the following page. Query parameters: after (seq), limit (1..1000, default 100), " +
				"actor, action (exact), since (inclusive) and until (exclusive) as RFC 3339 times, identifier (hmac-sha256:<64 hex>).",
			nil, http.StatusOK, compliance.AuditPage{}, []int{400, 503}, s.queryAudit},
		{http.MethodGet, "/v1/audit/checkpoints", rolesCompliance, "auditCheckpoints",
			"Every signed audit checkpoint in seq order (Ed25519 over audit.CheckpointMessage)",
			nil, http.StatusOK, checkpointList{}, []int{503}, s.auditCheckpoints},
		{http.MethodGet, "/v1/budgets/{merchant}/chart.svg", rolesCompliance, "budgetChart",
			"One merchant's ε spent over time (ε after each ledger release against its cap), recomputed from its ledger, " +
				"as a self-contained SVG document: the chart `kairos compliance budgets --chart-dir` writes. 404 for a merchant that never enrolled.",
			nil, http.StatusOK, document{mediaType: "image/svg+xml", desc: "SVG document (compliance/report.Chart)"},
			[]int{404, 503}, s.budgetChart},
		{http.MethodGet, "/v1/report", rolesCompliance, "complianceReport",
			"The compliance report `kairos compliance report` writes: one self-contained HTML page with every budget and its chart, " +
				"the model versions with their lineage, the policy history and the audit log's verification result. " +
				"A log that fails verification is still answered with 200; the page says FAILED and names the first bad entry.",
			nil, http.StatusOK, document{mediaType: "text/html", desc: "self-contained HTML document, UTF-8 (compliance/report.HTML)"},
			[]int{503}, s.complianceReport},
	}
}

// document marks a route whose answer is not JSON: its media type (without
// parameters) and what it holds, for the OpenAPI document.
type document struct {
	mediaType, desc string
}

// ComplianceReporter (Options.Reports) hands GET
// /v1/budgets/{merchant}/chart.svg and GET /v1/report the store, policy and
// checkpoint key `kairos compliance report` reads, so that both answer from
// report.Gather and report.Chart. Without it those routes answer 503.
type ComplianceReporter interface {
	ReportSources() report.Sources
}

var errNoReports = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server has no compliance report source"}

func (s *Server) reportSources() (report.Sources, error) {
	if s.reports == nil {
		return report.Sources{}, errNoReports
	}
	return s.reports.ReportSources(), nil
}

func (s *Server) budgetChart(w http.ResponseWriter, r *http.Request) error {
	src, err := s.reportSources()
	if err != nil {
		return err
	}
	merchant := mux.Vars(r)["merchant"]
	b, err := compliance.LoadBudget(r.Context(), src.Store, src.Policy, merchant)
	if errors.Is(err, compliance.ErrNoBudget) {
		return &httpError{status: http.StatusNotFound, typ: typeNotFound,
			detail: fmt.Sprintf("merchant %q has no privacy budget: it is not enrolled", merchant)}
	}
	if err != nil {
		return err
	}
	if src.Audit != nil {
		bs := []compliance.Budget{b}
		if err := report.AddLocalCaps(r.Context(), src.Audit, bs); err != nil {
			return err
		}
		b = bs[0]
	}
	writeDocument(w, "image/svg+xml", report.Chart(b))
	return nil
}

func (s *Server) complianceReport(w http.ResponseWriter, r *http.Request) error {
	src, err := s.reportSources()
	if err != nil {
		return err
	}
	// As GET /v1/compliance: the log alone cannot show a tail cut together
	// with its checkpoints, or a rollback to a backup; the witness can.
	ws := s.witnessed(r.Context(), &src)
	rep, err := report.Gather(r.Context(), src)
	if err != nil {
		return err
	}
	if ws.Error != "" && rep.Audit.OK {
		// The report has no witness section: it must not read "verified".
		rep.Audit.OK = false
		rep.Audit.Failure = "the audit witness could not be read, so the log was not checked against it (" + ws.Error + ")"
	}
	var page bytes.Buffer
	if err := report.HTML(&page, rep); err != nil {
		return err
	}
	writeDocument(w, "text/html; charset=utf-8", page.Bytes())
	return nil
}

// writeDocument answers 200 with a non-JSON document. The report and the
// charts are self-contained (inline CSS and SVG): the policy forbids
// everything else, scripts included, should a merchant id ever slip past
// their escaping.
func writeDocument(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	freshWriteDeadline(w) // the report verified the whole log first
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // the status is on the wire; a client that went away is not reported
}

// auditQueryParams are the query parameters GET /v1/audit accepts.
var auditQueryParams = map[string]bool{
	"after": true, "limit": true, "actor": true, "action": true, "since": true, "until": true, "identifier": true,
}

// auditFilter reads GET /v1/audit's query; every failure is a 400 naming the
// parameter.
func auditFilter(q url.Values) (compliance.AuditFilter, error) {
	bad := func(format string, a ...any) error {
		return &httpError{status: http.StatusBadRequest, typ: typeInvalidRequest, detail: fmt.Sprintf(format, a...)}
	}
	var f compliance.AuditFilter
	for k, v := range q {
		if !auditQueryParams[k] {
			return f, bad("unknown query parameter %q (want after, limit, actor, action, since, until, identifier)", k)
		}
		if len(v) != 1 {
			return f, bad("query parameter %q given %d times", k, len(v))
		}
	}
	var err error
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			return f, bad("query parameter after: %q is not a sequence number", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > compliance.MaxAuditLimit {
			return f, bad("query parameter limit: %q is not an integer in 1..%d", v, compliance.MaxAuditLimit)
		}
		f.Limit = n
	}
	f.Actor, f.Action, f.Identifier = q.Get("actor"), q.Get("action"), q.Get("identifier")
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return f, bad("query parameter %s: %q is not an RFC 3339 time such as 2026-11-27T16:00:00Z", p.name, v)
			}
		}
	}
	if err := f.Validate(); err != nil {
		return f, bad("%v", err)
	}
	return f, nil
}

func (s *Server) queryAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	if s.auditSrc == nil {
		return errNoAudit
	}
	page, err := compliance.QueryAudit(r.Context(), s.auditSrc, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) auditCheckpoints(w http.ResponseWriter, r *http.Request) error {
	if s.auditSrc == nil {
		return errNoAudit
	}
	cps, err := compliance.Checkpoints(r.Context(), s.auditSrc)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, checkpointList{Checkpoints: cps})
}

var errNoAudit = &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "this server has no audit log reader"}

// budgetStatement is the plain-language privacy statement of b.
func budgetStatement(b aggregator.Budget) string {
	return compliance.Statement(compliance.Budget{
		Merchant: b.Merchant, Cap: b.Cap, Delta: b.Delta, Epsilon: b.Epsilon,
		Releases: b.Releases, InPolicy: b.Cap > 0,
	})
}
