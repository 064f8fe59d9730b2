package aggregator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// ErrWithdrawn matches a WithdrawnError: the model version was withdrawn
// by a rollback and is neither served nor trained from.
var ErrWithdrawn = errors.New("model version withdrawn")

// WithdrawnError names a withdrawn version and the rollback that withdrew
// it.
type WithdrawnError struct {
	Version int
	At      time.Time
	// Seq is the rollback's audit entry (0 while it waits to be appended).
	Seq int64
}

func (e *WithdrawnError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("model version %d was withdrawn by a rollback at %s (its audit entry is not appended yet)",
			e.Version, e.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("model version %d was withdrawn by the rollback at seq %d of the audit log (%s)",
		e.Version, e.Seq, e.At.UTC().Format(time.RFC3339))
}

// Is makes a WithdrawnError match ErrWithdrawn.
func (e *WithdrawnError) Is(target error) bool { return target == ErrWithdrawn }

func withdrawnError(m ModelRecord) error {
	return &WithdrawnError{Version: m.Version, At: m.WithdrawnAt, Seq: m.WithdrawnSeq}
}

// withdraw records, in the transaction of a rollback from prev to target,
// which versions the rollback withdraws and whether it restores target.
//
// Withdrawn: every version on the active lineage above target (prev, its
// parent, and so on while the version is above target), and every version
// that descends from one of them (a round that trained from it while the
// rollback happened publishes such a version; rounds.go marks it at
// publication). A rollback to a higher version (rolling forward) withdraws
// nothing. A rollback to a withdrawn version restores that version alone (an
// operator's explicit decision, audited as "restored"); its withdrawn
// ancestors stay withdrawn.
func withdraw(ctx context.Context, tx Tx, prev, target int, at time.Time, by string) (withdrawn []int, restored bool, err error) {
	ms, err := tx.Models(ctx)
	if err != nil {
		return nil, false, err
	}
	byVersion := make(map[int]ModelRecord, len(ms))
	for _, m := range ms {
		byVersion[m.Version] = m
	}
	if byVersion[target].Withdrawn {
		if err := tx.SetModelWithdrawn(ctx, target, time.Time{}, "", 0); err != nil {
			return nil, false, err
		}
		restored = true
	}
	out := map[int]bool{}
	for v := prev; v > target; {
		m, ok := byVersion[v]
		if !ok {
			break
		}
		out[v] = true
		v = m.Parent
	}
	for _, m := range ms { // by version: a parent precedes its children
		if out[m.Parent] && m.Version != target {
			out[m.Version] = true
		}
	}
	for _, m := range ms {
		if !out[m.Version] || m.Withdrawn {
			continue
		}
		if err := tx.SetModelWithdrawn(ctx, m.Version, at, by, 0); err != nil {
			return nil, false, err
		}
		withdrawn = append(withdrawn, m.Version)
	}
	slices.Sort(withdrawn)
	return withdrawn, restored, nil
}

// joinVersions is the "withdrawn" detail of a rollback's audit entry.
func joinVersions(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// recordWithdrawnSeq stores the seq of a rollback's audit entry on the
// versions it withdrew, once the entry is appended (staged id, entry seq).
// A failure leaves the seq 0 (refusals then give the rollback's time) and is
// logged: the entry itself is durable.
func (s *Service) recordWithdrawnSeq(ctx context.Context, id string, rec audit.Record, seq uint64) {
	if rec.Action != "model.rollback" || rec.Outcome != audit.OutcomeOK || rec.Details["withdrawn"] == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.store.InTx(ctx, func(tx Tx) error { return tx.SetWithdrawnSeq(ctx, id, int64(seq)) }); err != nil {
		s.log.Error("record the audit seq of a withdrawal", "id", id, "seq", seq, "err", err)
	}
}
