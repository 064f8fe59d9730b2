package stream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// TestOversizeDeadLetterDoesNotStopStream (review round 4): a bad message
// whose dead letter did not fit the broker's payload limit stopped the live
// path for good. The dead-letter publish is retried until it succeeds, and it
// never could: NATS refuses a message over max_payload (1 MiB by default)
// before sending it. Two ways to get there from the events subject: a
// message just under the limit (the dead letter adds its headers), and a
// bad customer id of 400 kB, which the reason quoted twice (800 kB of
// header). Each restart re-read the same message and stopped on it again.
// Now the reason is at most MaxDeadReasonBytes and a body that does not fit
// is cut, with its original length in a header; the good event after each
// bad one is applied.
func TestOversizeDeadLetterDoesNotStopStream(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	must(t, err)
	limit := int(nc.MaxPayload())
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(n-len(s), 0)) }
	bigBody := pad(`not json`, limit-16)                                                            // bad JSON, fits the events subject alone
	blanks := `{"customer":" ` + strings.Repeat("a", 400_000) + ` ","ts":1717000000,"kind":"view"}` // reason quotes it twice
	msgs := []string{
		bigBody,
		`{"customer":"bob","ts":1717000000,"kind":"view"}`,
		blanks,
		`{"customer":"carol","ts":1717000001,"kind":"view"}`,
	}
	for i, m := range msgs {
		if _, err := js.Publish(ctx, cfg.Subject, []byte(m)); err != nil {
			t.Fatalf("publish message %d (%d bytes): %v", i, len(m), err)
		}
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	p, _ := sqliteProcessor(t, src, nil)
	runUntil(t, p, map[int32]int64{0: 5}) // sequences 1–4: next is 5

	if s := p.Stats(); s.Applied != 2 || s.DeadLetters != 2 {
		t.Errorf("applied %d, dead letters %d; want 2 and 2", s.Applied, s.DeadLetters)
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{cfg.DeadLetter}})
	must(t, err)
	for i, want := range []struct {
		offset string
		body   string
	}{{"1", bigBody}, {"3", blanks}} {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
		h := m.Headers()
		if got := h.Get(HeaderOffset); got != want.offset {
			t.Errorf("dead letter %d: offset %q, want %s", i, got, want.offset)
		}
		reason := h.Get(HeaderReason)
		if reason == "" || len(reason) > MaxDeadReasonBytes {
			t.Errorf("dead letter %d: reason of %d bytes, want 1–%d", i, len(reason), MaxDeadReasonBytes)
		}
		body := string(m.Data())
		if !strings.HasPrefix(want.body, body) {
			t.Errorf("dead letter %d: body is not a prefix of the message", i)
		}
		if tr := h.Get(HeaderTruncated); len(body) < len(want.body) && tr != strconv.Itoa(len(want.body)) {
			t.Errorf("dead letter %d: body cut to %d bytes, %s header %q, want %d", i, len(body), HeaderTruncated, tr, len(want.body))
		}
		if len(body) == len(want.body) && h.Get(HeaderTruncated) != "" {
			t.Errorf("dead letter %d: whole body marked truncated", i)
		}
	}
}

// TestOversizeDeadLetterKafka is TestOversizeDeadLetterDoesNotStopStream on
// Kafka (kfake): the producer refuses a record over ProducerBatchMaxBytes
// (1,000,012 bytes by default) before sending it, so a 1,040,000-byte bad
// message (which a topic with the broker's default limit holds) could never
// be dead-lettered and stopped the stream.
func TestOversizeDeadLetterKafka(t *testing.T) {
	ctx := context.Background()
	big := `not json` + strings.Repeat(" ", 1_040_000)
	brokers := kfakeEvents(t, []string{"events", "dead"}, []string{big, `{"customer":"bob","ts":1717000000,"kind":"view"}`})
	src, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "events", DeadLetter: "dead"})
	must(t, err)
	defer src.Close()
	p, _ := sqliteProcessor(t, src, nil)
	runUntil(t, p, map[int32]int64{0: 2})
	if s := p.Stats(); s.Applied != 1 || s.DeadLetters != 1 {
		t.Errorf("applied %d, dead letters %d; want 1 and 1", s.Applied, s.DeadLetters)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("dead"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(4<<20))
	must(t, err)
	defer cons.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got *kgo.Record
	for got == nil && pctx.Err() == nil {
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = r })
	}
	if got == nil {
		t.Fatal("no dead letter")
	}
	if !strings.HasPrefix(big, string(got.Value)) || len(got.Value) >= len(big) {
		t.Errorf("dead letter body of %d bytes, want a cut prefix of the %d-byte message", len(got.Value), len(big))
	}
	var tr string
	for _, h := range got.Headers {
		if h.Key == HeaderTruncated {
			tr = string(h.Value)
		}
	}
	if tr != strconv.Itoa(len(big)) {
		t.Errorf("%s header %q, want %d", HeaderTruncated, tr, len(big))
	}
}

// TestFarFutureEventDeadLettered (review round 4): one message dated far
// after it was published poisoned its customer's live state for good. A
// purchase in 2099 made every real purchase more than 368 days older, so
// the state folded them, and a later real purchase of that customer dated
// before the latest folded one (an ordinary out-of-order event) was refused
// as late (feature.ErrLate) and dead-lettered; the customer was
// scored as of 2099. Now an event more than Config.MaxAhead (default 24 h)
// after the broker stored its message is dead-lettered, naming both times,
// and the state is that of the real events alone.
func TestFarFutureEventDeadLettered(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	src := &deadSource{}
	p, st := sqliteProcessor(t, src, func(c *Config) {
		c.Model, c.Now = recencyModel(t, c.Engine.Schema()), func() time.Time { return now }
	})
	eng := p.cfg.Engine
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, time.UTC) }
	msg := func(off int64, at, published time.Time) Message {
		return Message{Offset: off, Published: published,
			Data: fmt.Appendf(nil, `{"customer":"alice","ts":%d,"kind":"purchase","amount":10}`, at.Unix())}
	}
	real := []time.Time{day(2024, 5, 1), day(2024, 5, 20), day(2024, 5, 15)} // out of order, as a stream may be
	batch := []Message{
		msg(0, real[0], real[0]),
		msg(1, real[1], real[1]),
		msg(2, day(2099, 1, 1), now), // published now, dated 2099
		msg(3, real[2], real[2]),
		// Within MaxAhead of its broker time (a producer's clock a few
		// hours fast) is applied.
		{Offset: 4, Published: now, Data: fmt.Appendf(nil, `{"customer":"bob","ts":%d,"kind":"view"}`, now.Add(3*time.Hour).Unix())},
		{Offset: 5, Published: now, Data: fmt.Appendf(nil, `{"customer":"carol","ts":%d,"kind":"view"}`, now.Add(30*24*time.Hour).Unix())},
	}
	must(t, p.process(ctx, batch))
	if len(src.dead) != 2 || !strings.Contains(src.dead[0], "2099-01-01") || !strings.Contains(src.dead[1], now.Add(30*24*time.Hour).Format(time.RFC3339)) {
		t.Fatalf("dead letters %q; want the 2099 purchase and carol's view a month ahead, naming their times", src.dead)
	}
	var want feature.LiveState
	for _, at := range real {
		must(t, eng.Apply(&want, model.Event{Customer: "alice", Time: at, Kind: model.Purchase, Amount: 10, HasAmount: true}))
	}
	wantB, _ := want.MarshalBinary()
	var got []byte
	_, err := st.Load(ctx, "events", func(c string, b []byte) error {
		if c == "alice" {
			got = b
		}
		return nil
	})
	must(t, err)
	if string(got) != string(wantB) {
		t.Errorf("alice's stored state is not that of her three real purchases")
	}
	if _, at, err := p.Score("alice"); err != nil || !at.Equal(now) {
		t.Errorf("alice scored at %v (%v), want %v", at, err, now)
	}
	if _, _, err := p.Score("bob"); err != nil {
		t.Errorf("bob, 3 h ahead of the clock: %v; want applied", err)
	}
}

// TestLongCustomerDeadLettered (review round 4): a stream message's customer
// id had no length limit below the message's (1 MiB). On PostgreSQL the live
// store keys states by (source, customer) in a B-tree, whose entries hold at
// most 2,704 bytes: an 8,000-character customer id failed the commit ("index
// row size exceeds btree maximum"), the stream stopped, and every restart
// stopped on the same message, as with the NUL id (session 18). On SQLite
// it was stored, and every drift snapshot repeated it. Now a customer id
// over ingest.MaxMessageCustomerBytes goes to the dead letter, naming the
// field and the limit; the batch's other events are committed.
func TestLongCustomerDeadLettered(t *testing.T) {
	var raw [6000]byte
	r := rand.New(rand.NewPCG(4, 4))
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	long := base64.RawURLEncoding.EncodeToString(raw[:]) // 8,000 characters that do not compress
	badCustomerDeadLettered(t, fmt.Appendf(nil, `{"customer":%q,"ts":1717000001,"kind":"purchase","amount":3}`, long),
		`"customer"`, strconv.Itoa(ingest.MaxMessageCustomerBytes))
}

// floodSource sends one bad message, then n messages of size bytes each,
// counting those out took; its dead-letter publish blocks until release is
// closed (a broker that is down for the dead-letter subject).
type floodSource struct {
	n, size int
	sent    atomic.Int64
	release chan struct{}
}

func (s *floodSource) Consume(ctx context.Context, _ map[int32]int64, out chan<- Message) error {
	msgs := []Message{{Offset: 0, Data: []byte(`not json`)}}
	for i := range s.n {
		pad := strings.Repeat(" ", s.size)
		msgs = append(msgs, Message{Offset: int64(i + 1), Data: fmt.Appendf(nil, `{"customer":"c%d","ts":1717000000,"kind":"view"}%s`, i, pad)})
	}
	for _, m := range msgs {
		select {
		case out <- m:
			s.sent.Add(1)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *floodSource) DeadLetter(ctx context.Context, _ Message, _ string) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestQueuedBytesBounded (review round 4): the messages a processor had read
// but not yet applied were bounded by count only (four batches: 16,384
// messages), not by size. While the processor waited (a dead letter being
// retried, a slow commit) the source filled the queue, so a producer
// flooding the stream with 1 MiB messages made the client hold 16 GiB and
// be killed for memory, and again on every restart. Now the queue also
// holds at most Config.MaxQueuedBytes (default 64 MiB) of message data:
// here 1 MiB, so at most 16 messages of 64 KiB wait (one more is in hand,
// and rawQueue in the hand-over to the gate).
func TestQueuedBytesBounded(t *testing.T) {
	ctx := context.Background()
	src := &floodSource{n: 300, size: 64 << 10, release: make(chan struct{})}
	p, _ := sqliteProcessor(t, src, func(c *Config) { c.MaxQueuedBytes = 1 << 20 })
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	time.Sleep(300 * time.Millisecond) // the dead letter blocks; the source floods
	// The bad message is being dead-lettered; 16 of 64 KiB fill 1 MiB,
	// the forwarding goroutine holds one more and the hand-over queue
	// rawQueue.
	if want := int64(1 + 16 + 1 + rawQueue); src.sent.Load() > want {
		t.Errorf("the source handed over %d messages of 64 KiB while the processor waited; want at most %d (1 MiB queued)", src.sent.Load(), want)
	}
	close(src.release)
	runUntilDone := time.Now().Add(30 * time.Second)
	for p.Position()[0] < 301 && time.Now().Before(runUntilDone) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v", err)
	}
	if s := p.Stats(); s.Applied != 300 || s.DeadLetters != 1 {
		t.Errorf("applied %d, dead letters %d; want 300 and 1", s.Applied, s.DeadLetters)
	}
}

// TestNATSDeadLetterUncaptured (review round 4): a dead-letter subject that
// no JetStream stream captures (an operator's typo, or a stream created for
// the events only) went unnoticed until the first bad message, whose
// publish then failed ("no responders") and was retried for ever: the live
// path stopped with nothing but a repeated warning. Now Run fails at once,
// naming the subject.
func TestNATSDeadLetterUncaptured(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	cfg.DeadLetter += ".typo"
	ctx := context.Background()
	js, err := jetstream.New(nc)
	must(t, err)
	for _, m := range []string{`not json`, `{"customer":"bob","ts":1717000000,"kind":"view"}`} {
		_, err := js.Publish(ctx, cfg.Subject, []byte(m))
		must(t, err)
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	p, _ := sqliteProcessor(t, src, nil)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p.Run(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), cfg.DeadLetter) {
		t.Fatalf("run with an uncaptured dead-letter subject: %v; want an error naming %s at once", err, cfg.DeadLetter)
	}
}

// TestKafkaDeadLetterTopicMissing is TestNATSDeadLetterUncaptured on Kafka
// (kfake): a dead-letter topic that does not exist was noticed only at the
// first bad message, whose produce was then retried for ever. Now Run fails
// at once, naming the topic.
func TestKafkaDeadLetterTopicMissing(t *testing.T) {
	ctx := context.Background()
	brokers := kfakeEvents(t, []string{"events"}, []string{`not json`, `{"customer":"bob","ts":1717000000,"kind":"view"}`})
	src, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "events", DeadLetter: "dead-typo"})
	must(t, err)
	defer src.Close()
	p, _ := sqliteProcessor(t, src, nil)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p.Run(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "dead-typo") {
		t.Fatalf("run with a missing dead-letter topic: %v; want an error naming dead-typo at once", err)
	}
}

// TestKafkaTimeUnknown: a Kafka record without a time (-1, or before 1970)
// gives a message without a broker time, which MaxAhead does not check,
// rather than one stored in 1969 before which every event would be ahead.
func TestKafkaTimeUnknown(t *testing.T) {
	for _, ms := range []int64{-1, 0, -86_400_000} {
		if got := kafkaTime(&kgo.Record{Timestamp: time.UnixMilli(ms)}); !got.IsZero() {
			t.Errorf("record time %d ms: broker time %v, want none", ms, got)
		}
	}
	at := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	if got := kafkaTime(&kgo.Record{Timestamp: at}); !got.Equal(at) {
		t.Errorf("record time %v: broker time %v", at, got)
	}
}

// sqliteProcessor is a processor of source "events" over src on a fresh
// SQLite live store, closed when t ends; mod, when set, changes its
// configuration first.
func sqliteProcessor(t *testing.T, src Source, mod func(*Config)) (*Processor, livestore.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	t.Cleanup(func() { _ = st.Close() })
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(t, err)
	cfg := Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: st, Name: "events"}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(ctx, cfg)
	must(t, err)
	return p, st
}

// kfakeEvents starts a one-broker kfake cluster, closed when t ends, with
// topics of one partition, produces msgs to "events" (records up to 1 MiB)
// and returns the brokers.
func kfakeEvents(t *testing.T, topics, msgs []string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	must(t, err)
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("events"), kgo.ProducerBatchMaxBytes(1_048_576))
	must(t, err)
	defer prod.Close()
	for _, m := range msgs {
		must(t, prod.ProduceSync(context.Background(), &kgo.Record{Value: []byte(m)}).FirstErr())
	}
	return brokers
}

// TestNATSPositionPastStream (review round 4): a JetStream stream deleted and
// created again (a lost NATS data directory, an operator's reset) numbers
// its messages from 1 again, but the live store still held the old
// position: the consumer asked for sequence 4 of a stream that had 2 and
// waited without a word, silently skipping every new event until the new
// stream passed the old position. Now Run fails at once, naming both.
func TestNATSPositionPastStream(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	must(t, err)
	publish := func(customers ...string) {
		for _, c := range customers {
			_, err := js.Publish(ctx, cfg.Subject, fmt.Appendf(nil, `{"customer":%q,"ts":1717000000,"kind":"view"}`, c))
			must(t, err)
		}
	}
	publish("a", "b", "c")
	src, err := NewNATS(nc, cfg)
	must(t, err)
	p, st := sqliteProcessor(t, src, nil)
	runUntil(t, p, map[int32]int64{0: 4})

	must(t, js.DeleteStream(ctx, cfg.Stream))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.Subject, cfg.DeadLetter}, Storage: jetstream.MemoryStorage})
	must(t, err)
	publish("d", "e")
	p2, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: p.cfg.Engine, Store: st, Name: "events"})
	must(t, err)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p2.Run(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sequence 4") || !strings.Contains(err.Error(), "last sequence is 2") {
		t.Fatalf("run at position 4 on a stream of 2 messages: %v; want an error naming both at once", err)
	}
}

// TestKafkaPositionPastTopic is TestNATSPositionPastStream on Kafka: a topic
// created again numbers its offsets from 0; with the old stored position,
// franz-go reset the out-of-range start to the beginning and the processor
// skipped every new message as already applied, without a word. Now Run
// fails at once, naming the partition, the stored offset and the topic's end.
func TestKafkaPositionPastTopic(t *testing.T) {
	ctx := context.Background()
	view := func(c string) string { return fmt.Sprintf(`{"customer":%q,"ts":1717000000,"kind":"view"}`, c) }
	brokers := kfakeEvents(t, []string{"events", "dead"}, []string{view("a"), view("b"), view("c")})
	src, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "events", DeadLetter: "dead"})
	must(t, err)
	defer src.Close()
	p, st := sqliteProcessor(t, src, nil)
	runUntil(t, p, map[int32]int64{0: 3})

	brokers2 := kfakeEvents(t, []string{"events", "dead"}, []string{view("d"), view("e")}) // the topic created again
	src2, err := NewKafka(KafkaConfig{Brokers: brokers2, Topic: "events", DeadLetter: "dead"})
	must(t, err)
	defer src2.Close()
	p2, err := New(ctx, Config{Source: src2, Decoder: testDecoder(t), Engine: p.cfg.Engine, Store: st, Name: "events"})
	must(t, err)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p2.Run(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "offset 3") || !strings.Contains(err.Error(), "ends at 2") {
		t.Fatalf("run at offset 3 on a topic of 2 records: %v (applied %d); want an error naming both at once", err, p2.Stats().Applied)
	}
}
