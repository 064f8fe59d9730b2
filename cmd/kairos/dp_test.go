package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

func TestDPEpsilonOpacusVector(t *testing.T) {
	// opacus tests/accountants_test.py: z = 1.5, q = 0.04, 2250 steps, δ = 1e-5 ⇒ ε = 7.32911117143
	// with Opacus's orders and signed series.
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.jsonl")
	if err := os.WriteFile(ledger, []byte("{\"q\":0.04,\"z\":1.5,\"steps\":1000}\n{\"q\":0.04,\"z\":1.5,\"steps\":1250}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := [][]string{
		{"epsilon", "--noise-multiplier", "1.5", "--sampling-rate", "0.04", "--steps", "2250"},
		{"epsilon", "--release", "q=0.04,z=1.5,steps=2000", "--release", "q=0.04,z=1.5,steps=250"},
		{"epsilon", "--ledger", ledger},
	}
	for _, args := range runs {
		args = append(args, "--delta", "1e-5", "--orders", "opacus", "--series", "signed", "--json")
		out, err := runDP(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var got struct {
			Epsilon, Order, Delta float64
			Releases              int
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if want := 7.32911117143; math.Abs(got.Epsilon-want)/want > 1e-6 {
			t.Errorf("%v: epsilon = %.12g, want %.12g", args, got.Epsilon, want)
		}
		if got.Delta != 1e-5 || got.Order <= 1 {
			t.Errorf("%v: delta, order = %v, %v", args, got.Delta, got.Order)
		}
	}
}

func TestDPNoise(t *testing.T) {
	out, err := runDP(t, "noise", "--epsilon", "8", "--delta", "1e-5", "--sampling-rate", "0.04", "--steps", "2250",
		"--orders", "opacus", "--series", "signed", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		NoiseMultiplier float64 `json:"noise_multiplier"`
		Epsilon         float64 `json:"epsilon"`
		Steps           int     `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if math.Abs(got.NoiseMultiplier-1.416) > 5e-4 || got.Steps != 2250 || got.Epsilon > 8 {
		t.Errorf("got %+v, want z ≈ 1.416, 2250 steps, ε ≤ 8", got)
	}
	// Planning by customers, batch size and epochs: q = 200/20000, ⌈3/q⌉ = 300 steps.
	out, err = runDP(t, "noise", "--epsilon", "2", "--delta", "1e-6", "--customers", "20000", "--batch-size", "200", "--epochs", "3", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Steps != 300 || got.Epsilon > 2 || got.Epsilon < 2*(1-1e-3) {
		t.Errorf("plan = %+v, want 300 steps and ε in [0.999·2, 2]", got)
	}
}

func TestDPNoiseAfterLedger(t *testing.T) {
	// Half of the Opacus training already spent; the rest of a total ε = 7.32911117143 must
	// then need z = 1.5 again for the other 1125 steps.
	dir := t.TempDir()
	ledger := filepath.Join(dir, "spent.csv")
	if err := os.WriteFile(ledger, []byte("q,z,steps\n0.04,1.5,1125\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runDP(t, "noise", "--epsilon", "7.32911117143", "--delta", "1e-5", "--sampling-rate", "0.04", "--steps", "1125",
		"--orders", "opacus", "--series", "signed", "--ledger", ledger, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		NoiseMultiplier float64 `json:"noise_multiplier"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if math.Abs(got.NoiseMultiplier-1.5) > 1e-6 {
		t.Errorf("noise multiplier = %.9g, want 1.5", got.NoiseMultiplier)
	}
}

func TestDPErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("q,z,steps\n0.1,1,3\n0.1,x,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"epsilon", "--delta", "1e-5", "--ledger", bad}, "line 3, column 5"},
		{[]string{"epsilon", "--delta", "1e-5", "--release", "q=0.1,z=-1"}, "column 7"},
		{[]string{"epsilon", "--delta", "1e-5"}, "nothing to account"},
		{[]string{"epsilon", "--release", "q=0.1,z=1"}, "--delta is required"},
		{[]string{"epsilon", "--delta", "1e-5", "--noise-multiplier", "1"}, "go together"},
		{[]string{"noise", "--epsilon", "1", "--delta", "1e-5", "--sampling-rate", "0.1"}, "steps"},
		{[]string{"epsilon", "--delta", "1e-5", "--release", "q=0.1,z=1", "--series", "odd"}, "--series"},
	}
	for _, tt := range tests {
		_, err := runDP(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
}

// TestDPEpsilonTinyRelease: a release far below machine precision (z = 100,
// q = 1e-6, one step) is ε = 0 at δ = 1e-6, not an error about a negative RDP
// value from rounding in the fractional-order series.
func TestDPEpsilonTinyRelease(t *testing.T) {
	out, err := runDP(t, "epsilon", "--noise-multiplier", "100", "--sampling-rate", "1e-6", "--steps", "1", "--delta", "1e-6", "--json")
	if err != nil {
		t.Fatalf("kairos dp epsilon: %v\n%s", err, out)
	}
	var got struct {
		Epsilon float64 `json:"epsilon"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Epsilon != 0 {
		t.Errorf("ε = %v, want 0", got.Epsilon)
	}
}

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
