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
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/policies"
)

func TestDemoRoundsConfig(t *testing.T) {
	r := demoRoundsConfig(5)
	cfg := config.Default("127.0.0.1:0", "sqlite:x.db")
	cfg.Rounds = r
	if err := cfg.Check(); err != nil {
		t.Fatalf("demo round config refused by the aggregator config check: %v", err)
	}
	fo := sim.DefaultFedOptions()
	train, _ := sim.ReferenceCutoffs()
	if r.PlannedRounds != fo.Rounds || r.StepsPerRound != fo.Steps || r.SamplingRate != fo.SamplingRate ||
		r.LearningRate != fo.LearningRate || r.Server != fo.Server || r.Quorum != 5 || len(r.Cutoffs) != len(train) {
		t.Errorf("demo rounds %+v do not follow the simulation's tuned plan %+v", r, fo)
	}
	// The demo relies on aggregator init's default policy being the cdnow-demo example.
	want, err := os.ReadFile("../../policies/examples/cdnow-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policies.Parse("cdnow-demo.yaml", want)
	if err != nil {
		t.Fatal(err)
	}
	for i := range demoShares {
		mp, err := p.Merchant("cdnow-" + string(rune('1'+i)))
		if err != nil {
			t.Fatalf("demo merchant %d not in the cdnow-demo policy: %v", i+1, err)
		}
		if mp.EpsilonCap != 1 || mp.Delta != 1e-6 {
			t.Errorf("cdnow-%d: cap %v at δ %v, want 1 at 1e-6", i+1, mp.EpsilonCap, mp.Delta)
		}
	}
}

func TestDemoClientConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cdnow-3"), 0o700); err != nil {
		t.Fatal(err)
	}
	path, err := writeDemoClientConfig(dir, "http://127.0.0.1:9", "/data/CDNOW_master.txt", "cdnow-3", 2)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	shares := c.Data.Shard.Shares()
	for i, want := range []float64{0.40, 0.25, 0.15, 0.12, 0.08} {
		if shares[i] != want {
			t.Errorf("share %d: got %v, want %v (the simulation's split, bit for bit)", i, shares[i], want)
		}
	}
	if c.Data.Shard.Index != 2 || c.EpsilonCap != 1 || c.Data.Path != "/data/CDNOW_master.txt" {
		t.Errorf("config %+v", c)
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

func TestParseAuditEntries(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
		ok   bool
	}{
		{"OK: 328 entries, 2 checkpoints, head c350\n", 328, true},
		{"OK: 1 entries, 0 checkpoints, head x\nnote: entries 1..1 are chained but not yet covered\n", 1, true},
		{"audit verify: entry 3: hash mismatch\n", 0, false},
	} {
		n, ok := parseAuditEntries(tc.out)
		if n != tc.want || ok != tc.ok {
			t.Errorf("%q: got %d, %v; want %d, %v", tc.out, n, ok, tc.want, tc.ok)
		}
	}
}

func TestWriteDemoTable(t *testing.T) {
	r := demoReport{
		Rounds: 40, NoiseMultiplier: 5.66, Delta: 1e-6, TestCustomers: 23570, Seconds: 30, AuditVerified: true, AuditEntries: 328,
		AUC30: demoMetric{Federated: 0.8221, LocalOnlyMax: 0.8216, BGNBD: 0.8118},
		Merchants: []demoMerchant{
			{ID: "cdnow-1", Share: 0.4, Customers: 9449, Epsilon: 0.99996, EpsilonCap: 1, LocalOnly: sim.Scores{AUC30: 0.8216}},
			{ID: "cdnow-2", Share: 0.6, Customers: 14121, Epsilon: 0.99996, EpsilonCap: 1, LocalOnly: sim.Scores{AUC30: 0.81}},
		},
	}
	var buf bytes.Buffer
	if err := writeDemoTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"2 merchants federated over CDNOW (23570 customers), 40 rounds",
		"federated AUC@30 0.8221: above BG/NBD (0.8118), above every local-only model (best 0.8216)",
		"audit log verified: 328 entries",
		"0.99996",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	r.AUC30.Federated, r.AuditVerified = 0.81, false
	buf.Reset()
	if err := writeDemoTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NOT above BG/NBD", "NOT above every local-only", "verification FAILED"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
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
