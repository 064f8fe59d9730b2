package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/client/ingest"
)

// runKairos runs the CLI with args and returns its output and error.
func runKairos(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return o.String(), e.String(), err
}

// TestMappingSuggest: the command writes a mapping the reader accepts, the
// read summary goes to stderr, and a guess (a day and month order nothing
// resolves) exits with status 3 unless --accept-guesses.
func TestMappingSuggest(t *testing.T) {
	dir := t.TempDir()
	clear := filepath.Join(dir, "clear.csv")
	ambiguous := filepath.Join(dir, "ambiguous.csv")
	if err := os.WriteFile(clear, []byte("Kunde;Datum;Betrag\nK1;13.01.2024;1,50\nK2;14.01.2024;2,00\nK1;20.02.2024;3,25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ambiguous, []byte("customer,date\na,01/02/2024\nb,03/04/2024\na,05/06/2024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.yaml")
	_, stderr, err := runKairos(t, "mapping", "suggest", "--data", clear, "--out", out)
	if err != nil {
		t.Fatalf("got %v, want success\n%s", err, stderr)
	}
	m, err := ingest.LoadMapping(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Customer.Name != "Kunde" || m.Time.Name != "Datum" || m.TimeLayout != "02.01.2006" || m.Decimal != ',' || m.Delimiter != ';' {
		t.Errorf("got mapping %+v", *m)
	}
	if !strings.Contains(stderr, "3 rows, 3 events") {
		t.Errorf("stderr lacks the read summary:\n%s", stderr)
	}

	stdout, stderr, err := runKairos(t, "mapping", "suggest", "--data", ambiguous)
	if code := exitCode(err); code != exitGuesses {
		t.Fatalf("got exit status %d (%v), want %d", code, err, exitGuesses)
	}
	if !strings.Contains(stdout, "# CHECK: the day and month order") || !strings.Contains(stderr, "CHECK: the day and month order") {
		t.Errorf("the guess is not named:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if _, _, err := runKairos(t, "mapping", "suggest", "--data", ambiguous, "--accept-guesses"); err != nil {
		t.Errorf("--accept-guesses: got %v", err)
	}
	if _, _, err := runKairos(t, "mapping", "suggest"); exitCode(err) != 1 {
		t.Errorf("without --data: got %v, want exit status 1", err)
	}
}

// TestEvalWithoutMappingNamesSuggest: eval --dataset csv without a mapping
// says how to get one.
func TestEvalWithoutMappingNamesSuggest(t *testing.T) {
	_, _, err := runKairos(t, "eval", "--dataset", "csv", "--data", "orders.csv")
	if err == nil || !strings.Contains(err.Error(), "kairos mapping suggest --data orders.csv") {
		t.Errorf("got %v, want the suggest command", err)
	}
}
