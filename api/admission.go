package api

// Admission control. A predict batch body of 28 MB becomes about 100 MB of
// heap while it is read, decoded, turned into features and scored, so a
// burst of batches that the rate limit allows (a partner's burst is counted
// in requests, not bytes) could take the process to gigabytes. The server
// therefore holds a budget of request-body bytes in flight: a request is
// charged its Content-Length (the route's body limit when the length is not
// declared) before its body is read, and given back when its handler
// returns. A request that does not fit is refused at once with 503, a
// Retry-After and a problem document, and its body is never read; nothing
// waits in a queue, so the memory behind the budget is bounded whatever the
// concurrency.
//
// Small requests (single predictions, sealed updates, JSON calls: at most
// 1/16 of the budget) may use the whole budget, large ones (batches) only
// three quarters of it, so a flood of batches cannot lock out the compliant
// traffic of other callers.

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxInflightBytes is the default budget of request-body bytes the
// server holds at once (Options.MaxInflightBytes): two full predict batches
// and room for small requests beside them. A batch body costs about four
// times its size in memory until it is answered, so the default keeps the
// requests' share of the heap below about 400 MiB.
const DefaultMaxInflightBytes = 96 << 20

// admission is a weighted semaphore over request-body bytes that never
// waits: acquire either takes the bytes or says no.
type admission struct {
	budget int64 // bytes in flight at most
	large  int64 // bytes in flight at most once large requests are counted
	small  int64 // a charge of at most small bytes is a small request

	mu       sync.Mutex
	inflight int64
	peak     int64

	gInflight prometheus.Gauge
	gPeak     prometheus.Gauge
	refused   *prometheus.CounterVec
}

// newAdmission returns a budget of budget bytes; largest is the largest
// charge a route can make (its body limit), which must fit.
func newAdmission(reg prometheus.Registerer, budget, largest int64) (*admission, error) {
	a := &admission{budget: budget, large: budget / 4 * 3, small: budget / 16}
	if largest > a.large {
		return nil, fmt.Errorf("new api server: in-flight body budget %d bytes admits large requests up to %d bytes, less than the largest body limit %d",
			budget, a.large, largest)
	}
	a.gInflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kairos_admission_inflight_bytes",
		Help: "Request-body bytes admitted and not yet answered.",
	})
	a.gPeak = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kairos_admission_peak_bytes",
		Help: "The most request-body bytes in flight at once since the process started.",
	})
	a.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kairos_admission_refused_total",
		Help: "Requests refused with 503 because their body did not fit the in-flight budget, by size class.",
	}, []string{"class"})
	budgetGauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kairos_admission_budget_bytes",
		Help: "The in-flight request-body budget (small requests may use all of it, large ones three quarters).",
	})
	budgetGauge.Set(float64(budget))
	for _, c := range []prometheus.Collector{a.gInflight, a.gPeak, a.refused, budgetGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("new api server: register metrics: %w", err)
		}
	}
	return a, nil
}

// acquire takes n bytes of the budget, or reports that they do not fit.
func (a *admission) acquire(n int64) bool {
	limit := a.budget
	if n > a.small {
		limit = a.large
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight+n > limit {
		return false
	}
	a.inflight += n
	if a.inflight > a.peak {
		a.peak = a.inflight
		a.gPeak.Set(float64(a.peak))
	}
	a.gInflight.Set(float64(a.inflight))
	return true
}

// release gives back n bytes taken by acquire.
func (a *admission) release(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight -= n
	a.gInflight.Set(float64(a.inflight))
}

// charge is what a request with a body limit of limit bytes holds: its
// declared length, or the limit when the length is unknown (chunked) or
// larger (the handler refuses it with 413 without reading more).
func charge(r *http.Request, limit int64) int64 {
	if r.ContentLength < 0 {
		return limit
	}
	return min(r.ContentLength, limit)
}

// admit holds the request's charge against the budget while next runs, and
// refuses with 503 when it does not fit. Requests without a body pass.
func (s *Server) admit(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := charge(r, limit)
		if n == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if !s.admission.acquire(n) {
			class := "small"
			if n > s.admission.small {
				class = "large"
			}
			s.admission.refused.WithLabelValues(class).Inc()
			// writeProblem adds Retry-After to every 503.
			s.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, typ: typeUnavailable,
				detail: fmt.Sprintf("the server is at its budget of request bodies in flight (this one: %d bytes); retry shortly", n)})
			return
		}
		defer s.admission.release(n)
		next.ServeHTTP(w, r)
	})
}

// bodyLimit is the body limit of a route, from the body it declares.
func (s *Server) bodyLimit(rt apiRoute) int64 {
	switch rt.body.(type) {
	case nil:
		return 0
	case envelope:
		return s.maxEnv
	case PredictRequest:
		return s.predict.opts.MaxBodyBytes
	case PredictBatchRequest:
		return s.predict.opts.MaxBatchBytes
	}
	return s.maxJSON
}
