package policies

import (
	"errors"
	"strings"
	"testing"
)

// okHead is a valid start of a policy, lines 1–10 of most cases below.
const okHead = `version: 1
federation: demo
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole error text
	}{
		{"unknown top-level key", okHead + "merchant:\n  m1: {}\n",
			`policy.yaml:11:1: unknown key "merchant"`},
		{"misspelt rule in a merchant", okHead + "merchants:\n  m1:\n    region: eu\n    epsilon_cp: 0.8\nregions: {eu: {}}\n",
			`policy.yaml:14:5: unknown key "epsilon_cp"`},
		{"repeated key", okHead + "merchants:\n  m1: {}\n  m1: {}\n",
			`policy.yaml:13:3: key "m1" repeated (first at line 12)`},
		{"zero epsilon", strings.Replace(okHead, "epsilon_cap: 1.0", "epsilon_cap: 0", 1),
			`policy.yaml:4:16: epsilon_cap: must be > 0, got 0`},
		{"infinite epsilon", strings.Replace(okHead, "epsilon_cap: 1.0", "epsilon_cap: .inf", 1),
			`policy.yaml:4:16: epsilon_cap: must be finite, got .inf`},
		{"NaN clip", strings.Replace(okHead, "clip_norm: 1.0", "clip_norm: .nan", 1),
			`policy.yaml:7:14: clip_norm: must be finite, got .nan`},
		{"epsilon as a quoted string", strings.Replace(okHead, "epsilon_cap: 1.0", `epsilon_cap: "1.0"`, 1),
			`policy.yaml:4:16: epsilon_cap: want a number, got "1.0"`},
		{"delta of one", strings.Replace(okHead, "delta: 1e-6", "delta: 1", 1),
			`policy.yaml:5:10: delta: must be in (0, 0.0001], got 1`},
		{"delta not below 1/n", strings.Replace(strings.Replace(okHead, "delta: 1e-6", "delta: 1e-4", 1), "min_customers_per_update: 100", "min_customers_per_update: 10000", 1),
			`policy.yaml:5:10: delta 1e-4 must be below 1/min_customers_per_update = 1/10000`},
		{"merchant raises n past 1/delta", okHead + "merchants:\n  m1: {min_customers_per_update: 2000000}\n",
			`policy.yaml:12:34: delta 1e-6 must be below 1/min_customers_per_update = 1/2000000`},
		{"negative noise", strings.Replace(okHead, "min_noise_multiplier: 0.5", "min_noise_multiplier: -0.1", 1),
			`policy.yaml:6:25: min_noise_multiplier: must be in [0, 1e+06], got -0.1`},
		{"zero clip", strings.Replace(okHead, "clip_norm: 1.0", "clip_norm: 0", 1),
			`policy.yaml:7:14: clip_norm: must be in (0, 1e+06], got 0`},
		// σ = z·C must stay finite with room to spare: a clip of 1e308 made
		// every update's noise overflow, refused after it was debited.
		{"overflowing clip", strings.Replace(okHead, "clip_norm: 1.0", "clip_norm: 1e308", 1),
			`policy.yaml:7:14: clip_norm: must be in (0, 1e+06], got 1e308`},
		{"overflowing noise", strings.Replace(okHead, "min_noise_multiplier: 0.5", "min_noise_multiplier: 1e300", 1),
			`policy.yaml:6:25: min_noise_multiplier: must be in [0, 1e+06], got 1e300`},
		{"fractional customers", strings.Replace(okHead, "min_customers_per_update: 100", "min_customers_per_update: 100.5", 1),
			`policy.yaml:8:29: min_customers_per_update: want an integer, got "100.5"`},
		{"zero retention", strings.Replace(okHead, "retention_days: 365", "retention_days: 0", 1),
			`policy.yaml:10:19: retention_days: must be at least 1, got 0`},
		{"max customers below the minimum", okHead + "merchants:\n  m1: {max_customers: 50}\n",
			`policy.yaml:12:23: max_customers 50 is below min_customers_per_update 100`},
		{"zero norm bound", okHead + "aggregation:\n  norm_bound: 0\n",
			`policy.yaml:12:15: norm_bound: must be > 0, got 0`},
		{"weight share above 1", okHead + "aggregation:\n  max_weight_share: 1.5\n",
			`policy.yaml:12:21: max_weight_share: must be in (0, 1], got 1.5`},
		{"min cohort of one", okHead + "aggregation:\n  min_cohort: 1\n",
			`policy.yaml:12:15: min_cohort: must be at least 2 (one merchant's noise alone is plain mode), got 1`},
		{"fractional min cohort", okHead + "aggregation:\n  min_cohort: 2.5\n",
			`policy.yaml:12:15: min_cohort: want an integer, got "2.5"`},
		{"all with others", strings.Replace(okHead, "[all]", "[all, recency]", 1),
			`policy.yaml:9:21: allowed_features: "all" must stand alone`},
		{"empty features", strings.Replace(okHead, "[all]", "[]", 1),
			`policy.yaml:9:21: allowed_features: empty; write [all] to allow every feature`},
		{"bad feature name", strings.Replace(okHead, "[all]", "[recency, Spend]", 1),
			`policy.yaml:9:31: allowed_features: "Spend" is not a feature name (lower case, digits, '_')`},
		{"missing default", strings.Replace(okHead, "  clip_norm: 1.0\n", "", 1),
			`policy.yaml:3:1: defaults: missing "clip_norm"`},
		{"missing defaults", "version: 1\nfederation: demo\n",
			`policy.yaml:1:1: missing key "defaults"`},
		{"version 2", strings.Replace(okHead, "version: 1", "version: 2", 1),
			`policy.yaml:1:10: version: only version 1 is supported, got 2`},
		{"undefined region", okHead + "merchants:\n  m1: {region: asia}\n",
			`policy.yaml:12:16: region "asia" is not defined under regions`},
		{"partner names unknown merchant", okHead + "merchants: {m1: {}}\npartners:\n  crm: {merchants: [m1, m9], rate_per_second: 5, burst: 5}\n",
			`policy.yaml:13:25: partner crm: merchant "m9" is not defined under merchants`},
		{"partner zero rate", okHead + "merchants: {m1: {}}\npartners:\n  crm: {merchants: [m1], rate_per_second: 0, burst: 5}\n",
			`policy.yaml:13:43: rate_per_second: must be > 0, got 0`},
		{"partner missing burst", okHead + "merchants: {m1: {}}\npartners:\n  crm: {merchants: [m1], rate_per_second: 5}\n",
			`policy.yaml:13:3: partner crm: missing "burst"`},
		{"partner repeats merchant", okHead + "merchants: {m1: {}}\npartners:\n  crm: {merchants: [m1, m1], rate_per_second: 5, burst: 5}\n",
			`policy.yaml:13:25: merchants: "m1" repeated`},
		{"trim fraction too large", okHead + "aggregation: {merge: trimmed_mean, trim_fraction: 0.5}\n",
			`policy.yaml:11:51: trim_fraction: must be in (0, 0.5), got 0.5`},
		{"trimmed mean without fraction", okHead + "aggregation: {merge: trimmed_mean}\n",
			`policy.yaml:11:22: merge: trimmed_mean needs trim_fraction`},
		{"trim fraction with fedavg", okHead + "aggregation: {merge: fedavg, trim_fraction: 0.1}\n",
			`policy.yaml:11:45: trim_fraction: only meaningful with merge: trimmed_mean`},
		{"unknown merge", okHead + "aggregation: {merge: mean}\n",
			`policy.yaml:11:22: merge: "mean" is not one of fedavg, median, trimmed_mean`},
		{"bad merchant id", okHead + "merchants:\n  \"m 1\": {}\n",
			`policy.yaml:12:3: merchant: "m 1" is not a valid id (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)`},
		{"alias", okHead + "regions:\n  eu: &r {epsilon_cap: 0.5}\n  us: *r\n",
			`policy.yaml:13:7: region us: aliases are not supported`},
		{"rules not a mapping", okHead + "merchants:\n  m1: [1]\n",
			`policy.yaml:12:7: merchant m1: want a mapping, got a list`},
		{"null value", strings.Replace(okHead, "epsilon_cap: 1.0", "epsilon_cap:", 1),
			`policy.yaml:4:15: epsilon_cap: want a number, got null`},
		{"syntax error", "version: 1\nfederation: demo\n  defaults: x\n",
			`policy.yaml:3: mapping values are not allowed in this context`},
		{"empty file", "", `policy.yaml:1:1: empty policy`},
		{"not a mapping", "- 1\n", `policy.yaml:1:1: policy must be a mapping, got a list`},
		{"two documents", okHead + "---\nversion: 1\n", `policy.yaml:11:1: more than one YAML document`},
		{"two errors in file order", strings.Replace(strings.Replace(okHead, "clip_norm: 1.0", "clip_norm: -1", 1), "epsilon_cap: 1.0", "epsilon_cap: -1", 1),
			"policy.yaml:4:16: epsilon_cap: must be > 0, got -1\npolicy.yaml:7:14: clip_norm: must be in (0, 1e+06], got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse: got policy %s, want error %q", p.Hash(), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error:\n got %q\nwant %q", err.Error(), tt.want)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || list[0].File != "policy.yaml" {
				t.Errorf("Parse error %T: want a non-empty ErrorList naming the file", err)
			}
		})
	}
}

func TestNumericIDs(t *testing.T) {
	p := mustParse(t, "ids.yaml", okHead+"merchants:\n  1001: {}\n  007: {}\npartners:\n  42: {merchants: [1001, 007], rate_per_second: 1, burst: 1}\n")
	if got := strings.Join(p.Merchants(), ","); got != "007,1001" {
		t.Errorf("merchants: got %s, want 007,1001 (source text kept)", got)
	}
	if !p.MayQuery("42", "007") {
		t.Error("MayQuery(42, 007): got false, want true")
	}
	again := mustParse(t, "format.yaml", string(p.Format()))
	if again.Hash() != p.Hash() {
		t.Errorf("Format round trip: got hash %s, want %s\n%s", again.Hash(), p.Hash(), p.Format())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(basePolicy))
	f.Add([]byte(okHead))
	f.Add([]byte(okHead + "merchants:\n  m1: {region: eu}\nregions: {eu: {delta: 0.5}}\n"))
	f.Add([]byte(okHead + "aggregation:\n  min_cohort: 10\n"))
	f.Add([]byte("version: 1\nfederation: x\n  defaults: {}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte(okHead + "tokens: {max_ttl: {partner: 1h30m, merchant: 2160h}}\n"))
	f.Add([]byte(okHead + "retraining: {evaluate_every: 30d, auc_drop: 0.02, max_model_age: 2160h, campaign_rounds: 3, min_merchants: 2}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not a non-empty ErrorList", err)
			}
			return
		}
		// Whatever parses formats to a file that parses to the same hash.
		again, err := Parse("format.yaml", p.Format())
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, p.Format())
		}
		if again.Hash() != p.Hash() {
			t.Fatalf("Format round trip changed the hash\n%s", p.Format())
		}
	})
}
