package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// runDP runs `kairos dp args...` in-process and returns its standard output.
func runDP(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newDPCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// The published accounting vectors, planning and input errors of kairos dp
// are tested by testdata/script/dp.txtar; these need a value computed by one
// command fed to another, or a statistical run.

// TestDPNoiseAfterReleases: --release specs are spent before the plan, as a
// ledger file is. The federated round plan of docs/privacy.md (40 rounds of 10
// steps at q = 0.05, one count at σ = 50, one evaluation at σ = 10) needs more
// noise than the training alone, and the composed ε of the plan with those two
// releases, recomputed by `dp epsilon`, is the target.
func TestDPNoiseAfterReleases(t *testing.T) {
	plan := func(extra ...string) float64 {
		t.Helper()
		args := append([]string{"noise", "--epsilon", "1", "--delta", "1e-6", "--sampling-rate", "0.05", "--steps", "400", "--json"}, extra...)
		out, err := runDP(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var got struct {
			NoiseMultiplier float64 `json:"noise_multiplier"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		return got.NoiseMultiplier
	}
	alone := plan()
	z := plan("--release", "q=1,z=50,steps=1", "--release", "q=1,z=10,steps=1")
	if !(z > alone) {
		t.Fatalf("z after the count and the evaluation = %v, want above %v (training alone)", z, alone)
	}
	out, err := runDP(t, "epsilon", "--delta", "1e-6", "--json", "--release", "q=1,z=50,steps=1", "--release", "q=1,z=10,steps=1",
		"--release", "q=0.05,z="+strconv.FormatFloat(z, 'g', -1, 64)+",steps=400")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Epsilon float64 `json:"epsilon"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Epsilon > 1 || got.Epsilon < 1-1e-3 {
		t.Errorf("ε of the plan with its releases = %v, want in [0.999, 1]", got.Epsilon)
	}
}

// TestDPAudit: kairos dp audit runs the production round and reports, for each
// release, a lower bound no larger than the accountant's ε; with little noise
// (ε = 50) the count's bound is positive, so the command measures something.
func TestDPAudit(t *testing.T) {
	out, err := runDP(t, "audit", "--epsilon", "50", "--runs", "40", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []struct {
		Epsilon float64 `json:"epsilon"`
		Update  struct {
			Epsilon float64 `json:"accountant_epsilon"`
			Bound   struct {
				Epsilon float64 `json:"epsilon_lower_bound"`
			} `json:"bound"`
		} `json:"update"`
		Count struct {
			Epsilon float64 `json:"accountant_epsilon"`
			Bound   struct {
				Epsilon float64 `json:"epsilon_lower_bound"`
			} `json:"bound"`
		} `json:"count"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0].Epsilon != 50 {
		t.Fatalf("got %+v, want one report at ε 50", got)
	}
	r := got[0]
	if r.Update.Bound.Epsilon > r.Update.Epsilon || r.Count.Bound.Epsilon > r.Count.Epsilon || !(r.Count.Bound.Epsilon > 0) {
		t.Errorf("update bound %v (accountant %v), count bound %v (accountant %v); want each ≤ its accountant ε and the count's > 0",
			r.Update.Bound.Epsilon, r.Update.Epsilon, r.Count.Bound.Epsilon, r.Count.Epsilon)
	}
}
