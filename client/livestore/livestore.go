// Package livestore persists a merchant client's live per-customer feature
// states together with the stream position they reflect, in one transaction,
// in SQLite (the embedded default) or PostgreSQL.
//
// A Commit writes the changed states and the next offset of every partition
// it covers atomically, so after a crash the stored states are exactly the
// result of applying every message before the stored positions: a consumer
// that resumes there counts no event twice and loses none.
package livestore

import (
	"context"
	"errors"
	"strings"
)

// Store holds live states and positions per source (a stream or topic name,
// so that one database can serve several sources).
type Store interface {
	// Load calls fn for every stored state of source and returns the next
	// offset to read per partition (empty for a new source).
	Load(ctx context.Context, source string, fn func(customer string, state []byte) error) (map[int32]int64, error)
	// Commit stores states (customer → encoded state) and next (partition →
	// next offset) of source in one transaction.
	Commit(ctx context.Context, source string, next map[int32]int64, states map[string][]byte) error
	// Close releases the database.
	Close() error
}

// Open opens the store that dsn names: a postgres:// or postgresql:// URL,
// or else the path of an SQLite file (created if needed).
func Open(ctx context.Context, dsn string) (Store, error) {
	if dsn == "" {
		return nil, errors.New("open live store: empty location")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// Schema shared by both databases; blob is the dialect's binary type and
// stateTable ends the states' CREATE TABLE (SQLite's WITHOUT ROWID).
func schema(blob, stateTable string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS live_position (
			source TEXT NOT NULL,
			part INTEGER NOT NULL,
			next_offset BIGINT NOT NULL CHECK (next_offset >= 0),
			PRIMARY KEY (source, part))`,
		`CREATE TABLE IF NOT EXISTS live_state (
			source TEXT NOT NULL,
			customer TEXT NOT NULL,
			state ` + blob + ` NOT NULL,
			PRIMARY KEY (source, customer))` + stateTable,
	}
}
