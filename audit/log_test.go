package audit_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/sqlite"
	"github.com/kairos-fl/kairos/store/storetest"
)

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// faulty wraps a real store and injects failures: the one fake in these
// tests.
type faulty struct {
	audit.Store
	fail     atomic.Bool   // AppendAudit fails without writing
	lostAck  atomic.Bool   // AppendAudit writes, then reports failure
	gate     chan struct{} // when non-nil, AppendAudit waits for it
	entered  chan struct{} // when non-nil, AppendAudit signals here first
	appended atomic.Int64
}

var errInjected = errors.New("injected store failure")

func (f *faulty) AppendAudit(ctx context.Context, es []audit.Entry, cps []audit.Checkpoint) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.fail.Load() {
		return errInjected
	}
	if err := f.Store.AppendAudit(ctx, es, cps); err != nil {
		return err
	}
	f.appended.Add(1)
	if f.lostAck.Load() {
		return errInjected
	}
	return nil
}

func newLog(t *testing.T, s audit.Store, mod func(*audit.Options)) *audit.Log {
	t.Helper()
	opts := audit.Options{Store: s, LogID: "test", HMACKey: storetest.HMACKey, SigningKey: storetest.Key(), CheckpointEvery: 5}
	if mod != nil {
		mod(&opts)
	}
	l, err := audit.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rec(i int) audit.Record {
	return audit.Record{Actor: "merchant:m-1", Action: "update.submit", Object: fmt.Sprint("round/", i),
		Outcome: audit.OutcomeOK, Identifiers: map[string]string{"customer": fmt.Sprint("c-", i)}}
}

func mustVerify(t *testing.T, s audit.Source, wantEntries uint64) audit.Result {
	t.Helper()
	res, err := audit.Verify(context.Background(), s, pub())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != wantEntries {
		t.Fatalf("Verify: %d entries, want %d", res.Entries, wantEntries)
	}
	return res
}

func TestAppendStoresHMACs(t *testing.T) {
	s := openSQLite(t)
	l := newLog(t, s, nil)
	e, err := l.Append(context.Background(), audit.Record{Actor: "partner:crm", Action: "predict", Object: "model/3",
		Outcome: audit.OutcomeDenied, Reason: "no scope", Identifiers: map[string]string{"customer": "alice@example.com"},
		Details: map[string]string{"horizon": "30"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditEntries(context.Background(), 1, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("AuditEntries = %d, %v; want 1 entry", len(got), err)
	}
	want := audit.HashIdentifier(storetest.HMACKey, "alice@example.com")
	if got[0].Identifiers["customer"] != want || e.Identifiers["customer"] != want {
		t.Errorf("stored identifier %q, returned %q; want %q", got[0].Identifiers["customer"], e.Identifiers["customer"], want)
	}
	if got[0].Hash != e.Hash || e.Seq != 1 || e.PrevHash != (audit.Hash{}) {
		t.Errorf("entry = seq %d prev %s hash %s; stored hash %s", e.Seq, e.PrevHash, e.Hash, got[0].Hash)
	}
	mustVerify(t, s, 1)
}

func TestAppendRejectsBadRecords(t *testing.T) {
	l := newLog(t, openSQLite(t), nil)
	defer l.Close()
	good := rec(1)
	for _, tc := range []struct {
		name string
		mod  func(r *audit.Record)
		want string
	}{
		{"no actor", func(r *audit.Record) { r.Actor = "" }, "actor is empty"},
		{"no action", func(r *audit.Record) { r.Action = "" }, "action is empty"},
		{"bad outcome", func(r *audit.Record) { r.Outcome = "maybe" }, "outcome"},
		{"invalid utf-8", func(r *audit.Record) { r.Object = "\xff" }, "object"},
		{"nul", func(r *audit.Record) { r.Reason = "a\x00b" }, "reason"},
		{"empty identifier name", func(r *audit.Record) { r.Identifiers = map[string]string{"": "x"} }, "identifier"},
		{"bad detail", func(r *audit.Record) { r.Details = map[string]string{"k": "\xc3"} }, "detail"},
	} {
		r := good
		tc.mod(&r)
		if _, err := l.Append(context.Background(), r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Append err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	s := openSQLite(t)
	for _, tc := range []struct {
		name string
		mod  func(*audit.Options)
	}{
		{"no store", func(o *audit.Options) { o.Store = nil }},
		{"short hmac key", func(o *audit.Options) { o.HMACKey = []byte("short") }},
		{"no signing key", func(o *audit.Options) { o.SigningKey = nil }},
		{"negative batch", func(o *audit.Options) { o.MaxBatch = -1 }},
		{"negative interval", func(o *audit.Options) { o.CheckpointInterval = -time.Second }},
	} {
		o := audit.Options{Store: s, HMACKey: storetest.HMACKey, SigningKey: storetest.Key()}
		tc.mod(&o)
		if l, err := audit.New(context.Background(), o); err == nil {
			l.Close()
			t.Errorf("%s: New err = nil, want an error", tc.name)
		}
	}
}

// TestFailClosed: when the store write fails, every caller in the batch gets
// the error, nothing is stored, and the chain continues from the durable head.
func TestFailClosed(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := &faulty{Store: s}
	l := newLog(t, f, nil)
	for i := range 3 {
		if _, err := l.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}

	f.fail.Store(true)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 10 {
		wg.Go(func() {
			if _, err := l.Append(ctx, rec(10+i)); errors.Is(err, errInjected) {
				failed.Add(1)
			} else {
				t.Errorf("Append during outage: err = %v, want the injected failure", err)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 10 {
		t.Errorf("%d of 10 appends failed during the outage, want 10", failed.Load())
	}
	after, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Seq != before.Seq || after.Hash != before.Hash {
		t.Errorf("durable head moved during outage: %d %s → %d %s", before.Seq, before.Hash, after.Seq, after.Hash)
	}

	f.fail.Store(false)
	e, err := l.Append(ctx, rec(99))
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != before.Seq+1 || e.PrevHash != before.Hash {
		t.Errorf("after outage Append seq %d prev %s, want %d %s", e.Seq, e.PrevHash, before.Seq+1, before.Hash)
	}
	if st := l.Stats(); st.Failures == 0 || st.Entries != 4 {
		t.Errorf("stats = %+v, want failures > 0 and 4 entries", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, 4)
}

// TestLostAcknowledgement: the store commits but reports failure. The caller
// gets an error (fail closed), and the next append chains from what is
// really stored instead of forking from the in-memory head.
func TestLostAcknowledgement(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := &faulty{Store: s}
	l := newLog(t, f, nil)
	if _, err := l.Append(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	f.lostAck.Store(true)
	if _, err := l.Append(ctx, rec(2)); err == nil {
		t.Fatal("Append with lost acknowledgement: err = nil, want an error")
	}
	f.lostAck.Store(false)
	e, err := l.Append(ctx, rec(3))
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 3 {
		t.Errorf("Append after a lost acknowledgement got seq %d, want 3 (entry 2 is durable)", e.Seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, 3)
}

// TestTwoWritersOneChain: two logs on one store (two replicas) interleave
// through ErrHeadMoved and re-chaining, and the chain stays valid.
func TestTwoWritersOneChain(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	a, b := newLog(t, s, nil), newLog(t, s, nil)
	for i := range 10 {
		for _, l := range []*audit.Log{a, b} {
			if _, err := l.Append(ctx, rec(i)); err != nil {
				t.Fatalf("Append %d: %v", i, err)
			}
		}
	}
	a.Close()
	b.Close()
	mustVerify(t, s, 20)
}

// TestGroupCommit holds the writer inside its first store write while more
// appends queue, then checks that they commit together in one transaction.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := &faulty{Store: s, gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	l := newLog(t, f, func(o *audit.Options) { o.MaxBatch = 64; o.CheckpointEvery = -1 })
	const n = 40
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := l.Append(ctx, rec(0)); err != nil {
			t.Error(err)
		}
	})
	<-f.entered // the writer holds the first record alone
	for i := range n {
		wg.Go(func() {
			if _, err := l.Append(ctx, rec(i+1)); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, func() bool { return l.Stats().Queued == n })
	close(f.gate)
	wg.Wait()
	if st := l.Stats(); st.Batches != 2 || st.Entries != n+1 {
		t.Errorf("stats = %+v, want 2 batches of %d entries in all", st, n+1)
	}
	l.Close()
	mustVerify(t, s, n+1)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCancelledCallerStillWrites: once queued, an entry is written even if
// the caller's context ends; a context that ended before queuing writes
// nothing.
func TestCancelledCallerStillWrites(t *testing.T) {
	s := openSQLite(t)
	f := &faulty{Store: s, gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	l := newLog(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, rec(1))
		errc <- err
	}()
	<-f.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Append after cancel = %v, want context.Canceled", err)
	}
	close(f.gate)
	if _, err := l.Append(ctx, rec(2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, 1)
}

func TestCloseLifecycle(t *testing.T) {
	s := openSQLite(t)
	runtime.GC()
	before := runtime.NumGoroutine()
	l := newLog(t, s, func(o *audit.Options) { o.CheckpointInterval = time.Hour })
	if _, err := l.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := l.Append(context.Background(), rec(2)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
	// Close signed the head, so the single entry is pinned.
	if res := mustVerify(t, s, 1); res.LastCheckpointSeq != 1 {
		t.Errorf("last checkpoint after Close at %d, want 1", res.LastCheckpointSeq)
	}
}

func TestCheckpointInterval(t *testing.T) {
	s := openSQLite(t)
	l := newLog(t, s, func(o *audit.Options) { o.CheckpointInterval = 10 * time.Millisecond; o.CheckpointEvery = -1 })
	defer l.Close()
	for i := range 3 {
		if _, err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		h, err := s.AuditHead(context.Background())
		return err == nil && h.CheckpointSeq == 3
	})
	n := mustVerify(t, s, 3).Checkpoints
	time.Sleep(60 * time.Millisecond) // several ticks with an unchanged head
	if res := mustVerify(t, s, 3); res.Checkpoints != n || res.LastCheckpointSeq != 3 {
		t.Errorf("checkpoints = %d (last at %d), want still %d with the last at 3: the timer must not re-sign an unchanged head",
			res.Checkpoints, res.LastCheckpointSeq, n)
	}
}

// TestAppendIdentifierHMACs checks the identifiers Append stores against
// RFC 4231's test case 1 (key 0x0b × 20, "Hi There") and against
// crypto/hmac computed here, for several identifiers in one record and
// across records (Append reuses its HMAC state).
func TestAppendIdentifierHMACs(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{0x0b}, 20)
	l := newLog(t, openSQLite(t), func(o *audit.Options) { o.HMACKey = key })
	defer l.Close()
	ref := func(v string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(v))
		return audit.IdentifierPrefix + hex.EncodeToString(m.Sum(nil))
	}
	e, err := l.Append(ctx, audit.Record{Actor: "a", Action: "predict", Object: "o", Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"rfc": "Hi There"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Identifiers["rfc"], audit.IdentifierPrefix+"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"; got != want {
		t.Errorf("RFC 4231 case 1: got %s, want %s", got, want)
	}
	ids := map[string]string{"empty": "", "unicode": "Zoë ✓", "long": strings.Repeat("x", 300), "merchant": "m-1", "customer": "c-1"}
	for range 3 {
		e, err := l.Append(ctx, audit.Record{Actor: "a", Action: "predict", Object: "o", Outcome: audit.OutcomeOK, Identifiers: ids})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range ids {
			if got, want := e.Identifiers[k], ref(v); got != want {
				t.Errorf("identifier %s: got %s, want %s", k, got, want)
			}
		}
	}
}

// BenchmarkAppendParallel measures Append from many goroutines on SQLite:
// the caller's work (validation, HMACs, queueing) and the group commit.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Options{Store: s, HMACKey: storetest.HMACKey, SigningKey: storetest.Key()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := audit.Record{Actor: "partner:crm", Action: "predict", Object: "merchant/m-1", Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"merchant": "m-1", "customer": "c-42"}, Details: map[string]string{"customers": "1", "model_version": "3"}}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st := l.Stats()
	b.ReportMetric(float64(st.Entries)/float64(max(1, st.Batches)), "entries/commit")
}
