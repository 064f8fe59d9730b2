package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestDPNoiseDDGauss: kairos dp noise --mechanism ddgauss plans a secure-aggregation
// training within ε; kairos dp epsilon, given the plan's γ and noise share, reports the
// same ε, and so does the plan's release written as a --release spec.
func TestDPNoiseDDGauss(t *testing.T) {
	out, err := runDP(t, "noise", "--mechanism", "ddgauss", "--epsilon", "1", "--delta", "1e-6",
		"--sampling-rate", "0.05", "--steps", "20", "--dim", "20", "--min-cohort", "5", "--max-cohort", "10",
		"--max-customers", "2000", "--release", "q=1,z=50,steps=1", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var plan struct {
		Params struct {
			Gamma         float64 `json:"gamma"`
			LocalVariance string  `json:"local_variance"`
			Bits          int     `json:"bits"`
		} `json:"params"`
		Release struct {
			Sigma2, L2, L1 float64
			Q              float64
			Dim, Cohort    int
			Steps          int
		} `json:"release"`
		Epsilon float64 `json:"epsilon"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if plan.Epsilon > 1 || plan.Epsilon < 0.99 || plan.Params.Bits < 1 || plan.Params.Bits > 32 {
		t.Fatalf("plan: ε %v, bits %d", plan.Epsilon, plan.Params.Bits)
	}
	if plan.Release.Dim != 32 || plan.Release.Cohort != 5 || plan.Release.Steps != 20 || plan.Release.Q != 0.05 {
		t.Errorf("release %+v: want dim 32 (20 padded), cohort 5, 20 steps at q 0.05", plan.Release)
	}
	epsOf := func(args ...string) float64 {
		t.Helper()
		out, err := runDP(t, append(args, "--delta", "1e-6", "--release", "q=1,z=50,steps=1", "--json")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var r struct{ Epsilon float64 }
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.Epsilon
	}
	byFlags := epsOf("epsilon", "--mechanism", "ddgauss", "--sampling-rate", "0.05", "--steps", "20",
		"--dim", "20", "--min-cohort", "5", "--gamma", fmt.Sprint(plan.Params.Gamma),
		"--local-variance", plan.Params.LocalVariance)
	r := plan.Release
	bySpec := epsOf("epsilon", "--release", fmt.Sprintf("mechanism=ddgauss,q=%v,sigma2=%v,cohort=%d,l2=%v,l1=%v,dim=%d,steps=%d",
		r.Q, r.Sigma2, r.Cohort, r.L2, r.L1, r.Dim, r.Steps))
	for name, e := range map[string]float64{"flags": byFlags, "release spec": bySpec} {
		if math.Abs(e-plan.Epsilon) > 1e-12 {
			t.Errorf("dp epsilon by %s: %v, plan says %v", name, e, plan.Epsilon)
		}
	}
}

func TestDPDDGaussErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"epsilon", "--mechanism", "ddg", "--delta", "1e-6"}, `--mechanism: "ddg" unknown`},
		{[]string{"epsilon", "--mechanism", "ddgauss", "--delta", "1e-6", "--dim", "4"}, "needs --dim and --min-cohort"},
		{[]string{"epsilon", "--mechanism", "ddgauss", "--delta", "1e-6", "--dim", "4", "--min-cohort", "3", "--steps", "2"}, "needs --sampling-rate, --steps, --gamma and --local-variance"},
		{[]string{"epsilon", "--mechanism", "ddgauss", "--delta", "1e-6", "--dim", "4", "--min-cohort", "3", "--steps", "2",
			"--sampling-rate", "0.1", "--gamma", "0.01", "--local-variance", "x/3"}, `--local-variance: "x/3"`},
		{[]string{"noise", "--mechanism", "ddgauss", "--epsilon", "1", "--delta", "1e-6", "--dim", "4", "--min-cohort", "3",
			"--sampling-rate", "0.1", "--steps", "3"}, "needs --max-customers"},
	} {
		out, err := runDP(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to contain %q\n%s", tc.args, err, tc.want, out)
		}
	}
}
