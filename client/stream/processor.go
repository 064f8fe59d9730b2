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
	// BatchSize bounds the messages per store transaction (default 512).
	BatchSize int
	Logger    *slog.Logger
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
		cfg.BatchSize = 512
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
			if pr, err := p.predict(&e.st); err == nil {
				e.p7, e.score = pr.Within[p.h7], true
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
// Messages are applied in batches; each batch ends in one store transaction.
// After an error other than ctx's, the in-memory states may hold a batch the
// store does not: make a new Processor (New reloads the store) to go on.
func (p *Processor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan Message, 4*p.cfg.BatchSize)
	errc := make(chan error, 1)
	go func() { errc <- p.cfg.Source.Consume(ctx, p.Position(), in) }()
	batch := make([]Message, 0, p.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case m := <-in:
			batch = append(batch, m)
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case m := <-in:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := p.process(ctx, batch); err != nil {
			return err
		}
	}
}

// process applies one batch and commits it.
func (p *Processor) process(ctx context.Context, batch []Message) error {
	dirty := map[string]bool{}
	var changes []ScoreChange
	var scored []Message
	for _, m := range batch {
		if o, ok := p.next[m.Partition]; ok && m.Offset < o {
			continue // redelivered below the position: already applied
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
			if err := p.apply(ev.Customer, func(e *entry) error { return p.cfg.Engine.Apply(&e.st, ev) }); err != nil {
				if err := p.deadLetter(ctx, m, err.Error()); err != nil {
					return err
				}
				break
			}
			dirty[ev.Customer] = true
			p.observe(ev)
			if p.cfg.OnScored != nil {
				scored = append(scored, m)
			}
		}
		p.mu.Lock()
		p.next[m.Partition] = m.Offset + 1
		p.mu.Unlock()
	}
	if p.cfg.Model != nil {
		for c := range dirty {
			if ch, ok := p.rescore(c); ok {
				changes = append(changes, ch)
			}
		}
	}
	states := make(map[string][]byte, len(dirty))
	p.mu.RLock()
	for c := range dirty {
		b, err := p.cust[c].st.MarshalBinary()
		if err != nil {
			p.mu.RUnlock()
			return fmt.Errorf("encode state of %q: %w", c, err)
		}
		states[c] = b
	}
	next := maps.Clone(p.next)
	p.mu.RUnlock()
	if err := p.cfg.Store.Commit(ctx, p.cfg.Name, next, states); err != nil {
		return fmt.Errorf("stream %s: %w", p.cfg.Name, err)
	}
	p.mu.Lock()
	p.stats.Commits++
	p.committed = next
	p.mu.Unlock()
	for _, m := range scored {
		p.cfg.OnScored(m)
	}
	for _, ch := range changes {
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
	pr, err := p.predict(&e.st)
	if err != nil {
		// A model that cannot score a valid state is a configuration fault,
		// not a bad message; the events stay applied.
		p.cfg.Logger.Error("score", "customer", c, "err", err)
		return ScoreChange{}, false
	}
	prev, had := e.p7, e.score
	e.p7, e.score = pr.Within[p.h7], true
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

func (p *Processor) predict(st *feature.LiveState) (hazard.Prediction, error) {
	x, err := p.cfg.Engine.Features(st, p.scoreTime(st), nil)
	if err != nil {
		return hazard.Prediction{}, err
	}
	return p.cfg.Model.Predict(x)
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
// succeeds or ctx ends.
func (p *Processor) deadLetter(ctx context.Context, m Message, reason string) error {
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
