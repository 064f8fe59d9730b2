package livestore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Store in a PostgreSQL database.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to url and creates the tables if needed.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open live store: postgres: %w", err)
	}
	for _, q := range schema("BYTEA", "") {
		if _, err := pool.Exec(ctx, q); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open live store: postgres: create tables: %w", err)
		}
	}
	return &Postgres{pool: pool}, nil
}

// Load implements Store.
func (s *Postgres) Load(ctx context.Context, source string, fn func(string, []byte) error) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT customer, state FROM live_state WHERE source = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("load live states: %w", err)
	}
	var c string
	var b []byte
	_, err = pgx.ForEachRow(rows, []any{&c, &b}, func() error {
		if err := fn(c, b); err != nil {
			return fmt.Errorf("load live state of %q: %w", c, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load live states: %w", err)
	}
	next := map[int32]int64{}
	var p int32
	var o int64
	rows, err = s.pool.Query(ctx, `SELECT part, next_offset FROM live_position WHERE source = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("load live position: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&p, &o}, func() error { next[p] = o; return nil }); err != nil {
		return nil, fmt.Errorf("load live position: %w", err)
	}
	return next, nil
}

// Commit implements Store. As SQLite's, a commit that has begun runs to its
// end even if ctx is cancelled (pgx watches a cancellable context with a
// goroutine per round trip).
func (s *Postgres) Commit(ctx context.Context, source string, b Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	var batch pgx.Batch
	if len(b.States) > 0 {
		// One statement for the whole batch, in key order (so that two
		// commits lock rows in the same order).
		custs := slices.Sorted(maps.Keys(b.States))
		blobs := make([][]byte, len(custs))
		for i, c := range custs {
			blobs[i] = b.States[c]
		}
		batch.Queue(`INSERT INTO live_state (source, customer, state)
			SELECT $1, c, s FROM unnest($2::text[], $3::bytea[]) AS u(c, s)
			ON CONFLICT (source, customer) DO UPDATE SET state = excluded.state`, source, custs, blobs)
	}
	if len(b.Purchases) > 0 {
		custs, ats := make([]string, len(b.Purchases)), make([]int64, len(b.Purchases))
		for i, p := range b.Purchases {
			custs[i], ats[i] = p.Customer, p.At.Unix()
		}
		batch.Queue(`INSERT INTO live_drift_purchase (source, customer, at)
			SELECT $1, c, a FROM unnest($2::text[], $3::bigint[]) AS u(c, a)
			ON CONFLICT (source, customer, at) DO NOTHING`, source, custs, ats)
	}
	for p, o := range b.Next {
		batch.Queue(`INSERT INTO live_position (source, part, next_offset) VALUES ($1, $2, $3)
			ON CONFLICT (source, part) DO UPDATE SET next_offset = excluded.next_offset`, source, p, o)
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit live states: %w", err)
	}
	return nil
}

// LoadDrift implements Store.
func (s *Postgres) LoadDrift(ctx context.Context, source string) (Drift, error) {
	var d Drift
	var sn Snapshot
	var at int64
	rows, err := s.pool.Query(ctx, selectSnapshots, source)
	if err != nil {
		return Drift{}, fmt.Errorf("load drift snapshots: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&sn.Seq, &at, &sn.Data}, func() error {
		sn.At = time.Unix(at, 0).UTC()
		d.Snapshots = append(d.Snapshots, sn)
		sn.Data = nil // the next row scans into a new slice
		return nil
	}); err != nil {
		return Drift{}, fmt.Errorf("load drift snapshots: %w", err)
	}
	var p Purchase
	rows, err = s.pool.Query(ctx, selectPurchases, source)
	if err != nil {
		return Drift{}, fmt.Errorf("load drift purchases: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&p.Customer, &at}, func() error {
		p.At = time.Unix(at, 0).UTC()
		d.Purchases = append(d.Purchases, p)
		return nil
	}); err != nil {
		return Drift{}, fmt.Errorf("load drift purchases: %w", err)
	}
	return d, nil
}

// AddSnapshot implements Store.
func (s *Postgres) AddSnapshot(ctx context.Context, source string, sn Snapshot, keep int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("add drift snapshot: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	var batch pgx.Batch
	batch.Queue(insertSnapshot, source, sn.Seq, sn.At.Unix(), sn.Data)
	batch.Queue(trimSnapshots, source, sn.Seq-int64(keep))
	batch.Queue(trimPurchases, source)
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("add drift snapshot %d: %w", sn.Seq, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("add drift snapshot %d: %w", sn.Seq, err)
	}
	return nil
}

// Close implements Store.
func (s *Postgres) Close() error { s.pool.Close(); return nil }
