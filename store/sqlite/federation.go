package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

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
		return fn(fedsql.New(sqlQuerier{tx}, fedsql.Dialect{Revoke: revokeStmt}))
	})
}

// MarkAudited implements aggregator.Store.
func (s *Store) MarkAudited(ctx context.Context, id string) error {
	return s.InTx(ctx, func(tx aggregator.Tx) error { return tx.MarkAudited(ctx, id) })
}

// sqlQuerier adapts a database/sql transaction (or the read pool, for the
// audit reads) to fedsql.Querier.
type sqlQuerier struct{ tx sqlConn }

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

// Batch runs the statements one by one: SQLite is in process, there is no
// round trip to save.
func (q sqlQuerier) Batch(ctx context.Context, stmts []fedsql.Statement) error {
	for _, st := range stmts {
		if st.Scan == nil {
			n, err := q.Exec(ctx, st.SQL, st.Args...)
			if err != nil {
				return err
			}
			if st.Affected != nil {
				if err := st.Affected(n); err != nil {
					return err
				}
			}
			continue
		}
		if err := q.scan(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

func (q sqlQuerier) scan(ctx context.Context, st fedsql.Statement) error {
	rows, err := q.tx.QueryContext(ctx, st.SQL, st.Args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := st.Scan(sqlRows{rows}); err != nil {
			return err
		}
	}
	return rows.Err()
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

// revokeStmt is the revocation of a token inside a federation transaction.
func revokeStmt(jti string, expiresAt time.Time) (string, []any) {
	return sqlRevoke, []any{jti, expiresAt.UnixMilli()}
}
