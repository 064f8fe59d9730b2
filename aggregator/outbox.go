package aggregator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// staged is an audit record written to the outbox in the transaction of the
// action it records, to be appended to the audit log after the commit.
type staged struct {
	id  string
	rec audit.Record
}

// stage writes rec to the outbox inside tx under id.
func stage(ctx context.Context, tx Tx, id string, rec audit.Record, at time.Time) (staged, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return staged{}, fmt.Errorf("stage audit record: %w", err)
	}
	if err := tx.InsertOutbox(ctx, id, b, at); err != nil {
		return staged{}, err
	}
	return staged{id: id, rec: rec}, nil
}

// randomSuffix makes outbox ids of repeatable actions (rollbacks) unique.
func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// flush appends each staged record and then removes it from the outbox. It
// stops at the first append that fails; what is left is appended by Tick.
func (s *Service) flush(ctx context.Context, ps []staged) error {
	for _, p := range ps {
		seq, err := s.appendAuditSeq(ctx, p.rec)
		if err != nil {
			return err
		}
		s.recordWithdrawnSeq(ctx, p.id, p.rec, seq)
		s.unstage(ctx, p.id)
	}
	return nil
}

func (s *Service) unstage(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	if err := s.store.InTx(ctx, func(tx Tx) error { return tx.DeleteOutbox(ctx, id) }); err != nil {
		// The entry is durable; Tick will append the record again.
		s.log.Error("delete audit outbox record", "id", id, "err", err)
	}
}

// drainOutbox appends the outbox records left behind by a crash or a failed
// audit write (those older than repairAfter, so that a live caller's own
// flush is not duplicated).
func (s *Service) drainOutbox(ctx context.Context) error {
	var rs []OutboxRecord
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		rs, err = tx.Outbox(ctx, s.now().Add(-repairAfter))
		return err
	})
	if err != nil {
		return err
	}
	for _, r := range rs {
		var rec audit.Record
		if err := json.Unmarshal(r.Record, &rec); err != nil {
			return fmt.Errorf("audit outbox %s: %w", r.ID, err)
		}
		seq, err := s.appendAuditSeq(ctx, rec)
		if err != nil {
			return err
		}
		s.recordWithdrawnSeq(ctx, r.ID, rec, seq)
		s.unstage(ctx, r.ID)
	}
	return nil
}
