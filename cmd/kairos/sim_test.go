package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/client/train/sim"
)

func TestSimRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "cdnow-7"}, `--scenario "cdnow-7": unknown`},
		{[]string{"--dropout", "0.3"}, "--dropout needs --secure-aggregation"},
		{[]string{"--data", "/nonexistent/CDNOW_master.txt"}, "/nonexistent/CDNOW_master.txt"},
		{[]string{"--scenario", "retail-regions", "--processes"}, `--processes: scenario "retail-regions" is not a cdnow-N split`},
		{[]string{"--scenario", "cdnow-20", "--processes", "--secure-aggregation"}, "--processes runs plain mode"},
		{[]string{"--processes", "--validation"}, "--processes runs plain mode"},
	}
	for _, tt := range tests {
		cmd := newSimCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(tt.args)
		cmd.SilenceUsage = true
		err := cmd.ExecuteContext(t.Context())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

// TestSimScenarios checks that every scenario the help lists is one the sim
// package runs, and that the 5- and 20-merchant comparisons are among them.
func TestSimScenarios(t *testing.T) {
	help := newSimCmd().Long
	for _, name := range []string{"cdnow-100", "cdnow-20", "cdnow-5"} {
		n, ok := sim.CDNOWScenarioMerchants(name)
		if !ok || !slices.Contains(sim.Scenarios, name) {
			t.Errorf("scenario %s: not known to the sim package (merchants %d, listed %v)", name, n, sim.Scenarios)
		}
		if !strings.Contains(help, "  "+name+" ") {
			t.Errorf("scenario %s: missing from the help", name)
		}
	}
	for _, name := range sim.Scenarios {
		if !strings.Contains(help, "  "+name+" ") {
			t.Errorf("scenario %s: missing from the help", name)
		}
		if _, err := sim.ScenarioFile(name); err != nil {
			t.Errorf("scenario %s: %v", name, err)
		}
	}
	if n, _ := sim.CDNOWScenarioMerchants("cdnow-20"); n != 20 {
		t.Errorf("cdnow-20: %d merchants, want 20", n)
	}
}

func TestSimTable(t *testing.T) {
	r := sim.ScenarioReport{
		Scenario: "cdnow-100", Seed: 1, TestCutoff: "1998-03-01", Merchants: 100, EpsilonMax: 0.9994, Delta: 1e-6,
		AUC30:               sim.PooledAUC{Federated: 0.8208, Centralized: 0.8223, LocalOnlyPooled: 0.7963, PersonalizedPooled: 0.8012},
		BySize:              []sim.BucketReport{{Bucket: "<100", Merchants: 52, Customers: 2173, Trio: sim.Trio{LocalOnly: 0.7182, Federated: 0.8116, Personalized: 0.8070}, PersonalizedGELocal: 0.75, Compared: 44}},
		PersonalizedGELocal: 0.731,
	}
	var buf bytes.Buffer
	if err := writeSimTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"100 merchants", "ε ≤ 0.9994", "federated 0.8208", "personalised 0.8012", "73.1%", "0.7182", "0.8070", "75% of 44"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "secure aggregation") {
		t.Errorf("plain-mode table mentions secure aggregation:\n%s", buf.String())
	}
	r.SecureAggregation = true
	r.Secure = &sim.SecureReport{Rounds: 60, SamplingRate: 0.05, NoiseMultiplier: 5.454, MinCohort: 100, Bits: 32, Degree: 22, Threshold: 12, Dropouts: 30}
	buf.Reset()
	if err := writeSimTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"60 rounds at q = 0.05", "noise multiplier 5.454", "≥ 100 merchants", "32 bits", "degree 22, threshold 12", "30 dropouts"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("secure table lacks %q:\n%s", want, buf.String())
		}
	}
}
