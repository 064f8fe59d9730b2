package stream

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
)

// recordingStore keeps a copy of every commit; the first one waits for gate.
type recordingStore struct {
	livestore.Store
	gate    func(next map[int32]int64)
	mu      sync.Mutex
	commits []recordedCommit
}

type recordedCommit struct {
	next   map[int32]int64
	states map[string]string
}

func (s *recordingStore) Commit(ctx context.Context, src string, b livestore.Batch) error {
	s.mu.Lock()
	first := len(s.commits) == 0
	c := recordedCommit{next: maps.Clone(b.Next), states: map[string]string{}}
	for k, v := range b.States {
		c.states[k] = string(v)
	}
	s.commits = append(s.commits, c)
	s.mu.Unlock()
	if first {
		s.gate(b.Next)
	}
	return s.Store.Commit(ctx, src, b)
}

// TestPipelinedCommits: while a commit runs, messages go on being applied
// and the next batch gathers them (the first commit is held until a full
// batch more has been applied; the second must then hold that full batch),
// and each commit holds exactly the states of its customers after applying
// every good message before its position, computed here by applying the log
// once more.
func TestPipelinedCommits(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	msgs, evs := testEvents(9, 3000, 50)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	var last uint64
	for _, m := range msgs {
		ack, err := js.Publish(ctx, cfg.Subject, m)
		must(t, err)
		last = ack.Sequence
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	sq, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer sq.Close()
	store := &recordingStore{Store: sq}
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events", BatchSize: 1000})
	must(t, err)
	store.gate = func(next map[int32]int64) {
		want := next[0] - 1 + 1000 // messages processed
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if st := p.Stats(); st.Applied+st.DeadLetters+st.Ignored >= want {
				return
			}
		}
	}
	runUntil(t, p, map[int32]int64{0: int64(last) + 1})

	// Message i has stream sequence i+1.
	if len(store.commits) < 2 || store.commits[1].next[0]-store.commits[0].next[0] != 1000 {
		var pos []int64
		for _, c := range store.commits {
			pos = append(pos, c.next[0])
		}
		t.Fatalf("commits at positions %v: want the second to hold the 1,000 messages applied while the first ran", pos)
	}
	st := map[string]*feature.LiveState{}
	applied := 0     // messages applied to st
	prev := int64(1) // the first sequence
	for k, c := range store.commits {
		pos := c.next[0]
		if pos <= prev || pos > int64(len(msgs))+1 {
			t.Fatalf("commit %d: position %d after %d", k, pos, prev)
		}
		if pos-prev > 1000 {
			t.Errorf("commit %d covers %d messages, more than BatchSize", k, pos-prev)
		}
		for ; applied < int(pos-1); applied++ {
			e := evs[applied]
			if e == nil {
				continue
			}
			s := st[e.Customer]
			if s == nil {
				s = &feature.LiveState{}
				st[e.Customer] = s
			}
			must(t, eng.Apply(s, *e))
		}
		for cust, got := range c.states {
			want, _ := st[cust].MarshalBinary()
			if got != string(want) {
				t.Fatalf("commit %d (position %d): state of %s is not the state after the messages before the position", k, pos, cust)
			}
		}
		prev = pos
	}
	if prev != int64(last)+1 {
		t.Errorf("last commit at %d, want %d", prev, last+1)
	}
	t.Logf("%d messages in %d commits", len(msgs), len(store.commits))
}

// failingStore refuses every commit.
type failingStore struct{ livestore.Store }

func (failingStore) Commit(context.Context, string, livestore.Batch) error {
	return errors.New("disk full")
}

// TestRunAfterFailedCommit: a commit error stops Run with that error, and the
// processor, whose memory is now ahead of the store, refuses to run again
// (a new one, loaded from the store, replays the batch).
func TestRunAfterFailedCommit(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	_, err := js.Publish(ctx, cfg.Subject, []byte(`{"customer":"a","ts":1700000000,"kind":"view"}`))
	must(t, err)
	src, err := NewNATS(nc, cfg)
	must(t, err)
	sq, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer sq.Close()
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: failingStore{sq}, Name: "events"})
	must(t, err)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Run(rctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("run over a failing store: got %v, want the commit's error", err)
	}
	if err := p.Run(rctx); err == nil || !strings.Contains(err.Error(), "make a new Processor") {
		t.Fatalf("second run: got %v, want a refusal", err)
	}
	if pos := p.Position(); pos[0] != 0 {
		t.Errorf("position %v after a failed commit, want nothing committed", pos)
	}
}

// process applies batch as one batch and commits it, on the calling
// goroutine, by the steps Run takes (for tests that drive the processor
// without a source).
func (p *Processor) process(ctx context.Context, batch []Message) error {
	b := newBatch()
	for _, m := range batch {
		if err := p.add(ctx, b, m); err != nil {
			return err
		}
	}
	j, err := p.seal(b)
	if err != nil {
		return err
	}
	return p.commit(ctx, j)
}
