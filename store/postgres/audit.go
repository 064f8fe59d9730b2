package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/jsonmap"
)

var _ audit.Store = (*Store)(nil)

const (
	// sqlLockAudit queues concurrent appenders (from any replica) on the
	// chain; SHARE ROW EXCLUSIVE conflicts with itself and with inserts but
	// not with readers.
	sqlLockAudit           = `LOCK TABLE audit_entries IN SHARE ROW EXCLUSIVE MODE`
	sqlAuditHead           = `SELECT seq, hash, time_ms FROM audit_entries ORDER BY seq DESC LIMIT 1`
	sqlAuditLastCheckpoint = `SELECT seq, time_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`
	sqlInsertAuditEntry    = `INSERT INTO audit_entries
    (seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9::text::jsonb, $10, $11)`
	sqlInsertCheckpoint = `INSERT INTO audit_checkpoints (seq, log_id, hash, time_ms, signature) VALUES ($1, $2, $3, $4, $5)`
	sqlAuditEntries     = `SELECT seq, time_ms, actor, action, object, outcome, reason, identifiers::text, details::text, prev_hash, hash
    FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2`
	sqlAuditCheckpoints = `SELECT seq, log_id, hash, time_ms, signature FROM audit_checkpoints ORDER BY seq`
)

func readHead(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (audit.Head, error) {
	var h audit.Head
	var seq, ms int64
	var hash []byte
	switch err := q.QueryRow(ctx, sqlAuditHead).Scan(&seq, &hash, &ms); {
	case errors.Is(err, pgx.ErrNoRows):
		return h, nil
	case err != nil:
		return h, err
	}
	h.Seq, h.Time = uint64(seq), time.UnixMilli(ms).UTC()
	copy(h.Hash[:], hash)
	switch err := q.QueryRow(ctx, sqlAuditLastCheckpoint).Scan(&seq, &ms); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return h, err
	default:
		h.CheckpointSeq, h.CheckpointTime = uint64(seq), time.UnixMilli(ms).UTC()
	}
	return h, nil
}

// AuditHead implements audit.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	h, err := readHead(ctx, s.pool)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit head: %w", err)
	}
	return h, nil
}

// AppendAudit implements audit.Store: entries and checkpoints in one
// transaction (one round trip for the inserts), after checking under the
// table lock that entries chain from the stored head.
func (s *Store) AppendAudit(ctx context.Context, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if len(entries) > 0 {
			if _, err := tx.Exec(ctx, sqlLockAudit); err != nil {
				return err
			}
			h, err := readHead(ctx, tx)
			if err != nil {
				return err
			}
			if first := &entries[0]; first.Seq != h.Seq+1 || first.PrevHash != h.Hash {
				return fmt.Errorf("stored head is entry %d, batch chains from entry %d: %w", h.Seq, first.Seq-1, audit.ErrHeadMoved)
			}
		}
		b := &pgx.Batch{}
		for i := range entries {
			e := &entries[i]
			b.Queue(sqlInsertAuditEntry, int64(e.Seq), e.Time.UnixMilli(), e.Actor, e.Action, e.Object,
				string(e.Outcome), e.Reason, jsonmap.Encode(e.Identifiers), jsonmap.Encode(e.Details),
				e.PrevHash[:], e.Hash[:])
		}
		for i := range checkpoints {
			c := &checkpoints[i]
			b.Queue(sqlInsertCheckpoint, int64(c.Seq), c.LogID, c.Hash[:], c.Time.UnixMilli(), c.Signature)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// AuditEntries implements audit.Source.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int) ([]audit.Entry, error) {
	rows, err := s.pool.Query(ctx, sqlAuditEntries, int64(min(from, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var seq, ms int64
		var outcome, ids, details string
		var prev, hash []byte
		if err := rows.Scan(&seq, &ms, &e.Actor, &e.Action, &e.Object, &outcome, &e.Reason, &ids, &details, &prev, &hash); err != nil {
			return nil, fmt.Errorf("read audit entries: %w", err)
		}
		e.Seq, e.Time, e.Outcome = uint64(seq), time.UnixMilli(ms).UTC(), audit.Outcome(outcome)
		if e.Identifiers, err = jsonmap.Decode(ids); err != nil {
			return nil, fmt.Errorf("read audit entries: entry %d: identifiers: %w", seq, err)
		}
		if e.Details, err = jsonmap.Decode(details); err != nil {
			return nil, fmt.Errorf("read audit entries: entry %d: details: %w", seq, err)
		}
		copy(e.PrevHash[:], prev) // a wrong size is tampering for Verify to report
		copy(e.Hash[:], hash)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// AuditCheckpoints implements audit.Source.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, sqlAuditCheckpoints)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var seq, ms int64
		var hash []byte
		if err := rows.Scan(&seq, &c.LogID, &hash, &ms, &c.Signature); err != nil {
			return nil, fmt.Errorf("read audit checkpoints: %w", err)
		}
		c.Seq, c.Time = uint64(seq), time.UnixMilli(ms).UTC()
		copy(c.Hash[:], hash)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}
