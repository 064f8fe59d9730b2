package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/auditscan"
	"github.com/kairos-fl/kairos/store/internal/jsonmap"
)

var _ audit.Store = (*Store)(nil)

const (
	sqlAuditHead           = `SELECT seq, hash, time_ms FROM audit_entries ORDER BY seq DESC LIMIT 1`
	sqlAuditLastCheckpoint = `SELECT seq, time_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`
	sqlInsertAuditEntry    = `INSERT INTO audit_entries
    (seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertCheckpoint = `INSERT INTO audit_checkpoints (seq, log_id, hash, time_ms, signature) VALUES (?, ?, ?, ?, ?)`
	sqlAuditEntries     = `SELECT seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash
    FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?`
	sqlAuditCheckpoints = `SELECT seq, log_id, hash, time_ms, signature FROM audit_checkpoints ORDER BY seq`
)

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readHead(ctx context.Context, q queryRower) (audit.Head, error) {
	var h audit.Head
	var seq, ms int64
	var hash []byte
	switch err := q.QueryRowContext(ctx, sqlAuditHead).Scan(&seq, &hash, &ms); {
	case errors.Is(err, sql.ErrNoRows):
		return h, nil
	case err != nil:
		return h, err
	}
	h.Seq, h.Time = uint64(seq), time.UnixMilli(ms).UTC()
	if len(hash) != audit.HashSize {
		return h, fmt.Errorf("entry %d: hash has %d bytes", seq, len(hash))
	}
	copy(h.Hash[:], hash)
	switch err := q.QueryRowContext(ctx, sqlAuditLastCheckpoint).Scan(&seq, &ms); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return h, err
	default:
		h.CheckpointSeq, h.CheckpointTime = uint64(seq), time.UnixMilli(ms).UTC()
	}
	return h, nil
}

// AuditHead implements audit.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, error) {
	h, err := readHead(ctx, s.r)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit head: %w", err)
	}
	return h, nil
}

// AppendAudit implements audit.Store: entries and checkpoints in one
// transaction, after checking that entries chain from the stored head.
func (s *Store) AppendAudit(ctx context.Context, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if len(entries) > 0 {
			h, err := readHead(ctx, tx)
			if err != nil {
				return err
			}
			if first := &entries[0]; first.Seq != h.Seq+1 || first.PrevHash != h.Hash {
				return fmt.Errorf("stored head is entry %d, batch chains from entry %d: %w", h.Seq, first.Seq-1, audit.ErrHeadMoved)
			}
			stmt, err := tx.PrepareContext(ctx, sqlInsertAuditEntry)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i := range entries {
				e := &entries[i]
				if _, err := stmt.ExecContext(ctx, int64(e.Seq), e.Time.UnixMilli(), e.Actor, e.Action, e.Object,
					string(e.Outcome), e.Reason, jsonmap.Encode(e.Identifiers), jsonmap.Encode(e.Details),
					e.PrevHash[:], e.Hash[:]); err != nil {
					return fmt.Errorf("entry %d: %w", e.Seq, err)
				}
			}
		}
		for i := range checkpoints {
			c := &checkpoints[i]
			if _, err := tx.ExecContext(ctx, sqlInsertCheckpoint, int64(c.Seq), c.LogID, c.Hash[:], c.Time.UnixMilli(), c.Signature); err != nil {
				return fmt.Errorf("checkpoint %d: %w", c.Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// AuditEntries implements audit.Source.
func (s *Store) AuditEntries(ctx context.Context, from uint64, limit int) ([]audit.Entry, error) {
	rows, err := s.r.QueryContext(ctx, sqlAuditEntries, int64(min(from, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	defer rows.Close()
	out, err := auditscan.Entries(rows)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// AuditCheckpoints implements audit.Source.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, sqlAuditCheckpoints)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	defer rows.Close()
	out, err := auditscan.Checkpoints(rows)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}
