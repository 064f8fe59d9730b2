package compliance

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// Audit query limits.
const (
	// DefaultAuditLimit is the page size when the filter gives none.
	DefaultAuditLimit = 100
	// MaxAuditLimit is the largest page a query returns.
	MaxAuditLimit = 1000
	// MaxAuditScan bounds how many entries one query reads: a selective
	// filter over a long log returns a short (even empty) page with a cursor
	// to continue from, rather than reading the whole log in one request.
	MaxAuditScan = 20000
	// auditBatch is how many entries each store read fetches.
	auditBatch = 500
)

// ErrBadFilter is wrapped by the errors of AuditFilter.Validate.
var ErrBadFilter = errors.New("bad audit filter")

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	// After is the cursor: only entries with Seq > After.
	After uint64
	// Limit is the page size, 1..MaxAuditLimit; DefaultAuditLimit when 0.
	Limit int
	// Actor and Action match exactly.
	Actor, Action string
	// Since (inclusive) and Until (exclusive) bound the entry time.
	Since, Until time.Time
	// Identifier is an identifier as stored, "hmac-sha256:<64 hex>": entries
	// with an identifier of that value match. A reviewer computes it from a
	// clear id with audit.HashIdentifier and the audit key.
	Identifier string
}

// Validate checks the filter.
func (f AuditFilter) Validate() error {
	switch {
	case f.Limit < 0 || f.Limit > MaxAuditLimit:
		return fmt.Errorf("%w: limit %d outside 1..%d", ErrBadFilter, f.Limit, MaxAuditLimit)
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		return fmt.Errorf("%w: since %s is not before until %s", ErrBadFilter,
			f.Since.UTC().Format(time.RFC3339Nano), f.Until.UTC().Format(time.RFC3339Nano))
	case f.Identifier != "" && !validIdentifier(f.Identifier):
		return fmt.Errorf("%w: identifier must be %s followed by 64 lower-case hex digits", ErrBadFilter, audit.IdentifierPrefix)
	}
	return nil
}

func validIdentifier(s string) bool {
	h, ok := strings.CutPrefix(s, audit.IdentifierPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range []byte(h) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Match reports whether e passes the filter (ignoring After and Limit).
func (f AuditFilter) Match(e *audit.Entry) bool {
	if f.Actor != "" && e.Actor != f.Actor {
		return false
	}
	if f.Action != "" && e.Action != f.Action {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !e.Time.Before(f.Until) {
		return false
	}
	if f.Identifier != "" {
		for _, v := range e.Identifiers {
			if v == f.Identifier {
				return true
			}
		}
		return false
	}
	return true
}

// AuditEntry is an audit entry on the wire (the export's field names).
type AuditEntry struct {
	Seq         uint64            `json:"seq"`
	Time        time.Time         `json:"time"`
	Actor       string            `json:"actor"`
	Action      string            `json:"action"`
	Object      string            `json:"object"`
	Outcome     string            `json:"outcome"`
	Reason      string            `json:"reason,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	Details     map[string]string `json:"details,omitempty"`
	PrevHash    string            `json:"prev_hash"`
	Hash        string            `json:"hash"`
}

// AuditPage is one page of a query.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	// Next is the cursor of the following page (pass it as After); absent
	// when the log was read to its end.
	Next uint64 `json:"next,omitempty"`
	// Scanned is how many entries the query read.
	Scanned int `json:"scanned"`
}

// AuditCheckpoint is a signed checkpoint on the wire.
type AuditCheckpoint struct {
	LogID     string    `json:"log_id"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature string    `json:"signature"` // standard base64 Ed25519 signature over audit.CheckpointMessage
}

// AuditQuerier is implemented by stores that filter audit entries in the
// database (store/sqlite, store/postgres); QueryAudit uses it when its source
// has it.
type AuditQuerier interface {
	// QueryAuditEntries returns, in seq order, up to f.Limit entries with
	// f.After < seq <= upTo that match f's actor, action, time range and
	// identifier, and the highest seq stored in (f.After, upTo] (0 if none).
	// f.Limit is between 1 and MaxAuditLimit.
	QueryAuditEntries(ctx context.Context, f AuditFilter, upTo uint64) (entries []audit.Entry, last uint64, err error)
}

// QueryAudit returns up to f.Limit entries after f.After that match f, in
// seq order. It examines at most MaxAuditScan entries: when it fills the page
// or stops at that bound, Next is the seq of the last entry it examined,
// to be passed as After for the next page.
//
// A source that implements AuditQuerier filters in the database over the seq
// window (After, After+MaxAuditScan] (seqs are gapless, so the window holds
// at most MaxAuditScan entries). Otherwise QueryAudit reads the entries in
// batches and filters them here; as entry times never decrease along the
// chain, an Until bound then ends the scan at the first later entry.
func QueryAudit(ctx context.Context, src audit.Source, f AuditFilter) (AuditPage, error) {
	if err := f.Validate(); err != nil {
		return AuditPage{}, fmt.Errorf("query audit: %w", err)
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	if q, ok := src.(AuditQuerier); ok {
		return queryIn(ctx, q, f, limit)
	}
	page := AuditPage{Entries: []AuditEntry{}}
	cursor := f.After
	for page.Scanned < MaxAuditScan {
		batch, err := src.AuditEntries(ctx, cursor+1, min(auditBatch, MaxAuditScan-page.Scanned))
		if err != nil {
			return AuditPage{}, fmt.Errorf("query audit: %w", err)
		}
		if len(batch) == 0 {
			return page, nil // end of the log
		}
		for i := range batch {
			e := &batch[i]
			if e.Seq <= cursor {
				return AuditPage{}, fmt.Errorf("query audit: store returned seq %d after %d", e.Seq, cursor)
			}
			cursor = e.Seq
			page.Scanned++
			if !f.Until.IsZero() && !e.Time.Before(f.Until) {
				return page, nil // times do not decrease: nothing later matches
			}
			if !f.Match(e) {
				continue
			}
			page.Entries = append(page.Entries, WireEntry(e))
			if len(page.Entries) == limit {
				page.Next = cursor
				return page, nil
			}
		}
	}
	page.Next = cursor
	return page, nil
}

// queryIn runs the query in the store over one seq window.
func queryIn(ctx context.Context, q AuditQuerier, f AuditFilter, limit int) (AuditPage, error) {
	f.Limit = limit
	upTo := f.After + MaxAuditScan
	if upTo < f.After { // overflow: no seq is that large
		upTo = ^uint64(0)
	}
	es, last, err := q.QueryAuditEntries(ctx, f, upTo)
	if err != nil {
		return AuditPage{}, fmt.Errorf("query audit: %w", err)
	}
	page := AuditPage{Entries: make([]AuditEntry, 0, len(es))}
	prev := f.After
	for i := range es {
		e := &es[i]
		if e.Seq <= prev || e.Seq > upTo {
			return AuditPage{}, fmt.Errorf("query audit: store returned seq %d after %d in window ..%d", e.Seq, prev, upTo)
		}
		prev = e.Seq
		page.Entries = append(page.Entries, WireEntry(e))
	}
	switch {
	case len(es) > limit:
		return AuditPage{}, fmt.Errorf("query audit: store returned %d entries for a page of %d", len(es), limit)
	case len(es) == limit:
		page.Next = prev
	case last == upTo:
		page.Next = upTo // the window was full: more may follow
	}
	if page.Next != 0 {
		page.Scanned = int(page.Next - f.After)
	} else if last > f.After {
		page.Scanned = int(last - f.After)
	}
	return page, nil
}

// WireEntry converts a stored entry to its wire form.
func WireEntry(e *audit.Entry) AuditEntry {
	return AuditEntry{
		Seq: e.Seq, Time: e.Time.UTC(), Actor: e.Actor, Action: e.Action, Object: e.Object,
		Outcome: string(e.Outcome), Reason: e.Reason, Identifiers: e.Identifiers, Details: e.Details,
		PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
	}
}

// Checkpoints returns every checkpoint in wire form, in seq order.
func Checkpoints(ctx context.Context, src audit.Source) ([]AuditCheckpoint, error) {
	cps, err := src.AuditCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	out := make([]AuditCheckpoint, 0, len(cps))
	for _, c := range cps {
		out = append(out, AuditCheckpoint{
			LogID: c.LogID, Seq: c.Seq, Hash: c.Hash.String(), Time: c.Time.UTC(),
			Signature: base64.StdEncoding.EncodeToString(c.Signature),
		})
	}
	return out, nil
}
