package stream

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kairos-fl/kairos/client/livestore"
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
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(t, err)
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: st, Name: "events"})
	must(t, err)
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "dead"))
	must(t, err)
	defer c.Close()
	brokers := c.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("events"), kgo.ProducerBatchMaxBytes(1_048_576))
	must(t, err)
	defer prod.Close()
	ctx := context.Background()
	big := `not json` + strings.Repeat(" ", 1_040_000)
	for _, m := range []string{big, `{"customer":"bob","ts":1717000000,"kind":"view"}`} {
		must(t, prod.ProduceSync(ctx, &kgo.Record{Value: []byte(m)}).FirstErr())
	}
	src, err := NewKafka(KafkaConfig{Brokers: brokers, Topic: "events", DeadLetter: "dead"})
	must(t, err)
	defer src.Close()
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer st.Close()
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(t, err)
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: st, Name: "events"})
	must(t, err)
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
