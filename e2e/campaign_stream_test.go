package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/client/stream"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// shiftedStream feeds a merchant's shifted synthetic log through the real
// NATS server into `kairos client stream`'s processor with its drift watch:
// events up to campaignStart, a check; the rest up to campaignLater, a
// check. It returns both reports. The reference is the batch builder's rows
// at the training cutoffs, as `--drift-data` builds them.
func shiftedStream(t *testing.T, events []model.Event, m *hazard.Model) (before, after stream.DriftReport) {
	t.Helper()
	url := os.Getenv("KAIROS_TEST_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS at %s: %v (CI=true: the stream part must run)", url, err)
		}
		t.Skipf("no NATS server at %s: %v", url, err)
	}
	defer nc.Close()
	ctx := t.Context()
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	name, subj, dead := "KAIROS_E2E_DRIFT_"+id, "kairos.e2e."+id+".events", "kairos.e2e."+id+".dead"
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj, dead}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name) //nolint:errcheck // test cleanup
	kinds := map[model.Kind]string{model.View: "view", model.Cart: "cart", model.Favorite: "favorite", model.Purchase: "purchase"}
	publish := func(evs []model.Event) {
		for i, e := range evs {
			if _, err := js.PublishAsync(subj, fmt.Appendf(nil, `{"customer":%q,"ts":%d,"kind":%q,"amount":%g}`, e.Customer, e.Time.Unix(), kinds[e.Kind], e.Amount)); err != nil {
				t.Fatal(err)
			}
			if i%1000 != 999 && i != len(evs)-1 {
				continue
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishing the stream timed out")
			}
		}
	}

	dec, err := ingest.NewMessageDecoder(&ingest.Mapping{Header: true, Customer: ingest.Column{Name: "customer"}, Time: ingest.Column{Name: "ts"},
		TimeLayout: ingest.LayoutUnix, Kind: ingest.Column{Name: "kind"}, Amount: ingest.Column{Name: "amount"}}, ingest.MessageJSON, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := stream.NewNATS(nc, stream.NATSConfig{Stream: name, Subject: subj, DeadLetter: dead})
	if err != nil {
		t.Fatal(err)
	}
	st, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := campaignStart
	p, err := stream.New(ctx, stream.Config{Source: src, Decoder: dec, Engine: eng, Store: st, Name: "e2e", Model: m,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := client.BuildRows(events, campaignCuts, time.UTC, eng.Schema())
	if err != nil {
		t.Fatal(err)
	}
	var ref [][]float64
	for _, r := range rows {
		ref = append(ref, r.X)
	}
	w, err := p.WatchDrift(ctx, stream.DriftConfig{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stream processor: %v", err)
		}
	}()
	// caughtUp waits until the processor has applied every published message.
	caughtUp := func() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for p.Position()[0] <= int64(info.State.LastSeq) {
			select {
			case err := <-done:
				t.Fatalf("stream processor stopped: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream position %v, want past %d", p.Position(), info.State.LastSeq)
			}
		}
	}
	split := slices.IndexFunc(events, func(e model.Event) bool { return !e.Time.Before(campaignStart) })
	publish(events[:split])
	caughtUp()
	if before, err = w.Check(ctx, campaignStart); err != nil {
		t.Fatal(err)
	}
	end := slices.IndexFunc(events, func(e model.Event) bool { return !e.Time.Before(campaignLater) })
	publish(events[split:end])
	caughtUp()
	if after, err = w.Check(ctx, campaignLater); err != nil {
		t.Fatal(err)
	}
	return before, after
}
