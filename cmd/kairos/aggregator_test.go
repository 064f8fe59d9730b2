package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
)

// runAgg runs `kairos aggregator args...` and returns its standard output.
func runAgg(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newAggregatorCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// cdnowDemoPolicy is the policy of the tests that enrol cdnow-1… and the
// partner crm-demo.
const cdnowDemoPolicy = "../../policies/examples/cdnow-demo.yaml"

func TestExamplePolicyMatchesRepository(t *testing.T) {
	want, err := os.ReadFile(cdnowDemoPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if exampleAggPolicy != string(want) {
		t.Errorf("exampleAggPolicy differs from policies/examples/cdnow-demo.yaml; copy the file again")
	}
}

func TestStarterPolicyMatchesRepository(t *testing.T) {
	want, err := os.ReadFile("../../policies/examples/starter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if starterAggPolicy != string(want) {
		t.Errorf("starterAggPolicy differs from policies/examples/starter.yaml; copy the file again")
	}
}

func TestAggregatorInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:9999", "--admin-token-ttl", "2h"); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		aggConfigFile: 0o600, aggPolicyFile: 0o644, aggTokenFile: 0o600, aggKeysDir: os.ModeDir | 0o700,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: got mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	cfg, err := loadAggConfig(filepath.Join(dir, aggConfigFile))
	if err != nil {
		t.Fatalf("init wrote a config its own loader refuses: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.baseURL() != "http://127.0.0.1:9999" {
		t.Errorf("got listen %q, base %q", cfg.Listen, cfg.baseURL())
	}
	if got, want := cfg.dbURL(""), "sqlite:"+filepath.Join(dir, "kairos.db"); got != want {
		t.Errorf("got db %q, want %q", got, want)
	}
	if cfg.Tokens.MerchantTTL != api.DefaultMerchantTokenTTL || cfg.Rounds.Deadline != 10*time.Minute {
		t.Errorf("durations did not survive the round trip: %+v", cfg)
	}
	// The CDNOW reference training cutoffs (client/train/sim), spelled out.
	var cuts []string
	for _, c := range cfg.Rounds.Cutoffs {
		cuts = append(cuts, c.Format(time.DateOnly))
	}
	if got := strings.Join(cuts, ","); got != "1997-07-01,1997-09-01,1997-11-01,1998-01-01" {
		t.Errorf("rounds.cutoffs: got %s, want the CDNOW reference training cutoffs", got)
	}
	pdata, err := os.ReadFile(cfg.path(cfg.Policy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Parse("policy.yaml", pdata); err != nil {
		t.Errorf("example policy: %v", err)
	}

	// The admin token verifies against the new keys, as an admin, for 2h.
	a, err := keys.LoadAggregator(cfg.path(cfg.Keys), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(cfg.path(cfg.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	pub := a.JWT[0].Private.Public().(ed25519.PublicKey)
	v, err := auth.NewVerifier(auth.VerifierOptions{
		Keys: []auth.PublicKey{{ID: a.JWT[0].ID, Key: pub}}, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience,
		Revocations: auth.NewMemoryRevocations(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(t.Context(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != auth.RoleAdmin || c.ExpiresAt.Sub(c.IssuedAt.Time) != 2*time.Hour {
		t.Errorf("admin token claims: role %s, lifetime %v", c.Role, c.ExpiresAt.Sub(c.IssuedAt.Time))
	}

	if _, err := runAgg(t, "init", "--dir", dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("init over an existing directory: got %v, want a refusal", err)
	}
	if _, err := runAgg(t, "migrate", "--dir", dir); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kairos.db")); err != nil {
		t.Errorf("migrate did not create the SQLite file next to the config: %v", err)
	}
}

func TestAggregatorInitRefusesBadPolicy(t *testing.T) {
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nfederation: x\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--policy", bad); err == nil {
		t.Fatal("init accepted an invalid policy")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("init left %s behind after refusing the policy", dir)
	}
}

func TestParseAggConfig(t *testing.T) {
	good := `listen: 127.0.0.1:8700
db: sqlite:kairos.db
keys: keys
policy: policy.yaml
admin_token: admin.token
tokens: {merchant_ttl: 24h, leeway: 30s}
limits: {max_envelope_bytes: 4096, max_json_bytes: 1024}
rounds: {deadline: 90s, quorum: 2, sample_fraction: 0.5, steps_per_round: 10, planned_rounds: 5,
  cutoffs: [1997-09-01T00:00:00Z, 1997-10-01T00:00:00Z], server: fedavg, tick_interval: 250ms}
envelopes: {max_skew: 5m, require_post_quantum: true}
`
	c, err := parseAggConfig("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Rounds.Deadline != 90*time.Second || c.Rounds.SampleFraction != 0.5 || c.Tokens.MerchantTTL != 24*time.Hour || c.Limits.MaxJSONBytes != 1024 ||
		len(c.Rounds.Cutoffs) != 2 || !c.Rounds.Cutoffs[1].Equal(time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)) ||
		c.Rounds.TickInterval != 250*time.Millisecond || c.Envelopes.MaxSkew != 5*time.Minute || !c.Envelopes.RequirePostQuantum {
		t.Errorf("parsed %+v", c)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", good + "extra: 1\n", "field extra not found"},
		{"unknown nested key", strings.Replace(good, "quorum: 2", "quorum: 2, quorom: 3", 1), "field quorom not found"},
		{"two documents", good + "---\nlisten: x\n", "more than one YAML document"},
		{"empty", "", "empty file"},
		{"bad duration", strings.Replace(good, "deadline: 90s", "deadline: soon", 1), "time.Duration"},
		{"missing listen", strings.Replace(good, "listen: 127.0.0.1:8700\n", "", 1), "listen: required"},
		{"bad listen", strings.Replace(good, "127.0.0.1:8700", "localhost", 1), "listen: address localhost: missing port"},
		{"negative quorum", strings.Replace(good, "quorum: 2", "quorum: -1", 1), "rounds.quorum: out of range"},
		{"fraction", strings.Replace(good, "sample_fraction: 0.5", "sample_fraction: 1.5", 1), "rounds.sample_fraction: out of range"},
		{"server", strings.Replace(good, "server: fedavg", "server: sgd", 1), `rounds.server: "sgd"`},
		{"repeated key", strings.Replace(good, "quorum: 2", "quorum: 2, quorum: 3", 1), "already defined"},
		{"leeway", strings.Replace(good, "leeway: 30s", "leeway: 1h", 1), "tokens.leeway"},
		{"tls half", good + "tls: {cert: c.pem}\n", "tls: cert and key go together"},
		{"wrong type", strings.Replace(good, "quorum: 2", "quorum: two", 1), "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAggConfig("c.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "read config c.yaml") {
				t.Errorf("got %v, want an error naming c.yaml and containing %q", err, tt.want)
			}
		})
	}
}

func TestReadMerchantPublicKey(t *testing.T) {
	tmp := t.TempDir()
	shop := filepath.Join(tmp, "shop")
	m, err := keys.GenerateMerchant(bytes.NewReader(bytes.Repeat([]byte{7}, 1024)), "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteMerchant(shop, m, nil); err != nil {
		t.Fatal(err)
	}
	want := m.Signing.Public().(ed25519.PublicKey)
	for _, p := range []string{shop, filepath.Join(shop, keys.FileSigningPub)} {
		got, err := readMerchantPublicKey(p)
		if err != nil || !got.Equal(want) {
			t.Errorf("readMerchantPublicKey(%s) = %x, %v; want %x", p, got, err, want)
		}
	}
	if _, err := readMerchantPublicKey(filepath.Join(shop, keys.FileSigning)); err == nil {
		t.Errorf("a private key file was accepted as a public key")
	}
}

func TestRedactDB(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://kairos:s3cret@db:5432/k?sslmode=disable", "postgres://kairos:xxxxx@db:5432/k?sslmode=disable"},
		{"postgres://kairos@db/k", "postgres://kairos@db/k"},
		{"sqlite:/var/lib/kairos.db", "sqlite:/var/lib/kairos.db"},
	}
	for _, tt := range tests {
		if got := redactDB(tt.in); got != tt.want {
			t.Errorf("redactDB(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseAggConfig: any input is either refused with an error naming the
// file, or accepted as a config that passes its own checks and survives a
// write and re-read unchanged.
func FuzzParseAggConfig(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:8700\ndb: sqlite:k.db\nkeys: keys\npolicy: p.yaml\nadmin_token: t\n" +
		"tokens: {merchant_ttl: 1h}\nlimits: {max_envelope_bytes: 10, max_json_bytes: 10}\nrounds: {deadline: 1m}\n"))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("rounds: {cutoffs: [2020-01-01]}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("&a x: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseAggConfig("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read config f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("accepted config fails its checks: %v", err)
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(c); err != nil {
			t.Fatal(err)
		}
		c2, err := parseAggConfig("f.yaml", buf.Bytes())
		if err != nil {
			t.Fatalf("re-read of a written config: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("config changed through a write and re-read:\n%+v\n%+v", c, c2)
		}
	})
}
