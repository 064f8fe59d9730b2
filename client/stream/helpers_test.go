package stream

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// natsURL is the test server: KAIROS_TEST_NATS_URL or the machine's local
// JetStream server.
func natsURL() string {
	if u := os.Getenv("KAIROS_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// natsConn connects to the test server; without one the test is skipped,
// except under CI=true, where it fails.
func natsConn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS at %s: %v (CI=true: the stream tests must run)", natsURL(), err)
		}
		t.Skipf("no NATS server at %s: %v", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testStream creates a JetStream stream with a unique name capturing an
// events subject and a dead-letter subject, deleted when t ends.
func testStream(t testing.TB, nc *nats.Conn) NATSConfig {
	t.Helper()
	var b [6]byte
	_, _ = crand.Read(b[:])
	id := hex.EncodeToString(b[:])
	cfg := NATSConfig{Stream: "KAIROS_TEST_" + id, Subject: "kairos.test." + id + ".events", DeadLetter: "kairos.test." + id + ".dead"}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{cfg.Subject, cfg.DeadLetter}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), cfg.Stream) })
	return cfg
}

func testMapping() *ingest.Mapping {
	return &ingest.Mapping{Header: true, Customer: ingest.Column{Name: "customer"}, Time: ingest.Column{Name: "ts"},
		TimeLayout: ingest.LayoutUnix, Kind: ingest.Column{Name: "kind"}, Amount: ingest.Column{Name: "amount"}}
}

func testDecoder(t testing.TB) *ingest.MessageDecoder {
	t.Helper()
	d, err := ingest.NewMessageDecoder(testMapping(), ingest.MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testEvents is a log of n events over about two years for the given number
// of customers, in time order with a few hours' jitter (out of order), as
// JSON messages, with a bad message after every 97th event. It returns the
// messages and, in the same order, the events of the good ones (nil for bad).
func testEvents(seed uint64, n, customers int) ([][]byte, []*model.Event) {
	r := rand.New(rand.NewPCG(seed, 11))
	start := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	span := int64(2 * 365 * 86400)
	var msgs [][]byte
	var evs []*model.Event
	kinds := []string{"view", "view", "cart", "favorite", "purchase"}
	for i := range n {
		ts := start + span*int64(i)/int64(n) + r.Int64N(6*3600)
		e := model.Event{Customer: "c" + strconv.Itoa(r.IntN(customers)), Time: time.Unix(ts, 0).UTC()}
		k := kinds[r.IntN(len(kinds))]
		obj := map[string]any{"customer": e.Customer, "ts": ts, "kind": k}
		switch k {
		case "view":
			e.Kind = model.View
		case "cart":
			e.Kind = model.Cart
		case "favorite":
			e.Kind = model.Favorite
		default:
			e.Kind = model.Purchase
			e.Amount, e.HasAmount = float64(r.IntN(10000))/100, true
			obj["amount"] = e.Amount
		}
		b, _ := json.Marshal(obj)
		msgs = append(msgs, b)
		evs = append(evs, &e)
		if i%97 == 96 {
			bad := [][]byte{[]byte(`{"customer":"x","ts":"soon","kind":"view"}`), []byte(`not json`), []byte(`{"customer":"x","ts":1,"kind":"refund"}`)}[i%3]
			msgs = append(msgs, bad)
			evs = append(evs, nil)
		}
	}
	return msgs, evs
}

// referenceStates applies the good events once, in order, to fresh states,
// and returns each customer's encoding.
func referenceStates(t testing.TB, eng *feature.LiveEngine, evs []*model.Event) map[string]string {
	t.Helper()
	st := map[string]*feature.LiveState{}
	for _, e := range evs {
		if e == nil {
			continue
		}
		s := st[e.Customer]
		if s == nil {
			s = &feature.LiveState{}
			st[e.Customer] = s
		}
		if err := eng.Apply(s, *e); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	for c, s := range st {
		b, _ := s.MarshalBinary()
		out[c] = string(b)
	}
	return out
}

func badCount(evs []*model.Event) int {
	n := 0
	for _, e := range evs {
		if e == nil {
			n++
		}
	}
	return n
}

func compareStates(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("stored %d customers, want %d", len(got), len(want))
	}
	diff := 0
	for c, w := range want {
		if got[c] != w {
			diff++
			if diff <= 3 {
				t.Errorf("customer %s: stored state differs from applying each good event once", c)
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d customers differ", diff, len(want))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf
