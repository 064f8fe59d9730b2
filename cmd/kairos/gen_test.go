package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
)

func TestGenCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "log.csv")
	cmd := newGenCmd()
	cmd.SetArgs([]string{"--events", "1234", "--seed", "9", "--out", out, "--start", "2025-02-01", "--days", "90"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := ingest.LoadMapping(out + ".mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	rep, err := ingest.ReadFile(context.Background(), out, ingest.Options{Format: ingest.CSV, Mapping: m}, func(ev model.Event) error {
		n++
		if ev.Time.Year() != 2025 || ev.Time.Month() < 2 || ev.Time.Month() > 5 {
			t.Errorf("event at %v, want inside the 90 days from 2025-02-01", ev.Time)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1234 || rep.Rows != 1234 {
		t.Errorf("got %d events from %d rows, want 1234", n, rep.Rows)
	}

	// The same seed to standard output gives the same bytes.
	var buf bytes.Buffer
	cmd = newGenCmd()
	cmd.SetOut(&buf)
	cmd.SetArgs([]string{"--events", "1234", "--seed", "9", "--start", "2025-02-01", "--days", "90"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(out)
	if !bytes.Equal(buf.Bytes(), file) {
		t.Errorf("stdout and file output differ for the same seed")
	}

	for _, args := range [][]string{
		{},
		{"--events", "5", "--events-per-customer", "3"},
		{"--events-per-customer", "3"},
		{"--events", "5", "--start", "01/02/2025"},
	} {
		cmd := newGenCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "gen: ") {
			t.Errorf("gen %v: got %v, want a gen error", args, err)
		}
	}
}
