package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
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
		config.File: 0o600, config.PolicyFile: 0o644, config.TokenFile: 0o600, config.KeysDir: os.ModeDir | 0o700,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: got mode %v, want %v", name, fi.Mode(), mode)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, config.File))
	if err != nil {
		t.Fatalf("init wrote a config its own loader refuses: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.BaseURL() != "http://127.0.0.1:9999" {
		t.Errorf("got listen %q, base %q", cfg.Listen, cfg.BaseURL())
	}
	if got, want := cfg.DBURL(""), "sqlite:"+filepath.Join(dir, "kairos.db"); got != want {
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
	pdata, err := os.ReadFile(cfg.Path(cfg.Policy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Parse("policy.yaml", pdata); err != nil {
		t.Errorf("example policy: %v", err)
	}

	// The admin token verifies against the new keys, as an admin, for 2h.
	a, err := keys.LoadAggregator(cfg.Path(cfg.Keys), nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(cfg.Path(cfg.AdminToken))
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
