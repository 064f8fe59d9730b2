package aggregator

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// Refused submissions that the aggregator never decrypted (a bad signature,
// a stale or malformed envelope, a closed round), refused secure-round
// messages (nothing of a refused one is stored) and refused stops (a reason
// the log cannot hold: nothing changes), cost nothing to send, and
// each was an audit entry: a stolen merchant token could grow the
// never-pruned log at its request rate. Per merchant, the first
// MaxAuditedRefusals of them in a RefusalWindow are audited one by one; the
// rest of that window's are counted, and one entry records how many when
// the window is over (at the merchant's next refusal or on a Tick). A
// refusal after decryption debits the merchant's budget and is always
// audited on its own.
const (
	MaxAuditedRefusals = 30
	RefusalWindow      = time.Minute
)

// refusalThrottle counts each merchant's cheap refusals per window.
type refusalThrottle struct {
	mu sync.Mutex
	by map[string]*refusalCount
}

type refusalCount struct {
	start      time.Time
	n          int // refusals in the window
	suppressed int // of them, not audited one by one
}

// summary is the entry for a window's suppressed refusals.
func summary(merchant string, c refusalCount) audit.Record {
	return audit.Record{
		Actor: "merchant:" + merchant, Action: "round.update.refusals", Object: "merchant/" + merchant,
		Outcome: audit.OutcomeDenied,
		Reason: "refused submissions or stops over " + strconv.Itoa(MaxAuditedRefusals) + " in " + RefusalWindow.String() +
			", counted and not audited one by one",
		Identifiers: map[string]string{"merchant": merchant},
		Details: map[string]string{
			"suppressed":   strconv.Itoa(c.suppressed),
			"window_start": c.start.UTC().Format(time.RFC3339Nano),
		},
	}
}

// admit reports whether merchant's refusal at now gets an entry of its own,
// and returns the summary of a closed window whose refusals were suppressed.
func (t *refusalThrottle) admit(merchant string, now time.Time) (own bool, closed *audit.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = map[string]*refusalCount{}
	}
	c := t.by[merchant]
	if c != nil && now.Sub(c.start) >= RefusalWindow {
		if c.suppressed > 0 {
			rec := summary(merchant, *c)
			closed = &rec
		}
		c = nil
	}
	if c == nil {
		c = &refusalCount{start: now}
		t.by[merchant] = c
	}
	c.n++
	if c.n > MaxAuditedRefusals {
		c.suppressed++
		return false, closed
	}
	return true, closed
}

// expired removes the windows over at now and returns the summaries of
// those with suppressed refusals, so that a flood that stops is still
// recorded.
func (t *refusalThrottle) expired(now time.Time) []audit.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []audit.Record
	for m, c := range t.by {
		if now.Sub(c.start) < RefusalWindow {
			continue
		}
		if c.suppressed > 0 {
			out = append(out, summary(m, *c))
		}
		delete(t.by, m)
	}
	return out
}

// admitRefusal reports whether merchantID's cheap refusal (err) gets an
// audit entry of its own, first appending the summary of its closed window
// if that one suppressed refusals.
func (s *Service) admitRefusal(ctx context.Context, merchantID string, err error) bool {
	own, closed := s.refusals.admit(merchantID, s.now())
	if closed != nil {
		if aerr := s.appendAudit(ctx, *closed); aerr != nil {
			s.log.Error("audit suppressed refusals", "merchant", merchantID, "err", aerr)
		}
	}
	if !own {
		s.log.Warn("refusal not audited on its own (over the window's limit)", "merchant", merchantID, "err", err)
	}
	return own
}

// flushRefusals appends the summaries of the windows over by now; a summary
// that cannot be appended is logged, not retried (its refusals were
// refusals, changed nothing and are in the server's log).
func (s *Service) flushRefusals(ctx context.Context) {
	for _, rec := range s.refusals.expired(s.now()) {
		if err := s.appendAudit(ctx, rec); err != nil {
			s.log.Error("audit suppressed refusals", "merchant", rec.Identifiers["merchant"], "suppressed", rec.Details["suppressed"], "err", err)
		}
	}
}
