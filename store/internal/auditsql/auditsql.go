// Package auditsql implements the audit log's persistence (audit.Store,
// audit.Source and compliance.AuditQuerier) once, in SQL that SQLite and
// PostgreSQL both run, over the query interface and dialect of the federation
// SQL (fedsql). The dialects differ in placeholders, in how the JSON columns
// are typed (SQLite TEXT, PostgreSQL jsonb) and in how a batch of entries is
// inserted: PostgreSQL sends it as arrays in one statement, SQLite as one
// statement per entry inside its write transaction.
package auditsql

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/store/internal/fedsql"
	"github.com/kairos-fl/kairos/store/internal/jsonmap"
)

// Querier runs the statements. Append needs its Batch to be one transaction:
// SQLite's runs inside the caller's write transaction, PostgreSQL's is a pgx
// batch, which the server runs as one implicit transaction.
type Querier interface {
	fedsql.Querier
	// IsUniqueViolationOn reports whether err is a unique or primary key
	// violation on table.
	IsUniqueViolationOn(err error, table string) bool
}

const (
	sqlHead           = `SELECT seq, hash, time_ms FROM audit_entries ORDER BY seq DESC LIMIT 1`
	sqlLastCheckpoint = `SELECT seq, time_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`
	// sqlInsertEntry inserts one entry, and only if the stored head is the
	// entry it chains from: (seq, hash) of the last stored entry, or (0, the
	// zero hash) for an empty log, equal the two last arguments.
	sqlInsertEntry = `INSERT INTO audit_entries
    (seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE coalesce((SELECT max(seq) FROM audit_entries), 0) = ?
  AND coalesce((SELECT hash FROM audit_entries ORDER BY seq DESC LIMIT 1), ?) = ?`
	// sqlInsertEntries is sqlInsertEntry for a whole batch as arrays, in one
	// statement (PostgreSQL). Two writers that saw the same head race on the
	// seq primary key; the loser gets a unique violation once the winner
	// commits.
	sqlInsertEntries = `WITH head AS (SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1)
INSERT INTO audit_entries (seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
SELECT b.seq, b.time_ms, b.actor, b.action, b.object, b.outcome, b.reason, b.identifiers::jsonb, b.details::jsonb, b.prev_hash, b.hash
FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bytea[], ?::bytea[])
    AS b(seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
WHERE coalesce((SELECT seq FROM head), 0) = ?
  AND coalesce((SELECT hash FROM head), ?) = ?`
	// sqlInsertCheckpoint inserts a checkpoint only if it signs a stored
	// entry: when the batch's entries were refused, its checkpoints are too,
	// even where (PostgreSQL) the refusal is a count the client checks after
	// the server committed the batch.
	sqlInsertCheckpoint = `INSERT INTO audit_checkpoints (seq, log_id, hash, time_ms, signature)
SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM audit_entries WHERE seq = ? AND hash = ?)`
	sqlEntries = `SELECT seq, time_ms, actor, action, object, outcome, reason, %s, %s, prev_hash, hash
    FROM audit_entries WHERE %s ORDER BY seq LIMIT ?`
	sqlCheckpoints = `SELECT seq, log_id, hash, time_ms, signature FROM audit_checkpoints ORDER BY seq`
	sqlWindowLast  = `SELECT coalesce(max(seq), 0) FROM audit_entries WHERE seq > ? AND seq <= ?`
)

// zeroHash is the previous hash of the first entry.
var zeroHash [audit.HashSize]byte

// jsonCol spells the JSON column col as text.
func jsonCol(d fedsql.Dialect, col string) string {
	if d.JSONB {
		return col + "::text"
	}
	return col
}

// Head returns the last entry's seq, hash and time and the last checkpoint's
// seq and time; zero values for an empty log (audit.Store.AuditHead).
func Head(ctx context.Context, q fedsql.Querier, d fedsql.Dialect) (audit.Head, error) {
	var h audit.Head
	var hash []byte
	found, err := queryOne(ctx, q, d.Bind(sqlHead), func(r fedsql.Rows) error {
		var seq, ms int64
		if err := r.Scan(&seq, &hash, &ms); err != nil {
			return err
		}
		h.Seq, h.Time = uint64(seq), time.UnixMilli(ms).UTC()
		return nil
	})
	if err != nil || !found {
		return h, err
	}
	if len(hash) != audit.HashSize {
		return h, fmt.Errorf("entry %d: hash has %d bytes", h.Seq, len(hash))
	}
	copy(h.Hash[:], hash)
	_, err = queryOne(ctx, q, d.Bind(sqlLastCheckpoint), func(r fedsql.Rows) error {
		var seq, ms int64
		if err := r.Scan(&seq, &ms); err != nil {
			return err
		}
		h.CheckpointSeq, h.CheckpointTime = uint64(seq), time.UnixMilli(ms).UTC()
		return nil
	})
	return h, err
}

// queryOne runs query and scans its first row, if any.
func queryOne(ctx context.Context, q fedsql.Querier, query string, scan func(fedsql.Rows) error, args ...any) (bool, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := scan(rows); err != nil {
		return false, err
	}
	return true, rows.Err()
}

// Append stores entries and checkpoints as one q.Batch (audit.Store.AppendAudit):
// entries[0] must chain from the stored head, else the error wraps
// audit.ErrHeadMoved and, the batch being one transaction, nothing is stored.
func Append(ctx context.Context, q Querier, d fedsql.Dialect, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	var stmts []fedsql.Statement
	if len(entries) > 0 {
		stmts = entryStatements(d, entries)
	}
	for i := range checkpoints {
		c := &checkpoints[i]
		stmts = append(stmts, fedsql.Statement{
			SQL:  d.Bind(sqlInsertCheckpoint),
			Args: []any{int64(c.Seq), c.LogID, c.Hash[:], c.Time.UnixMilli(), c.Signature, int64(c.Seq), c.Hash[:]},
			Affected: func(k int64) error {
				if k != 1 {
					return fmt.Errorf("checkpoint %d: no stored entry %d with hash %s", c.Seq, c.Seq, c.Hash)
				}
				return nil
			},
		})
	}
	if len(stmts) == 0 {
		return nil
	}
	err := q.Batch(ctx, stmts)
	if err != nil && len(entries) > 0 && q.IsUniqueViolationOn(err, "audit_entries") {
		return fmt.Errorf("entry %d already stored: %w", entries[0].Seq, audit.ErrHeadMoved)
	}
	return err
}

// entryStatements inserts entries, each only if it chains from the stored head.
func entryStatements(d fedsql.Dialect, entries []audit.Entry) []fedsql.Statement {
	headMoved := func(e *audit.Entry) error {
		return fmt.Errorf("stored head is not entry %d with hash %s: %w", e.Seq-1, e.PrevHash, audit.ErrHeadMoved)
	}
	if d.Arrays {
		n := len(entries)
		var (
			seqs, times                                            = make([]int64, n), make([]int64, n)
			actors, actions, objects, outcomes, reasons, ids, dets = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			prevs, hashes                                          = make([][]byte, n), make([][]byte, n)
		)
		for i := range entries {
			e := &entries[i]
			seqs[i], times[i] = int64(e.Seq), e.Time.UnixMilli()
			actors[i], actions[i], objects[i], outcomes[i], reasons[i] = e.Actor, e.Action, e.Object, string(e.Outcome), e.Reason
			ids[i], dets[i] = jsonmap.Encode(e.Identifiers), jsonmap.Encode(e.Details)
			prevs[i], hashes[i] = e.PrevHash[:], e.Hash[:]
		}
		first := &entries[0]
		return []fedsql.Statement{{
			SQL: d.Bind(sqlInsertEntries),
			Args: []any{seqs, times, actors, actions, objects, outcomes, reasons, ids, dets, prevs, hashes,
				int64(first.Seq - 1), zeroHash[:], first.PrevHash[:]},
			Affected: func(k int64) error {
				if k != int64(n) {
					return headMoved(first)
				}
				return nil
			},
		}}
	}
	stmts := make([]fedsql.Statement, len(entries))
	for i := range entries {
		e := &entries[i]
		stmts[i] = fedsql.Statement{
			SQL: d.Bind(sqlInsertEntry),
			Args: []any{int64(e.Seq), e.Time.UnixMilli(), e.Actor, e.Action, e.Object, string(e.Outcome), e.Reason,
				jsonmap.Encode(e.Identifiers), jsonmap.Encode(e.Details), e.PrevHash[:], e.Hash[:],
				int64(e.Seq - 1), zeroHash[:], e.PrevHash[:]},
			Affected: func(k int64) error {
				if k != 1 {
					return headMoved(e)
				}
				return nil
			},
		}
	}
	return stmts
}

// Entries returns up to limit entries from seq from on (audit.Source).
func Entries(ctx context.Context, q fedsql.Querier, d fedsql.Dialect, from uint64, limit int) ([]audit.Entry, error) {
	return queryEntries(ctx, q, d, "seq >= ?", []any{int64(min(from, 1<<63-1)), limit})
}

func queryEntries(ctx context.Context, q fedsql.Querier, d fedsql.Dialect, where string, args []any) ([]audit.Entry, error) {
	query := fmt.Sprintf(sqlEntries, jsonCol(d, "identifiers"), jsonCol(d, "details"), where)
	rows, err := q.Query(ctx, d.Bind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanEntries(rows)
}

// Checkpoints returns every checkpoint in seq order (audit.Source).
func Checkpoints(ctx context.Context, q fedsql.Querier, d fedsql.Dialect) ([]audit.Checkpoint, error) {
	rows, err := q.Query(ctx, d.Bind(sqlCheckpoints))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var seq, ms int64
		var hash []byte
		if err := rows.Scan(&seq, &c.LogID, &hash, &ms, &c.Signature); err != nil {
			return nil, err
		}
		c.Seq, c.Time = uint64(seq), time.UnixMilli(ms).UTC()
		copy(c.Hash[:], hash)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Query filters the entries in (f.After, upTo] in the database and returns
// them with the window's last stored seq (compliance.AuditQuerier). The
// identifier filter matches any value of the identifiers JSON object.
func Query(ctx context.Context, q fedsql.Querier, d fedsql.Dialect, f compliance.AuditFilter, upTo uint64) ([]audit.Entry, uint64, error) {
	lo, hi := int64(min(f.After, 1<<63-1)), int64(min(upTo, 1<<63-1))
	where := []string{"seq > ?", "seq <= ?"}
	args := []any{lo, hi}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time_ms >= ?"), append(args, ceilMilli(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time_ms < ?"), append(args, ceilMilli(f.Until))
	}
	if f.Identifier != "" {
		cond := "EXISTS (SELECT 1 FROM json_each(audit_entries.identifiers) WHERE json_each.value = ?)"
		if d.JSONB {
			cond = "EXISTS (SELECT 1 FROM jsonb_each_text(audit_entries.identifiers) AS i(k, v) WHERE i.v = ?)"
		}
		where, args = append(where, cond), append(args, f.Identifier)
	}
	out, err := queryEntries(ctx, q, d, strings.Join(where, " AND "), append(args, f.Limit))
	if err != nil {
		return nil, 0, err
	}
	// The window's last seq, read after the entries so that it covers them.
	var last int64
	if _, err := queryOne(ctx, q, d.Bind(sqlWindowLast), func(r fedsql.Rows) error { return r.Scan(&last) }, lo, hi); err != nil {
		return nil, 0, err
	}
	return out, uint64(last), nil
}

// ceilMilli is t in Unix milliseconds rounded up: stored times are whole
// milliseconds, so time_ms >= ceilMilli(t) is exactly "not before t".
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// scanEntries reads rows of (seq, time_ms, actor, action, object, outcome,
// reason, identifiers JSON, details JSON, prev_hash, hash).
func scanEntries(rows fedsql.Rows) ([]audit.Entry, error) {
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var seq, ms int64
		var outcome, ids, details string
		var prev, hash []byte
		if err := rows.Scan(&seq, &ms, &e.Actor, &e.Action, &e.Object, &outcome, &e.Reason, &ids, &details, &prev, &hash); err != nil {
			return nil, err
		}
		e.Seq, e.Time, e.Outcome = uint64(seq), time.UnixMilli(ms).UTC(), audit.Outcome(outcome)
		var err error
		if e.Identifiers, err = jsonmap.Decode(ids); err != nil {
			return nil, fmt.Errorf("entry %d: identifiers: %w", seq, err)
		}
		if e.Details, err = jsonmap.Decode(details); err != nil {
			return nil, fmt.Errorf("entry %d: details: %w", seq, err)
		}
		// A wrong-sized hash is stored tampering: keep what fits and let Verify
		// report the mismatch rather than fail the read.
		copy(e.PrevHash[:], prev)
		copy(e.Hash[:], hash)
		out = append(out, e)
	}
	return out, rows.Err()
}
