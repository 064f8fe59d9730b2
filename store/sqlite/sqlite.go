// Package sqlite is Kairos's embedded store: one SQLite file through the
// pure-Go modernc.org/sqlite driver, no cgo.
//
// The file runs in WAL mode with synchronous=FULL, so a committed
// transaction survives power loss, and readers never block the writer.
// SQLite serialises writers anyway, so the store keeps exactly one writer
// connection, whose transactions begin IMMEDIATE (taking the write lock up
// front, which avoids lock-upgrade deadlocks); reads go through a separate
// small pool of query-only connections. busy_timeout makes a connection wait
// for a lock held by another process instead of failing at once.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/store/migrate"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a connection waits for another's lock.
const busyTimeout = 10 * time.Second

// Store is an SQLite-backed store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // exactly one connection: every write
	r *sql.DB // query-only readers
}

// Open opens (creating if needed) the SQLite file at path. It does not
// migrate; call Migrate.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || path == ":memory:" {
		return nil, fmt.Errorf("open sqlite: path %q: want a file path without ? or #", path)
	}
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)",
		busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	return &Store{w: w, r: r}, nil
}

// Close closes the database.
func (s *Store) Close() {
	s.r.Close()
	s.w.Close()
}

// inTx runs fn in one write transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

const (
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version       INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    applied_at_ms INTEGER NOT NULL
) STRICT`
	sqlMigrationApplied = `SELECT count(*) FROM schema_migrations WHERE version = ?`
	sqlRecordMigration  = `INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)`
)

// Migrate applies the embedded migrations that have not run yet, each in
// its own transaction together with its schema_migrations row.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, sqlCreateMigrations); err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	for _, m := range ms {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, sqlMigrationApplied, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // applied before, perhaps by another process
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, sqlRecordMigration, m.Version, m.Name, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate sqlite: %s: %w", m.Name, err)
		}
	}
	return nil
}

// errEmptyJTI is returned for an empty token id.
var errEmptyJTI = errors.New("empty token id")

const (
	sqlRevoke = `INSERT INTO revoked_tokens (jti, expires_at_ms) VALUES (?, ?)
ON CONFLICT (jti) DO UPDATE SET expires_at_ms = max(expires_at_ms, excluded.expires_at_ms)`
	sqlIsRevoked    = `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?)`
	sqlPurgeRevoked = `DELETE FROM revoked_tokens WHERE expires_at_ms < ?`
)

// RevokeToken records that the token jti is revoked until expiresAt. Revoking
// again keeps the later expiry.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return fmt.Errorf("revoke token: %w", errEmptyJTI)
	}
	if _, err := s.w.ExecContext(ctx, sqlRevoke, jti, expiresAt.UnixMilli()); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// IsTokenRevoked reports whether the token jti was revoked.
func (s *Store) IsTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var ok bool
	if err := s.r.QueryRowContext(ctx, sqlIsRevoked, jti).Scan(&ok); err != nil {
		return false, fmt.Errorf("is token revoked: %w", err)
	}
	return ok, nil
}

// PurgeRevokedTokens forgets revocations whose tokens expired before t; it
// returns how many it removed.
func (s *Store) PurgeRevokedTokens(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, sqlPurgeRevoked, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("purge revoked tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge revoked tokens: %w", err)
	}
	return n, nil
}
