// Package livestore persists a merchant client's live per-customer feature
// states together with the stream position they reflect, in one transaction,
// in SQLite (the embedded default) or PostgreSQL.
//
// A Commit writes the changed states and the next offset of every partition
// it covers atomically, so after a crash the stored states are exactly the
// result of applying every message before the stored positions: a consumer
// that resumes there counts no event twice and loses none.
//
// The store also keeps what a drift watch needs to score past predictions
// against what customers then did: its prediction snapshots (AddSnapshot)
// and the purchases that label them, the latter written by the Commit of the
// batch whose events they come from, so that a replay neither repeats nor
// loses one.
package livestore

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Store holds live states and positions per source (a stream or topic name,
// so that one database can serve several sources).
type Store interface {
	// Load calls fn for every stored state of source and returns the next
	// offset to read per partition (empty for a new source).
	Load(ctx context.Context, source string, fn func(customer string, state []byte) error) (map[int32]int64, error)
	// Commit stores b's states, positions and purchases of source in one
	// transaction.
	Commit(ctx context.Context, source string, b Batch) error
	// LoadDrift returns the drift snapshots of source, oldest first, and the
	// purchases stored for them.
	LoadDrift(ctx context.Context, source string) (Drift, error)
	// AddSnapshot stores s and, in the same transaction, keeps only the keep
	// snapshots of source with the highest Seq and the purchases at or after
	// the second of the earliest At among them.
	AddSnapshot(ctx context.Context, source string, s Snapshot, keep int) error
	// Close releases the database.
	Close() error
}

// Batch is what one Commit writes.
type Batch struct {
	// Next is the next offset to read per partition.
	Next map[int32]int64
	// States are the changed customers' encoded states.
	States map[string][]byte
	// Purchases are the purchases among the batch's events that a drift
	// watch keeps; storing one twice is storing it once.
	Purchases []Purchase
}

// Purchase is a customer's purchase, to the second (as live states keep
// times).
type Purchase struct {
	Customer string
	At       time.Time
}

// Snapshot is a drift check's predictions.
type Snapshot struct {
	// Seq orders a source's snapshots (it increases by one per check).
	Seq int64
	// At is the check's time; the store keeps it to the second, to trim the
	// purchases no kept snapshot needs.
	At time.Time
	// Data is the watch's encoding of the check (its exact time included).
	Data []byte
}

// Drift is a source's stored drift watch.
type Drift struct {
	Snapshots []Snapshot // by Seq
	Purchases []Purchase // by customer, then time
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
		// The drift watch's (DriftWatch in client/stream). Times are Unix
		// seconds.
		`CREATE TABLE IF NOT EXISTS live_drift_snapshot (
			source TEXT NOT NULL,
			seq BIGINT NOT NULL,
			at BIGINT NOT NULL,
			data ` + blob + ` NOT NULL,
			PRIMARY KEY (source, seq))`,
		`CREATE TABLE IF NOT EXISTS live_drift_purchase (
			source TEXT NOT NULL,
			customer TEXT NOT NULL,
			at BIGINT NOT NULL,
			PRIMARY KEY (source, customer, at))` + stateTable,
	}
}

// Statements both databases run as written ($n placeholders: SQLite reads
// them as numbered parameters).
const (
	insertPurchase = `INSERT INTO live_drift_purchase (source, customer, at) VALUES ($1, $2, $3)
		ON CONFLICT (source, customer, at) DO NOTHING`
	insertSnapshot = `INSERT INTO live_drift_snapshot (source, seq, at, data) VALUES ($1, $2, $3, $4)`
	trimSnapshots  = `DELETE FROM live_drift_snapshot WHERE source = $1 AND seq <= $2`
	trimPurchases  = `DELETE FROM live_drift_purchase WHERE source = $1
		AND at < (SELECT MIN(at) FROM live_drift_snapshot WHERE source = $1)`
	selectSnapshots = `SELECT seq, at, data FROM live_drift_snapshot WHERE source = $1 ORDER BY seq`
	selectPurchases = `SELECT customer, at FROM live_drift_purchase WHERE source = $1 ORDER BY customer, at`
)
