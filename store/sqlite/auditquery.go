package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/store/internal/auditscan"
)

var _ compliance.AuditQuerier = (*Store)(nil)

// ceilMilli is t in Unix milliseconds rounded up: stored times are whole
// milliseconds, so time_ms >= ceilMilli(t) is exactly "not before t".
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// QueryAuditEntries filters audit entries in the database (see
// compliance.AuditQuerier). The identifier filter matches any value of the
// identifiers JSON object.
func (s *Store) QueryAuditEntries(ctx context.Context, f compliance.AuditFilter, upTo uint64) ([]audit.Entry, uint64, error) {
	lo, hi := int64(min(f.After, 1<<63-1)), int64(min(upTo, 1<<63-1))
	where := []string{"seq > ?", "seq <= ?"}
	args := []any{lo, hi}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time_ms >= ?"), append(args, ceilMilli(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time_ms < ?"), append(args, ceilMilli(f.Until))
	}
	if f.Identifier != "" {
		where, args = append(where, "EXISTS (SELECT 1 FROM json_each(audit_entries.identifiers) WHERE json_each.value = ?)"), append(args, f.Identifier)
	}
	q := `SELECT seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash
    FROM audit_entries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq LIMIT ?`
	rows, err := s.r.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("query audit entries: %w", err)
	}
	defer rows.Close()
	out, err := auditscan.Entries(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("query audit entries: %w", err)
	}
	// The window's last seq, read after the entries so that it covers them.
	var last int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries WHERE seq > ? AND seq <= ?`, lo, hi).Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("query audit entries: %w", err)
	}
	return out, uint64(last), nil
}
