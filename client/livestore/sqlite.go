package livestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/crypto/keys"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite is a Store in an SQLite file, in WAL mode with synchronous=NORMAL:
// a commit is atomic and survives the process's crash; a power loss may undo
// the latest commits, states and position together, and the stream replays
// them.
//
// Cost. A commit rewrites every B-tree page holding a changed state, so its
// cost grows with the distinct pages touched, not the bytes changed. The
// store keeps up to 64 MiB of pages cached, checkpoints the WAL every 10,000
// pages (a page changed by many commits is copied back once), keeps states in
// a WITHOUT ROWID table (one B-tree, not a table and its key index; tables
// created before kept their layout) and upserts in key order.
type SQLite struct {
	db *sql.DB
	// Prepared once (before any transaction holds the one connection) and
	// bound to each commit's transaction.
	upsertState, upsertPosition, insertPurchase *sql.Stmt
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the SQLite file at path and its tables.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" || strings.ContainsAny(path, "?#") || path == ":memory:" {
		return nil, fmt.Errorf("open live store: sqlite path %q: want a file path without ? or #", path)
	}
	// Whoever may write the directory could rename a database of their own
	// over this one (or plant one before the first start), and the stream
	// would score from states they wrote: refuse it, as the client's state
	// and key directories are.
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("open live store %s: %w", path, err)
	}
	if err := keys.CheckNotWritable(dir); err != nil {
		return nil, fmt.Errorf("open live store %s: directory: %w", path, err)
	}
	// The file holds every customer's own id and behaviour: create it
	// readable by its owner only (SQLite gives its -wal and -shm files the
	// database file's permissions). An existing file keeps its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open live store %s: %w", path, err)
	} else if err := keys.CheckNotWritable(path); err != nil {
		return nil, fmt.Errorf("open live store: %w", err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open live store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range schema("BLOB", " WITHOUT ROWID") {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("open live store %s: create tables: %w", path, err)
		}
	}
	s := &SQLite{db: db}
	if s.upsertState, err = db.PrepareContext(ctx, `INSERT INTO live_state (source, customer, state) VALUES (?, ?, ?)
		ON CONFLICT (source, customer) DO UPDATE SET state = excluded.state`); err == nil {
		s.upsertPosition, err = db.PrepareContext(ctx, `INSERT INTO live_position (source, part, next_offset) VALUES (?, ?, ?)
			ON CONFLICT (source, part) DO UPDATE SET next_offset = excluded.next_offset`)
	}
	if err == nil {
		s.insertPurchase, err = db.PrepareContext(ctx, insertPurchase)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open live store %s: prepare: %w", path, err)
	}
	return s, nil
}

// Load implements Store.
func (s *SQLite) Load(ctx context.Context, source string, fn func(string, []byte) error) (map[int32]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT customer, state FROM live_state WHERE source = ?`, source)
	if err != nil {
		return nil, fmt.Errorf("load live states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var b []byte
		if err := rows.Scan(&c, &b); err != nil {
			return nil, fmt.Errorf("load live states: %w", err)
		}
		if err := fn(c, b); err != nil {
			return nil, fmt.Errorf("load live state of %q: %w", c, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load live states: %w", err)
	}
	prow, err := s.db.QueryContext(ctx, `SELECT part, next_offset FROM live_position WHERE source = ?`, source)
	if err != nil {
		return nil, fmt.Errorf("load live position: %w", err)
	}
	defer prow.Close()
	next := map[int32]int64{}
	for prow.Next() {
		var p int32
		var o int64
		if err := prow.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("load live position: %w", err)
		}
		next[p] = o
	}
	return next, prow.Err()
}

// Commit implements Store.
//
// A commit that has begun runs to its end even if ctx is cancelled (it is
// short and bounded): the statements run under a context without
// cancellation, because the driver watches a cancellable one with a
// goroutine per statement, which cost about a quarter of a commit.
func (s *SQLite) Commit(ctx context.Context, source string, b Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	st := tx.StmtContext(ctx, s.upsertState)
	for _, c := range slices.Sorted(maps.Keys(b.States)) {
		if _, err := st.ExecContext(ctx, source, c, b.States[c]); err != nil {
			return fmt.Errorf("commit live state of %q: %w", c, err)
		}
	}
	if len(b.Purchases) > 0 {
		pu := tx.StmtContext(ctx, s.insertPurchase)
		for _, p := range b.Purchases {
			if _, err := pu.ExecContext(ctx, source, p.Customer, p.At.Unix()); err != nil {
				return fmt.Errorf("commit drift purchase of %q: %w", p.Customer, err)
			}
		}
	}
	pos := tx.StmtContext(ctx, s.upsertPosition)
	for p, o := range b.Next {
		if _, err := pos.ExecContext(ctx, source, p, o); err != nil {
			return fmt.Errorf("commit live position of partition %d: %w", p, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	return nil
}

// LoadDrift implements Store.
func (s *SQLite) LoadDrift(ctx context.Context, source string) (Drift, error) {
	var d Drift
	rows, err := s.db.QueryContext(ctx, selectSnapshots, source)
	if err != nil {
		return Drift{}, fmt.Errorf("load drift snapshots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sn Snapshot
		var at int64
		if err := rows.Scan(&sn.Seq, &at, &sn.Data); err != nil {
			return Drift{}, fmt.Errorf("load drift snapshots: %w", err)
		}
		sn.At = time.Unix(at, 0).UTC()
		d.Snapshots = append(d.Snapshots, sn)
	}
	if err := rows.Err(); err != nil {
		return Drift{}, fmt.Errorf("load drift snapshots: %w", err)
	}
	prow, err := s.db.QueryContext(ctx, selectPurchases, source)
	if err != nil {
		return Drift{}, fmt.Errorf("load drift purchases: %w", err)
	}
	defer prow.Close()
	for prow.Next() {
		var p Purchase
		var at int64
		if err := prow.Scan(&p.Customer, &at); err != nil {
			return Drift{}, fmt.Errorf("load drift purchases: %w", err)
		}
		p.At = time.Unix(at, 0).UTC()
		d.Purchases = append(d.Purchases, p)
	}
	if err := prow.Err(); err != nil {
		return Drift{}, fmt.Errorf("load drift purchases: %w", err)
	}
	return d, nil
}

// AddSnapshot implements Store.
func (s *SQLite) AddSnapshot(ctx context.Context, source string, sn Snapshot, keep int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add drift snapshot: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{insertSnapshot, []any{source, sn.Seq, sn.At.Unix(), sn.Data}},
		{trimSnapshots, []any{source, sn.Seq - int64(keep)}},
		{trimPurchases, []any{source}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("add drift snapshot %d: %w", sn.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add drift snapshot %d: %w", sn.Seq, err)
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error {
	for _, st := range []*sql.Stmt{s.upsertState, s.upsertPosition, s.insertPurchase} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}
