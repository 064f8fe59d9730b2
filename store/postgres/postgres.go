// Package postgres is Kairos's production store on PostgreSQL through
// jackc/pgx/v5 and a pgxpool connection pool.
//
// Transactions run as callbacks through inTx, which retries serialization
// failures (SQLSTATE 40001) and deadlocks (40P01) a few times with backoff.
// The audit tables refuse UPDATE, DELETE and TRUNCATE by trigger; audit
// appends insert a whole batch in one statement that checks the stored head,
// so writers from several aggregator replicas can share one chain: the seq
// primary key lets only one of two racing writers win.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kairos-fl/kairos/store/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a PostgreSQL-backed store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string) and checks the connection. It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// SQLSTATE codes the store acts on.
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeUniqueViolation      = "23505"
)

// retryable reports whether err is a transient conflict worth rerunning the
// whole transaction for.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// maxTxAttempts bounds inTx's reruns of a conflicting transaction.
const maxTxAttempts = 5

// inTx runs fn in a transaction and commits it, rerunning the whole of it on
// serialization failures and deadlocks. fn must be safe to rerun.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.retry(ctx, func() error { return s.tryTx(ctx, fn) })
}

// retry runs try until it succeeds, fails for good, or has failed
// maxTxAttempts times with retryable errors.
func (s *Store) retry(ctx context.Context, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || !retryable(err) || attempt == maxTxAttempts {
			return err
		}
		backoff := time.Duration(attempt*attempt)*5*time.Millisecond + rand.N(5*time.Millisecond)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// inBatchTx sends the statements fill queues as one batch, which
// PostgreSQL runs as one implicit transaction, in one round trip; reruns as
// inTx does.
func (s *Store) inBatchTx(ctx context.Context, fill func(*pgx.Batch)) error {
	return s.retry(ctx, func() error {
		b := &pgx.Batch{}
		fill(b)
		return s.pool.SendBatch(ctx, b).Close()
	})
}

func (s *Store) tryTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

const (
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`
	// sqlMigrationLock serialises migrators of several replicas; the key is
	// an arbitrary constant ("kairos" in ASCII).
	sqlMigrationLock    = `SELECT pg_advisory_xact_lock(107097105114111115)`
	sqlMigrationApplied = `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`
	sqlRecordMigration  = `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`
)

// Migrate applies the embedded migrations that have not run yet, each in its
// own transaction together with its schema_migrations row, under an advisory
// lock so concurrent replicas apply each migration once.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlMigrationLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sqlCreateMigrations)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	for _, m := range ms {
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, sqlMigrationLock); err != nil {
				return err
			}
			var applied bool
			if err := tx.QueryRow(ctx, sqlMigrationApplied, m.Version).Scan(&applied); err != nil {
				return err
			}
			if applied {
				return nil
			}
			// No arguments: pgx sends this over the simple protocol, which
			// runs a multi-statement script.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sqlRecordMigration, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate postgres: %s: %w", m.Name, err)
		}
	}
	return nil
}

// errEmptyJTI is returned for an empty token id.
var errEmptyJTI = errors.New("empty token id")

const (
	sqlRevoke = `INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
ON CONFLICT (jti) DO UPDATE SET expires_at = greatest(revoked_tokens.expires_at, excluded.expires_at)`
	sqlIsRevoked    = `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)`
	sqlPurgeRevoked = `DELETE FROM revoked_tokens WHERE expires_at < $1`
)

// RevokeToken records that the token jti is revoked until expiresAt.
// Revoking again keeps the later expiry.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return fmt.Errorf("revoke token: %w", errEmptyJTI)
	}
	if _, err := s.pool.Exec(ctx, sqlRevoke, jti, expiresAt.UTC()); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// IsTokenRevoked reports whether the token jti was revoked.
func (s *Store) IsTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, sqlIsRevoked, jti).Scan(&ok); err != nil {
		return false, fmt.Errorf("is token revoked: %w", err)
	}
	return ok, nil
}

// PurgeRevokedTokens forgets revocations whose tokens expired before t; it
// returns how many it removed.
func (s *Store) PurgeRevokedTokens(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, sqlPurgeRevoked, t.UTC())
	if err != nil {
		return 0, fmt.Errorf("purge revoked tokens: %w", err)
	}
	return tag.RowsAffected(), nil
}
