package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustParse(t testing.TB, name, src string) *Policy {
	t.Helper()
	p, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("got %d example files, want at least 2", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("example %s: %v", f, err)
		}
	}
}

func TestCDNOWDemo(t *testing.T) {
	data, err := os.ReadFile("examples/cdnow-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, "cdnow-demo.yaml", string(data))
	if got, want := strings.Join(p.Merchants(), ","), "cdnow-1,cdnow-2,cdnow-3,cdnow-4,cdnow-5"; got != want {
		t.Errorf("merchants: got %s, want %s", got, want)
	}
	for _, id := range p.Merchants() {
		m, err := p.Merchant(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.EpsilonCap != 1 || m.Delta != 1e-6 || !m.AllFeatures || m.MinCustomersPerUpdate != 100 {
			t.Errorf("merchant %s: got %+v, want ε 1, δ 1e-6, all features, 100 customers", id, m)
		}
	}
	if !p.MayQuery("crm-demo", "cdnow-5") || p.MayQuery("crm-demo", "cdnow-6") || p.MayQuery("nobody", "cdnow-1") {
		t.Error("MayQuery: crm-demo should reach cdnow-5 only among {cdnow-5, cdnow-6}; unknown partners nothing")
	}
}

func TestResolution(t *testing.T) {
	data, err := os.ReadFile("examples/eu-us.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, "eu-us.yaml", string(data))
	euFeatures := []string{"frequency", "hour", "interpurchase_gap", "monetary", "recency", "weekday"}
	tests := []struct {
		id   string
		want MerchantPolicy
	}{
		// region eu over defaults
		{"berlin-books", MerchantPolicy{ID: "berlin-books", Region: "eu", EpsilonCap: 1, Delta: 1e-6, MinNoiseMultiplier: 0.8,
			ClipNorm: 1, MinCustomersPerUpdate: 500, Features: euFeatures, RetentionDays: 365}},
		// merchant over region over defaults
		{"paris-mode", MerchantPolicy{ID: "paris-mode", Region: "eu", EpsilonCap: 0.5, Delta: 1e-6, MinNoiseMultiplier: 0.8,
			ClipNorm: 1, MinCustomersPerUpdate: 500, Features: euFeatures, RetentionDays: 365}},
		{"lisbon-home", MerchantPolicy{ID: "lisbon-home", Region: "eu", EpsilonCap: 1, Delta: 1e-6, MinNoiseMultiplier: 0.8,
			ClipNorm: 0.5, MinCustomersPerUpdate: 500, Features: euFeatures, RetentionDays: 365}},
		{"austin-outdoor", MerchantPolicy{ID: "austin-outdoor", Region: "us", EpsilonCap: 2, Delta: 1e-6, MinNoiseMultiplier: 0.5,
			ClipNorm: 1, MinCustomersPerUpdate: 500, AllFeatures: true, RetentionDays: 730}},
		{"seattle-coffee", MerchantPolicy{ID: "seattle-coffee", Region: "us", EpsilonCap: 2, Delta: 1e-6, MinNoiseMultiplier: 0.5,
			ClipNorm: 1, MinCustomersPerUpdate: 1000, AllFeatures: true, RetentionDays: 730}},
	}
	for _, tt := range tests {
		got, err := p.Merchant(tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != tt.want.ID || got.Region != tt.want.Region || got.EpsilonCap != tt.want.EpsilonCap ||
			got.Delta != tt.want.Delta || got.MinNoiseMultiplier != tt.want.MinNoiseMultiplier ||
			got.ClipNorm != tt.want.ClipNorm || got.MinCustomersPerUpdate != tt.want.MinCustomersPerUpdate ||
			got.AllFeatures != tt.want.AllFeatures || !slices.Equal(got.Features, tt.want.Features) ||
			got.RetentionDays != tt.want.RetentionDays {
			t.Errorf("Merchant(%s):\n got %+v\nwant %+v", tt.id, got, tt.want)
		}
	}
	if got := p.Aggregation(); got.Merge != MergeTrimmedMean || got.TrimFraction != 0.1 {
		t.Errorf("aggregation: got %+v, want trimmed_mean 0.1", got)
	}
	m, _ := p.Merchant("berlin-books")
	if !m.AllowsFeature("recency") || m.AllowsFeature("city") {
		t.Error("AllowsFeature: want recency allowed and city refused for an EU merchant")
	}
	if _, err := p.Merchant("unknown"); !errors.Is(err, ErrUnknownMerchant) {
		t.Errorf("Merchant(unknown): got %v, want ErrUnknownMerchant", err)
	}
	if _, err := p.Partner("unknown"); !errors.Is(err, ErrUnknownPartner) {
		t.Errorf("Partner(unknown): got %v, want ErrUnknownPartner", err)
	}
	q, err := p.Partner("crm-eu")
	if err != nil || q.RatePerSecond != 20 || q.Burst != 40 || strings.Join(q.Merchants, ",") != "berlin-books,lisbon-home,paris-mode" {
		t.Errorf("Partner(crm-eu): got %+v, %v; want rate 20, burst 40, the three EU merchants sorted", q, err)
	}
	if p.MayQuery("crm-eu", "austin-outdoor") || !p.MayQuery("marketing-us", "austin-outdoor") {
		t.Error("MayQuery: crm-eu must not reach a US merchant; marketing-us must")
	}
}

// TestHashKnownValue computes the hash of a tiny policy from a canonical
// encoding written out by hand.
func TestHashKnownValue(t *testing.T) {
	p := mustParse(t, "tiny.yaml", `
version: 1
federation: tiny
defaults: {epsilon_cap: 1, delta: 0.000001, min_noise_multiplier: 0.5, clip_norm: 1, min_customers_per_update: 100,
  allowed_features: [recency, all_time_spend], retention_days: 30}
merchants: {m1: {}}
partners: {p: {merchants: [m1], rate_per_second: 2.5, burst: 5}}
`)
	canon := `{"version":1,"federation":"tiny","aggregation":{"merge":"fedavg","trim_fraction":0},` +
		`"merchants":[{"id":"m1","region":"","epsilon_cap":1,"delta":0.000001,"min_noise_multiplier":0.5,"clip_norm":1,` +
		`"min_customers_per_update":100,"all_features":false,"features":["all_time_spend","recency"],"retention_days":30}],` +
		`"partners":[{"id":"p","merchants":["m1"],"rate_per_second":2.5,"burst":5}]}`
	sum := sha256.Sum256([]byte("kairos/policy-hash/v1\n" + canon))
	if got, want := p.Hash(), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hash: got %s, want %s (canonical %s)", got, want, p.canonical())
	}
}

const basePolicy = `version: 1
federation: demo
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
aggregation:
  merge: trimmed_mean
  trim_fraction: 0.1
regions:
  eu: { epsilon_cap: 0.5 }
merchants:
  m1: { region: eu, epsilon_cap: 0.8 }
  m2: { region: eu }
  m3: {}
partners:
  crm: { merchants: [m1, m2], rate_per_second: 50, burst: 100 }
`

func TestHashInvariance(t *testing.T) {
	base := mustParse(t, "base.yaml", basePolicy)
	same := map[string]string{
		"flow style, other key order, comments, other number spellings": `
# same policy, written differently
partners: {crm: {burst: 100, rate_per_second: 50.0, merchants: [m2, m1]}}
merchants:
  m3: {}
  m2: {region: eu}
  m1: {epsilon_cap: 8e-1, region: eu}
regions: {eu: {epsilon_cap: .5}}
aggregation: {trim_fraction: 0.10, merge: trimmed_mean}
federation: "demo"
defaults: {retention_days: 365, allowed_features: ["all"], min_customers_per_update: 100,
  clip_norm: 1, min_noise_multiplier: 0.50, delta: 0.000001, epsilon_cap: 1}
version: 1
`,
		"values moved from region to merchants, unused region added": `
version: 1
federation: demo
defaults: {epsilon_cap: 0.5, delta: 1e-6, min_noise_multiplier: 0.5, clip_norm: 1.0,
  min_customers_per_update: 100, allowed_features: [all], retention_days: 365}
aggregation: {merge: trimmed_mean, trim_fraction: 0.1}
regions: {eu: {}, us: {epsilon_cap: 3}}
merchants:
  m1: {region: eu, epsilon_cap: 0.8}
  m2: {region: eu}
  m3: {epsilon_cap: 1}
partners:
  crm: {merchants: [m1, m2], rate_per_second: 50, burst: 100}
`,
		"Format output": string(base.Format()),
	}
	for name, src := range same {
		if got := mustParse(t, name, src).Hash(); got != base.Hash() {
			t.Errorf("%s: got hash %s, want %s", name, got, base.Hash())
		}
	}
}

func TestHashChangesWithEveryValue(t *testing.T) {
	edits := []struct{ old, new string }{
		{"federation: demo", "federation: demo2"},
		{"  epsilon_cap: 1.0", "  epsilon_cap: 1.01"},
		{"  delta: 1e-6", "  delta: 2e-6"},
		{"  min_noise_multiplier: 0.5", "  min_noise_multiplier: 0.6"},
		{"  clip_norm: 1.0", "  clip_norm: 2.0"},
		{"  min_customers_per_update: 100", "  min_customers_per_update: 101"},
		{"  allowed_features: [all]", "  allowed_features: [recency]"},
		{"  retention_days: 365", "  retention_days: 366"},
		{"  merge: trimmed_mean\n  trim_fraction: 0.1", "  merge: median"},
		{"  trim_fraction: 0.1", "  trim_fraction: 0.2"},
		{"eu: { epsilon_cap: 0.5 }", "eu: { epsilon_cap: 0.4 }"},
		{"m1: { region: eu, epsilon_cap: 0.8 }", "m1: { region: eu, epsilon_cap: 0.7 }"},
		{"m1: { region: eu, epsilon_cap: 0.8 }", "m1: { epsilon_cap: 0.8 }"},
		{"  m3: {}", "  m3: {}\n  m4: {}"},
		{"  m3: {}", "  m4: {}"},
		{"merchants: [m1, m2]", "merchants: [m1]"},
		{"merchants: [m1, m2]", "merchants: [m1, m2, m3]"},
		{"rate_per_second: 50", "rate_per_second: 51"},
		{"burst: 100", "burst: 99"},
		{"crm: {", "crm2: {"},
		{"  m3: {}", "  m3: { max_customers: 5000 }"},
		{"  trim_fraction: 0.1", "  trim_fraction: 0.1\n  norm_bound: 3"},
		{"  trim_fraction: 0.1", "  trim_fraction: 0.1\n  max_weight_share: 0.3"},
		{"  trim_fraction: 0.1", "  trim_fraction: 0.1\n  min_cohort: 10"},
	}
	seen := map[string]string{mustParse(t, "base.yaml", basePolicy).Hash(): "base"}
	for _, e := range edits {
		if !strings.Contains(basePolicy, e.old) {
			t.Fatalf("edit %q: not in base policy", e.old)
		}
		src := strings.Replace(basePolicy, e.old, e.new, 1)
		h := mustParse(t, e.new, src).Hash()
		if prev, dup := seen[h]; dup {
			t.Errorf("edit %q -> %q: hash %s equals that of %s", e.old, e.new, h, prev)
		}
		seen[h] = e.new
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("examples/eu-us.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("eu-us.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMergeDefaults: without the keys, the weight-share cap is
// DefaultMaxWeightShare, there is no policy norm bound, and a merchant's
// plausible number of customers is ⌊1/δ⌋; with them, the written values.
func TestMergeDefaults(t *testing.T) {
	p := mustParse(t, "base.yaml", basePolicy)
	a := p.Aggregation()
	if a.NormBound != 0 || a.WeightShareCap() != DefaultMaxWeightShare || DefaultMaxWeightShare != 0.5 || a.MinCohort != 0 {
		t.Errorf("defaults: norm bound %v, share cap %v, min cohort %d; want 0, 0.5 and 0", a.NormBound, a.WeightShareCap(), a.MinCohort)
	}
	m3, err := p.Merchant("m3")
	if err != nil {
		t.Fatal(err)
	}
	if got := m3.PlausibleCustomers(); got != 1e6 {
		t.Errorf("plausible customers at δ 1e-6: got %v, want 1e6", got)
	}
	src := strings.Replace(basePolicy, "  trim_fraction: 0.1", "  trim_fraction: 0.1\n  norm_bound: 2.5\n  max_weight_share: 0.3\n  min_cohort: 12", 1)
	src = strings.Replace(src, "  m3: {}", "  m3: { max_customers: 5000 }", 1)
	p = mustParse(t, "set.yaml", src)
	if a := p.Aggregation(); a.NormBound != 2.5 || a.WeightShareCap() != 0.3 || a.MinCohort != 12 {
		t.Errorf("set: norm bound %v, share cap %v, min cohort %d; want 2.5, 0.3 and 12", a.NormBound, a.WeightShareCap(), a.MinCohort)
	}
	if m3, _ = p.Merchant("m3"); m3.PlausibleCustomers() != 5000 {
		t.Errorf("max_customers 5000: plausible %v", m3.PlausibleCustomers())
	}
	if again := mustParse(t, "format.yaml", string(p.Format())); again.Hash() != p.Hash() {
		t.Errorf("Format round trip changed the hash:\n%s", p.Format())
	}
}
