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
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/stream"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// TestClientStream runs `kairos client stream` on the real NATS server: two
// purchases of one customer arrive, the local endpoint serves that customer's
// score, and a bad message lands on the dead-letter subject.
func TestClientStream(t *testing.T) {
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
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	name, subj, dead := "KAIROS_CLI_"+id, "kairos.cli."+id+".events", "kairos.cli."+id+".dead"
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj, dead}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name) //nolint:errcheck // test cleanup
	now := time.Now().Unix()
	for _, m := range []string{
		fmt.Sprintf(`{"customer":"alice","ts":%d,"kind":"purchase","amount":10}`, now-40*86400),
		`{"customer":"bob","ts":"not a time","kind":"view"}`,
		fmt.Sprintf(`{"customer":"alice","ts":%d,"kind":"purchase","amount":12}`, now-10*86400),
	} {
		if _, err := js.Publish(ctx, subj, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	mapping := filepath.Join(dir, "mapping.yaml")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(mapping, []byte("header: true\ncustomer: customer\ntime:\n  column: ts\n  layout: unix\nkind:\n  column: kind\namount: amount\n"), 0o600))
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	m, err := hazard.Initial(eng.Schema(), 0.01)
	must(err)
	mb, err := json.Marshal(m)
	must(err)
	modelPath := filepath.Join(dir, "model.json")
	must(os.WriteFile(modelPath, mb, 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	addr := ln.Addr().String()
	ln.Close()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	root := newRootCmd()
	root.SetArgs([]string{"client", "stream", "--nats", url, "--stream", name, "--subject", subj, "--dead-letter", dead,
		"--mapping", mapping, "--store", filepath.Join(dir, "live.db"), "--model", modelPath, "--listen", addr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(rctx) }()

	var sr stream.ScoreResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/scores/alice")
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(resp.Body).Decode(&sr)
				resp.Body.Close()
				must(err)
				if want := batchP30(t, m, now, sr.At); math.Abs(sr.Within["30"]-want) <= 1e-12 {
					break
				}
			} else {
				resp.Body.Close()
			}
		}
		select {
		case err := <-done:
			t.Fatalf("client stream ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no score for alice (last: %+v, %v)", sr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s, err := js.Stream(ctx, name)
	must(err)
	for {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(dead))
		must(err)
		if info.State.Subjects[dead] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters: %d, want 1", info.State.Subjects[dead])
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("client stream: %v", err)
	}
}

// batchP30 is P(buy within 30 days) at tau for alice's two purchases, from
// the batch feature builder.
func batchP30(t *testing.T, m *hazard.Model, now int64, tau time.Time) float64 {
	t.Helper()
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{tau}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []model.Event{
		{Customer: "alice", Time: time.Unix(now-40*86400, 0), Kind: model.Purchase, Amount: 10, HasAmount: true},
		{Customer: "alice", Time: time.Unix(now-10*86400, 0), Kind: model.Purchase, Amount: 12, HasAmount: true},
	} {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	p, err := m.Predict(b.Rows()[0].X)
	if err != nil {
		t.Fatal(err)
	}
	return p.Within[len(hazard.Horizons)-1]
}
