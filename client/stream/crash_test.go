package stream

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
)

const childEnv = "KAIROS_STREAM_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// slowStore delays each commit, so that the parent can kill the child in the
// middle of the stream; it changes nothing else.
type slowStore struct{ livestore.Store }

func (s slowStore) Commit(ctx context.Context, src string, b livestore.Batch) error {
	time.Sleep(3 * time.Millisecond)
	return s.Store.Commit(ctx, src, b)
}

// runChild is the consumer process of TestNATSCrashReplay: a processor on
// the stream the environment names, until it is killed.
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fail := func(err error) int { os.Stderr.WriteString("child: " + err.Error() + "\n"); return 1 }
	nc, err := nats.Connect(natsURL())
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	src, err := NewNATS(nc, NATSConfig{Stream: os.Getenv("KT_STREAM"), Subject: os.Getenv("KT_SUBJECT"), DeadLetter: os.Getenv("KT_DEAD")})
	if err != nil {
		return fail(err)
	}
	st, err := livestore.OpenSQLite(ctx, os.Getenv("KT_DB"))
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	dec, err := ingest.NewMessageDecoder(testMapping(), ingest.MessageJSON, nil)
	if err != nil {
		return fail(err)
	}
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	p, err := New(ctx, Config{Source: src, Decoder: dec, Engine: eng, Store: slowStore{st}, Name: "events", BatchSize: 16})
	if err != nil {
		return fail(err)
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fail(err)
	}
	return 0
}

// TestNATSCrashReplay publishes a log with bad messages to the real NATS
// server, runs the consumer as a separate process, kills it with SIGKILL in
// the middle of the stream, restarts it, and checks that the stored states
// are exactly those of applying every good event once (none lost, none
// counted twice) and that every bad message is in the dead-letter subject
// once, with its reason.
func TestNATSCrashReplay(t *testing.T) {
	nc := natsConn(t)
	cfg := testStream(t, nc)
	msgs, evs := testEvents(5, 4000, 40)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	var last uint64
	for _, m := range msgs {
		ack, err := js.Publish(ctx, cfg.Subject, m)
		must(t, err)
		last = ack.Sequence
	}
	db := filepath.Join(t.TempDir(), "live.db")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "KT_STREAM="+cfg.Stream, "KT_SUBJECT="+cfg.Subject, "KT_DEAD="+cfg.DeadLetter, "KT_DB="+db, "KAIROS_TEST_NATS_URL="+natsURL())
		cmd.Stderr = os.Stderr
		must(t, cmd.Start())
		return cmd
	}
	store, err := livestore.OpenSQLite(ctx, db)
	must(t, err)
	defer store.Close()
	position := func() int64 {
		next, err := store.Load(ctx, "events", func(string, []byte) error { return nil })
		if err != nil {
			return 0 // the child may hold the write lock; ask again
		}
		return next[0]
	}
	waitFor := func(cmd *exec.Cmd, want int64) int64 {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if p := position(); p >= want {
				return p
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		t.Fatalf("position did not reach %d", want)
		return 0
	}
	child := start()
	waitFor(child, int64(last)/3)
	must(t, child.Process.Signal(syscall.SIGKILL))
	_ = child.Wait()
	killedAt := position()
	if killedAt >= int64(last)+1 {
		t.Fatalf("the child finished the stream (position %d) before it was killed: the test did not crash it mid-stream", killedAt)
	}
	t.Logf("killed at position %d of %d", killedAt, last)
	child = start()
	waitFor(child, int64(last)+1)
	must(t, child.Process.Signal(syscall.SIGKILL))
	_ = child.Wait()

	got := map[string]string{}
	_, err = store.Load(ctx, "events", func(c string, b []byte) error { got[c] = string(b); return nil })
	must(t, err)
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	compareStates(t, got, referenceStates(t, eng, evs))

	s, err := js.Stream(ctx, cfg.Stream)
	must(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(cfg.DeadLetter))
	must(t, err)
	if got, want := info.State.Subjects[cfg.DeadLetter], uint64(badCount(evs)); got != want {
		t.Errorf("dead letters: got %d, want %d (one per bad message)", got, want)
	}
	dl, err := s.GetLastMsgForSubject(ctx, cfg.DeadLetter)
	must(t, err)
	if dl.Header.Get(HeaderReason) == "" || dl.Header.Get(HeaderOffset) == "" {
		t.Errorf("dead letter without reason or offset: headers %v", dl.Header)
	}
}
