package stream

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSBufferBounded: the ordered consumer buffered up to 500 messages
// of its own (the library's default pull batch) before the processor's byte
// gate saw any of them, so with 1 MiB messages a producer made the client
// hold up to 500 MiB however small Config.MaxQueuedBytes was. Against the
// real server: 160 messages of 128 KiB (20 MiB) and, last, one of nearly
// max_payload wait in the stream; the consumer hands over one message and
// is not read again. The server then delivered all 161; now no more than
// DefaultNATSBufferBytes' worth (8 MiB: 64 of them, besides the one in
// hand). Reading on, every message arrives in order, the large one too (a
// byte limit below a message's size would stall the consumer).
func TestNATSBufferBounded(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	must(t, err)
	const n, size = 160, 128 << 10
	big := int(nc.MaxPayload()) - 4<<10
	for i := range n + 1 {
		data := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		if i == n {
			data = bytes.Repeat([]byte{'Z'}, big)
		}
		_, err := js.Publish(ctx, cfg.Subject, data)
		must(t, err)
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	cctx, cancel := context.WithCancel(ctx)
	out := make(chan Message)
	done := make(chan error, 1)
	go func() { done <- src.Consume(cctx, map[int32]int64{}, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("consume: %v", err)
		}
	}()
	first := <-out
	if first.Offset != 1 {
		t.Fatalf("first message at offset %d, want 1", first.Offset)
	}
	st, err := js.Stream(ctx, cfg.Stream)
	must(t, err)
	delivered := func() uint64 {
		t.Helper()
		var last uint64
		for ci := range st.ListConsumers(ctx).Info() {
			last = max(last, ci.Delivered.Stream)
		}
		return last
	}
	// Wait until the server stops delivering (no change over 30 polls)
	// or has delivered everything.
	var got uint64
	for same := 0; same < 30 && got < n+1; same++ {
		time.Sleep(20 * time.Millisecond)
		if d := delivered(); d != got {
			got, same = d, 0
		}
	}
	t.Logf("delivered to the consumer: %d of %d messages", got, n+1)
	if want := uint64(DefaultNATSBufferBytes/size + 1); got > want {
		t.Errorf("the server delivered %d messages of 128 KiB to a consumer that took one; want at most %d (%d bytes buffered)", got, want, DefaultNATSBufferBytes)
	}
	for want := int64(2); want <= n+1; want++ {
		select {
		case m := <-out:
			if m.Offset != want {
				t.Fatalf("message at offset %d, want %d", m.Offset, want)
			}
			if want == n+1 && len(m.Data) != big {
				t.Fatalf("last message of %d bytes, want %d", len(m.Data), big)
			}
		case err := <-done:
			t.Fatalf("consume ended at offset %d: %v", want, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no message at offset %d after 30 s: the consumer stalled", want)
		}
	}
}

// TestNATSBufferConfig: a byte limit below what one message can take is
// raised (it would stall the consumer), a negative one refused.
func TestNATSBufferConfig(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	floor := 2 * (int(nc.MaxPayload()) + 64<<10)
	for _, tt := range []struct{ set, want int }{{0, max(DefaultNATSBufferBytes, floor)}, {1024, floor}, {64 << 20, 64 << 20}} {
		c := cfg
		c.BufferBytes = tt.set
		src, err := NewNATS(nc, c)
		must(t, err)
		if got := src.bufferBytes(); got != tt.want {
			t.Errorf("BufferBytes %d: pull limit %d, want %d", tt.set, got, tt.want)
		}
	}
	cfg.BufferBytes = -1
	if _, err := NewNATS(nc, cfg); err == nil {
		t.Error("BufferBytes -1: no error")
	}
}
