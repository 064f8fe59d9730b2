package stream

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
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
	st, err := livestore.Open(ctx, os.Getenv("KT_DB"))
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	dec, err := ingest.NewMessageDecoder(testMapping(), ingest.MessageJSON, nil)
	if err != nil {
		return fail(err)
	}
	eng, _ := feature.NewLiveEngine(feature.LiveConfig{})
	cfg := Config{Source: src, Decoder: dec, Engine: eng, Store: slowStore{st}, Name: "events", BatchSize: 16}
	drifting := os.Getenv("KT_DRIFT_NOW") != ""
	if drifting {
		// TestNATSCrashReplayDrift: a scoring processor with a drift watch,
		// its clock at KT_DRIFT_NOW (Unix seconds).
		now, err := strconv.ParseInt(os.Getenv("KT_DRIFT_NOW"), 10, 64)
		if err != nil {
			return fail(err)
		}
		if cfg.Model, err = driftTestModel(eng.Schema()); err != nil {
			return fail(err)
		}
		cfg.Now = func() time.Time { return time.Unix(now, 0).UTC() }
	}
	p, err := New(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	if drifting {
		if _, err := p.WatchDrift(ctx, DriftConfig{Reference: [][]float64{make([]float64, len(eng.Schema().Names))}}); err != nil {
			return fail(err)
		}
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
	store, err := livestore.OpenSQLite(ctx, db)
	must(t, err)
	defer store.Close()
	c := crashChild{t: t, cfg: cfg, db: db, store: store}
	killedAt := c.runTo(c.start(), int64(last)/3)
	if killedAt >= int64(last)+1 {
		t.Fatalf("the child finished the stream (position %d) before it was killed: the test did not crash it mid-stream", killedAt)
	}
	t.Logf("killed at position %d of %d", killedAt, last)
	c.runTo(c.start(), int64(last)+1)

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

// crashChild runs the consumer process of the crash tests on the stream cfg
// names and the SQLite file db, with extra environment.
type crashChild struct {
	t     *testing.T
	cfg   NATSConfig
	db    string
	env   []string
	store livestore.Store
}

func (c crashChild) start() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "KT_STREAM="+c.cfg.Stream, "KT_SUBJECT="+c.cfg.Subject, "KT_DEAD="+c.cfg.DeadLetter, "KT_DB="+c.db, "KAIROS_TEST_NATS_URL="+natsURL())
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stderr = os.Stderr
	must(c.t, cmd.Start())
	return cmd
}

func (c crashChild) position() int64 {
	next, err := c.store.Load(context.Background(), "events", func(string, []byte) error { return nil })
	if err != nil {
		return 0 // the child may hold the write lock; ask again
	}
	return next[0]
}

// runTo waits until the stored position reaches want, then kills the child
// with SIGKILL and returns the position then.
func (c crashChild) runTo(cmd *exec.Cmd, want int64) int64 {
	deadline := time.Now().Add(2 * time.Minute)
	for c.position() < want {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			c.t.Fatalf("position did not reach %d", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(c.t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	return c.position()
}

// TestNATSCrashReplayDrift: the drift watch through a SIGKILL. The parent
// checks at now (the snapshot is stored), then a consumer process with the
// watch, its clock ten days on, is killed mid-way through the next 40 days'
// events and restarted to the end. The stored purchases are exactly the
// scenario's from now on (none lost, none twice), and a watch restored from
// the store reports at now + 31 days exactly what one uninterrupted
// processor reports. On SQLite and on PostgreSQL (KAIROS_TEST_POSTGRES_URL;
// never skipped under CI=true).
func TestNATSCrashReplayDrift(t *testing.T) {
	nc := natsConn(t)
	sc := newDriftScenario(t)
	ctx := context.Background()
	ref, err := livestore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "reference.db"))
	must(t, err)
	defer ref.Close()
	want := uninterruptedDrift(t, sc, ref)
	for name, db := range map[string]string{
		"sqlite":   filepath.Join(t.TempDir(), "live.db"),
		"postgres": pgtest.Database(t, pgtest.BaseURL(t), "kairos_live_"),
	} {
		t.Run(name, func(t *testing.T) { crashReplayDrift(t, nc, sc, db, want) })
	}
}

// crashReplayDrift is TestNATSCrashReplayDrift on the store at db.
func crashReplayDrift(t *testing.T, nc *nats.Conn, sc driftScenario, db string, want DriftReport) {
	ctx := context.Background()
	cfg := testStream(t, nc)
	js, _ := jetstream.New(nc)
	store, err := livestore.Open(ctx, db)
	must(t, err)
	defer store.Close()
	src, err := NewNATS(nc, cfg)
	must(t, err)
	hist := publishEvents(t, js, cfg.Subject, sc.history)
	checkAtNow(t, sc, newDriftProcessor(t, sc, src, store, sc.now, 0), hist)
	end := publishEvents(t, js, cfg.Subject, sc.later)

	day := 24 * time.Hour
	c := crashChild{t: t, cfg: cfg, db: db, store: store, env: []string{"KT_DRIFT_NOW=" + strconv.FormatInt(sc.now.Add(10*day).Unix(), 10)}}
	killedAt := c.runTo(c.start(), hist+(end-hist)/3)
	if killedAt >= end {
		t.Fatalf("the child finished the stream (position %d) before it was killed", killedAt)
	}
	t.Logf("killed at position %d of %d", killedAt, end)
	c.runTo(c.start(), end)

	stored, err := store.LoadDrift(ctx, "events")
	must(t, err)
	got := map[livestore.Purchase]bool{}
	for _, pu := range stored.Purchases {
		got[pu] = true
	}
	if len(stored.Purchases) != len(got) || !maps.Equal(got, sc.purchasesFromNow) {
		t.Errorf("stored %d purchases (%d distinct), want the scenario's %d from now on, each once", len(stored.Purchases), len(got), len(sc.purchasesFromNow))
	}
	restored := newDriftProcessor(t, sc, src, store, sc.now.Add(10*day), 0)
	w, err := restored.WatchDrift(ctx, DriftConfig{Reference: sc.reference})
	must(t, err)
	rep, err := w.Check(ctx, sc.now.Add(31*day))
	must(t, err)
	if !reflect.DeepEqual(rep, want) {
		g, _ := json.Marshal(rep.Outcomes)
		w, _ := json.Marshal(want.Outcomes)
		t.Errorf("after the crash the report differs from the uninterrupted run's: outcomes %s, want %s", g, w)
	}
	if o := rep.Outcomes; o == nil || o.Buyers != sc.buyersWithin30 {
		t.Errorf("outcomes %+v, want %d buyers (from the events)", o, sc.buyersWithin30)
	}
}
