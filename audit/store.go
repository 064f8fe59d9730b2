package audit

import (
	"context"
	"errors"
)

// ErrHeadMoved is returned (wrapped) by Store.AppendAudit when the stored head
// is not the one the batch chains from: another writer appended first. The
// log reloads the head and re-chains the batch.
var ErrHeadMoved = errors.New("audit head moved")

// Source is read access to a stored log: enough to verify and export it.
type Source interface {
	// AuditEntries returns up to limit entries with Seq >= from, in
	// increasing Seq order.
	AuditEntries(ctx context.Context, from uint64, limit int) ([]Entry, error)
	// AuditCheckpoints returns every checkpoint in increasing Seq order.
	AuditCheckpoints(ctx context.Context) ([]Checkpoint, error)
}

// Store is the persistence the log needs.
type Store interface {
	Source
	// AuditHead returns the last entry's seq, hash and time and the last
	// checkpoint's seq and time; zero values for an empty log.
	AuditHead(ctx context.Context) (Head, error)
	// AppendAudit stores entries and checkpoints in one transaction. When
	// entries is not empty, entries[0] must chain from the stored head
	// (Seq = head seq + 1 and PrevHash = head hash); otherwise it returns an
	// error wrapping ErrHeadMoved and stores nothing. It returns only once
	// the transaction is durable.
	AppendAudit(ctx context.Context, entries []Entry, checkpoints []Checkpoint) error
}

// ExclusiveAppender is implemented by a Store that several writers
// (replicas) share and that can also append with every other writer held
// off. The log uses it for a batch that lost the race for the head: without
// it a replica whose batches keep losing to another's would fail every
// append after a few retries, and fail closed every request it serves.
type ExclusiveAppender interface {
	// AppendAuditExclusive holds off every other AppendAudit and
	// AppendAuditExclusive on the store, reads the head, and stores what
	// build chains from it as AppendAudit does; it returns the entries and
	// checkpoints stored.
	AppendAuditExclusive(ctx context.Context, build func(Head) ([]Entry, []Checkpoint)) ([]Entry, []Checkpoint, error)
}
