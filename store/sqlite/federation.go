package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/store/internal/fedsql"
)

var _ aggregator.Store = (*Store)(nil)

// InTx runs fn in one write transaction (BEGIN IMMEDIATE on the single writer
// connection, so transactions are serial) and commits it.
func (s *Store) InTx(ctx context.Context, fn func(aggregator.Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return fn(fedsql.New(sqlQuerier{tx}, fedsql.Dialect{}))
	})
}

// MarkAudited implements aggregator.Store.
func (s *Store) MarkAudited(ctx context.Context, id string) error {
	return s.InTx(ctx, func(tx aggregator.Tx) error { return tx.MarkAudited(ctx, id) })
}

// sqlQuerier adapts a database/sql transaction to fedsql.Querier.
type sqlQuerier struct{ tx *sql.Tx }

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (fedsql.Rows, error) {
	rows, err := q.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
