package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/bench"
)

// TestBenchPredict runs `kairos bench predict` briefly on SQLite and, with
// KAIROS_TEST_POSTGRES_URL, on PostgreSQL. With Debian's Flask and
// scikit-learn present it also runs the peer, whose independent Python
// implementation of the hazard model must agree with the API on every
// compared customer.
func TestBenchPredict(t *testing.T) {
	if testing.Short() {
		t.Skip("load run")
	}
	peer := ""
	if exec.Command("/usr/bin/python3", "-c", "import flask, sklearn").Run() == nil {
		peer = filepath.Join("..", "..", "scripts", "peer_flask.py")
	} else {
		t.Log("no Flask and scikit-learn under /usr/bin/python3: peer skipped")
	}
	dbs := map[string]string{"sqlite": ""}
	if u := os.Getenv("KAIROS_TEST_POSTGRES_URL"); u != "" {
		dbs["postgres"] = u
	}
	for name, db := range dbs {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bench.json")
			args := []string{"predict", "--clients", "2", "--duration", "200ms", "--warmup", "50ms",
				"--customers", "150", "--batch", "25", "--batches", "2", "--flask", peer, "--json", out, "--breakdown"}
			if db != "" {
				args = append(args, "--db", db)
			}
			cmd := newBenchCmd()
			var stdout bytes.Buffer
			cmd.SetOut(&stdout)
			cmd.SetErr(&stdout)
			cmd.SetArgs(args)
			if err := cmd.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("bench predict: %v\n%s", err, stdout.String())
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var res bench.PredictResult
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Errors) > 0 {
				t.Errorf("errors: %v", res.Errors)
			}
			if want := map[string]string{"sqlite": "sqlite", "postgres": "postgres"}[name]; res.Store != want {
				t.Errorf("store %q, want %q", res.Store, want)
			}
			if len(res.Single) != 2 {
				t.Fatalf("%d load levels, want 2 (events and features)", len(res.Single))
			}
			for _, lv := range res.Single {
				if lv.Requests == 0 || lv.Failures != 0 || lv.Codes[200] != lv.Requests || !(lv.P50ms <= lv.P99ms && lv.P99ms <= lv.P999ms && lv.P999ms <= lv.MaxMs) {
					t.Errorf("level %+v: want answered requests, no failures and ordered percentiles", lv)
				}
				// Every answered predict (counted by the generator) waited for
				// one audit entry; the level's commits (counted by the store
				// wrapper) hold at least those entries.
				if b := lv.Breakdown; b == nil || b.Commits == 0 || b.Entries < lv.Requests || b.AuditWaitP50ms <= 0 {
					t.Errorf("level %s: breakdown %+v, want commits holding its %d entries", lv.Name, lv.Breakdown, lv.Requests)
				}
			}
			for _, br := range []bench.BatchResult{res.Batch, res.BatchVectors} {
				if br.Customers != 25 || br.Runs != 2 || br.P50ms <= 0 || br.AnswerBytes <= 0 {
					t.Errorf("batch %+v, want 2 runs of 25 customers", br)
				}
				if br.DecodedP50ms < br.P50ms || br.DecodedMaxMs < br.MaxMs {
					t.Errorf("batch %+v: time with decoding below time to last byte", br)
				}
			}
			if res.AuditEntries == 0 {
				t.Error("no audit entries")
			}
			if peer != "" {
				if res.PeerAgree != 20 || len(res.Peer) != 1 || res.Ratio <= 0 {
					t.Errorf("peer: %d compared, %d levels, ratio %v; want 20, 1 and a ratio", res.PeerAgree, len(res.Peer), res.Ratio)
				}
			}
			if !strings.Contains(stdout.String(), "go-features") {
				t.Errorf("no table in the output:\n%s", stdout.String())
			}
		})
	}
}

func TestGCFlags(t *testing.T) {
	for _, bad := range []gcFlags{{percent: -2}, {limitMiB: -1}, {percent: -1}} {
		if err := bad.apply(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	prev := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(prev); debug.SetMemoryLimit(prevLimit) })
	if err := (gcFlags{percent: 400, limitMiB: 512}).apply(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent after --gc-percent 400: got %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("memory limit after --memory-limit-mib 512: got %d", got)
	}
	// Zero values change nothing.
	if err := (gcFlags{}).apply(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after zero flags: got %d, want 100 unchanged", got)
	}

	// serve's default limit applies when neither the flag nor GOMEMLIMIT sets one.
	for _, tt := range []struct {
		name, env string
		flags     gcFlags
		// before is the limit in force before apply: math.MaxInt64 as
		// when GOMEMLIMIT was read at start (the test sets it by hand), or
		// applyMemoryLimit's share of a container.
		before, want int64
	}{
		{"default", "", gcFlags{defaultLimitMiB: 768}, math.MaxInt64, 768 << 20},
		{"flag over default", "", gcFlags{limitMiB: 256, defaultLimitMiB: 768}, math.MaxInt64, 256 << 20},
		{"GOMEMLIMIT over default", "2GiB", gcFlags{defaultLimitMiB: 768}, math.MaxInt64, math.MaxInt64},
		{"no default", "", gcFlags{}, math.MaxInt64, math.MaxInt64},
		// A container of 512 MiB: 0.9 · 512 MiB = 483,183,820 bytes, below the default, stays.
		{"container's limit under default", "", gcFlags{defaultLimitMiB: 768}, 483183820, 483183820},
		// A container of 4 GiB: its 3.6 GiB share is above the default, which applies.
		{"container's limit over default", "", gcFlags{defaultLimitMiB: 768}, 3865470566, 768 << 20},
	} {
		t.Setenv("GOMEMLIMIT", tt.env)
		debug.SetMemoryLimit(tt.before)
		if err := tt.flags.apply(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := debug.SetMemoryLimit(-1); got != tt.want {
			t.Errorf("%s: memory limit %d, want %d", tt.name, got, tt.want)
		}
	}
}
