package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/federation/demo"
)

// TestDemoRoundsConfig: the round configuration the demo writes (through the
// harness) is one the aggregator's config loader accepts, read back intact.
func TestDemoRoundsConfig(t *testing.T) {
	cfg := config.Default("127.0.0.1:0", "sqlite:x.db")
	cfg.Rounds = demo.Rounds(10)
	b, err := config.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse("kairos.yaml", b)
	if err != nil {
		t.Fatalf("demo rounds %s: %v", b, err)
	}
	if err := back.Check(); err != nil {
		t.Fatalf("demo round config refused by the aggregator config check: %v", err)
	}
	r := back.Rounds
	if r.Quorum != 10 || r.CountNoise != demo.CountNoise || r.TickInterval != 50*time.Millisecond || r.Deadline != 2*time.Minute {
		t.Errorf("decoded rounds %+v", r)
	}
}

func TestFindCDNOW(t *testing.T) {
	if _, err := findCDNOW("/no/such/CDNOW_master.txt", ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("missing --data file: got %v, want an error naming --data", err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "cdnow", "CDNOW_master.txt")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := findCDNOW(file, ""); err != nil || got != file {
		t.Errorf("flag: got %q, %v; want %q", got, err, file)
	}
	t.Setenv("KAIROS_DATA", dir)
	if got, err := findCDNOW("", ""); err != nil || got != file {
		t.Errorf("KAIROS_DATA: got %q, %v; want %q", got, err, file)
	}
	t.Setenv("KAIROS_DATA", t.TempDir())
	t.Chdir(t.TempDir())
	if _, err := findCDNOW("", ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("nothing found: got %v, want an error pointing at --data", err)
	}
}

func TestRoundBar(t *testing.T) {
	for _, rounds := range []int{0, 3} {
		var buf bytes.Buffer
		bar := roundBar(&buf, rounds)
		for _, p := range []client.Progress{
			{Stage: client.StageWait}, {Stage: client.StageTrain, Round: "round-000002"},
			{Stage: client.StageUpload, Round: "round-000002", Joined: 1}, {Stage: client.StageDone, Joined: 3},
		} {
			bar(p)
			time.Sleep(150 * time.Millisecond) // past the bar's redraw throttle
		}
		if !strings.Contains(buf.String(), "round-000002") {
			t.Errorf("rounds %d: bar output lacks the round: %q", rounds, buf.String())
		}
	}
}
