package api

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
)

// Default request rate of a merchant token (Options.MerchantRate,
// MerchantBurst). A merchant's client makes about one request every 2 s
// while it waits for a round (the poll), a few for a round (the round, the
// update, a secure round's six messages and its status polls) and retries
// with a backoff from 200 ms: far below 20 a second, and far below a burst
// of 200. The bound is for a stolen or runaway token, which could otherwise
// make the server open envelopes and serve models as fast as it can send.
const (
	DefaultMerchantRate  = 20.0
	DefaultMerchantBurst = 200
)

// Default request rates of admin and compliance tokens (per role and
// subject, every route of theirs). The web console polls GET
// /v1/federation every 2 s while its overview is shown and makes a handful
// of requests per page (the session, a page of models, a page of the audit
// log, budgets); an operator's CLI makes one request per command. A
// console open in ten tabs is 5 requests a second: far below 20, and a
// burst of 200 takes a page load in every tab at once. The bound is for a
// stolen or runaway token, which could otherwise make the server read
// budgets, models and the audit log as fast as it can send.
const (
	DefaultOverseerRate  = 20.0
	DefaultOverseerBurst = 200
)

// Whole-log reads (GET /v1/compliance and GET /v1/report verify every
// entry of the never-pruned log per call, GET /v1/audit/export writes every
// one) have a bucket of their own besides: the console asks for
// /v1/compliance once when its compliance or audit tab is opened and for
// the export on a click, so a person stays far below a burst of 10 and one
// a second after it.
const (
	DefaultVerifyRate  = 1.0
	DefaultVerifyBurst = 10
)

// rateLimiter keeps one token bucket per caller (a partner app, a
// merchant), at the rate and burst grant gives it. Only callers the grant
// knows get a bucket; the API asks it for partners the policy names and for
// merchants past the policy check, so the map is bounded by the policy.
type rateLimiter struct {
	grant func(id string) (ratePerSecond float64, burst int, err error)
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take spends one token of caller id's bucket. It returns 0 when the request
// may go ahead, otherwise how long until a token is back.
//
// The grant is read on every request (a map lookup in the policy in force),
// so that a policy reload applies at once: a partner it removed is refused
// and its bucket dropped, and a changed rate or burst holds from the next
// request on, the tokens earned so far at the old rate and never above the
// new burst.
func (l *rateLimiter) take(id string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	rate, burst, err := l.grant(id)
	if err == nil && (!(rate > 0) || burst < 1) {
		err = fmt.Errorf("%s: rate %v/s with burst %d admits nothing", id, rate, burst)
	}
	if err != nil {
		delete(l.buckets, id)
		return 0, err
	}
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
		l.buckets[id] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	b.rate, b.burst = rate, float64(burst)
	b.tokens = math.Min(b.tokens, b.burst)
	if b.tokens >= 1 {
		b.tokens--
		return 0, nil
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), nil
}

// limitPartners refuses partner requests over their policy's rate (429 with
// Retry-After) and partners the policy does not know (403). Other roles pass.
func (s *Server) limitPartners(next http.Handler) http.Handler {
	if s.partners == nil {
		return next
	}
	return s.limitRole(next, auth.RolePartner, s.partners, func(c *auth.Claims, err error) error {
		return &httpError{status: http.StatusForbidden, typ: typeForbidden,
			detail: "partner " + c.Subject + " has no grant in the federation policy", cause: err}
	})
}

// limitMerchants holds every merchant token to its merchant's bucket
// (Options.MerchantRate and MerchantBurst, one bucket per merchant whatever
// the route), 429 with Retry-After beyond it. It runs after
// merchantInPolicy, so only merchants the policy names get a bucket.
func (s *Server) limitMerchants(next http.Handler) http.Handler {
	// The merchants' grant is a constant: its error cannot happen.
	return s.limitRole(next, auth.RoleMerchant, s.merchantRate, func(_ *auth.Claims, err error) error { return err })
}

// limitOverseers holds admin and compliance tokens, which have no grant of
// their own, to a bucket per role and subject on every route (overseerRate;
// the predict routes, where each of their calls is an audited denial,
// included), and on the whole-log verification routes to verifyRate too:
// 429 with Retry-After beyond either, counted and never audited.
func (s *Server) limitOverseers(verifies bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.ClaimsFrom(r.Context())
		if !ok || (c.Role != auth.RoleAdmin && c.Role != auth.RoleCompliance) {
			next.ServeHTTP(w, r)
			return
		}
		id := string(c.Role) + ":" + c.Subject
		// The grants are constants: take's error cannot happen.
		wait, _ := s.overseerRate.take(id)
		if wait <= 0 && verifies {
			wait, _ = s.verifyRate.take(id)
		}
		if wait > 0 {
			s.tooMany(w, r, c, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitRole holds the tokens of role to their subject's bucket in l: a
// request over the rate is answered 429 (tooMany), one l refuses with the
// error refused makes of it; other roles pass.
func (s *Server) limitRole(next http.Handler, role auth.Role, l *rateLimiter, refused func(*auth.Claims, error) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.ClaimsFrom(r.Context())
		if !ok || c.Role != role {
			next.ServeHTTP(w, r)
			return
		}
		wait, err := l.take(c.Subject)
		switch {
		case err != nil:
			s.writeError(w, r, refused(c, err))
		case wait > 0:
			s.tooMany(w, r, c, wait)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// tooMany answers 429 with Retry-After (whole seconds, rounded up) and
// counts the refusal. It is not audited: the log is never pruned, and a
// flood would otherwise grow it at the flooder's rate.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, c *auth.Claims, wait time.Duration) {
	s.metrics.rateLimited.WithLabelValues(string(c.Role)).Inc()
	w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
	s.writeError(w, r, &httpError{status: http.StatusTooManyRequests, typ: apiclient.TypeRateLimited,
		detail: fmt.Sprintf("%s %s is over its request rate; retry in %v", c.Role, c.Subject, wait.Round(time.Millisecond))})
}

// merchantInPolicy refuses merchant tokens of a merchant the federation
// policy in force does not name (Options.Merchants), read on every request
// as partner grants are: a merchant removed by a reload keeps a token valid
// for up to 90 days, and would otherwise go on reading every model the
// federation publishes after it left.
func (s *Server) merchantInPolicy(next http.Handler) http.Handler {
	if s.inPolicy == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.ClaimsFrom(r.Context())
		if ok && c.Role == auth.RoleMerchant {
			if err := s.inPolicy(c.Subject); err != nil {
				s.writeError(w, r, &httpError{status: http.StatusForbidden, typ: typeForbidden,
					detail: "merchant " + c.Subject + " is not in the federation policy in force", cause: err})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
