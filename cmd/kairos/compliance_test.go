package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
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

func TestComplianceAudit(t *testing.T) {
	db, keyDir := writeAuditDB(t)
	tmp := t.TempDir()
	export := filepath.Join(tmp, "audit.jsonl")

	out, err := runCompliance(t, "audit", "verify", "--db", "sqlite:"+db, "--keys", keyDir)
	if err != nil || !strings.HasPrefix(out, "OK: 25 entries, 3 checkpoints") {
		t.Fatalf("verify --db: %v\n%s", err, out)
	}
	if _, err := runCompliance(t, "audit", "export", "--db", db, "--out", export); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), `"type":"entry"`); got != 25 {
		t.Errorf("export has %d entry lines, want 25", got)
	}

	// Offline, with the public key alone.
	pub, err := keys.LoadAggregatorPublic(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(tmp, "checkpoint.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCompliance(t, "audit", "verify", "--file", export, "--checkpoint-key", pubFile)
	if err != nil || !strings.HasPrefix(out, "OK: 25 entries, 3 checkpoints") {
		t.Fatalf("verify --file: %v\n%s", err, out)
	}

	// A flipped byte in entry 12's object fails at entry 12.
	bad := filepath.Join(tmp, "bad.jsonl")
	if err := os.WriteFile(bad, bytes.Replace(data, []byte(`"merchant/m-11"`), []byte(`"merchant/m-1X"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCompliance(t, "audit", "verify", "--file", bad, "--checkpoint-key", pubFile)
	if err == nil || !strings.Contains(out, "FAIL: audit verify: entry 12:") || !strings.Contains(out, "verified before it: 11 entries, 1 checkpoints") {
		t.Errorf("verify of altered export: err %v, output\n%s", err, out)
	}

	// Another key does not verify the checkpoints.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKIXPublicKey(other)
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCompliance(t, "audit", "verify", "--db", db, "--checkpoint-key", pubFile)
	if err == nil || !strings.Contains(out, "checkpoint at entry 10: bad signature") {
		t.Errorf("verify with another key: err %v, output\n%s", err, out)
	}
}

func TestComplianceAuditUsage(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "verify", "--keys", "k"},
		{"audit", "verify", "--db", "a.db", "--file", "b.jsonl", "--keys", "k"},
		{"audit", "verify", "--db", "a.db"},
		{"audit", "verify", "--db", filepath.Join(t.TempDir(), "missing.db"), "--checkpoint-key", "x.pub"},
		{"audit", "export"},
		{"audit", "export", "--db", filepath.Join(t.TempDir(), "missing.db")},
	} {
		if out, err := runCompliance(t, args...); err == nil {
			t.Errorf("%v: err = nil, want an error\n%s", args, out)
		}
	}
}
