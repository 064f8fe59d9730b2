package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/drift"
	"github.com/kairos-fl/kairos/client/stream"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// TestClientStreamDrift runs `kairos client stream --drift-data` on the real
// NATS server without a model: GET /drift serves the PSI of every feature
// between the reference file's customers at the training cutoff and the
// streamed customer now, the same numbers as the batch builder's features
// of both give.
func TestClientStreamDrift(t *testing.T) {
	url := os.Getenv("KAIROS_TEST_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS at %s: %v", url, err)
		}
		t.Skipf("no NATS server: %v", err)
	}
	defer nc.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	name, subj, dead := "KAIROS_DRIFT_"+id, "kairos.drift."+id+".events", "kairos.drift."+id+".dead"
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj, dead}, Storage: jetstream.MemoryStorage})
	must(err)
	defer js.DeleteStream(context.Background(), name) //nolint:errcheck // test cleanup
	now := time.Now().Unix()
	alice := []model.Event{
		{Customer: "alice", Time: time.Unix(now-400*86400, 0), Kind: model.Purchase, Amount: 10, HasAmount: true},
		{Customer: "alice", Time: time.Unix(now-90*86400, 0), Kind: model.Purchase, Amount: 12, HasAmount: true},
	}
	for _, e := range alice {
		_, err := js.Publish(ctx, subj, fmt.Appendf(nil, `{"customer":"alice","ts":%d,"kind":"purchase","amount":%v}`, e.Time.Unix(), e.Amount))
		must(err)
	}

	dir := t.TempDir()
	mapping := filepath.Join(dir, "mapping.yaml")
	must(os.WriteFile(mapping, []byte("header: true\ncustomer: customer\ntime:\n  column: ts\n  layout: unix\nkind:\n  column: kind\namount: amount\n"), 0o600))
	cut := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var csv strings.Builder
	csv.WriteString("customer,ts,kind,amount\n")
	var ref []model.Event
	for i := range 20 {
		for _, d := range []int{200, 1 + i} {
			e := model.Event{Customer: fmt.Sprintf("r%d", i), Time: cut.Add(-time.Duration(d) * 24 * time.Hour), Kind: model.Purchase, Amount: 5, HasAmount: true}
			ref = append(ref, e)
			fmt.Fprintf(&csv, "%s,%d,purchase,5\n", e.Customer, e.Time.Unix())
		}
	}
	refPath := filepath.Join(dir, "training.csv")
	must(os.WriteFile(refPath, []byte(csv.String()), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	addr := ln.Addr().String()
	ln.Close()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	root := newRootCmd()
	root.SetArgs([]string{"client", "stream", "--nats", url, "--stream", name, "--subject", subj, "--dead-letter", dead,
		"--mapping", mapping, "--store", filepath.Join(dir, "live.db"), "--listen", addr,
		"--drift-data", refPath, "--drift-cutoff", "2024-01-01", "--drift-every", "100ms"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(rctx) }()

	var rep stream.DriftReport
	deadline := time.Now().Add(30 * time.Second)
	for rep.Customers != 1 {
		if resp, err := http.Get("http://" + addr + "/drift"); err == nil {
			if resp.StatusCode == http.StatusOK {
				must(json.NewDecoder(resp.Body).Decode(&rep))
			}
			resp.Body.Close()
		}
		select {
		case err := <-done:
			t.Fatalf("client stream ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift report with alice (last %+v)", rep)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("client stream: %v", err)
	}

	rows := func(evs []model.Event, tau time.Time) [][]float64 {
		bld, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{tau}})
		must(err)
		for _, e := range evs {
			must(bld.Add(e))
		}
		var out [][]float64
		for _, r := range bld.Rows() {
			out = append(out, r.X)
		}
		return out
	}
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	want, err := drift.Shifts(eng.Schema().Names, rows(ref, cut), rows(alice, rep.At), 10)
	must(err)
	if len(rep.Features) != len(want) || rep.Outcomes != nil {
		t.Fatalf("report %+v: want %d features and no outcomes (no model)", rep, len(want))
	}
	for i := range want {
		if rep.Features[i].Name != want[i].Name || math.Abs(rep.Features[i].PSI-want[i].PSI) > 1e-9 {
			t.Errorf("feature %d: got %+v, want %+v", i, rep.Features[i], want[i])
		}
	}
}
