package stream

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
)

// TestLatePurchaseDeadLettered: a purchase on a day the customer's live state
// has already folded (more than 368 days before the latest event) goes to the
// dead-letter subject with feature.ErrLate's reason, the customer's state is
// unchanged, and the stream goes on to the next event.
func TestLatePurchaseDeadLettered(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	t0 := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	day := int64(86400)
	js, _ := jetstream.New(nc)
	var last uint64
	for _, d := range []int64{0, 10, 500, 5, 501} { // day 5 is late once day 500 folded days 0 and 10
		ack, err := js.Publish(ctx, cfg.Subject, fmt.Appendf(nil, `{"customer":"a","ts":%d,"kind":"purchase","amount":1}`, t0+d*day))
		must(t, err)
		last = ack.Sequence
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	store, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer store.Close()
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events"})
	must(t, err)
	runUntil(t, p, map[int32]int64{0: int64(last) + 1})
	if st := p.Stats(); st.Applied != 4 || st.DeadLetters != 1 {
		t.Errorf("applied %d, dead letters %d; want 4, 1", st.Applied, st.DeadLetters)
	}
	s, err := js.Stream(ctx, cfg.Stream)
	must(t, err)
	dl, err := s.GetLastMsgForSubject(ctx, cfg.DeadLetter)
	must(t, err)
	if r := dl.Header.Get(HeaderReason); !strings.Contains(r, feature.ErrLate.Error()) || dl.Header.Get(HeaderOffset) != "4" {
		t.Errorf("dead letter: reason %q offset %q; want ErrLate's reason at offset 4", r, dl.Header.Get(HeaderOffset))
	}
}
