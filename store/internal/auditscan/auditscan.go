// Package auditscan reads audit entries and checkpoints from query results, the
// same way for every backend: both pgx.Rows and *sql.Rows satisfy Rows.
package auditscan

import (
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/jsonmap"
)

// Rows is the part of a query result the scanners use.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Entries reads rows of (seq, time_ms, actor, action, object, outcome, reason,
// identifiers JSON, details JSON, prev_hash, hash).
func Entries(rows Rows) ([]audit.Entry, error) {
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

// Checkpoints reads rows of (seq, log_id, hash, time_ms, signature).
func Checkpoints(rows Rows) ([]audit.Checkpoint, error) {
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
