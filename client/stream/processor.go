package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Config configures a Processor.
type Config struct {
	Source  Source
	Decoder *ingest.MessageDecoder
	Engine  *feature.LiveEngine
	Store   livestore.Store
	// Name keys the source's states and positions in Store.
	Name string
	// Model scores customers; nil keeps states without scores. Its schema
	// must be the engine's.
	Model *hazard.Model
	// Threshold on P(buy within 7 days): a customer whose score crosses it
	// (either way) is published to Changes. Zero publishes nothing.
	Threshold float64
	Changes   Publisher
	// Now is the scoring clock; nil means time.Now. A score is computed at
	// the later of Now and one second after the customer's latest event.
	Now func() time.Time
	// BatchSize bounds the messages per store transaction (default 4096);
	// batches grow to it only while the store is slower than the stream.
	BatchSize int
	// MaxAhead is how far after the broker stored a message
	// (Message.Published) its event may be dated (default 24 h: producers'
	// clocks and zone mistakes; negative for no limit). A later event goes to
	// the dead letter: applied, it would fold the customer's real history
	// (everything more than 368 days before it), make the customer's later
	// out-of-order purchases late (feature.ErrLate) and date the customer's
	// scores in its future. A message without a broker time is not checked.
	// Kafka's record time is the producer's unless the topic sets
	// message.timestamp.type=LogAppendTime, which a merchant whose producers
	// it does not trust should set.
	MaxAhead time.Duration
	// MaxQueuedBytes bounds the message data read from the source and not yet
	// applied (default 64 MiB), besides 17 messages in hand-over; a single
	// larger message still passes.
	MaxQueuedBytes int64
	// Linger is how long a batch smaller than BatchSize may wait, from its
	// first message, for more before it is committed (default 2 ms; negative
	// for none): on a steady stream it turns many one-message transactions
	// into a few larger ones, and adds at most Linger to an event's latency.
	Linger time.Duration
	Logger *slog.Logger
	// OnScored, when set, is called after a message's customer was scored
	// (for the stream benchmark's latency).
	OnScored func(Message)
}

// Processor applies a stream to live states. Run drives it; Score may be
// called concurrently.
type Processor struct {
	cfg  Config
	h7   int // index of 7 days in hazard.Horizons
	mu   sync.RWMutex
	cust map[string]*entry
	next map[int32]int64
	// committed is the position of the last commit.
	committed map[int32]int64
	// Counts since New, read with Stats.
	stats Stats
	// drift, when set, records applied purchases (drift.go).
	drift atomic.Pointer[DriftWatch]
	// running is set while Run runs (a drift watch must start before it).
	running atomic.Bool
	// x and ws are p7's feature and model scratch.
	x  []float64
	ws hazard.Scratch
}

type entry struct {
	st    feature.LiveState
	p7    float64
	score bool // p7 is set
}

// Stats counts what a processor did.
type Stats struct {
	Applied     int64 // events applied to a state
	DeadLetters int64 // messages sent to the dead-letter destination
	Ignored     int64 // messages of an ignored kind
	Changes     int64 // score changes published
	Commits     int64 // store transactions
}

// ScoreChange is the message published when a customer's P(buy within 7 days)
// crosses Config.Threshold.
type ScoreChange struct {
	Customer string    `json:"customer"`
	At       time.Time `json:"at"`
	P7       float64   `json:"p7"`
	Previous float64   `json:"previous"`
	Above    bool      `json:"above"`
}

// New loads the stored states and position of cfg.Name.
func New(ctx context.Context, cfg Config) (*Processor, error) {
	if cfg.Source == nil || cfg.Decoder == nil || cfg.Engine == nil || cfg.Store == nil || cfg.Name == "" {
		return nil, errors.New("new stream processor: source, decoder, engine, store and name are required")
	}
	if cfg.Model != nil && cfg.Model.Schema.Hash != cfg.Engine.Schema().Hash {
		return nil, errors.New("new stream processor: the model's feature schema is not the live engine's")
	}
	if cfg.Threshold < 0 || cfg.Threshold >= 1 {
		return nil, fmt.Errorf("new stream processor: threshold %v outside [0, 1)", cfg.Threshold)
	}
	if cfg.Threshold > 0 && (cfg.Changes == nil || cfg.Model == nil) {
		return nil, errors.New("new stream processor: a threshold needs a model and a destination for changes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4096
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = DefaultMaxAhead
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Processor{cfg: cfg, h7: slices.Index(hazard.Horizons[:], 7), cust: map[string]*entry{}}
	next, err := cfg.Store.Load(ctx, cfg.Name, func(c string, b []byte) error {
		e := &entry{}
		if err := e.st.UnmarshalBinary(b); err != nil {
			return err
		}
		p.cust[c] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("new stream processor: %w", err)
	}
	p.next = next
	p.committed = maps.Clone(next)
	if cfg.Model != nil {
		for c, e := range p.cust {
			if p7, err := p.p7(&e.st); err == nil {
				e.p7, e.score = p7, true
			} else {
				return nil, fmt.Errorf("new stream processor: score %q: %w", c, err)
			}
		}
	}
	return p, nil
}

// Position returns the next offset to read per partition as last committed
// to the store.
func (p *Processor) Position() map[int32]int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return maps.Clone(p.committed)
}

// Stats returns the counts so far.
func (p *Processor) Stats() Stats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stats
}

// Run consumes the source until ctx ends or the source or store fails.
//
// Two goroutines share the work: this one decodes and applies messages, and
// a committer writes batches to the store. While a batch commits, the next
// one gathers every message that arrives (up to Config.BatchSize); when the
// committer is free it takes the gathered batch once the batch is full or
// Config.Linger has passed since its first message, so a batch is one
// message when the stream is quiet, a few milliseconds of messages on a
// steady stream, and grows with the backlog under load (fewer, larger
// transactions, each amortising its page writes). A batch is sealed before
// it is handed over: its customers are re-scored once, their states encoded
// and the position after its last message copied, so the states and the
// position the committer writes in one transaction are exactly those after
// that message. Scores are reported (OnScored) and changes published only
// after their batch committed.
//
// After an error other than ctx's, the in-memory states may hold batches the
// store does not: make a new Processor (New reloads the store) to go on.
func (p *Processor) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("stream %s: already running", p.cfg.Name)
	}
	defer p.running.Store(false)
	if !maps.Equal(p.next, p.Position()) {
		return fmt.Errorf("stream %s: a previous run left applied messages uncommitted: make a new Processor", p.cfg.Name)
	}
	ctx, cancel := context.WithCancel(ctx)
	// The source hands messages to a forwarder, which queues them in in while
	// their data stays within MaxQueuedBytes: in's length alone bounds the
	// count, not the size.
	raw := make(chan Message, rawQueue)
	in := make(chan Message, 4*p.cfg.BatchSize)
	q := newByteGate(p.cfg.MaxQueuedBytes)
	errc := make(chan error, 1)
	jobs := make(chan *commitJob, 1)
	done := make(chan struct{}, 1) // the committer finished a job
	cerr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); errc <- p.cfg.Source.Consume(ctx, p.Position(), raw) }()
	go func() { defer wg.Done(); q.forward(ctx, raw, in) }()
	go func() { defer wg.Done(); cerr <- p.committer(ctx, jobs, done) }()
	defer wg.Wait()
	defer cancel()

	b := newBatch()
	idle := true
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		var lingerC <-chan time.Time
		if idle && b.n > 0 {
			if wait := p.cfg.Linger - time.Since(b.first); b.n < p.cfg.BatchSize && wait > 0 {
				linger.Reset(wait)
				lingerC = linger.C
			} else {
				j, err := p.seal(b)
				if err != nil {
					return err
				}
				jobs <- j
				b, idle = newBatch(), false
			}
		}
		inc := in
		if b.n >= p.cfg.BatchSize {
			inc = nil // full: wait for the committer
		}
		select {
		case m := <-inc:
			q.release(len(m.Data))
			if err := p.add(ctx, b, m); err != nil {
				return err
			}
		drain:
			for b.n < p.cfg.BatchSize {
				select {
				case m := <-in:
					q.release(len(m.Data))
					if err := p.add(ctx, b, m); err != nil {
						return err
					}
				default:
					break drain
				}
			}
		case <-done:
			idle = true
		case <-lingerC:
		case err := <-cerr:
			return err
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rawQueue is how many messages the source may hand over before the byte
// gate's forwarder takes them: a few, so that both goroutines run in bursts
// rather than waking each other for every message.
const rawQueue = 16

// DefaultMaxQueuedBytes is Config.MaxQueuedBytes's default.
const DefaultMaxQueuedBytes = 64 << 20

// byteGate bounds the message data queued between the source and Run.
type byteGate struct {
	mu    sync.Mutex
	n     int64 // bytes queued
	max   int64
	freed chan struct{} // signalled when bytes are released
}

func newByteGate(limit int64) *byteGate {
	return &byteGate{max: limit, freed: make(chan struct{}, 1)}
}

// forward moves messages from raw to in, waiting while in holds max bytes
// (a message larger than max passes alone), until ctx ends.
func (g *byteGate) forward(ctx context.Context, raw <-chan Message, in chan<- Message) {
	for {
		var m Message
		select {
		case m = <-raw:
		case <-ctx.Done():
			return
		}
		if !g.acquire(ctx, len(m.Data)) {
			return
		}
		select {
		case in <- m:
		case <-ctx.Done():
			return
		}
	}
}

func (g *byteGate) acquire(ctx context.Context, size int) bool {
	for {
		g.mu.Lock()
		if g.n == 0 || g.n+int64(size) <= g.max {
			g.n += int64(size)
			g.mu.Unlock()
			return true
		}
		g.mu.Unlock()
		select {
		case <-g.freed:
		case <-ctx.Done():
			return false
		}
	}
}

func (g *byteGate) release(size int) {
	g.mu.Lock()
	g.n -= int64(size)
	g.mu.Unlock()
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// batch is the messages applied since the last sealed batch.
type batch struct {
	first  time.Time           // when its first message was read
	n      int                 // messages
	dirty  map[string]struct{} // customers whose state changed
	scored []Message           // applied messages, for OnScored
	// purchases are those the drift watch keeps, committed with the batch.
	purchases []livestore.Purchase
}

func newBatch() *batch { return &batch{dirty: map[string]struct{}{}} }

// commitJob is a sealed batch: what the committer writes and, after, reports.
type commitJob struct {
	next      map[int32]int64
	states    map[string][]byte
	purchases []livestore.Purchase
	scored    []Message
	changes   []ScoreChange
}

// add decodes and applies message m to the in-memory states, recording it in
// b; a bad message goes to the dead-letter destination.
func (p *Processor) add(ctx context.Context, b *batch, m Message) error {
	if o, ok := p.next[m.Partition]; ok && m.Offset < o {
		return nil // redelivered below the position: already applied
	}
	ev, err := p.cfg.Decoder.Decode(m.Data)
	switch {
	case errors.Is(err, ingest.ErrIgnoredKind):
		p.count(func(s *Stats) { s.Ignored++ })
	case err != nil:
		if err := p.deadLetter(ctx, m, err.Error()); err != nil {
			return err
		}
	default:
		if err := p.checkAhead(ev, m); err != nil {
			if err := p.deadLetter(ctx, m, err.Error()); err != nil {
				return err
			}
			break
		}
		if err := p.apply(ev.Customer, func(e *entry) error { return p.cfg.Engine.Apply(&e.st, ev) }); err != nil {
			if err := p.deadLetter(ctx, m, err.Error()); err != nil {
				return err
			}
			break
		}
		b.dirty[ev.Customer] = struct{}{}
		p.observe(b, ev)
		if p.cfg.OnScored != nil {
			b.scored = append(b.scored, m)
		}
	}
	// Only this goroutine reads or writes next.
	p.next[m.Partition] = m.Offset + 1
	if b.n == 0 {
		b.first = time.Now()
	}
	b.n++
	return nil
}

// DefaultMaxAhead is Config.MaxAhead's default.
const DefaultMaxAhead = 24 * time.Hour

// ErrAhead is the reason of an event dated more than Config.MaxAhead after
// its message was stored.
var ErrAhead = errors.New("event is dated after its message was published")

// checkAhead refuses ev when it is dated more than MaxAhead after m was
// stored by the broker.
func (p *Processor) checkAhead(ev model.Event, m Message) error {
	if p.cfg.MaxAhead < 0 || m.Published.IsZero() {
		return nil
	}
	if ev.Time.After(m.Published.Add(p.cfg.MaxAhead)) {
		return fmt.Errorf("customer %q: event at %s, more than %v after the broker stored the message (%s): %w",
			ev.Customer, ev.Time.UTC().Format(time.RFC3339), p.cfg.MaxAhead, m.Published.UTC().Format(time.RFC3339), ErrAhead)
	}
	return nil
}

// seal re-scores b's customers once each and encodes their states with the
// position after b's last message.
func (p *Processor) seal(b *batch) (*commitJob, error) {
	j := &commitJob{next: maps.Clone(p.next), states: make(map[string][]byte, len(b.dirty)), purchases: b.purchases, scored: b.scored}
	for c := range b.dirty {
		if p.cfg.Model != nil {
			if ch, ok := p.rescore(c); ok {
				j.changes = append(j.changes, ch)
			}
		}
		p.mu.RLock()
		enc, err := p.cust[c].st.MarshalBinary()
		p.mu.RUnlock()
		if err != nil {
			return nil, fmt.Errorf("stream %s: encode state of %q: %w", p.cfg.Name, c, err)
		}
		j.states[c] = enc
	}
	return j, nil
}

// committer commits each job and signals done.
func (p *Processor) committer(ctx context.Context, jobs <-chan *commitJob, done chan<- struct{}) error {
	for {
		var j *commitJob
		select {
		case j = <-jobs:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := p.commit(ctx, j); err != nil {
			return err
		}
		done <- struct{}{}
	}
}

// commit writes j to the store in one transaction, then reports its scores
// and publishes its changes.
func (p *Processor) commit(ctx context.Context, j *commitJob) error {
	if err := p.cfg.Store.Commit(ctx, p.cfg.Name, livestore.Batch{Next: j.next, States: j.states, Purchases: j.purchases}); err != nil {
		return fmt.Errorf("stream %s: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	p.stats.Commits++
	p.committed = j.next
	p.mu.Unlock()
	for _, m := range j.scored {
		p.cfg.OnScored(m)
	}
	for _, ch := range j.changes {
		b, _ := json.Marshal(ch)
		if err := p.retry(ctx, func() error { return p.cfg.Changes.Publish(ctx, b) }); err != nil {
			return err
		}
		p.count(func(s *Stats) { s.Changes++ })
	}
	return nil
}

func (p *Processor) count(f func(*Stats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// apply runs fn on customer c's entry (created if new), leaving the entry
// unchanged when fn fails.
func (p *Processor) apply(c string, fn func(*entry) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.cust[c]
	isNew := e == nil
	if isNew {
		e = &entry{}
	}
	if err := fn(e); err != nil {
		return err
	}
	if isNew {
		p.cust[c] = e
	}
	p.stats.Applied++
	return nil
}

// rescore scores customer c once after a batch and reports a crossing of the
// threshold since the previous score.
func (p *Processor) rescore(c string) (ScoreChange, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.cust[c]
	p7, err := p.p7(&e.st)
	if err != nil {
		// A model that cannot score a valid state is a configuration fault,
		// not a bad message; the events stay applied. The customer's raw id
		// stays out of the log, which may be shipped off the merchant's
		// machine (the fault is the model's, the same for every customer).
		p.cfg.Logger.Error("score: the model cannot score a customer's live state", "err", err)
		return ScoreChange{}, false
	}
	prev, had := e.p7, e.score
	e.p7, e.score = p7, true
	t := p.cfg.Threshold
	if t > 0 && (!had && e.p7 >= t || had && (prev < t) != (e.p7 < t)) {
		return ScoreChange{Customer: c, At: p.scoreTime(&e.st), P7: e.p7, Previous: prev, Above: e.p7 >= t}, true
	}
	return ScoreChange{}, false
}

func (p *Processor) scoreTime(st *feature.LiveState) time.Time {
	now := p.cfg.Now()
	if l, ok := st.Latest(); ok && !now.After(l) {
		return l.Add(time.Second)
	}
	return now
}

// p7 is st's P(buy within 7 days) now, computed in p.x and p.ws (so only
// the goroutine that applies messages, or New, may call it). It is
// Model.Within, bit-identical to Predict(x).Within[h7] (what Score serves)
// without building the 30-day curve, which cost the stream about an eighth of
// its CPU (docs/benchmarks.md).
func (p *Processor) p7(st *feature.LiveState) (float64, error) {
	x, err := p.cfg.Engine.Features(st, p.scoreTime(st), p.x)
	if err != nil {
		return 0, err
	}
	p.x = x
	return p.cfg.Model.Within(x, hazard.Horizons[p.h7], &p.ws)
}

// ErrUnknownCustomer is returned by Score for a customer without events.
var ErrUnknownCustomer = errors.New("no events for this customer")

// Score returns customer c's prediction now (Config.Now) and the time it is
// computed at.
func (p *Processor) Score(c string) (hazard.Prediction, time.Time, error) {
	if p.cfg.Model == nil {
		return hazard.Prediction{}, time.Time{}, errors.New("score: no model")
	}
	p.mu.RLock()
	e := p.cust[c]
	if e == nil {
		p.mu.RUnlock()
		return hazard.Prediction{}, time.Time{}, ErrUnknownCustomer
	}
	at := p.scoreTime(&e.st)
	x, err := p.cfg.Engine.Features(&e.st, at, nil)
	p.mu.RUnlock()
	if err != nil {
		return hazard.Prediction{}, time.Time{}, fmt.Errorf("score %q: %w", c, err)
	}
	pr, err := p.cfg.Model.Predict(x)
	if err != nil {
		return hazard.Prediction{}, time.Time{}, fmt.Errorf("score %q: %w", c, err)
	}
	return pr, at, nil
}

// deadLetter sends m to the dead-letter destination, retrying until it
// succeeds or ctx ends. The reason is cut to MaxDeadReasonBytes.
func (p *Processor) deadLetter(ctx context.Context, m Message, reason string) error {
	reason = boundReason(reason)
	if err := p.retry(ctx, func() error { return p.cfg.Source.DeadLetter(ctx, m, reason) }); err != nil {
		return err
	}
	p.count(func(s *Stats) { s.DeadLetters++ })
	return nil
}

func (p *Processor) retry(ctx context.Context, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		p.cfg.Logger.Warn("stream publish failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
