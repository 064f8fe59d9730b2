package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/store/internal/fedsql"
)

var _ aggregator.Store = (*Store)(nil)

// InTx runs fn in one READ COMMITTED transaction and commits it, rerunning the
// whole of it on serialization failures and deadlocks. The aggregator's
// critical sections rely on row locks (FOR UPDATE on a merchant's budget row,
// FOR SHARE or FOR UPDATE on a round, SKIP LOCKED to claim rounds) and on
// conditional updates, not on the isolation level.
func (s *Store) InTx(ctx context.Context, fn func(aggregator.Tx) error) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		return fn(fedsql.New(pgQuerier{tx}, fedsql.Dialect{Numbered: true, RowLocks: true, AsyncCommit: true, Revoke: revokeStmt}))
	})
}

// sqlMarkAudited marks an update audited; set_config(…, true) turns off the
// synchronous commit of the batch's implicit transaction only.
const (
	sqlAsyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`
	sqlMarkAudited = `UPDATE fed_updates SET audited = 1 WHERE id = $1`
)

// MarkAudited implements aggregator.Store in one round trip: the two
// statements go as one batch, which PostgreSQL runs as one implicit
// transaction that does not wait for its WAL flush.
func (s *Store) MarkAudited(ctx context.Context, id string) error {
	err := s.inBatchTx(ctx, func(b *pgx.Batch) {
		b.Queue(sqlAsyncCommit)
		b.Queue(sqlMarkAudited, id)
	})
	if err != nil {
		return fmt.Errorf("mark update %s audited: %w", id, err)
	}
	return nil
}

// pgQuerier adapts a pgx transaction (or the pool, for the audit log) to
// fedsql.Querier.
type pgQuerier struct{ tx pgConn }

func (q pgQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.tx.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q pgQuerier) Query(ctx context.Context, query string, args ...any) (fedsql.Rows, error) {
	rows, err := q.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (q pgQuerier) Batch(ctx context.Context, stmts []fedsql.Statement) error {
	b := &pgx.Batch{}
	for _, st := range stmts {
		b.Queue(st.SQL, st.Args...)
	}
	br := q.tx.SendBatch(ctx, b)
	for _, st := range stmts {
		if err := pgBatchResult(br, st); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// pgBatchResult reads the next result of br into st.
func pgBatchResult(br pgx.BatchResults, st fedsql.Statement) error {
	if st.Scan == nil {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if st.Affected != nil {
			return st.Affected(tag.RowsAffected())
		}
		return nil
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := st.Scan(pgRows{rows}); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (q pgQuerier) IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() { r.Rows.Close() }

// revokeStmt is the revocation of a token inside a federation transaction.
func revokeStmt(jti string, expiresAt time.Time) (string, []any) {
	return sqlRevoke, []any{jti, expiresAt}
}
