package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
)

// scrapeTimeout bounds the service queries behind one /metrics scrape.
const scrapeTimeout = 5 * time.Second

// metrics holds the API's collectors. Federation-wide figures (rounds by
// state, ε per merchant) are read from the service at scrape time, so every
// replica reports the shared database's truth rather than what it saw itself.
// The per-merchant ε series are a separate collector (budgetCollector) in a
// registry of their own, served only to the roles that may read /v1/budgets.
type metrics struct {
	latency  *prometheus.HistogramVec
	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
	// rateLimited counts the 429s of the rate limiters by the caller's role.
	rateLimited *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, rounds RoundCounter, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kairos_http_request_duration_seconds",
			Help:    "Latency of API requests by route template, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kairos_updates_accepted_total",
			Help: "Sealed updates accepted by this replica; duplicate=true when the same envelope had been accepted before.",
		}, []string{"duplicate"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kairos_updates_refused_total",
			Help: "Sealed updates refused by this replica, by problem type.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kairos_http_rate_limited_total",
			Help: "Requests refused with 429 by this replica because the token's partner or merchant was over its request rate, by role.",
		}, []string{"role"}),
	}
	for _, c := range []prometheus.Collector{m.latency, m.accepted, m.refused, m.rateLimited, &serviceCollector{rounds: rounds, log: log}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("new api server: register metrics: %w", err)
		}
	}
	return m, nil
}

// instrument gives every request an id (X-Request-Id, also in problem
// documents and logs), records its latency under the route template, and logs
// it at debug level.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	obs := s.metrics.latency.MustCurryWith(prometheus.Labels{"route": route})
	timed := promhttp.InstrumentHandlerDuration(obs, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := s.requestID()
		w.Header().Set("X-Request-Id", id)
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		timed.ServeHTTP(sw, r)
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("request_id", id), slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)))
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *metrics) updateAccepted(rc protocol.Receipt) {
	m.accepted.WithLabelValues(fmt.Sprint(rc.Duplicate)).Inc()
}

func (m *metrics) updateRefused(problemType string) {
	m.refused.WithLabelValues(strings.TrimPrefix(problemType, apiclient.ProblemTypeBase)).Inc()
}

var (
	descRounds = prometheus.NewDesc("kairos_rounds",
		"Rounds by state, federation-wide.", []string{"state"}, nil)
	descEpsilon = prometheus.NewDesc("kairos_epsilon_spent",
		"Cumulative ε a merchant has spent at its policy δ.", []string{"merchant"}, nil)
	descEpsilonCap = prometheus.NewDesc("kairos_epsilon_cap",
		"A merchant's lifetime ε cap.", []string{"merchant"}, nil)
	descServiceUp = prometheus.NewDesc("kairos_metrics_service_up",
		"1 when the last scrape could read the federation state from the service, 0 when it failed.", nil, nil)
	descBudgetsUp = prometheus.NewDesc("kairos_metrics_budgets_up",
		"1 when the last scrape could read the merchants' budgets from the service, 0 when it failed.", nil, nil)
)

// serviceCollector reads the federation's state at scrape time: the rounds
// by state, nothing per merchant.
type serviceCollector struct {
	rounds RoundCounter // nil: no kairos_rounds series
	log    *slog.Logger
}

func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRounds
	ch <- descServiceUp
}

func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := 1.0
	if c.rounds != nil {
		if counts, err := c.rounds.RoundCounts(ctx); err != nil {
			c.log.Warn("metrics: count rounds", "err", err)
			up = 0
		} else {
			for _, st := range []protocol.RoundState{protocol.RoundOpen, protocol.RoundCollecting,
				protocol.RoundAggregating, protocol.RoundPublished, protocol.RoundFailed} {
				ch <- prometheus.MustNewConstMetric(descRounds, prometheus.GaugeValue, float64(counts[st]), string(st))
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descServiceUp, prometheus.GaugeValue, up)
}

// budgetCollector reads every merchant's ε and cap at scrape time. The series
// name merchants, so they are registered only where a token is required.
type budgetCollector struct {
	svc Service
	log *slog.Logger
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEpsilon
	ch <- descEpsilonCap
	ch <- descBudgetsUp
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := 1.0
	bs, err := c.svc.Budgets(ctx)
	if err != nil {
		c.log.Warn("metrics: read budgets", "err", err)
		up = 0
	}
	for _, b := range bs {
		ch <- prometheus.MustNewConstMetric(descEpsilon, prometheus.GaugeValue, b.Epsilon, b.Merchant)
		ch <- prometheus.MustNewConstMetric(descEpsilonCap, prometheus.GaugeValue, b.Cap, b.Merchant)
	}
	ch <- prometheus.MustNewConstMetric(descBudgetsUp, prometheus.GaugeValue, up)
}
