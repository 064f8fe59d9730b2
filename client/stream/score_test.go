package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// recencyModel is a linear hazard model whose score falls with recency, so
// that a fresh purchase raises P(buy within 7 days).
func recencyModel(t testing.TB, schema feature.Schema) *hazard.Model {
	t.Helper()
	m, err := hazard.Initial(schema, 0.01)
	must(t, err)
	m.Params[m.Horizon+slices.Index(schema.Names, "recency_days")] = -1.5
	return m
}

// batchP7 is P(buy within 7 days) at tau from the batch feature builder.
func batchP7(t *testing.T, m *hazard.Model, events []model.Event, tau time.Time) float64 {
	t.Helper()
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{tau}})
	must(t, err)
	for _, e := range events {
		must(t, b.Add(e))
	}
	rows := b.Rows()
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	p, err := m.Predict(rows[0].X)
	must(t, err)
	return p.Within[slices.Index(hazard.Horizons[:], 7)]
}

// TestScoresAndChanges: the local endpoint serves the model's prediction on
// the batch builder's features at the same time, and a purchase that lifts
// P7 across the threshold publishes one score change on the real NATS server.
func TestScoresAndChanges(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	old := []model.Event{
		{Customer: "a", Time: now.AddDate(0, 0, -300), Kind: model.Purchase, Amount: 10, HasAmount: true},
		{Customer: "a", Time: now.AddDate(0, 0, -200), Kind: model.Purchase, Amount: 20, HasAmount: true},
		{Customer: "a", Time: now.AddDate(0, 0, -100), Kind: model.View},
	}
	fresh := model.Event{Customer: "a", Time: now.Add(-time.Hour), Kind: model.Purchase, Amount: 5, HasAmount: true}
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	m := recencyModel(t, eng.Schema())
	before, after := batchP7(t, m, old, now), batchP7(t, m, append(slices.Clone(old), fresh), now)
	if after <= before {
		t.Fatalf("test model: P7 %v after a fresh purchase, %v before; want a rise", after, before)
	}
	threshold := (before + after) / 2

	changes := make(chan *nats.Msg, 10)
	sub, err := nc.ChanSubscribe(cfg.Subject+".scores", changes)
	must(t, err)
	defer sub.Unsubscribe() //nolint:errcheck // test cleanup
	must(t, nc.Flush())

	js, _ := jetstream.New(nc)
	var last uint64
	for _, e := range append(slices.Clone(old), fresh) {
		kind := map[model.Kind]string{model.Purchase: "purchase", model.View: "view"}[e.Kind]
		ack, err := js.Publish(ctx, cfg.Subject, fmt.Appendf(nil, `{"customer":%q,"ts":%d,"kind":%q,"amount":%v}`, e.Customer, e.Time.Unix(), kind, e.Amount))
		must(t, err)
		last = ack.Sequence
	}
	src, err := NewNATS(nc, cfg)
	must(t, err)
	store, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	must(t, err)
	defer store.Close()
	p, err := New(ctx, Config{Source: src, Decoder: testDecoder(t), Engine: eng, Store: store, Name: "events", Model: m,
		Threshold: threshold, Changes: NATSPublisher{NC: nc, Subject: cfg.Subject + ".scores"}, Now: func() time.Time { return now }, BatchSize: 1})
	must(t, err)
	runUntil(t, p, map[int32]int64{0: int64(last) + 1})

	select {
	case msg := <-changes:
		var ch ScoreChange
		must(t, json.Unmarshal(msg.Data, &ch))
		if ch.Customer != "a" || !ch.Above || math.Abs(ch.P7-after) > 1e-12 || math.Abs(ch.Previous-before) > 1e-12 {
			t.Errorf("score change: got %+v, want customer a above with p7 %v previous %v", ch, after, before)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no score change published")
	}
	select {
	case msg := <-changes:
		t.Errorf("a second score change: %s", msg.Data)
	default:
	}

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/scores/a")
	must(t, err)
	var sr ScoreResponse
	must(t, json.NewDecoder(resp.Body).Decode(&sr))
	resp.Body.Close()
	if math.Abs(sr.Within["7"]-after) > 1e-12 || !sr.At.Equal(now) {
		t.Errorf("GET /v1/scores/a: got P7 %v at %v, want %v at %v", sr.Within["7"], sr.At, after, now)
	}
	resp, err = http.Get(srv.URL + "/v1/scores/nobody")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown customer: status %d, want 404", resp.StatusCode)
	}
}
