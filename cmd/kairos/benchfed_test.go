package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/bench"
)

// TestBenchFederation runs both measurements small on SQLite through the
// command and checks the JSON against what the run must have done.
func TestBenchFederation(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.json")
	cmd := newBenchFederationCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--merchants", "2,3", "--customers", "400", "--rounds", "2", "--updates", "12", "--submitters", "4",
		"--accept-db", filepath.Join(dir, "accept.db"), "--json-out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("bench federation: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.FederationResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	a := res.Accept
	if len(res.Federation) != 2 || a == nil {
		t.Fatalf("got federation %v and accept %v, want two runs and acceptance", res.Federation, a)
	}
	if n := res.Federation[0].Merchants; n != 2 {
		t.Errorf("first run: %d merchants, want 2", n)
	}
	f := res.Federation[1]
	if f.Store != "sqlite" || f.Merchants != 3 || len(f.RoundSeconds) != 2 || !(f.RoundsPerMinute > 0) ||
		math.Abs(f.MeanRoundSeconds-(f.RoundSeconds[0]+f.RoundSeconds[1])/2) > 1e-9 {
		t.Errorf("federation: got %+v, want 3 merchants, 2 timed rounds on sqlite", f)
	}
	// Three cutoffs per customer at most; customers born after a cutoff have no row there.
	if f.Rows <= 0 || f.Rows > 3*400*3 || f.Events < f.Rows/3 {
		t.Errorf("got %d rows from %d events, want 1..%d", f.Rows, f.Events, 3*400*3)
	}
	// Two planned rounds spend the cap exactly, never more.
	if f.MaxEpsilon > f.EpsilonCap*(1+1e-9) || f.MaxEpsilon < 0.5*f.EpsilonCap {
		t.Errorf("got largest ε %v, want about the cap %v after the planned rounds", f.MaxEpsilon, f.EpsilonCap)
	}
	if a.Updates != 12 || a.AuditEntries != 12 || !(a.PerSecond > 0) || a.Params < 900 || a.Params > 1100 {
		t.Errorf("accept: got %+v, want 12 updates with 12 audit entries of about 1000 parameters", a)
	}
	for _, want := range []string{"rounds per minute", "accepted updates per second"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestBenchFederationSecure runs the rounds measurement with --secure on 4
// merchants: the secure rounds use the complete graph (for 4 merchants with
// one dropout and one colluder tolerated, degree 2 fails: the one dropout is
// among a client's 2 of 3 others with chance 2/3), spend at most ε = 1, and
// the overhead is the ratio of the two reported means.
func TestBenchFederationSecure(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.json")
	cmd := newBenchFederationCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"--merchants", "4", "--customers", "400", "--rounds", "2", "--secure", "--skip-accept", "--json-out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("bench federation --secure: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.FederationResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Federation) != 1 || res.Federation[0].Secure == nil {
		t.Fatalf("got %+v, want one run with a secure part", res.Federation)
	}
	s := res.Federation[0].Secure
	if s.Rounds != 2 || s.Degree != 3 || s.Threshold != 2 || s.Bits < 1 || s.Bits > 32 || s.ClientBytesPerRound <= 0 {
		t.Errorf("secure: got %+v, want 2 rounds, degree 3, threshold 2, bits in 1…32, bytes sent", s)
	}
	if s.Epsilon > 1+1e-9 || s.Epsilon < 0.5 {
		t.Errorf("secure: ε %v, want about the cap 1, never above", s.Epsilon)
	}
	mean := (res.Federation[0].RoundSeconds[0] + res.Federation[0].RoundSeconds[1]) / 2
	if d := s.Overhead - s.RoundSeconds/mean; d > 1e-9 || d < -1e-9 {
		t.Errorf("overhead %v, want %v / %v", s.Overhead, s.RoundSeconds, mean)
	}
	if !strings.Contains(stdout.String(), "secure rounds (SecAgg+, distributed DP)") {
		t.Errorf("table lacks the secure rounds:\n%s", stdout.String())
	}
}
