// Package api is the aggregator's HTTP API: a gorilla/mux router over the
// aggregator service with JWT authentication (api/auth), per-role and
// per-merchant authorization, body limits, RFC 7807 problem documents,
// health and readiness probes, the JWKS and Prometheus metrics.
//
// # Routes
//
//	POST /v1/merchants                  admin       JSON protocol.EnrolRequest → 201 protocol.Enrolment (with a merchant token)
//	GET  /v1/merchants                  admin       → {"merchants": [protocol.MerchantInfo]}
//	GET  /v1/rounds/current             merchant    → protocol.Round, for the token's merchant
//	POST /v1/rounds/{id}/updates        merchant    application/octet-stream sealed envelope → 202 protocol.Receipt
//	GET  /v1/models?after=&limit=       any role    → {"models": [protocol.ModelVersion], "next": cursor} (one page,
//	                                                  oldest first; no model bytes; contributions to compliance and admin only)
//	GET  /v1/models/{version|active}    any role    → protocol.ModelVersion with the model file (likewise)
//	POST /v1/models/{version}:rollback  admin       → 200 protocol.ModelVersion now active
//	GET  /v1/budgets                    compliance, admin → {"budgets": [protocol.BudgetInfo]}
//	GET  /v1/audit, /v1/audit/checkpoints  compliance, admin → audit log pages and signed checkpoints (compliance.go)
//	GET  /v1/budgets/{merchant}/chart.svg  compliance, admin → the merchant's chart of ε spent over time (image/svg+xml)
//	GET  /v1/report                     compliance, admin → the self-contained HTML compliance report
//	POST /v1/tokens:revoke              admin → refuse a token (jti) until its expiry; audited (tokens.go)
//	POST /v1/tokens                     admin → issue a token, audited (token.issue) before it is answered (console.go)
//	GET  /v1/session                    any role → what the token grants
//	GET  /v1/federation                 compliance, admin → recent rounds with progress, merchants' states
//	GET  /v1/compliance                 compliance, admin → report.Gather's data as JSON, with the witness status
//	GET  /v1/audit/export               compliance, admin → the audit log and checkpoints as JSON lines
//	GET  /console/…                     (no token) the web console's static files (package console), when Options.Console is set
//	POST /v1/predict, /v1/predict:batch  partner, merchant → predictions for a merchant the token may query, audited first (predict.go)
//	GET  /metrics                       compliance, admin → Prometheus text, with the per-merchant ε series
//	GET  /.well-known/jwks.json, /healthz, /readyz, /openapi.json  (no token)
//
// Every /v1 route needs a bearer token; 401 without a valid one, 403 when its
// role is not listed. Partner tokens are held to the request rate and burst
// their federation policy grants (429 with Retry-After beyond it, 403 for a
// partner the policy does not know); merchant tokens to Options.MerchantRate
// and MerchantBurst, one bucket per merchant. A merchant token is bound to its merchant: the round it
// gets and the envelopes it may post are its own (403 otherwise), and an
// envelope must name the round of its path (400). JSON bodies are limited to
// Options.MaxJSONBytes, envelopes to Options.MaxEnvelopeBytes (413 beyond);
// JSON is decoded strictly (unknown fields and trailing data are 400 naming
// the field or offset). Request bodies in flight share a budget of
// Options.MaxInflightBytes: a body that does not fit is refused with 503 and
// Retry-After before it is read (admission.go). Like 429s, these refusals
// are not audited, so that a flood cannot flood the audit log either.
//
// Metrics. GET /metrics on the API needs a compliance or admin token: it
// includes kairos_epsilon_spent{merchant} and kairos_epsilon_cap{merchant},
// which /v1/budgets gives the same roles only. Server.MetricsHandler serves
// everything else without a token, for a separate listener that only the
// operator's scraper can reach (`kairos aggregator serve --metrics-listen`).
//
// Failures are application/problem+json documents whose "type" is one of the
// apiclient.Type… URIs. Handlers return errors; one function, writeError,
// turns an error into a status and a public problem document and logs the
// cause with the request id the document carries.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
)

// Default limits.
const (
	// DefaultMaxEnvelopeBytes bounds a sealed update body.
	DefaultMaxEnvelopeBytes = 4 << 20
	// DefaultMaxJSONBytes bounds a JSON request body.
	DefaultMaxJSONBytes = 1 << 20
	// DefaultMerchantTokenTTL is the lifetime of the token issued at enrolment.
	DefaultMerchantTokenTTL = 90 * 24 * time.Hour
	// readyTimeout bounds one readiness probe.
	readyTimeout = 2 * time.Second
)

// Service is what the API needs of the aggregator (aggregator.Service
// implements it).
type Service interface {
	Enrol(ctx context.Context, actor string, m aggregator.Merchant) (aggregator.Merchant, error)
	Merchants(ctx context.Context) ([]aggregator.Merchant, error)
	CurrentRound(ctx context.Context, merchantID string) (protocol.Round, error)
	Submit(ctx context.Context, merchantID string, envelope []byte) (protocol.Receipt, error)
	ModelPage(ctx context.Context, after int64, limit int) ([]protocol.ModelVersion, int64, error)
	Model(ctx context.Context, version int) (protocol.ModelVersion, error)
	Rollback(ctx context.Context, actor string, version int) error
	Budgets(ctx context.Context) ([]aggregator.Budget, error)
}

// RoundCounter counts the rounds by state (Options.RoundCounts); /metrics
// then reports kairos_rounds{state}.
type RoundCounter interface {
	RoundCounts(ctx context.Context) (map[protocol.RoundState]int, error)
}

var _ Service = (*aggregator.Service)(nil)

// Options configure NewServer.
type Options struct {
	// Service is the aggregator. Required.
	Service Service
	// Verifier checks bearer tokens. Required.
	Verifier *auth.Verifier
	// Issuer signs the merchant token returned at enrolment. Required.
	Issuer *auth.Issuer
	// JWKS are the public token keys served at /.well-known/jwks.json. Required.
	JWKS []auth.PublicKey
	// MerchantTokenTTL is the lifetime of enrolment tokens; DefaultMerchantTokenTTL when 0.
	MerchantTokenTTL time.Duration
	// Ready is the readiness probe behind /readyz (the store is reachable, say);
	// nil means always ready.
	Ready func(ctx context.Context) error
	// Logger receives the causes of failed requests; discarded when nil.
	Logger *slog.Logger
	// Registry receives the API's metrics and is served by MetricsHandler
	// and, with the per-merchant budget series added, at /metrics; a new
	// private registry when nil (never the global default one).
	Registry *prometheus.Registry
	// MaxEnvelopeBytes and MaxJSONBytes bound request bodies; defaults when 0.
	MaxEnvelopeBytes int64
	MaxJSONBytes     int64
	// MaxInflightBytes bounds the request-body bytes held at once
	// (admission.go); DefaultMaxInflightBytes when 0. Three quarters of it
	// must hold the largest body limit (a full predict batch).
	MaxInflightBytes int64
	// Partners returns the request rate and burst the federation policy grants
	// partner app id, or an error when it grants nothing. When set, partner
	// tokens are rate-limited (429) and partners without a grant refused (403).
	Partners func(id string) (ratePerSecond float64, burst int, err error)
	// MerchantRate and MerchantBurst are every merchant token's request
	// rate (per second) and burst, one bucket per merchant across routes
	// (429 with Retry-After beyond it); DefaultMerchantRate and
	// DefaultMerchantBurst when 0.
	MerchantRate  float64
	MerchantBurst int
	// OverseerRate and OverseerBurst are every admin and compliance token's
	// request rate (per second) and burst, one bucket per role and subject
	// across routes (429 with Retry-After beyond it); DefaultOverseerRate
	// and DefaultOverseerBurst when 0. The whole-log routes are held to
	// DefaultVerifyRate and DefaultVerifyBurst besides.
	OverseerRate  float64
	OverseerBurst int
	// Now is the clock of the rate limiters; time.Now when nil.
	Now func() time.Time
	// Merchants returns an error when the federation policy in force does
	// not name merchant id. When set, merchant tokens of a merchant it does
	// not name (removed by a reload, say) are refused (403) on every route,
	// as partners without a grant are.
	Merchants func(id string) error
	// Audit is the audit log read by GET /v1/audit and
	// /v1/audit/checkpoints (the store); those routes answer 503 when nil.
	Audit audit.Source
	// Predict configures POST /v1/predict and /v1/predict:batch (predict.go).
	Predict PredictOptions

	// The web console's sources (console.go). Status answers GET
	// /v1/federation and TokenAudit records the tokens POST /v1/tokens
	// issues (both 503 when nil); Witness reads the checkpoints of the
	// audit witness that GET /v1/compliance verifies the log against too
	// (none when nil); TokenMaxTTL bounds the lifetime of an issued token
	// per role (auth.DefaultMaxTTL when nil). Console, when set, is served
	// under /console/ without a token: static pages that sign in with one.
	Status      StatusSource
	TokenAudit  TokenAuditor
	Witness     func(ctx context.Context) ([]audit.Checkpoint, error)
	TokenMaxTTL func(auth.Role) time.Duration
	Console     http.Handler
	// Rounds serves POST /v1/rounds:cancel and /v1/merchants/me:stop
	// (admin.go); they answer 503 when nil.
	Rounds RoundAdmin
	// Reload serves POST /v1/config:reload; it answers 503 when nil.
	Reload Reloader
	// RoundCounts gives /metrics the rounds by state (kairos_rounds); the
	// series is absent when nil.
	RoundCounts RoundCounter
	// Revoker serves POST /v1/tokens:revoke; it answers 503 when nil.
	Revoker TokenRevoker
	// Reports hands GET /v1/budgets/{merchant}/chart.svg and GET /v1/report
	// the sources `kairos compliance report` reads; they answer 503 when nil.
	Reports ComplianceReporter
}

// Server is the API's http.Handler.
type Server struct {
	svc          Service
	issuer       *auth.Issuer
	tokenTTL     time.Duration
	ready        func(ctx context.Context) error
	log          *slog.Logger
	reg          *prometheus.Registry
	budgetReg    *prometheus.Registry // the per-merchant ε series, for GET /metrics with a token
	maxEnv       int64
	maxJSON      int64
	metrics      *metrics
	router       *mux.Router
	requestID    func() string
	openapi      []byte
	partners     *rateLimiter
	merchantRate *rateLimiter
	overseerRate *rateLimiter // admin and compliance tokens, every route
	verifyRate   *rateLimiter // admin and compliance tokens, whole-log verification routes
	inPolicy     func(id string) error
	auditSrc     audit.Source
	predict      *predictor
	admission    *admission

	status      StatusSource
	tokenAudit  TokenAuditor
	witness     func(ctx context.Context) ([]audit.Checkpoint, error)
	tokenMaxTTL func(auth.Role) time.Duration
	console     http.Handler
	rounds      RoundAdmin
	reload      Reloader
	revoker     TokenRevoker
	reports     ComplianceReporter
}

var _ http.Handler = (*Server)(nil)

// NewServer checks opts and builds the router.
func NewServer(opts Options) (*Server, error) {
	switch {
	case opts.Service == nil:
		return nil, errors.New("new api server: nil Service")
	case opts.Verifier == nil:
		return nil, errors.New("new api server: nil Verifier")
	case opts.Issuer == nil:
		return nil, errors.New("new api server: nil Issuer")
	case len(opts.JWKS) == 0:
		return nil, errors.New("new api server: no JWKS keys")
	case opts.MerchantTokenTTL < 0, opts.MaxEnvelopeBytes < 0, opts.MaxJSONBytes < 0, opts.MaxInflightBytes < 0:
		return nil, errors.New("new api server: negative token lifetime or body limit")
	case !(opts.MerchantRate >= 0) || math.IsInf(opts.MerchantRate, 0) || opts.MerchantBurst < 0:
		return nil, fmt.Errorf("new api server: merchant rate %v/s with burst %d: want finite and ≥ 0 (0 takes the default)", opts.MerchantRate, opts.MerchantBurst)
	case !(opts.OverseerRate >= 0) || math.IsInf(opts.OverseerRate, 0) || opts.OverseerBurst < 0:
		return nil, fmt.Errorf("new api server: overseer rate %v/s with burst %d: want finite and ≥ 0 (0 takes the default)", opts.OverseerRate, opts.OverseerBurst)
	}
	s := &Server{
		svc:       opts.Service,
		issuer:    opts.Issuer,
		tokenTTL:  cmpOr(opts.MerchantTokenTTL, DefaultMerchantTokenTTL),
		ready:     opts.Ready,
		log:       opts.Logger,
		reg:       opts.Registry,
		maxEnv:    cmpOr(opts.MaxEnvelopeBytes, DefaultMaxEnvelopeBytes),
		maxJSON:   cmpOr(opts.MaxJSONBytes, DefaultMaxJSONBytes),
		requestID: newRequestIDs(),
		auditSrc:  opts.Audit,

		status: opts.Status, tokenAudit: opts.TokenAudit, witness: opts.Witness,
		tokenMaxTTL: opts.TokenMaxTTL, console: opts.Console,
		rounds:  opts.Rounds,
		reload:  opts.Reload,
		revoker: opts.Revoker,
		reports: opts.Reports,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.inPolicy = opts.Merchants
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Partners != nil {
		s.partners = &rateLimiter{grant: opts.Partners, now: now, buckets: map[string]*bucket{}}
	}
	mRate, mBurst := cmpOr(opts.MerchantRate, DefaultMerchantRate), cmpOr(opts.MerchantBurst, DefaultMerchantBurst)
	s.merchantRate = &rateLimiter{grant: func(string) (float64, int, error) { return mRate, mBurst, nil }, now: now, buckets: map[string]*bucket{}}
	oRate, oBurst := cmpOr(opts.OverseerRate, DefaultOverseerRate), cmpOr(opts.OverseerBurst, DefaultOverseerBurst)
	s.overseerRate = &rateLimiter{grant: func(string) (float64, int, error) { return oRate, oBurst, nil }, now: now, buckets: map[string]*bucket{}}
	s.verifyRate = &rateLimiter{grant: func(string) (float64, int, error) { return DefaultVerifyRate, DefaultVerifyBurst, nil }, now: now, buckets: map[string]*bucket{}}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(s.reg, opts.RoundCounts, s.log)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.budgetReg = prometheus.NewRegistry()
	if err := s.budgetReg.Register(&budgetCollector{svc: opts.Service, log: s.log}); err != nil {
		return nil, fmt.Errorf("new api server: register metrics: %w", err)
	}
	if s.predict, err = newPredictor(opts.Service, opts.Predict); err != nil {
		return nil, err
	}
	var largest int64
	for _, rt := range s.v1Routes() {
		largest = max(largest, s.bodyLimit(rt))
	}
	if s.admission, err = newAdmission(s.reg, cmpOr(opts.MaxInflightBytes, DefaultMaxInflightBytes), largest); err != nil {
		return nil, err
	}
	if s.openapi, err = OpenAPI(); err != nil {
		return nil, err
	}
	s.router = s.routes(opts.Verifier, opts.JWKS)
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.redirectClean(w, r) { // the router's own 301 has no body
		return
	}
	s.router.ServeHTTP(w, r)
}

// Registry returns the registry the server's metrics are in.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// MetricsHandler serves the server's metrics in the Prometheus text format
// without a token and without the per-merchant budget series: it is meant
// for a listener of its own that only the operator's scraper reaches.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// The role sets of the routes.
var (
	rolesAdmin      = []auth.Role{auth.RoleAdmin}
	rolesMerchant   = []auth.Role{auth.RoleMerchant}
	rolesModels     = []auth.Role{auth.RoleMerchant, auth.RolePartner, auth.RoleAdmin, auth.RoleCompliance}
	rolesCompliance = []auth.Role{auth.RoleCompliance, auth.RoleAdmin}
)

func (s *Server) routes(v *auth.Verifier, jwks []auth.PublicKey) *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = s.instrument("unmatched", s.handle(func(_ http.ResponseWriter, r *http.Request) error {
		return &httpError{status: http.StatusNotFound, typ: typeNotFound, detail: "no route for " + r.URL.Path}
	}))
	r.MethodNotAllowedHandler = s.instrument("unmatched", s.handle(func(_ http.ResponseWriter, r *http.Request) error {
		return &httpError{status: http.StatusMethodNotAllowed, typ: typeMethodNotAllowed, detail: r.Method + " is not allowed on " + r.URL.Path}
	}))

	// v1 routes: bearer token, rate, role, room for the body, then the handler.
	for _, rt := range s.v1Routes() {
		verifies := rt.path == "/v1/compliance" || rt.path == "/v1/report" || rt.path == "/v1/audit/export"
		hh := auth.Middleware(v, s.limitPartners(s.limitOverseers(verifies, s.merchantInPolicy(s.limitMerchants(auth.RequireRole(s.admit(s.bodyLimit(rt), s.handle(rt.h)), rt.roles...))))))
		r.Handle(rt.path, s.instrument(rt.path, noStore(hh))).Methods(rt.method)
	}
	// All metrics, the per-merchant ε among them, for the roles /v1/budgets serves.
	all := promhttp.HandlerFor(prometheus.Gatherers{s.reg, s.budgetReg}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	r.Handle("/metrics", s.instrument("/metrics", noStore(auth.Middleware(v, s.limitOverseers(false, auth.RequireRole(all, rolesCompliance...)))))).
		Methods(http.MethodGet, http.MethodHead)

	open := func(path string, h http.Handler) {
		r.Handle(path, s.instrument(path, h)).Methods(http.MethodGet, http.MethodHead)
	}
	if s.console != nil {
		r.PathPrefix("/console/").Handler(s.instrument("/console/", http.StripPrefix("/console", s.console))).Methods(http.MethodGet, http.MethodHead)
		r.Handle("/console", http.RedirectHandler("/console/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	}
	open("/.well-known/jwks.json", auth.JWKSHandler(jwks))
	open("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	}))
	open("/readyz", noStore(s.handle(s.readyz)))
	open("/openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.openapi)
	}))
	return r
}

// noStore marks API answers as uncacheable: they carry tokens, budgets and
// per-merchant rounds.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			return &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable, detail: "not ready", cause: err}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("ready\n"))
	return err
}
