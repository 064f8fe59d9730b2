// Package storetest is the conformance suite every Kairos store backend
// passes: run it from the backend's tests with Run.
package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// Store is what the suite exercises.
type Store interface {
	audit.Store
	Migrate(ctx context.Context) error
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	IsTokenRevoked(ctx context.Context, jti string) (bool, error)
	PurgeRevokedTokens(ctx context.Context, t time.Time) (int64, error)
}

// Run runs the suite. open returns a fresh, migrated, empty store and
// registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Empty", testEmpty},
		{"MigrateIsIdempotent", testMigrateTwice},
		{"AppendRead", testAppendRead},
		{"HeadMoved", testHeadMoved},
		{"BatchIsAtomic", testBatchAtomic},
		{"CheckpointsSignStoredEntries", testCheckpointsSignStored},
		{"Revocation", testRevocation},
		{"LogGroupCommit", testLog},
		{"TwoLogsOneChain", testTwoLogs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Key returns a fixed checkpoint key for tests.
func Key() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// HMACKey is a fixed identifier key for tests.
var HMACKey = []byte("storetest-audit-hmac-key-0123456")

// Chain returns n entries chained from head, one millisecond apart from t0,
// and a checkpoint at every seq divisible by every (0: none).
func Chain(head audit.Head, n, every int, t0 time.Time) ([]audit.Entry, []audit.Checkpoint) {
	var es []audit.Entry
	var cps []audit.Checkpoint
	prev := head.Hash
	for i := range n {
		seq := head.Seq + uint64(i) + 1
		e := audit.Entry{
			Seq: seq, Time: time.UnixMilli(t0.UnixMilli() + int64(i)).UTC(),
			Actor: "merchant:m-7", Action: "round.update.submit", Object: fmt.Sprintf("round/%d", seq),
			Outcome:     audit.OutcomeOK,
			Identifiers: map[string]string{"merchant": audit.HashIdentifier(HMACKey, "m-7"), "customer": audit.HashIdentifier(HMACKey, fmt.Sprint("c", seq))},
			Details:     map[string]string{"bytes": fmt.Sprint(100 * seq), "note": "naïve “quoted” ✓"},
			PrevHash:    prev,
		}
		if seq%3 == 0 {
			e.Outcome, e.Reason, e.Details = audit.OutcomeDenied, "budget exhausted", nil
		}
		e.Hash = audit.EntryHash(prev, &e)
		prev = e.Hash
		es = append(es, e)
		if every > 0 && seq%uint64(every) == 0 {
			c := audit.Checkpoint{LogID: "test", Seq: seq, Hash: e.Hash, Time: e.Time}
			audit.SignCheckpoint(Key(), &c)
			cps = append(cps, c)
		}
	}
	return es, cps
}

func headOf(es []audit.Entry, cps []audit.Checkpoint) audit.Head {
	var h audit.Head
	if len(es) > 0 {
		e := es[len(es)-1]
		h.Seq, h.Hash, h.Time = e.Seq, e.Hash, e.Time
	}
	if len(cps) > 0 {
		c := cps[len(cps)-1]
		h.CheckpointSeq, h.CheckpointTime = c.Seq, c.Time
	}
	return h
}

func mustHead(t *testing.T, s Store) audit.Head {
	t.Helper()
	h, err := s.AuditHead(context.Background())
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	return h
}

func equalHead(a, b audit.Head) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.Time.Equal(b.Time) &&
		a.CheckpointSeq == b.CheckpointSeq && a.CheckpointTime.Equal(b.CheckpointTime)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// diffEntry describes the first difference between got and want, or "".
func diffEntry(got, want *audit.Entry) string {
	switch {
	case got.Seq != want.Seq:
		return fmt.Sprintf("seq %d, want %d", got.Seq, want.Seq)
	case !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC:
		return fmt.Sprintf("time %v, want %v UTC", got.Time, want.Time)
	case got.Actor != want.Actor || got.Action != want.Action || got.Object != want.Object:
		return fmt.Sprintf("actor/action/object %q %q %q, want %q %q %q", got.Actor, got.Action, got.Object, want.Actor, want.Action, want.Object)
	case got.Outcome != want.Outcome || got.Reason != want.Reason:
		return fmt.Sprintf("outcome %q %q, want %q %q", got.Outcome, got.Reason, want.Outcome, want.Reason)
	case !equalMaps(got.Identifiers, want.Identifiers):
		return fmt.Sprintf("identifiers %v, want %v", got.Identifiers, want.Identifiers)
	case !equalMaps(got.Details, want.Details):
		return fmt.Sprintf("details %v, want %v", got.Details, want.Details)
	case got.PrevHash != want.PrevHash || got.Hash != want.Hash:
		return fmt.Sprintf("hashes %s %s, want %s %s", got.PrevHash, got.Hash, want.PrevHash, want.Hash)
	}
	return ""
}

func testEmpty(t *testing.T, s Store) {
	ctx := context.Background()
	if h := mustHead(t, s); !equalHead(h, audit.Head{}) {
		t.Errorf("head of empty store = %+v, want zero", h)
	}
	es, err := s.AuditEntries(ctx, 1, 10)
	if err != nil || len(es) != 0 {
		t.Errorf("AuditEntries = %d entries, %v; want 0, nil", len(es), err)
	}
	cps, err := s.AuditCheckpoints(ctx)
	if err != nil || len(cps) != 0 {
		t.Errorf("AuditCheckpoints = %d, %v; want 0, nil", len(cps), err)
	}
}

func testMigrateTwice(t *testing.T, s Store) {
	ctx := context.Background()
	es, _ := Chain(audit.Head{}, 2, 0, time.Now())
	if err := s.AppendAudit(ctx, es, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if h := mustHead(t, s); h.Seq != 2 {
		t.Errorf("after second Migrate head seq = %d, want 2", h.Seq)
	}
}

func testAppendRead(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 15, 0, 0, 123e6, time.UTC)
	es, cps := Chain(audit.Head{}, 10, 4, t0)
	if len(cps) != 2 {
		t.Fatalf("Chain made %d checkpoints, want 2", len(cps))
	}
	// Two batches; the second carries the second checkpoint.
	if err := s.AppendAudit(ctx, es[:6], cps[:1]); err != nil {
		t.Fatalf("append 1..6: %v", err)
	}
	if err := s.AppendAudit(ctx, es[6:], cps[1:]); err != nil {
		t.Fatalf("append 7..10: %v", err)
	}
	if got, want := mustHead(t, s), headOf(es, cps); !equalHead(got, want) {
		t.Errorf("head = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		from       uint64
		limit      int
		wantFirst  uint64
		wantLength int
	}{
		{1, 100, 1, 10}, {1, 3, 1, 3}, {4, 2, 4, 2}, {9, 5, 9, 2}, {11, 5, 0, 0}, {0, 1, 1, 1},
	} {
		got, err := s.AuditEntries(ctx, tc.from, tc.limit)
		if err != nil {
			t.Fatalf("AuditEntries(%d, %d): %v", tc.from, tc.limit, err)
		}
		if len(got) != tc.wantLength {
			t.Errorf("AuditEntries(%d, %d) = %d entries, want %d", tc.from, tc.limit, len(got), tc.wantLength)
			continue
		}
		for i := range got {
			want := &es[int(tc.wantFirst)-1+i]
			if d := diffEntry(&got[i], want); d != "" {
				t.Errorf("AuditEntries(%d, %d)[%d]: %s", tc.from, tc.limit, i, d)
			}
		}
	}
	gotCps, err := s.AuditCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotCps) != 2 {
		t.Fatalf("AuditCheckpoints = %d, want 2", len(gotCps))
	}
	for i, c := range gotCps {
		w := cps[i]
		if c.Seq != w.Seq || c.LogID != w.LogID || c.Hash != w.Hash || !c.Time.Equal(w.Time) || string(c.Signature) != string(w.Signature) {
			t.Errorf("checkpoint %d = %+v, want %+v", i, c, w)
		}
	}
	// What was stored verifies; a checkpoint-only append (as the log writes
	// on a timer) is accepted.
	c := audit.Checkpoint{LogID: "test", Seq: 10, Hash: es[9].Hash, Time: es[9].Time}
	audit.SignCheckpoint(Key(), &c)
	if err := s.AppendAudit(ctx, nil, []audit.Checkpoint{c}); err != nil {
		t.Fatalf("checkpoint-only append: %v", err)
	}
	if err := s.AppendAudit(ctx, nil, []audit.Checkpoint{c}); err == nil {
		t.Errorf("second checkpoint at seq 10: err = nil, want a duplicate error")
	}
	res, err := audit.Verify(ctx, s, Key().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != 10 || res.Checkpoints != 3 || res.Head != es[9].Hash || res.LastCheckpointSeq != 10 {
		t.Errorf("Verify = %+v, want 10 entries, 3 checkpoints (last at 10), head %s", res, es[9].Hash)
	}
}

func testHeadMoved(t *testing.T, s Store) {
	ctx := context.Background()
	es, _ := Chain(audit.Head{}, 4, 0, time.Now())
	if err := s.AppendAudit(ctx, es[:2], nil); err != nil {
		t.Fatal(err)
	}
	wrongPrev := es[2]
	wrongPrev.PrevHash[0] ^= 1
	for _, tc := range []struct {
		name  string
		batch []audit.Entry
	}{
		{"replays the stored entries", es[:2]},
		{"skips an entry", es[3:]},
		{"right seq, wrong prev hash", []audit.Entry{wrongPrev}},
	} {
		err := s.AppendAudit(ctx, tc.batch, nil)
		if !errors.Is(err, audit.ErrHeadMoved) {
			t.Errorf("%s: err = %v, want ErrHeadMoved", tc.name, err)
		}
	}
	if h := mustHead(t, s); h.Seq != 2 || h.Hash != es[1].Hash {
		t.Errorf("head after refused appends = %d %s, want 2 %s", h.Seq, h.Hash, es[1].Hash)
	}
}

func testBatchAtomic(t *testing.T, s Store) {
	ctx := context.Background()
	es, cps := Chain(audit.Head{}, 4, 2, time.Now())
	if err := s.AppendAudit(ctx, es[:2], cps[:1]); err != nil {
		t.Fatal(err)
	}
	// Entries 3 and 4 are fine, but the batch repeats checkpoint 2: the
	// whole transaction must fail and leave nothing behind.
	if err := s.AppendAudit(ctx, es[2:], []audit.Checkpoint{cps[0], cps[1]}); err == nil {
		t.Fatal("append with a duplicate checkpoint: err = nil, want an error")
	}
	if h := mustHead(t, s); h.Seq != 2 || h.CheckpointSeq != 2 {
		t.Errorf("head after failed batch = seq %d checkpoint %d, want 2 and 2", h.Seq, h.CheckpointSeq)
	}
	got, err := s.AuditEntries(ctx, 1, 10)
	if err != nil || len(got) != 2 {
		t.Errorf("entries after failed batch = %d, %v; want 2", len(got), err)
	}
	// And the same entries go in once the batch is right.
	if err := s.AppendAudit(ctx, es[2:], cps[1:]); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if h := mustHead(t, s); h.Seq != 4 || h.CheckpointSeq != 4 {
		t.Errorf("head after retry = seq %d checkpoint %d, want 4 and 4", h.Seq, h.CheckpointSeq)
	}
}

func testCheckpointsSignStored(t *testing.T, s Store) {
	ctx := context.Background()
	es, cps := Chain(audit.Head{}, 4, 2, time.Now())
	if err := s.AppendAudit(ctx, es[:2], nil); err != nil {
		t.Fatal(err)
	}
	// A batch refused for its entries stores none of its checkpoints either.
	if err := s.AppendAudit(ctx, es[3:], cps[1:]); !errors.Is(err, audit.ErrHeadMoved) {
		t.Errorf("batch skipping entry 3: err = %v, want ErrHeadMoved", err)
	}
	// A checkpoint whose hash is not the stored entry's is refused.
	forged := audit.Checkpoint{LogID: "test", Seq: 2, Hash: es[0].Hash, Time: es[1].Time}
	audit.SignCheckpoint(Key(), &forged)
	if err := s.AppendAudit(ctx, nil, []audit.Checkpoint{forged}); err == nil {
		t.Error("checkpoint at 2 with entry 1's hash: err = nil, want an error")
	}
	if h := mustHead(t, s); h.Seq != 2 || h.CheckpointSeq != 0 {
		t.Errorf("head after refused appends = seq %d checkpoint %d, want 2 and none", h.Seq, h.CheckpointSeq)
	}
	if got, err := s.AuditCheckpoints(ctx); err != nil || len(got) != 0 {
		t.Errorf("checkpoints after refused appends = %v, %v; want none", got, err)
	}
	if err := s.AppendAudit(ctx, es[2:], cps); err != nil {
		t.Fatalf("append of the right batch: %v", err)
	}
	if h := mustHead(t, s); h.Seq != 4 || h.CheckpointSeq != 4 {
		t.Errorf("head after the right batch = seq %d checkpoint %d, want 4 and 4", h.Seq, h.CheckpointSeq)
	}
}

func testRevocation(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	revoked := func(jti string) bool {
		t.Helper()
		ok, err := s.IsTokenRevoked(ctx, jti)
		if err != nil {
			t.Fatalf("IsTokenRevoked(%q): %v", jti, err)
		}
		return ok
	}
	if revoked("a") {
		t.Error("IsTokenRevoked(a) on empty store = true, want false")
	}
	if err := s.RevokeToken(ctx, "a", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Revoking again with an earlier expiry must not shorten the revocation.
	if err := s.RevokeToken(ctx, "a", t0.Add(time.Hour)); err != nil {
		t.Fatalf("revoke twice: %v", err)
	}
	if err := s.RevokeToken(ctx, "b", t0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		jti  string
		want bool
	}{{"a", true}, {"b", true}, {"c", false}, {"A", false}, {"", false}} {
		if got := revoked(tc.jti); got != tc.want {
			t.Errorf("IsTokenRevoked(%q) = %v, want %v", tc.jti, got, tc.want)
		}
	}
	if err := s.RevokeToken(ctx, "", t0); err == nil {
		t.Error("RevokeToken with empty jti: err = nil, want an error")
	}
	n, err := s.PurgeRevokedTokens(ctx, t0.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || revoked("b") || !revoked("a") {
		t.Errorf("purge at t0+90m removed %d (b revoked %v, a revoked %v), want 1 (false, true)", n, revoked("b"), revoked("a"))
	}
}

func testLog(t *testing.T, s Store) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)
	opts := audit.Options{Store: s, LogID: "conformance", HMACKey: HMACKey, SigningKey: Key(), CheckpointEvery: 16, MaxBatch: 8,
		Now: func() time.Time { return clock }}
	log, err := audit.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	seqs := make(chan uint64, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := log.Append(ctx, audit.Record{
					Actor: "merchant:m-1", Action: "update.submit", Object: fmt.Sprint("round/", w), Outcome: audit.OutcomeOK,
					Identifiers: map[string]string{"customer": fmt.Sprint("c-", w, "-", i)},
				})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				seqs <- e.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] || q < 1 || q > workers*each {
			t.Errorf("Append returned seq %d twice or out of 1..%d", q, workers*each)
		}
		seen[q] = true
	}
	if err := log.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := log.Stats()
	if st.Entries != workers*each || st.Batches > workers*each {
		t.Errorf("stats = %+v, want %d entries", st, workers*each)
	}
	// Checkpoints at 16, 32, 48, 64 and the final one at 80 from Close.
	res, err := audit.Verify(ctx, s, Key().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != workers*each || res.Checkpoints != 5 || res.LastCheckpointSeq != workers*each {
		t.Errorf("Verify = %+v, want %d entries, 5 checkpoints, last at %d", res, workers*each, workers*each)
	}
	// A new log on the same store continues the chain.
	log2, err := audit.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := log2.Append(ctx, audit.Record{Actor: "admin:root", Action: "merchant.enrol", Outcome: audit.OutcomeOK})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != workers*each+1 || e.PrevHash != res.Head {
		t.Errorf("after restart Append seq %d prev %s, want %d %s", e.Seq, e.PrevHash, workers*each+1, res.Head)
	}
	if err := log2.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := audit.Verify(ctx, s, Key().Public().(ed25519.PublicKey)); err != nil || res.Entries != workers*each+1 {
		t.Errorf("Verify after restart = %+v, %v; want %d entries", res, err, workers*each+1)
	}
}

// testTwoLogs runs two logs (two aggregator replicas) on one store at once:
// they collide on the head, re-chain, and the chain stays valid.
func testTwoLogs(t *testing.T, s Store) {
	ctx := context.Background()
	var logs [2]*audit.Log
	for i := range logs {
		l, err := audit.New(ctx, audit.Options{Store: s, LogID: "conformance", HMACKey: HMACKey, SigningKey: Key(), CheckpointEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	const perLog = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range perLog * len(logs) {
		wg.Go(func() {
			_, err := logs[i%2].Append(ctx, audit.Record{Actor: "admin:ops", Action: "noop", Object: fmt.Sprint(i), Outcome: audit.OutcomeOK})
			if err != nil && !errors.Is(err, audit.ErrHeadMoved) {
				t.Errorf("Append: %v", err)
			}
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// An append may give up after repeated collisions (ErrHeadMoved); every
	// append that returned success must be in the chain, and nothing else.
	res, err := audit.Verify(ctx, s, Key().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Entries != uint64(ok) || ok < perLog {
		t.Errorf("Verify = %d entries, %d appends succeeded (want equal, at least %d)", res.Entries, ok, perLog)
	}
}
