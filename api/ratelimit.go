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

// partnerLimiter keeps one token bucket per partner app, at the rate and
// burst its policy grants. Only partners the policy knows get a bucket, so
// the map is bounded by the policy.
type partnerLimiter struct {
	grant func(id string) (ratePerSecond float64, burst int, err error)
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take spends one token of partner id's bucket. It returns 0 when the request
// may go ahead, otherwise how long until a token is back.
//
// The grant is read on every request (a map lookup in the policy in force),
// so that a policy reload applies at once: a partner it removed is refused
// and its bucket dropped, and a changed rate or burst holds from the next
// request on, the tokens earned so far at the old rate and never above the
// new burst.
func (l *partnerLimiter) take(id string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	rate, burst, err := l.grant(id)
	if err == nil && (!(rate > 0) || burst < 1) {
		err = fmt.Errorf("partner %s: rate %v/s with burst %d admits nothing", id, rate, burst)
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.ClaimsFrom(r.Context())
		if !ok || c.Role != auth.RolePartner {
			next.ServeHTTP(w, r)
			return
		}
		wait, err := s.partners.take(c.Subject)
		switch {
		case err != nil:
			s.writeError(w, r, &httpError{status: http.StatusForbidden, typ: typeForbidden,
				detail: "partner " + c.Subject + " has no grant in the federation policy", cause: err})
		case wait > 0:
			w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
			s.writeError(w, r, &httpError{status: http.StatusTooManyRequests, typ: apiclient.TypeRateLimited,
				detail: fmt.Sprintf("partner %s is over its request rate; retry in %v", c.Subject, wait.Round(time.Millisecond))})
		default:
			next.ServeHTTP(w, r)
		}
	})
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
