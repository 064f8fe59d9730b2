package storetest

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// Rewrite is one way an operator with SQL access to the database might try
// to change a stored audit entry or checkpoint in place.
type Rewrite struct {
	Name string
	SQL  string
}

// The rewrites of entry 3 and the checkpoint at entry 4 that RunRewrites
// tries; the column lists are the same in both schemas.
const (
	entryCols     = `seq, time_ms, actor, action, object, outcome, reason, identifiers, details, prev_hash, hash`
	forgedEntry   = `SELECT seq, time_ms, 'admin:mallory', action, object, outcome, reason, identifiers, details, prev_hash, hash FROM audit_entries WHERE seq = 3`
	forgedCpoint  = `SELECT seq, log_id, hash, time_ms + 1, signature FROM audit_checkpoints WHERE seq = 4`
	checkpointCol = `seq, log_id, hash, time_ms, signature`
)

// SQLiteRewrites are the SQLite statements RunRewrites must see refused.
// INSERT OR REPLACE, REPLACE INTO and an upsert are the paths that bypass a
// DELETE trigger: SQLite removes the conflicting row without firing it.
var SQLiteRewrites = []Rewrite{
	{"insert or replace entry", `INSERT OR REPLACE INTO audit_entries (` + entryCols + `) ` + forgedEntry},
	{"replace into entry", `REPLACE INTO audit_entries (` + entryCols + `) ` + forgedEntry},
	{"upsert entry", `INSERT INTO audit_entries (` + entryCols + `) ` + forgedEntry + ` ON CONFLICT (seq) DO UPDATE SET actor = excluded.actor`},
	{"update entry", `UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 3`},
	{"update or replace entry", `UPDATE OR REPLACE audit_entries SET seq = 3 WHERE seq = 4`},
	{"delete entry", `DELETE FROM audit_entries WHERE seq = 6`},
	{"delete all entries", `DELETE FROM audit_entries`},
	{"insert or replace checkpoint", `INSERT OR REPLACE INTO audit_checkpoints (` + checkpointCol + `) ` + forgedCpoint},
	{"replace into checkpoint", `REPLACE INTO audit_checkpoints (` + checkpointCol + `) ` + forgedCpoint},
	{"upsert checkpoint", `INSERT INTO audit_checkpoints (` + checkpointCol + `) ` + forgedCpoint + ` ON CONFLICT (seq) DO UPDATE SET time_ms = excluded.time_ms`},
	{"update checkpoint", `UPDATE audit_checkpoints SET time_ms = time_ms + 1 WHERE seq = 4`},
	{"delete checkpoints", `DELETE FROM audit_checkpoints`},
}

// PostgresRewrites are the PostgreSQL statements RunRewrites must see
// refused. The last one runs with triggers of the ordinary kind switched off
// (session_replication_role = replica, which the test server's superuser may
// set).
var PostgresRewrites = []Rewrite{
	{"upsert entry", `INSERT INTO audit_entries (` + entryCols + `) ` + forgedEntry + ` ON CONFLICT (seq) DO UPDATE SET actor = EXCLUDED.actor`},
	{"merge update entry", `MERGE INTO audit_entries e USING (SELECT 3 AS seq) s ON e.seq = s.seq WHEN MATCHED THEN UPDATE SET actor = 'admin:mallory'`},
	{"merge delete entry", `MERGE INTO audit_entries e USING (SELECT 6 AS seq) s ON e.seq = s.seq WHEN MATCHED THEN DELETE`},
	{"update entry", `UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 3`},
	{"delete entry", `DELETE FROM audit_entries WHERE seq = 6`},
	{"truncate entries", `TRUNCATE audit_entries`},
	{"upsert checkpoint", `INSERT INTO audit_checkpoints (` + checkpointCol + `) ` + forgedCpoint + ` ON CONFLICT (seq) DO UPDATE SET time_ms = EXCLUDED.time_ms`},
	{"update checkpoint", `UPDATE audit_checkpoints SET time_ms = time_ms + 1 WHERE seq = 4`},
	{"delete checkpoints", `DELETE FROM audit_checkpoints`},
	{"truncate checkpoints", `TRUNCATE audit_checkpoints`},
	{"truncate both", `TRUNCATE audit_entries, audit_checkpoints`},
	{"update as replica", `SET LOCAL session_replication_role = replica; UPDATE audit_entries SET actor = 'admin:mallory' WHERE seq = 3`},
}

// Exec runs raw SQL on a store's database, as an operator would.
type Exec func(ctx context.Context, query string) error

// RunRewrites checks that no rewrite gets past a store's append-only rules.
// For each rewrite it stores a six-entry log with checkpoints at entries 2, 4
// and 6 in a fresh store from open, runs the rewrite through its Exec, and
// checks that it fails with the append-only refusal and that the log reads
// back exactly as stored and still verifies.
func RunRewrites(t *testing.T, open func(t *testing.T) (Store, Exec), rewrites []Rewrite) {
	ctx := context.Background()
	es, cps := Chain(audit.Head{}, 6, 2, time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC))
	for _, rw := range rewrites {
		t.Run(rw.Name, func(t *testing.T) {
			s, exec := open(t)
			if err := s.AppendAudit(ctx, es, cps); err != nil {
				t.Fatal(err)
			}
			if err := exec(ctx, rw.SQL); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: err = %v, want the append-only refusal", rw.SQL, err)
			}
			got, err := s.AuditEntries(ctx, 1, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(es) {
				t.Fatalf("%d entries after the refused rewrite, want %d", len(got), len(es))
			}
			for i := range got {
				if d := diffEntry(&got[i], &es[i]); d != "" {
					t.Errorf("entry %d after the refused rewrite: %s", i+1, d)
				}
			}
			gotCps, err := s.AuditCheckpoints(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(gotCps, cps, func(a, b audit.Checkpoint) bool {
				return a.Seq == b.Seq && a.Hash == b.Hash && a.LogID == b.LogID && a.Time.Equal(b.Time) && string(a.Signature) == string(b.Signature)
			}) {
				t.Errorf("checkpoints after the refused rewrite differ from those stored")
			}
			if res, err := audit.Verify(ctx, s, Key().Public().(ed25519.PublicKey)); err != nil || res.Entries != 6 || res.Checkpoints != 3 {
				t.Errorf("Verify = %+v, %v; want 6 entries and 3 checkpoints", res, err)
			}
		})
	}
}
