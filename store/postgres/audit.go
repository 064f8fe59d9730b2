package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/auditsql"
	"github.com/kairos-fl/kairos/store/internal/fedsql"
)

var _ audit.Store = (*Store)(nil)

// auditDialect is the SQL dialect of the audit tables: numbered placeholders,
// jsonb columns, a batch of entries as arrays in one statement.
var auditDialect = fedsql.Dialect{Numbered: true, JSONB: true, Arrays: true}

// pgConn is what pgQuerier runs statements on: a transaction, or the pool,
// where a batch is one implicit transaction.
type pgConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// IsUniqueViolationOn implements auditsql.Querier.
func (q pgQuerier) IsUniqueViolationOn(err error, table string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation && pgErr.TableName == table
}

// AuditHead implements audit.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	h, err := auditsql.Head(ctx, pgQuerier{s.pool}, auditDialect)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit head: %w", err)
	}
	return h, nil
}

// AppendAudit implements audit.Store: entries and checkpoints in one
// transaction, the entries in one statement that checks the stored head.
//
// This is the hot path of group commit, so it is one round trip: the
// statements go as one pgx batch on the pool, which PostgreSQL runs as one
// implicit transaction (everything up to the batch's single Sync commits or
// rolls back together), instead of BEGIN, batch and COMMIT as three. Reruns
// as inTx does.
func (s *Store) AppendAudit(ctx context.Context, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	err := s.retry(ctx, func() error {
		return auditsql.Append(ctx, auditAppender{pgQuerier{s.pool}}, auditDialect, entries, checkpoints)
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

var _ audit.ExclusiveAppender = (*Store)(nil)

// The audit append lock: every append batch takes it shared for its
// transaction, AppendAuditExclusive takes it exclusively for its session.
const (
	sqlAuditLockShared = `SELECT pg_advisory_xact_lock_shared(107097105114111116)`
	sqlAuditLock       = `SELECT pg_advisory_lock(107097105114111116)`
	sqlAuditUnlock     = `SELECT pg_advisory_unlock(107097105114111116)`
)

// auditAppender runs an append batch under the audit append lock, taken
// shared: appends do not wait for one another (they race on the head as
// before), only for an exclusive append in progress.
type auditAppender struct{ pgQuerier }

// Batch implements auditsql.Querier.
func (q auditAppender) Batch(ctx context.Context, stmts []fedsql.Statement) error {
	return q.pgQuerier.Batch(ctx, append([]fedsql.Statement{{SQL: sqlAuditLockShared}}, stmts...))
}

// AppendAuditExclusive implements audit.ExclusiveAppender: on one
// connection it takes the audit append lock exclusively (every other
// replica's append waits for it), reads the head, and appends what build
// chains from it, which no other writer can then move.
func (s *Store) AppendAuditExclusive(ctx context.Context, build func(audit.Head) ([]audit.Entry, []audit.Checkpoint)) (entries []audit.Entry, cps []audit.Checkpoint, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("append audit exclusively: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, sqlAuditLock); err != nil {
		// Cancelled, the lock may have been granted all the same: closing
		// the session is what surely releases it.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("append audit exclusively: lock: %w", err)
	}
	defer func() {
		// A session lock left on a pooled connection would hold off every
		// append for ever: close the connection if it cannot be released.
		uctx := context.WithoutCancel(ctx)
		if _, uerr := conn.Exec(uctx, sqlAuditUnlock); uerr != nil {
			_ = conn.Conn().Close(uctx)
			if err == nil {
				err = fmt.Errorf("append audit exclusively: unlock: %w", uerr)
			}
		}
	}()
	q := pgQuerier{conn}
	h, err := auditsql.Head(ctx, q, auditDialect)
	if err != nil {
		return nil, nil, fmt.Errorf("append audit exclusively: read head: %w", err)
	}
	entries, cps = build(h)
	if err := auditsql.Append(ctx, auditAppender{q}, auditDialect, entries, cps); err != nil {
		return nil, nil, fmt.Errorf("append audit exclusively: %w", err)
	}
	return entries, cps, nil
}

// AuditEntries implements audit.Source.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int) ([]audit.Entry, error) {
	out, err := auditsql.Entries(ctx, pgQuerier{s.pool}, auditDialect, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// AuditCheckpoints implements audit.Source.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	out, err := auditsql.Checkpoints(ctx, pgQuerier{s.pool}, auditDialect)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}
