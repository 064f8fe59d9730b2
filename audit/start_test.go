package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/sqlite"
	"github.com/kairos-fl/kairos/store/storetest"
)

// openSQLiteAt opens and migrates the store in path.
func openSQLiteAt(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// operator opens the database file as someone with SQL access to it would,
// outside the store, and runs statements.
func operator(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

var dropAuditTriggers = []string{
	`DROP TRIGGER audit_entries_no_update`, `DROP TRIGGER audit_entries_no_delete`, `DROP TRIGGER audit_entries_no_replace`,
	`DROP TRIGGER audit_checkpoints_no_update`, `DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_checkpoints_no_replace`,
}

// rechain rewrites entry seq of the log in path with mod and recomputes the
// hash of every later entry, with SQL on the file (triggers dropped), as an
// operator who knows the format would.
func rechain(t *testing.T, s *sqlite.Store, path string, seq uint64, mod func(*audit.Entry)) {
	t.Helper()
	es, err := s.AuditEntries(context.Background(), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mod(&es[seq-1])
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := int(seq) - 1; i < len(es); i++ {
		if i > 0 {
			es[i].PrevHash = es[i-1].Hash
		}
		es[i].Hash = audit.EntryHash(es[i].PrevHash, &es[i])
		e := es[i]
		if _, err := db.Exec(`UPDATE audit_entries SET actor = ?, reason = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
			e.Actor, e.Reason, e.PrevHash[:], e.Hash[:], int64(e.Seq)); err != nil {
			t.Fatal(err)
		}
	}
}

// witnessed writes a 20-entry log through a Log pushing to a file witness
// (checkpoints at 5, 10, 15, 20) and returns the store, its file and the
// witness.
func witnessedLog(t *testing.T) (*sqlite.Store, string, *audit.FileWitness) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	s := openSQLiteAt(t, path)
	wit, err := audit.NewFileWitness(filepath.Join(dir, "witness.jsonl"), pub())
	if err != nil {
		t.Fatal(err)
	}
	l := newLog(t, s, func(o *audit.Options) { o.Witness = wit })
	for i := range 20 {
		if _, err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return s, path, wit
}

func seqs(cps []audit.Checkpoint) []uint64 {
	out := make([]uint64, len(cps))
	for i := range cps {
		out[i] = cps[i].Seq
	}
	return out
}

// TestWitnessReceivesEveryCheckpoint: each checkpoint the log commits is
// appended to the witness file, identical to the stored one.
func TestWitnessReceivesEveryCheckpoint(t *testing.T) {
	s, _, wit := witnessedLog(t)
	held, err := wit.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	own, err := s.AuditCheckpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(held), []uint64{5, 10, 15, 20}; !equalSeqs(got, want) || len(own) != len(held) {
		t.Fatalf("witness holds checkpoints at %v, store at %v; want %v in both", got, seqs(own), want)
	}
	for i := range held {
		if held[i].Hash != own[i].Hash || string(held[i].Signature) != string(own[i].Signature) {
			t.Errorf("witness checkpoint %d differs from the stored one", held[i].Seq)
		}
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStartRefusesRewrittenHistory: an operator who drops the triggers,
// rewrites an entry, re-chains the rest and deletes the stored checkpoints
// that no longer match leaves a log that verifies on its own. A Log started
// on it with the witness refuses to start and names the checkpoint; without
// the witness it cannot tell.
func TestStartRefusesRewrittenHistory(t *testing.T) {
	tests := []struct {
		name    string
		seq     uint64 // the entry rewritten
		deleted string // the stored checkpoints the operator deletes
	}{
		{"old entry, every checkpoint deleted", 3, `DELETE FROM audit_checkpoints`},
		{"tail entry, last checkpoint deleted", 18, `DELETE FROM audit_checkpoints WHERE seq = 20`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, path, wit := witnessedLog(t)
			operator(t, path, dropAuditTriggers...)
			rechain(t, s, path, tc.seq, func(e *audit.Entry) { e.Actor = "admin:mallory" })
			operator(t, path, tc.deleted)
			if _, err := audit.Verify(context.Background(), s, pub()); err != nil {
				t.Fatalf("the forged log alone should verify (the weakness): %v", err)
			}
			before, _ := s.AuditHead(context.Background())

			_, err := audit.New(context.Background(), audit.Options{Store: s, LogID: "test", HMACKey: storetest.HMACKey,
				SigningKey: storetest.Key(), CheckpointEvery: 5, Witness: wit})
			// New walks from the last signed checkpoint (20): a re-chained
			// rewrite of any earlier entry changes the hash it signs.
			var ve *audit.VerifyError
			if !errors.Is(err, audit.ErrStartRefused) || !errors.As(err, &ve) || ve.Seq != 20 || !ve.Checkpoint ||
				!strings.Contains(ve.Reason, "history rewritten") {
				t.Fatalf("New = %v; want ErrStartRefused with the checkpoint at entry 20 reporting history rewritten", err)
			}
			if after, _ := s.AuditHead(context.Background()); after.CheckpointSeq != before.CheckpointSeq {
				t.Errorf("a refused start signed a checkpoint at %d", after.CheckpointSeq)
			}

			l, err := audit.New(context.Background(), audit.Options{Store: s, LogID: "test", HMACKey: storetest.HMACKey,
				SigningKey: storetest.Key(), CheckpointEvery: 5})
			if err != nil {
				t.Fatalf("New without the witness = %v; the log alone cannot show the rewrite", err)
			}
			l.Close()
		})
	}
}

// TestStartSignsTheUnsignedTail: entries a crashed process left without a
// checkpoint are signed at start-up, and the checkpoint reaches the witness;
// the store's checkpoints the witness missed are pushed too.
func TestStartSignsTheUnsignedTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSQLiteAt(t, filepath.Join(dir, "audit.db"))
	es, cps := storetest.Chain(audit.Head{}, 13, 5, vecTime) // checkpoints at 5 and 10; 11..13 unsigned
	if err := s.AppendAudit(ctx, es, cps); err != nil {
		t.Fatal(err)
	}
	wit, err := audit.NewFileWitness(filepath.Join(dir, "witness.jsonl"), pub())
	if err != nil {
		t.Fatal(err)
	}
	if err := wit.Add(ctx, cps[:1]); err != nil { // the crash came after checkpoint 10 committed, before its push
		t.Fatal(err)
	}
	l := newLog(t, s, func(o *audit.Options) { o.Witness = wit })
	defer l.Close()
	if st := l.Stats(); st.Checkpoints != 1 {
		t.Errorf("checkpoints signed by New = %d, want 1 (the start-up one)", st.Checkpoints)
	}
	if res := mustVerify(t, s, 13); res.LastCheckpointSeq != 13 {
		t.Errorf("last checkpoint after start at %d, want 13", res.LastCheckpointSeq)
	}
	held, err := wit.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(held), []uint64{5, 10, 13}; !equalSeqs(got, want) {
		t.Errorf("witness after start holds %v, want %v", got, want)
	}
}

// TestStartRefusesCutLog: a log cut before the witness's last checkpoint
// (entries and checkpoints deleted) is refused at start-up.
func TestStartRefusesCutLog(t *testing.T) {
	s, path, wit := witnessedLog(t)
	operator(t, path, append(dropAuditTriggers, `DELETE FROM audit_entries WHERE seq > 12`, `DELETE FROM audit_checkpoints WHERE seq > 12`)...)
	_, err := audit.New(context.Background(), audit.Options{Store: s, HMACKey: storetest.HMACKey, SigningKey: storetest.Key(), Witness: wit})
	var ve *audit.VerifyError
	if !errors.Is(err, audit.ErrStartRefused) || !errors.As(err, &ve) || ve.Seq != 13 || !strings.Contains(ve.Reason, "truncated") {
		t.Fatalf("New on a cut log = %v; want ErrStartRefused naming entry 13 as a truncated tail", err)
	}
}

// flakyWitness fails Add while down is set.
type flakyWitness struct {
	audit.Witness
	down atomic.Bool
}

func (f *flakyWitness) Add(ctx context.Context, cps []audit.Checkpoint) error {
	if f.down.Load() {
		return errInjected
	}
	return f.Witness.Add(ctx, cps)
}

// TestWitnessOutage: while the witness fails, appends still succeed and the
// failures are counted; the checkpoints missed reach it with the next push.
func TestWitnessOutage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSQLiteAt(t, filepath.Join(dir, "audit.db"))
	fw, err := audit.NewFileWitness(filepath.Join(dir, "witness.jsonl"), pub())
	if err != nil {
		t.Fatal(err)
	}
	wit := &flakyWitness{Witness: fw}
	var reported atomic.Int64
	l := newLog(t, s, func(o *audit.Options) {
		o.Witness = wit
		o.WitnessFailed = func(err error) {
			if errors.Is(err, errInjected) {
				reported.Add(1)
			}
		}
	})
	wit.down.Store(true)
	for i := range 10 {
		if _, err := l.Append(ctx, rec(i)); err != nil {
			t.Fatalf("Append with the witness down: %v", err)
		}
	}
	if st := l.Stats(); st.WitnessFailures != 2 || reported.Load() != 2 {
		t.Errorf("witness failures counted %d, reported %d; want 2 each (the pushes after checkpoints 5 and 10)", st.WitnessFailures, reported.Load())
	}
	wit.down.Store(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	held, err := fw.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(held), []uint64{5, 10}; !equalSeqs(got, want) {
		t.Errorf("witness after the outage holds %v, want %v", got, want)
	}
}

// TestFileWitnessTornLine: a line cut short by a crash is ignored on read
// and removed by the next Add, whose lines then parse with the rest.
func TestFileWitnessTornLine(t *testing.T) {
	ctx := context.Background()
	_, cps := storetest.Chain(audit.Head{}, 12, 4, vecTime) // checkpoints at 4, 8, 12
	path := filepath.Join(t.TempDir(), "witness.jsonl")
	wit, err := audit.NewFileWitness(path, pub())
	if err != nil {
		t.Fatal(err)
	}
	if err := wit.Add(ctx, cps[:1]); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"type":"checkpoint","log_id":"te`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if held, err := wit.Checkpoints(ctx); err != nil || !equalSeqs(seqs(held), []uint64{4}) {
		t.Fatalf("Checkpoints with a torn last line = %v, %v; want [4]", seqs(held), err)
	}
	if err := wit.Add(ctx, cps[1:]); err != nil {
		t.Fatal(err)
	}
	if held, err := wit.Checkpoints(ctx); err != nil || !equalSeqs(seqs(held), []uint64{4, 8, 12}) {
		t.Fatalf("Checkpoints after the next Add = %v, %v; want [4 8 12]", seqs(held), err)
	}
	if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") != 3 || strings.Contains(string(b), `"te{`) {
		t.Errorf("file after Add:\n%s\nwant three whole lines", b)
	}
}

// TestFileWitnessConcurrentWriters: writers that each open the file (as
// serve replicas and the witness command do) append whole lines; none is
// cut or lost.
func TestFileWitnessConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	const writers, each = 8, 25
	_, cps := storetest.Chain(audit.Head{}, writers*each, 1, vecTime)
	path := filepath.Join(t.TempDir(), "witness.jsonl")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			fw, err := audit.NewFileWitness(path, pub())
			if err != nil {
				t.Error(err)
				return
			}
			for i := range each {
				if err := fw.Add(ctx, cps[w*each+i:w*each+i+1]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	fw, _ := audit.NewFileWitness(path, pub())
	held, err := fw.Checkpoints(ctx)
	if err != nil || len(held) != writers*each {
		t.Fatalf("witness holds %d checkpoints, %v; want %d", len(held), err, writers*each)
	}
}
