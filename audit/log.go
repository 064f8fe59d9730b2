package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// Options configure a Log.
type Options struct {
	Store Store
	// LogID names the log in checkpoint signatures. Default "kairos".
	LogID string
	// HMACKey keys identifier HMACs; at least 16 bytes.
	HMACKey []byte
	// SigningKey signs checkpoints.
	SigningKey ed25519.PrivateKey
	// CheckpointEvery signs a checkpoint at every seq divisible by it.
	// Default 1000; negative disables.
	CheckpointEvery int
	// CheckpointInterval signs a checkpoint of the head every interval in
	// which it moved, so no committed entry stays unsigned longer than about
	// this. Zero disables.
	CheckpointInterval time.Duration
	// Witness, when set, receives every checkpoint once it is durable in
	// the store, and New checks the stored log against it (see New).
	Witness Witness
	// WitnessFailed, when set, is called from the writer with each failed
	// push to the witness after start-up, for the caller to report; the
	// checkpoints are pushed again with the next one.
	WitnessFailed func(error)
	// MaxBatch bounds the entries committed in one transaction. Default 512.
	MaxBatch int
	// WriteTimeout bounds one store write. Default 30s.
	WriteTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Stats counts what a Log has committed since New.
type Stats struct {
	Entries     uint64 // entries committed
	Batches     uint64 // store transactions that committed entries
	Checkpoints uint64 // checkpoints committed
	Failures    uint64 // store writes that failed
	Queued      int    // records waiting for the writer now
	// WitnessFailures counts failed pushes to the witness; the checkpoints
	// are pushed again with the next one.
	WitnessFailures uint64
}

// Log appends records to a Store. Concurrent Append calls are group-committed
// by one writer goroutine: it takes every queued record (up to MaxBatch),
// chains them from the durable head, writes them and their checkpoints in one
// transaction, and only then answers each caller. If the write fails, every
// caller in the batch gets the error and the head does not move.
type Log struct {
	opts   Options
	reqs   chan *request
	done   chan struct{}
	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool

	closeErr error // set by the writer before done is closed

	// macs holds *identifierMAC keyed with opts.HMACKey, so that Append
	// does not build an HMAC (five allocations) per identifier.
	macs sync.Pool

	entries, batches, checkpoints, failures, witnessFailures atomic.Uint64
}

// identifierMAC computes HashIdentifier's value with reusable state.
type identifierMAC struct {
	mac hash.Hash
	buf []byte
}

// hash returns IdentifierPrefix + hex(HMAC-SHA256(key, v)), as
// HashIdentifier does, with one allocation (the string).
func (m *identifierMAC) hash(v string) string {
	m.mac.Reset()
	m.buf = append(m.buf[:0], v...)
	m.mac.Write(m.buf)
	var sum [sha256.Size]byte
	m.buf = append(m.buf[:0], IdentifierPrefix...)
	m.buf = hex.AppendEncode(m.buf, m.mac.Sum(sum[:0]))
	return string(m.buf)
}

type request struct {
	rec   Record // identifiers already hashed
	reply chan result
}

type result struct {
	entry Entry
	err   error
}

// ErrStartRefused is wrapped by New's error when the stored log disagrees
// with a signed checkpoint (errors.Is ErrTampered too): the log will not
// sign a checkpoint over it.
var ErrStartRefused = errors.New("refusing to start")

// New validates opts, checks the stored log, signs its head and starts the
// writer. The writer runs on a context detached from ctx's cancellation, so
// queued entries are written even if ctx ends; call Close to stop it.
//
// Before signing anything, New verifies the stored entries from the last
// signed checkpoint on: from the earlier of the store's last checkpoint and
// the witness's, against every checkpoint the store and the witness hold
// from there. If an entry under a signed checkpoint was changed (or the log
// was cut before one), New returns an error wrapping ErrStartRefused and the
// *VerifyError. Then it pushes to the witness the store's checkpoints it
// lacks (committed just before a crash) and signs a checkpoint of the head,
// so entries left unsigned by a crash are pinned before new ones follow.
// Entries that were not under any checkpoint when the previous process
// stopped cannot be told from a forgery; a short CheckpointInterval keeps
// them few.
func New(ctx context.Context, opts Options) (*Log, error) {
	if opts.Store == nil {
		return nil, errors.New("new audit log: no store")
	}
	if len(opts.HMACKey) < 16 {
		return nil, fmt.Errorf("new audit log: hmac key has %d bytes, want at least 16", len(opts.HMACKey))
	}
	if len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new audit log: signing key has %d bytes, want %d", len(opts.SigningKey), ed25519.PrivateKeySize)
	}
	if opts.LogID == "" {
		opts.LogID = "kairos"
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval < 0 {
		return nil, errors.New("new audit log: negative checkpoint interval")
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 512
	}
	if opts.MaxBatch < 0 {
		return nil, errors.New("new audit log: negative max batch")
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	head, err := opts.Store.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("new audit log: read head: %w", err)
	}
	l := &Log{
		opts: opts,
		reqs: make(chan *request, 4*opts.MaxBatch),
		done: make(chan struct{}),
	}
	key := opts.HMACKey
	l.macs.New = func() any { return &identifierMAC{mac: hmac.New(sha256.New, key)} }
	w := &writer{log: l, head: head}
	if err := w.start(ctx); err != nil {
		return nil, fmt.Errorf("new audit log: %w", err)
	}
	go w.run(context.WithoutCancel(ctx))
	return l, nil
}

// start checks the stored tail against the signed checkpoints, brings the
// witness up to date and signs the head (see New).
func (w *writer) start(ctx context.Context) error {
	o := &w.log.opts
	var held []Checkpoint
	if o.Witness != nil {
		var err error
		if held, err = o.Witness.Checkpoints(ctx); err != nil {
			return fmt.Errorf("read witness: %w", err)
		}
	}
	var heldLast uint64
	for _, c := range held {
		heldLast = max(heldLast, c.Seq)
	}
	from := w.head.CheckpointSeq
	if heldLast > 0 && (from == 0 || heldLast < from) {
		from = heldLast
	}
	pub := o.SigningKey.Public().(ed25519.PublicKey)
	if _, err := verify(ctx, Witnessed(o.Store, held), pub, from); err != nil {
		if errors.Is(err, ErrTampered) {
			return fmt.Errorf("%w: the stored log disagrees with its signed checkpoints (restore it or investigate; no checkpoint was signed): %w", ErrStartRefused, err)
		}
		return fmt.Errorf("check stored log: %w", err)
	}
	if o.Witness != nil && w.head.CheckpointSeq > heldLast {
		own, err := o.Store.AuditCheckpoints(ctx)
		if err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		w.unpushed = slices.DeleteFunc(own, func(c Checkpoint) bool { return c.Seq <= heldLast })
	}
	err := w.checkpointHead(ctx)
	if err != nil { // another replica may have signed the same entry: once more from the stored head
		err = w.checkpointHead(ctx)
	}
	if err != nil {
		return err
	}
	if err := w.push(ctx); err != nil {
		return err
	}
	return nil
}

// Append records rec and returns the entry once it is durable. Identifier
// values are replaced by their HMACs before they leave this call. If ctx ends
// before the record is queued, nothing is written; if it ends after, Append
// stops waiting and returns ctx's error, but the entry is still written.
func (l *Log) Append(ctx context.Context, rec Record) (Entry, error) {
	if err := rec.validate(); err != nil {
		return Entry{}, fmt.Errorf("audit append: %w", err)
	}
	if len(rec.Identifiers) > 0 {
		ids := make(map[string]string, len(rec.Identifiers))
		m := l.macs.Get().(*identifierMAC)
		for k, v := range rec.Identifiers {
			ids[k] = m.hash(v)
		}
		l.macs.Put(m)
		rec.Identifiers = ids
	}
	rec.Details = maps.Clone(rec.Details)
	req := &request{rec: rec, reply: make(chan result, 1)}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("audit append: not queued: %w", err)
	}

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Entry{}, fmt.Errorf("audit append: %w", ErrClosed)
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		l.mu.RUnlock()
		return Entry{}, fmt.Errorf("audit append: not queued: %w", ctx.Err())
	}
	l.mu.RUnlock()

	select {
	case res := <-req.reply:
		return res.entry, res.err
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("audit append: stopped waiting, entry may still be written: %w", ctx.Err())
	}
}

// Close writes every queued record, signs a final checkpoint of the head if
// it moved since the last one, pushes what the witness lacks, and stops the
// writer. It returns the error of that last checkpoint or push, if any.
// Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.mu.Unlock()
	<-l.done
	return l.closeErr
}

// Stats returns counters of committed work.
func (l *Log) Stats() Stats {
	return Stats{
		Entries:     l.entries.Load(),
		Batches:     l.batches.Load(),
		Checkpoints: l.checkpoints.Load(),
		Failures:    l.failures.Load(),
		Queued:      len(l.reqs),

		WitnessFailures: l.witnessFailures.Load(),
	}
}

// writer is the state of the writer goroutine; only it touches head.
type writer struct {
	log   *Log
	head  Head
	stale bool // the durable head may differ from head; reload first
	batch []*request
	// unpushed holds durable checkpoints the witness does not have yet;
	// fresh is set when one was added since the last push. A push follows
	// a commit only when fresh, so a failing witness is retried once per
	// new checkpoint or tick, not on every batch.
	unpushed []Checkpoint
	fresh    bool
}

// maxUnpushed bounds the checkpoints kept for a witness that keeps failing;
// the latest one pins the whole chain, so the oldest are dropped first.
const maxUnpushed = 1024

// push sends the unpushed checkpoints to the witness, if any.
func (w *writer) push(ctx context.Context) error {
	o := &w.log.opts
	if o.Witness == nil || len(w.unpushed) == 0 {
		return nil
	}
	w.fresh = false
	ctx, cancel := context.WithTimeout(ctx, o.WriteTimeout)
	defer cancel()
	if err := o.Witness.Add(ctx, w.unpushed); err != nil {
		w.log.witnessFailures.Add(1)
		if o.WitnessFailed != nil {
			o.WitnessFailed(err)
		}
		if n := len(w.unpushed); n > maxUnpushed {
			w.unpushed = slices.Delete(w.unpushed, 0, n-maxUnpushed)
		}
		return fmt.Errorf("push to witness: %w", err)
	}
	w.unpushed = w.unpushed[:0]
	return nil
}

func (w *writer) run(ctx context.Context) {
	l := w.log
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.CheckpointInterval > 0 {
		t := time.NewTicker(l.opts.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				l.closeErr = w.stop(ctx)
				return
			}
			w.batch = append(w.batch[:0], r)
			open := w.fill()
			w.commit(ctx)
			if w.fresh {
				_ = w.push(ctx) // a failure keeps them for the next push
			}
			if !open {
				l.closeErr = w.stop(ctx)
				return
			}
		case <-tick:
			// A failure leaves the head unsigned or unpushed; the next tick retries.
			_ = w.checkpointHead(ctx)
			_ = w.push(ctx)
		}
	}
}

// stop signs the head and pushes what the witness lacks.
func (w *writer) stop(ctx context.Context) error {
	return errors.Join(w.checkpointHead(ctx), w.push(ctx))
}

// fill takes queued requests without waiting, up to MaxBatch. It reports
// false once the queue is closed.
func (w *writer) fill() bool {
	for len(w.batch) < w.log.opts.MaxBatch {
		select {
		case r, ok := <-w.log.reqs:
			if !ok {
				return false
			}
			w.batch = append(w.batch, r)
		default:
			return true
		}
	}
	return true
}

// maxHeadMoves bounds how often one batch is re-chained after another writer
// appended first.
const maxHeadMoves = 5

func (w *writer) commit(ctx context.Context) {
	l := w.log
	var err error
	for attempt := 0; ; attempt++ {
		var entries []Entry
		var cps []Checkpoint
		if ex, ok := w.log.opts.Store.(ExclusiveAppender); ok && attempt > 0 {
			// Lost the race for the head: chain from the head read with
			// every other writer held off, so this replica is not starved.
			entries, cps, err = w.writeExclusive(ctx, ex)
		} else {
			if err = w.reload(ctx); err != nil {
				break
			}
			entries, cps = w.build()
			err = w.write(ctx, entries, cps)
		}
		if err == nil {
			last := entries[len(entries)-1]
			w.head.Seq, w.head.Hash, w.head.Time = last.Seq, last.Hash, last.Time
			if len(cps) > 0 {
				w.head.CheckpointSeq, w.head.CheckpointTime = cps[len(cps)-1].Seq, cps[len(cps)-1].Time
			}
			l.entries.Add(uint64(len(entries)))
			l.batches.Add(1)
			l.checkpoints.Add(uint64(len(cps)))
			if l.opts.Witness != nil && len(cps) > 0 {
				w.unpushed, w.fresh = append(w.unpushed, cps...), true
			}
			for i, r := range w.batch {
				r.reply <- result{entry: entries[i]}
			}
			return
		}
		l.failures.Add(1)
		w.stale = true
		if !errors.Is(err, ErrHeadMoved) || attempt+1 >= maxHeadMoves {
			break
		}
	}
	err = fmt.Errorf("audit append: %w", err)
	for _, r := range w.batch {
		r.reply <- result{err: err}
	}
}

// reload rereads the durable head after a failed write, so a write that
// failed (or whose commit was acknowledged ambiguously) never leaves the
// chain forked in memory.
func (w *writer) reload(ctx context.Context) error {
	if !w.stale {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.log.opts.WriteTimeout)
	defer cancel()
	h, err := w.log.opts.Store.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("reload head: %w", err)
	}
	w.head, w.stale = h, false
	return nil
}

func (w *writer) write(ctx context.Context, entries []Entry, cps []Checkpoint) error {
	ctx, cancel := context.WithTimeout(ctx, w.log.opts.WriteTimeout)
	defer cancel()
	return w.log.opts.Store.AppendAudit(ctx, entries, cps)
}

// writeExclusive stores the batch chained from the head ex reads with every
// other writer held off.
func (w *writer) writeExclusive(ctx context.Context, ex ExclusiveAppender) ([]Entry, []Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, w.log.opts.WriteTimeout)
	defer cancel()
	return ex.AppendAuditExclusive(ctx, func(h Head) ([]Entry, []Checkpoint) {
		w.head = h
		return w.build()
	})
}

// build chains the batch from head without changing it.
func (w *writer) build() ([]Entry, []Checkpoint) {
	o := &w.log.opts
	now := millis(o.Now())
	if now.Before(w.head.Time) {
		now = w.head.Time // keep entry times non-decreasing along the chain
	}
	entries := make([]Entry, len(w.batch))
	var cps []Checkpoint
	prev, seq := w.head.Hash, w.head.Seq
	for i, r := range w.batch {
		seq++
		e := &entries[i]
		*e = Entry{
			Seq: seq, Time: now,
			Actor: r.rec.Actor, Action: r.rec.Action, Object: r.rec.Object,
			Outcome: r.rec.Outcome, Reason: r.rec.Reason,
			Identifiers: r.rec.Identifiers, Details: r.rec.Details,
			PrevHash: prev,
		}
		e.Hash = EntryHash(prev, e)
		prev = e.Hash
		if o.CheckpointEvery > 0 && seq%uint64(o.CheckpointEvery) == 0 {
			cps = append(cps, w.sign(seq, e.Hash, now))
		}
	}
	return entries, cps
}

func (w *writer) sign(seq uint64, h Hash, t time.Time) Checkpoint {
	c := Checkpoint{LogID: w.log.opts.LogID, Seq: seq, Hash: h, Time: t}
	SignCheckpoint(w.log.opts.SigningKey, &c)
	return c
}

// checkpointHead signs and stores a checkpoint of the head if the head has
// moved since the last checkpoint.
func (w *writer) checkpointHead(ctx context.Context) error {
	if err := w.reload(ctx); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if w.head.Seq == 0 || w.head.CheckpointSeq >= w.head.Seq {
		return nil
	}
	now := millis(w.log.opts.Now())
	if now.Before(w.head.Time) {
		now = w.head.Time
	}
	c := w.sign(w.head.Seq, w.head.Hash, now)
	if err := w.write(ctx, nil, []Checkpoint{c}); err != nil {
		w.log.failures.Add(1)
		w.stale = true
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	w.head.CheckpointSeq, w.head.CheckpointTime = c.Seq, c.Time
	w.log.checkpoints.Add(1)
	if w.log.opts.Witness != nil {
		w.unpushed, w.fresh = append(w.unpushed, c), true
	}
	return nil
}
