package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store/sqlite"
)

func runCompliance(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newComplianceCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// writeAuditDB writes a 25-entry audit log, signed with the aggregator
// keys in a fresh key directory, to an SQLite file.
func writeAuditDB(t *testing.T) (db, keyDir string) {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	keyDir, db = filepath.Join(tmp, "agg"), filepath.Join(tmp, "kairos.db")
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregator(keyDir, agg, nil); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Options{Store: s, HMACKey: agg.AuditHMAC, SigningKey: agg.Checkpoint, CheckpointEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if _, err := l.Append(ctx, audit.Record{Actor: "admin:ops", Action: "merchant.enrol", Object: fmt.Sprint("merchant/m-", i),
			Outcome: audit.OutcomeOK, Identifiers: map[string]string{"merchant": fmt.Sprint("m-", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return db, keyDir
}

// kairos compliance audit verify and export, over the database and the
// export, intact and tampered, are tested by testdata/script/compliance.txtar.

// TestComplianceAuditWitness: a witness file taken from an intact log lets
// verify catch a tail that was cut together with its checkpoints (the log
// alone still verifies), and witness refuses the cut log and leaves the file
// as it was.
func TestComplianceAuditWitness(t *testing.T) {
	db, keyDir := writeAuditDB(t)
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	out, err := runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness)
	if err != nil || !strings.Contains(out, "3 checkpoints (3 new), the last at entry 25") {
		t.Fatalf("first witness: %v\n%s", err, out)
	}
	out, err = runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness)
	if err != nil || !strings.Contains(out, "3 checkpoints (0 new)") {
		t.Fatalf("second witness: %v\n%s", err, out)
	}
	if out, err := runCompliance(t, "audit", "verify", "--db", db, "--keys", keyDir, "--witness", witness); err != nil || !strings.HasPrefix(out, "OK: 25 entries, 3 checkpoints") {
		t.Fatalf("verify --witness on the intact log: %v\n%s", err, out)
	}
	before, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}

	// An attacker with write access drops the append-only triggers and cuts
	// the log after entry 10, checkpoints included.
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_checkpoints_no_delete",
		"DELETE FROM audit_entries WHERE seq > 10", "DELETE FROM audit_checkpoints WHERE seq > 10",
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	if out, err := runCompliance(t, "audit", "verify", "--db", db, "--keys", keyDir); err != nil || !strings.HasPrefix(out, "OK: 10 entries, 1 checkpoints") {
		t.Fatalf("the cut log alone should verify (the weakness the witness covers): %v\n%s", err, out)
	}
	out, err = runCompliance(t, "audit", "verify", "--db", db, "--keys", keyDir, "--witness", witness)
	if err == nil || !strings.Contains(out, "FAIL") || !strings.Contains(out, "truncated tail") {
		t.Errorf("verify --witness on the cut log: %v\n%s", err, out)
	}
	if _, err := runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("witness on the cut log: %v, want a truncation error", err)
	}
	if after, _ := os.ReadFile(witness); !bytes.Equal(after, before) {
		t.Error("the witness file changed after a refused update")
	}
}

// TestComplianceAuditWitnessAppends: on a file the aggregator already
// pushes to (audit.witness), witness keeps every line there and appends
// only the checkpoints the file lacks, so the two writers do not lose each
// other's lines.
func TestComplianceAuditWitnessAppends(t *testing.T) {
	ctx := context.Background()
	db, keyDir := writeAuditDB(t)
	pub, err := checkpointKey(keyDir, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := s.AuditCheckpoints(ctx)
	s.Close()
	if err != nil || len(cps) != 3 {
		t.Fatalf("log checkpoints = %d, %v; want 3 (10, 20 and the final 25)", len(cps), err)
	}
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	fw, err := audit.NewFileWitness(witness, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Add(ctx, cps[1:2]); err != nil { // as serve pushed checkpoint 20
		t.Fatal(err)
	}
	pushed, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness)
	if err != nil || !strings.Contains(out, "3 checkpoints (2 new), the last at entry 25") {
		t.Fatalf("witness: %v\n%s", err, out)
	}
	after, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, pushed) || bytes.Count(after, []byte("\n")) != 3 {
		t.Errorf("witness file:\n%s\nwant the pushed line first, then the 2 new ones", after)
	}
}

// TestComplianceAuditWitnessRefusesFork: an attacker who can write the
// database cuts the log after entry 10 (checkpoints too), lets the
// aggregator, restarted without a witness, grow a new history from there
// (new checkpoints at 20', 30' and 35'), and deletes the new checkpoint at 20
// because the witness holds the old one there. No checkpoint of the log then
// shares a seq with a witnessed one, but the log no longer passes through
// the witnessed checkpoints at 20 and 25: witness must refuse it and leave
// the file as it was (before: it appended 30' and 35' beside 20 and 25, a
// witness holding two histories).
func TestComplianceAuditWitnessRefusesFork(t *testing.T) {
	ctx := context.Background()
	db, keyDir := writeAuditDB(t)
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	if out, err := runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness); err != nil {
		t.Fatalf("first witness: %v\n%s", err, out)
	}
	before, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(qs ...string) {
		t.Helper()
		raw, err := sql.Open("sqlite", db)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, q := range qs {
			if _, err := raw.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec("DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_checkpoints_no_delete",
		"DELETE FROM audit_entries WHERE seq > 10", "DELETE FROM audit_checkpoints WHERE seq > 10")

	agg, err := keys.LoadAggregator(keyDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Options{Store: s, HMACKey: agg.AuditHMAC, SigningKey: agg.Checkpoint, CheckpointEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if _, err := l.Append(ctx, audit.Record{Actor: "admin:mallory", Action: "merchant.enrol", Object: fmt.Sprint("merchant/x-", i),
			Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cps, err := s.AuditCheckpoints(ctx)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, c := range cps {
		seqs = append(seqs, c.Seq)
	}
	if fmt.Sprint(seqs) != "[10 20 30 35]" {
		t.Fatalf("regrown log's checkpoints at %v, want [10 20 30 35]", seqs)
	}
	exec("DELETE FROM audit_checkpoints WHERE seq = 20")

	out, err := runCompliance(t, "audit", "witness", "--db", db, "--keys", keyDir, "--witness", witness)
	if err == nil || !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "entry 20") {
		t.Errorf("witness on the regrown log: %v\n%s\nwant it refused at the witnessed checkpoint of entry 20", err, out)
	}
	if after, _ := os.ReadFile(witness); !bytes.Equal(after, before) {
		t.Errorf("the witness file changed after a refused update:\n%s", after)
	}
	if out, err := runCompliance(t, "audit", "verify", "--db", db, "--keys", keyDir, "--witness", witness); err == nil {
		t.Errorf("verify --witness on the regrown log passed:\n%s", out)
	}
}

// TestComplianceAuditVerifyEmptyFile (privacy.md §16, round 8): an export
// file with no entry line (empty, blank lines only, or cut before its first
// line in transit) was reported "OK: 0 entries, 0 checkpoints" with exit
// status 0, so a script checking the status took a file that proves nothing
// for a verified log. Every log holds entries by the time one exports it.
func TestComplianceAuditVerifyEmptyFile(t *testing.T) {
	_, keyDir := writeAuditDB(t)
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "blank lines": "\n\n  \n"} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".jsonl")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runCompliance(t, "audit", "verify", "--file", file, "--keys", keyDir)
		if err == nil || strings.Contains(out, "OK") || !strings.Contains(out, "no audit entry") {
			t.Errorf("%s: verify --file: %v\n%s\nwant a failure saying the file holds no audit entry", name, err, out)
		}
	}
}
