package postgres

import (
	"context"
	"fmt"
	"strconv"
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
// identifiers jsonb object.
func (s *Store) QueryAuditEntries(ctx context.Context, f compliance.AuditFilter, upTo uint64) ([]audit.Entry, uint64, error) {
	lo, hi := int64(min(f.After, 1<<63-1)), int64(min(upTo, 1<<63-1))
	where := []string{"seq > $1", "seq <= $2"}
	args := []any{lo, hi}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if f.Actor != "" {
		add("actor = $?", f.Actor)
	}
	if f.Action != "" {
		add("action = $?", f.Action)
	}
	if !f.Since.IsZero() {
		add("time_ms >= $?", ceilMilli(f.Since))
	}
	if !f.Until.IsZero() {
		add("time_ms < $?", ceilMilli(f.Until))
	}
	if f.Identifier != "" {
		add("EXISTS (SELECT 1 FROM jsonb_each_text(identifiers) AS i(k, v) WHERE i.v = $?)", f.Identifier)
	}
	args = append(args, f.Limit)
	q := `SELECT seq, time_ms, actor, action, object, outcome, reason, identifiers::text, details::text, prev_hash, hash
    FROM audit_entries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
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
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries WHERE seq > $1 AND seq <= $2`, lo, hi).Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("query audit entries: %w", err)
	}
	return out, uint64(last), nil
}
