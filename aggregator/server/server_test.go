package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

const testPolicy = `version: 1
federation: server-test
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
merchants:
  shop-a: {}
`

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "kairos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func parts(t *testing.T) (*keys.Aggregator, *policies.Policy) {
	t.Helper()
	a, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policies.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return a, p
}

// TestNewWiresEverySource: the assembled API answers every route whose
// source is an explicit api.Options field (reports, token revocation, round
// counts, console, status) rather than 503, and the witness file holds the
// log's checkpoints, verifiable under the checkpoint key.
func TestNewWiresEverySource(t *testing.T) {
	st := openStore(t)
	k, pol := parts(t)
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	a, err := New(t.Context(), Options{Store: st, Keys: k, Policy: pol, Audit: config.Audit{Witness: witness}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a.API)
	t.Cleanup(ts.Close)
	tok := func(role auth.Role) string {
		s, _, err := a.Issuer.Issue(auth.Grant{Subject: "t", Role: role, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin, compliance := tok(auth.RoleAdmin), tok(auth.RoleCompliance)
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		return request(t, ts, method, path, token, body)
	}
	for _, tt := range []struct {
		method, path, token, body string
		want                      int
		contains                  string
	}{
		{"GET", "/v1/report", compliance, "", 200, "server-test"},
		{"POST", "/v1/tokens:revoke", admin, `{"jti":"abc","expires_at":"2099-01-01T00:00:00Z"}`, 200, "abc"},
		// One round is open after New (the first round of an empty store).
		{"GET", "/metrics", compliance, "", 200, `kairos_rounds{state="open"} 1`},
		{"GET", "/v1/federation", compliance, "", 200, "round"},
		{"GET", "/console/", "", "", 200, "<html"},
		{"GET", "/readyz", "", "", 200, ""},
		// Assembled without a Reload.
		{"POST", "/v1/config:reload", admin, "", 503, ""},
	} {
		code, body := do(tt.method, tt.path, tt.token, tt.body)
		if code != tt.want || !strings.Contains(body, tt.contains) {
			t.Errorf("%s %s: got %d %.200q, want %d containing %q", tt.method, tt.path, code, body, tt.want, tt.contains)
		}
	}
	if _, err := a.Reload(t.Context(), "t"); !errors.Is(err, ErrNoReload) {
		t.Errorf("Reload without one: got %v, want ErrNoReload", err)
	}
	if err := a.Close(); err != nil { // signs the head and pushes it to the witness
		t.Fatal(err)
	}
	f, err := os.Open(witness)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cps, err := audit.ReadWitness(f, k.Checkpoint.Public().(ed25519.PublicKey))
	if err != nil || len(cps) == 0 {
		t.Errorf("witness: %d checkpoints, %v; want the log's", len(cps), err)
	}
}

func TestNewRefuses(t *testing.T) {
	st := openStore(t)
	k, pol := parts(t)
	short, err := policies.Parse("p.yaml", []byte(testPolicy+"tokens: {max_ttl: {merchant: 24h}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"no store", Options{Keys: k, Policy: pol}, "no store"},
		{"no keys", Options{Store: st, Policy: pol}, "no aggregator keys"},
		{"no policy", Options{Store: st, Keys: k}, "no policy"},
		{"bad rounds", Options{Store: st, Keys: k, Policy: pol, Rounds: aggregator.RoundConfig{Quorum: -1}}, "rounds.quorum: must be ≥ 1"},
		{"token lifetime over the policy's", Options{Store: st, Keys: k, Policy: short, Tokens: config.Tokens{MerchantTTL: 48 * time.Hour}},
			"tokens.merchant_ttl 48h0m0s exceeds 24h0m0s"},
	} {
		a, err := New(t.Context(), tt.o)
		if err == nil {
			_ = a.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestOpenServeReload: an aggregator opened from a config file serves until
// its context ends; a reload installs the edited policy (its hash computed
// here from the file) and names the keys that need a restart; a bad edit is
// refused by key and the running policy stays.
func TestOpenServeReload(t *testing.T) {
	dir := t.TempDir()
	k, _ := parts(t)
	if err := keys.WriteAggregator(filepath.Join(dir, config.KeysDir), k, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, config.PolicyFile), []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, config.File)
	writeCfg := func(c config.Config) {
		t.Helper()
		b, err := config.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	def := config.Default("127.0.0.1:0", "sqlite:kairos.db")
	writeCfg(def)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a, st, err := Open(t.Context(), log, cfg, OpenOptions{DB: cfg.DBURL(""), Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer a.Close()

	ctx, cancel := context.WithCancel(t.Context())
	bound := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- a.Serve(ctx, ServeOptions{Listen: cfg.Listen, MetricsListen: "127.0.0.1:0",
			Bound:        func(u string) error { bound <- u; return nil },
			MetricsBound: func(u string) error { bound <- u; return nil }})
	}()
	metricsURL, apiURL := <-bound, <-bound
	for _, u := range []string{apiURL + "/readyz", metricsURL + "/metrics"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200", u, res.StatusCode)
		}
	}

	next := testPolicy + "  shop-b: {}\n"
	if err := os.WriteFile(filepath.Join(dir, config.PolicyFile), []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := policies.Parse("p", []byte(next))
	if err != nil {
		t.Fatal(err)
	}
	edited := def
	edited.Listen = "127.0.0.1:9"
	edited.Rounds.Quorum = 2
	writeCfg(edited)
	out, err := a.Reload(t.Context(), "operator:test")
	if err != nil {
		t.Fatal(err)
	}
	if out.PolicyHash != want.Hash() || a.Service.Policy().Hash() != want.Hash() || out.Merchants != 2 || !strings.Contains(out.Note, "listen") {
		t.Errorf("reload: got %+v (service policy %s), want hash %s, 2 merchants, a note naming listen", out, a.Service.Policy().Hash(), want.Hash())
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(mustMarshal(t, def)), "quorum: 1", "quorum: -3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(t.Context(), "operator:test"); !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "rounds.quorum: must be ≥ 1 (got -3") {
		t.Errorf("bad reload: got %v, want ErrPolicy naming rounds.quorum", err)
	}
	if a.Service.Policy().Hash() != want.Hash() {
		t.Errorf("a refused reload changed the policy")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}

func mustMarshal(t *testing.T, c config.Config) []byte {
	t.Helper()
	b, err := config.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request sends method path to ts with token (none when empty) and a JSON
// body (none when empty) and returns the status and body of the answer.
func request(t *testing.T, ts *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
