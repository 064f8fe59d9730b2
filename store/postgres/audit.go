package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/internal/auditscan"
	"github.com/kairos-fl/kairos/store/internal/jsonmap"
)

var _ audit.Store = (*Store)(nil)

const (
	sqlAuditHead           = `SELECT seq, hash, time_ms FROM audit_entries ORDER BY seq DESC LIMIT 1`
	sqlAuditLastCheckpoint = `SELECT seq, time_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`
	// sqlInsertAuditEntries inserts a whole batch in one statement, and only
	// if the stored head is ($1, $2): entry seq $1+1 chains from hash $2.
	// Two writers that saw the same head race on the seq primary key; the
	// loser gets a unique violation once the winner commits.
	sqlInsertAuditEntries = `WITH head AS (SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1)
INSERT INTO audit_entries (seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
SELECT b.seq, b.time_ms, b.actor, b.action, b.object, b.outcome, b.reason, b.identifiers::jsonb, b.details::jsonb, b.prev_hash, b.hash
FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[])
    AS b(seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash)
WHERE coalesce((SELECT seq FROM head), 0) = $1
  AND coalesce((SELECT hash FROM head), '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) = $2`
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
// transaction, the entries in one statement that checks the stored head.
//
// This is the hot path of group commit, so it is one round trip: the
// statements go as one pgx batch, which PostgreSQL runs as one implicit
// transaction (everything up to the batch's single Sync commits or rolls
// back together), instead of BEGIN, batch and COMMIT as three.
func (s *Store) AppendAudit(ctx context.Context, entries []audit.Entry, checkpoints []audit.Checkpoint) error {
	err := s.inBatchTx(ctx, func(b *pgx.Batch) {
		if len(entries) > 0 {
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
			b.Queue(sqlInsertAuditEntries, int64(first.Seq-1), first.PrevHash[:],
				seqs, times, actors, actions, objects, outcomes, reasons, ids, dets, prevs, hashes).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() != int64(n) {
					return fmt.Errorf("stored head is not entry %d with hash %s: %w", first.Seq-1, first.PrevHash, audit.ErrHeadMoved)
				}
				return nil
			})
		}
		for i := range checkpoints {
			c := &checkpoints[i]
			b.Queue(sqlInsertCheckpoint, int64(c.Seq), c.LogID, c.Hash[:], c.Time.UnixMilli(), c.Signature)
		}
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation && pgErr.TableName == "audit_entries" {
		err = fmt.Errorf("entry %d already stored: %w", entries[0].Seq, audit.ErrHeadMoved)
	}
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
	out, err := auditscan.Entries(rows)
	if err != nil {
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
	out, err := auditscan.Checkpoints(rows)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}
