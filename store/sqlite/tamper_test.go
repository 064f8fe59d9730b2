package sqlite

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

// filledStore returns a store holding a 20-entry log written through
// audit.Log, with checkpoints at 5, 10, 15 and 20.
func filledStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s := openTest(t)
	l, err := audit.New(ctx, audit.Options{Store: s, LogID: "tamper", HMACKey: storetest.HMACKey, SigningKey: storetest.Key(), CheckpointEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		r := audit.Record{Actor: "merchant:m-3", Action: "update.submit", Object: fmt.Sprint("round/", i), Outcome: audit.OutcomeOK,
			Identifiers: map[string]string{"customer": fmt.Sprint("c", i)}, Details: map[string]string{"n": fmt.Sprint(i)}}
		if i%4 == 0 {
			r.Outcome, r.Reason = audit.OutcomeDenied, "over budget"
		}
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

// dropTriggers plays an attacker with write access to the file, who can
// simply remove the append-only triggers.
func dropTriggers(t *testing.T, s *Store) {
	t.Helper()
	for _, tr := range []string{"audit_entries_no_update", "audit_entries_no_delete", "audit_checkpoints_no_update", "audit_checkpoints_no_delete"} {
		if _, err := s.w.Exec("DROP TRIGGER " + tr); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendOnlyTriggers(t *testing.T) {
	s := filledStore(t)
	for _, q := range []string{
		`UPDATE audit_entries SET actor = 'x' WHERE seq = 3`,
		`DELETE FROM audit_entries WHERE seq = 20`,
		`DELETE FROM audit_entries`,
		`UPDATE audit_checkpoints SET signature = x'00' WHERE seq = 5`,
		`DELETE FROM audit_checkpoints`,
	} {
		if _, err := s.w.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want an append-only refusal", q, err)
		}
	}
	if _, err := audit.Verify(context.Background(), s, storetest.Key().Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("Verify after refused tampering: %v", err)
	}
}

// TestTamperDetection changes a real stored log with raw SQL, every column
// and every kind of damage, and checks that Verify names the first bad entry.
func TestTamperDetection(t *testing.T) {
	tests := []struct {
		name       string
		sql        []string
		rewrite    func(t *testing.T, s *Store) // a consistent rewrite done in Go
		seq        uint64
		checkpoint bool
		reason     string
	}{
		{name: "seq", sql: []string{`UPDATE audit_entries SET seq = 100 WHERE seq = 7`}, seq: 7, reason: "missing"},
		{name: "time_ms", sql: []string{`UPDATE audit_entries SET time_ms = time_ms + 1 WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "actor", sql: []string{`UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "action", sql: []string{`UPDATE audit_entries SET action = 'noop' WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "object", sql: []string{`UPDATE audit_entries SET object = 'round/8' WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "outcome", sql: []string{`UPDATE audit_entries SET outcome = 'ok' WHERE seq = 8`}, seq: 8, reason: "altered"},
		{name: "reason", sql: []string{`UPDATE audit_entries SET reason = '' WHERE seq = 8`}, seq: 8, reason: "altered"},
		{name: "identifiers", sql: []string{`UPDATE audit_entries SET identifiers = '{}' WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "details", sql: []string{`UPDATE audit_entries SET details = '{"n":"70"}' WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "prev_hash", sql: []string{`UPDATE audit_entries SET prev_hash = zeroblob(32) WHERE seq = 7`}, seq: 7, reason: "prev hash"},
		{name: "hash", sql: []string{`UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 7`}, seq: 7, reason: "altered"},
		{name: "deleted entry", sql: []string{`DELETE FROM audit_entries WHERE seq = 7`}, seq: 7, reason: "missing"},
		{name: "deleted first entry", sql: []string{`DELETE FROM audit_entries WHERE seq = 1`}, seq: 1, reason: "missing"},
		{name: "reordered entries", sql: []string{
			`UPDATE audit_entries SET seq = 1007 WHERE seq = 7`,
			`UPDATE audit_entries SET seq = 7 WHERE seq = 8`,
			`UPDATE audit_entries SET seq = 8 WHERE seq = 1007`,
		}, seq: 7, reason: "prev hash"},
		{name: "truncated tail", sql: []string{`DELETE FROM audit_entries WHERE seq > 12`}, seq: 13, reason: "truncated"},
		{name: "forked history", rewrite: func(t *testing.T, s *Store) {
			rewriteFrom(t, s, 3, func(e *audit.Entry) { e.Actor = "admin:mallory" })
		}, seq: 5, checkpoint: true, reason: "history rewritten"},
		{name: "forked tail re-signed with another key", rewrite: func(t *testing.T, s *Store) {
			rewriteFrom(t, s, 18, func(e *audit.Entry) { e.Reason = "forged" })
			es, err := s.AuditEntries(context.Background(), 20, 1)
			if err != nil {
				t.Fatal(err)
			}
			c := audit.Checkpoint{LogID: "tamper", Seq: 20, Hash: es[0].Hash, Time: es[0].Time}
			audit.SignCheckpoint(ed25519.NewKeyFromSeed(make([]byte, 32)), &c)
			if _, err := s.w.Exec(`UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE seq = 20`, c.Hash[:], c.Signature); err != nil {
				t.Fatal(err)
			}
		}, seq: 20, checkpoint: true, reason: "bad signature"},
		{name: "checkpoint signature", sql: []string{`UPDATE audit_checkpoints SET signature = randomblob(64) WHERE seq = 10`}, seq: 10, checkpoint: true, reason: "bad signature"},
		{name: "checkpoint hash", sql: []string{`UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_entries WHERE seq = 9) WHERE seq = 10`}, seq: 10, checkpoint: true, reason: "bad signature"},
		{name: "checkpoint seq", sql: []string{`UPDATE audit_checkpoints SET seq = 11 WHERE seq = 10`}, seq: 11, checkpoint: true, reason: "bad signature"},
		{name: "checkpoint time", sql: []string{`UPDATE audit_checkpoints SET time_ms = time_ms - 1000 WHERE seq = 10`}, seq: 10, checkpoint: true, reason: "bad signature"},
		{name: "checkpoint log id", sql: []string{`UPDATE audit_checkpoints SET log_id = 'other' WHERE seq = 10`}, seq: 10, checkpoint: true, reason: "bad signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := filledStore(t)
			dropTriggers(t, s)
			for _, q := range tc.sql {
				if _, err := s.w.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if tc.rewrite != nil {
				tc.rewrite(t, s)
			}
			_, err := audit.Verify(context.Background(), s, storetest.Key().Public().(ed25519.PublicKey))
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if ve.Seq != tc.seq || ve.Checkpoint != tc.checkpoint || !strings.Contains(ve.Reason, tc.reason) {
				t.Errorf("Verify failed at seq %d (checkpoint %v): %q; want seq %d (checkpoint %v) with %q",
					ve.Seq, ve.Checkpoint, ve.Reason, tc.seq, tc.checkpoint, tc.reason)
			}
		})
	}
}

// rewriteFrom changes entry seq with mod and recomputes every later hash,
// as an attacker who knows the format would, so only checkpoints notice.
func rewriteFrom(t *testing.T, s *Store, seq uint64, mod func(*audit.Entry)) {
	t.Helper()
	es, err := s.AuditEntries(context.Background(), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	mod(&es[seq-1])
	for i := int(seq) - 1; i < len(es); i++ {
		if i > 0 {
			es[i].PrevHash = es[i-1].Hash
		}
		es[i].Hash = audit.EntryHash(es[i].PrevHash, &es[i])
		e := es[i]
		if _, err := s.w.Exec(`UPDATE audit_entries SET actor = ?, reason = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
			e.Actor, e.Reason, e.PrevHash[:], e.Hash[:], int64(e.Seq)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditRewritesRefused: every SQL path that would change a stored entry
// or checkpoint in place, including INSERT OR REPLACE, which deletes the old
// row without firing the DELETE trigger, is refused by the schema.
func TestAuditRewritesRefused(t *testing.T) {
	storetest.RunRewrites(t, func(t *testing.T) (storetest.Store, storetest.Exec) {
		s := openTest(t)
		return s, func(ctx context.Context, q string) error {
			_, err := s.w.ExecContext(ctx, q)
			return err
		}
	}, storetest.SQLiteRewrites)
}
