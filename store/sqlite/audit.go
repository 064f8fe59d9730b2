package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/auditsql"
	"github.com/kairos-fl/kairos/store/internal/fedsql"
)

var _ audit.Store = (*Store)(nil)

// auditDialect is the SQL dialect of the audit tables: "?" placeholders, JSON
// in TEXT columns, one INSERT per entry inside the write transaction.
var auditDialect = fedsql.Dialect{}

// sqlConn is what sqlQuerier runs statements on: a transaction, or the
// read-only pool for the audit reads.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// IsUniqueViolationOn implements auditsql.Querier. SQLite names the
// constraint as "table.column" in the message.
func (q sqlQuerier) IsUniqueViolationOn(err error, table string) bool {
	return q.IsUniqueViolation(err) && strings.Contains(err.Error(), table+".")
}

// AuditHead implements audit.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	h, err := auditsql.Head(ctx, sqlQuerier{s.r}, auditDialect)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit head: %w", err)
	}
	return h, nil
}

// AppendAudit implements audit.Store: entries and checkpoints in one write
// transaction, each entry inserted only if it chains from the stored head.
func (s *Store) AppendAudit(ctx context.Context, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return auditsql.Append(ctx, sqlQuerier{tx}, auditDialect, entries, checkpoints)
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// AuditEntries implements audit.Source.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int) ([]audit.Entry, error) {
	out, err := auditsql.Entries(ctx, sqlQuerier{s.r}, auditDialect, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// AuditCheckpoints implements audit.Source.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	out, err := auditsql.Checkpoints(ctx, sqlQuerier{s.r}, auditDialect)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}
