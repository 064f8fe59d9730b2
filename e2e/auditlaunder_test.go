package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the operator's SQL access to PostgreSQL
	_ "modernc.org/sqlite"             // and to the SQLite file

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store"
)

// TestAuditLaunderingAfterCrash reproduces the attack of issue 10, item 8,
// with real processes: `kairos aggregator serve` writes audit entries (three
// enrolments) and is killed with SIGKILL; an operator with SQL access to the
// database rewrites those entries in place (on SQLite with INSERT OR REPLACE,
// which used to bypass the append-only triggers; on PostgreSQL with an
// upsert), re-chains them, and restarts the aggregator, which used to sign a
// checkpoint over the forgery so that `verify --witness` said OK.
//
// Now the entries are under a checkpoint pushed to the witness file within
// about a second, the in-place rewrite is refused, and when the operator
// drops or disables the triggers to force it (and deletes the stored
// checkpoints that no longer match, so the log alone verifies), the restarted
// aggregator refuses to start and `verify --witness` names the rewritten
// history.
func TestAuditLaunderingAfterCrash(t *testing.T) {
	for _, st := range stores(t) {
		t.Run(st, func(t *testing.T) { testAuditLaundering(t, st) })
	}
}

// launderSQL is how the operator rewrites an entry in place and switches
// off the append-only triggers in each store's SQL.
var launderSQL = map[string]struct {
	driver, replace string
	disable         []string
}{
	"sqlite": {
		driver: "sqlite",
		replace: `INSERT OR REPLACE INTO audit_entries
    SELECT seq, time_ms, $1, action, object, outcome, reason, identifiers, details, $2, $3 FROM audit_entries WHERE seq = $4`,
		disable: []string{"DROP TRIGGER audit_entries_no_update", "DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_entries_no_replace",
			"DROP TRIGGER audit_checkpoints_no_update", "DROP TRIGGER audit_checkpoints_no_delete", "DROP TRIGGER audit_checkpoints_no_replace"},
	},
	"postgres": {
		driver: "pgx",
		replace: `INSERT INTO audit_entries
    SELECT seq, time_ms, $1, action, object, outcome, reason, identifiers, details, $2, $3 FROM audit_entries WHERE seq = $4
    ON CONFLICT (seq) DO UPDATE SET actor = EXCLUDED.actor, prev_hash = EXCLUDED.prev_hash, hash = EXCLUDED.hash`,
		disable: []string{"ALTER TABLE audit_entries DISABLE TRIGGER USER", "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"},
	},
}

func testAuditLaundering(t *testing.T, st string) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ctx := context.Background()
	dir := t.TempDir()
	aggDir := filepath.Join(dir, "aggregator")
	db := filepath.Join(aggDir, "kairos.db")
	dbArgs := []string{}
	if st == "postgres" {
		db = freshPostgres(t)
		dbArgs = []string{"--db", db}
	}
	witness := filepath.Join(aggDir, "audit-witness.jsonl") // the file init configures as audit.witness
	listen := freePort(t)
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: 1
federation: e2e
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
aggregation:
  merge: fedavg
merchants:
  m1: {}
  m2: {}
  m3: {}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(kairosBin, append([]string{"aggregator", "init", "--dir", aggDir, "--listen", listen, "--policy", policy, "--classic"}, dbArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("aggregator init: %v\n%s", err, out)
	}
	tok, err := os.ReadFile(filepath.Join(aggDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := apiclient.New("http://"+listen, strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "aggregator.log")
	serve := func() *proc {
		return start(t, logPath, nil, "aggregator", "serve", "--dir", aggDir, "--log-json")
	}
	agg := serve()
	waitReady(t, admin, agg)
	for _, id := range []string{"m1", "m2", "m3"} {
		k, err := keys.GenerateMerchant(rand.Reader, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: id, TimeZone: "UTC", PublicKey: k.Public().Signing}); err != nil {
			t.Fatalf("enrol %s: %v", id, err)
		}
	}
	pub, err := keys.LoadAggregatorPublic(filepath.Join(aggDir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	enrolSeqs := waitEnrolmentsSigned(t, db, witness, pub.Checkpoint)

	// kill -9: no clean shutdown, no final checkpoint.
	_ = agg.Cmd.Process.Kill()
	if err := agg.wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("aggregator did not die of SIGKILL: %v", err)
	}

	// The operator re-chains the enrolment entries from the first one on,
	// as "admin:mallory", rewriting them in place.
	first := enrolSeqs[0]
	forged := forgeFrom(t, db, first)
	q := launderSQL[st]
	op, err := sql.Open(q.driver, db)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	replace := func(e audit.Entry) error {
		_, err := op.Exec(q.replace, e.Actor, e.PrevHash[:], e.Hash[:], int64(e.Seq))
		return err
	}
	if err := replace(forged[0]); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("in-place rewrite of entry %d: %v; want the append-only refusal", first, err)
	}

	// Escalation: switch the triggers off, rewrite, and delete the stored
	// checkpoints the rewrite broke, so that the log alone verifies again.
	for _, stmt := range q.disable {
		if _, err := op.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	for _, e := range forged {
		if err := replace(e); err != nil {
			t.Fatalf("rewrite entry %d with the triggers off: %v", e.Seq, err)
		}
	}
	if _, err := op.Exec(`DELETE FROM audit_checkpoints WHERE seq >= $1`, int64(first)); err != nil {
		t.Fatal(err)
	}
	var checkpointsBefore int
	if err := op.QueryRow(`SELECT count(*) FROM audit_checkpoints`).Scan(&checkpointsBefore); err != nil {
		t.Fatal(err)
	}
	keysDir := filepath.Join(aggDir, "keys")
	if out, err := exec.Command(kairosBin, "compliance", "audit", "verify", "--db", db, "--keys", keysDir).CombinedOutput(); err != nil {
		t.Fatalf("the forged log alone should verify (the rewrite is consistent): %v\n%s", err, out)
	}

	// Restart: the aggregator must refuse to sign over the forgery.
	agg = serve()
	if err := agg.wait(t, 30*time.Second); err == nil {
		t.Fatalf("the aggregator started on a rewritten log\n%s", tail(logPath, 20))
	}
	if log, _ := os.ReadFile(logPath); !bytes.Contains(log, []byte("refusing to start")) || !bytes.Contains(log, []byte("history rewritten")) {
		t.Errorf("the refusal does not say why:\n%s", tail(logPath, 5))
	}
	var checkpointsAfter int
	if err := op.QueryRow(`SELECT count(*) FROM audit_checkpoints`).Scan(&checkpointsAfter); err != nil {
		t.Fatal(err)
	}
	if checkpointsAfter != checkpointsBefore {
		t.Errorf("the refused start stored %d checkpoints", checkpointsAfter-checkpointsBefore)
	}
	out, err := exec.Command(kairosBin, "compliance", "audit", "verify", "--db", db, "--keys", keysDir, "--witness", witness).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("FAIL")) || !bytes.Contains(out, []byte("history rewritten")) {
		t.Errorf("verify --witness on the forged log: %v\n%s\nwant FAIL naming the rewritten history", err, out)
	}
}

// waitEnrolmentsSigned waits until the three merchant.enrol entries are in
// the log and a checkpoint covering them is in the witness file, and returns
// their seqs. The aggregator signs its head every second it moved; the
// deadline only bounds a broken build.
func waitEnrolmentsSigned(t *testing.T, db, witness string, pub ed25519.PublicKey) []uint64 {
	t.Helper()
	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seqs []uint64
	var covered uint64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		es, err := s.AuditEntries(context.Background(), 1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		seqs = seqs[:0]
		for _, e := range es {
			if e.Action == "merchant.enrol" {
				seqs = append(seqs, e.Seq)
			}
		}
		covered = 0
		if f, err := os.Open(witness); err == nil {
			cps, err := audit.ReadWitness(f, pub)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cps {
				covered = max(covered, c.Seq)
			}
		}
		if len(seqs) == 3 && covered >= seqs[2] {
			return seqs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: enrolment entries %v, witness %s covers the log up to entry %d; want all three covered", seqs, witness, covered)
		}
	}
}

// forgeFrom reads the log in db and returns its entries from seq on with
// the actor of the first one changed and every hash from there recomputed,
// as an operator who knows the published format would.
func forgeFrom(t *testing.T, db string, seq uint64) []audit.Entry {
	t.Helper()
	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, err := s.AuditEntries(context.Background(), 1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(es)) < seq {
		t.Fatalf("log has %d entries, want at least %d", len(es), seq)
	}
	es[seq-1].Actor = fmt.Sprintf("admin:mallory-%d", seq)
	for i := int(seq) - 1; i < len(es); i++ {
		if i > 0 {
			es[i].PrevHash = es[i-1].Hash
		}
		es[i].Hash = audit.EntryHash(es[i].PrevHash, &es[i])
	}
	return es[seq-1:]
}
