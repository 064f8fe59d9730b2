package stream

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
)

// runUntil runs p until its position covers want (partition → next offset),
// then stops it.
func runUntil(t *testing.T, p *Processor, want map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		pos, ok := p.Position(), true
		for k, v := range want {
			ok = ok && pos[k] >= v
		}
		if ok {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("processor stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("position %v did not reach %v", pos, want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
}

// TestKafkaKfake runs the pipeline against franz-go's in-process kfake
// cluster (no Kafka broker runs here): a three-partition topic keyed by
// customer, bad messages among the events, a stop and a restart on the same
// store half way; the stored states are those of applying every good event
// once, and every bad message is on the dead-letter topic with its reason.
func TestKafkaKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "events", "dead"))
	must(t, err)
	defer c.Close()
	brokers := c.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("events"))
	must(t, err)
	defer prod.Close()
	ctx := context.Background()
	msgs, evs := testEvents(9, 3000, 30)
	want := map[int32]int64{}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			key := []byte("bad")
			if evs[i] != nil {
				key = []byte(evs[i].Customer)
			}
			r, err := prod.ProduceSync(ctx, &kgo.Record{Key: key, Value: msgs[i]}).First()
			must(t, err)
			want[r.Partition] = r.Offset + 1
		}
	}
	src, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "events", DeadLetter: "dead"})
	must(t, err)
	defer src.Close()
	store, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer store.Close()
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	newProc := func() *Processor {
		p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events", BatchSize: 64})
		must(t, err)
		return p
	}
	half := len(msgs) / 2
	produce(0, half)
	runUntil(t, newProc(), want)
	produce(half, len(msgs))
	p := newProc()
	runUntil(t, p, want)
	if got := p.Stats().DeadLetters; got != int64(badCount(evs[half:])) {
		t.Errorf("dead letters after the restart: got %d, want %d", got, badCount(evs[half:]))
	}

	got := map[string]string{}
	_, err = store.Load(ctx, "events", func(c string, b []byte) error { got[c] = string(b); return nil })
	must(t, err)
	compareStates(t, got, referenceStates(t, eng, evs))

	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	must(t, err)
	defer cons.Close()
	dead, reasons := 0, 0
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for dead < badCount(evs) && pctx.Err() == nil {
		fs := cons.PollFetches(pctx)
		fs.EachRecord(func(r *kgo.Record) {
			dead++
			for _, h := range r.Headers {
				if h.Key == HeaderReason && len(h.Value) > 0 {
					reasons++
				}
			}
		})
	}
	if dead != badCount(evs) || reasons != dead {
		t.Errorf("dead-letter topic: %d records, %d with a reason; want %d each", dead, reasons, badCount(evs))
	}
}
