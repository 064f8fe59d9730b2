package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validConfig = `aggregator: http://127.0.0.1:8700
keys_dir: keys
token_file: token
time_zone: America/New_York
epsilon_cap: 0.8
state_dir: state
poll_interval: 250ms
clock_offset: -3h
data:
  format: cdnow
  path: testdata/cdnow_400.txt
  shard: {of: [40, 25, 15, 12, 8], index: 2, key: customer-hash}
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("shop.yaml", "/etc/kairos", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.EpsilonCap != 0.8 || time.Duration(c.PollInterval) != 250*time.Millisecond || time.Duration(c.ClockOffset) != -3*time.Hour {
		t.Errorf("got cap %v, poll %v, offset %v; want 0.8, 250ms, -3h", c.EpsilonCap, time.Duration(c.PollInterval), time.Duration(c.ClockOffset))
	}
	if got, want := c.Path(c.KeysDir), "/etc/kairos/keys"; got != want {
		t.Errorf("keys path: got %q, want %q", got, want)
	}
	if got, want := c.Path("/abs/x"), "/abs/x"; got != want {
		t.Errorf("absolute path: got %q, want %q", got, want)
	}
	shares := c.Data.Shard.Shares()
	want := []float64{0.40, 0.25, 0.15, 0.12, 0.08}
	for i := range want {
		if shares[i] != want[i] {
			t.Errorf("share %d: got %v, want %v", i, shares[i], want[i])
		}
	}
	if c.Secure.RoundTimeout != 0 {
		t.Errorf("secure.round_timeout: got %v, want 0 when unset (the runner's default)", time.Duration(c.Secure.RoundTimeout))
	}
	c2, err := ParseConfig("shop.yaml", "/", []byte(validConfig+"secure:\n  round_timeout: 90m\n"))
	if err != nil || time.Duration(c2.Secure.RoundTimeout) != 90*time.Minute {
		t.Errorf("secure.round_timeout 90m: got %+v, %v; want 1h30m", c2, err)
	}
	loc, err := c.Location()
	if err != nil || loc.String() != "America/New_York" {
		t.Errorf("location: got %v, %v; want America/New_York", loc, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown key", "colour: blue\n", "field colour not found"},
		{"bad url", "aggregator: ftp://x\n", "aggregator"},
		{"no cap", "epsilon_cap: 0\n", "epsilon_cap"},
		{"infinite cap", "epsilon_cap: .inf\n", "epsilon_cap"},
		{"bad zone", "time_zone: Mars/Olympus\n", "time_zone"},
		{"bad duration", "poll_interval: soon\n", "line"},
		{"bad optimizer", "optimizer: lbfgs\n", "optimizer"},
		{"zero delta", "delta: 0\n", "delta: 0, want in (0, 1)"},
		{"delta one", "delta: 1\n", "delta: 1, want in (0, 1)"},
		{"NaN delta", "delta: .nan\n", "delta: NaN"},
		{"plain http to another host", "aggregator: http://agg.example:8700\n", "set insecure_http: true"},
		{"negative secure round timeout", "secure: {round_timeout: -1m}\n", "secure.round_timeout: -1m0s, want ≥ 0"},
		{"plain http to a private address", "aggregator: http://10.0.0.5:8700\n", "send the merchant token in clear"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Later keys override: replace the line with the same key, or append.
			key, _, _ := strings.Cut(tc.edit, ":")
			var lines []string
			replaced := false
			for _, l := range strings.Split(validConfig, "\n") {
				if strings.HasPrefix(l, key+":") {
					l, replaced = strings.TrimSuffix(tc.edit, "\n"), true
				}
				lines = append(lines, l)
			}
			cfg := strings.Join(lines, "\n")
			if !replaced {
				cfg += tc.edit
			}
			_, err := ParseConfig("shop.yaml", "/", []byte(cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no format", "format: ''\npath: x", "format: required"},
		{"unknown format", "format: parquet\npath: x", "format"},
		{"csv without mapping", "format: csv\npath: x", "mapping"},
		{"mapping without csv", "format: cdnow\npath: x\nmapping: m.yaml", "mapping"},
		{"file without path", "format: taobao", "path: required"},
		{"postgres without section", "format: postgres", "postgres: required"},
		{"postgres without query", "format: postgres\npostgres: {url: 'postgres://x/y'}", "postgres.query"},
		{"postgres with both urls", "format: postgres\npostgres: {url: a, url_file: b, query: q}", "exactly one"},
		{"shard index", "format: cdnow\npath: x\nshard: {of: [1, 1], index: 2, key: customer-hash}", "shard.index"},
		{"shard part", "format: cdnow\npath: x\nshard: {of: [1, -1], index: 0, key: customer-hash}", "shard.of[1]"},
		{"shard key", "format: cdnow\npath: x\nshard: {of: [1], index: 0, key: email}", "shard.key"},
		{"on_error", "format: cdnow\npath: x\non_error: ignore", "on_error"},
		{"max_invalid_share range", "format: cdnow\npath: x\non_error: skip\nmax_invalid_share: 1.5", "max_invalid_share: 1.5"},
		{"max_invalid_share without skip", "format: cdnow\npath: x\nmax_invalid_share: 0.1", "only with on_error: skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, _, _ := strings.Cut(validConfig, "data:")
			var b strings.Builder
			b.WriteString(head + "data:\n")
			for _, l := range strings.Split(tc.data, "\n") {
				b.WriteString("  " + l + "\n")
			}
			_, err := ParseConfig("shop.yaml", "/", []byte(b.String()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	_, err := ParseConfig("shop.yaml", "/", []byte("epsilon_cap: -1\ndata: {format: cdnow}\n"))
	if err == nil {
		t.Fatal("got nil error")
	}
	for _, want := range []string{"aggregator: required", "keys_dir: required", "token_file: required", "state_dir: required", "epsilon_cap", "path: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadConfigResolvesAgainstItsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.yaml")
	if err := os.WriteFile(path, []byte(validConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Path(c.StateDir), filepath.Join(dir, "state"); got != want {
		t.Errorf("state dir: got %q, want %q", got, want)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte("data: {format: postgres, postgres: {url: x, query: q}}"))
	f.Add([]byte("---\na: 1\n---\nb: 2"))
	f.Add([]byte("poll_interval: [1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.yaml", "/", data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("ParseConfig accepted a config Validate refuses: %v", err)
		}
	})
}

// TestConfigDelta: the merchant's δ defaults to 1e-6 and can be set.
func TestConfigDelta(t *testing.T) {
	c, err := ParseConfig("shop.yaml", "/", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MerchantDelta(); got != 1e-6 {
		t.Errorf("default δ = %v, want 1e-6", got)
	}
	if c, err = ParseConfig("shop.yaml", "/", []byte(validConfig+"delta: 1e-7\n")); err != nil {
		t.Fatal(err)
	}
	if got := c.MerchantDelta(); got != 1e-7 {
		t.Errorf("δ = %v, want 1e-7", got)
	}
}

// TestConfigPeerKeys: secure.peer_keys is read relative to the config's
// directory into the cohort's keys; unset, there are none (adverts are then
// checked with the keys the aggregator reports); a bad file is an error
// naming it.
func TestConfigPeerKeys(t *testing.T) {
	dir := t.TempDir()
	c, err := ParseConfig("shop.yaml", dir, []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := c.PeerKeys(); k != nil || err != nil {
		t.Errorf("no peer_keys: %v, %v; want none", k, err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	data := "m2\n" + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err := os.WriteFile(filepath.Join(dir, "peers.pem"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = ParseConfig("shop.yaml", dir, []byte(validConfig+"secure:\n  peer_keys: peers.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.PeerKeys()
	if err != nil || len(k) != 1 || !k["m2"].Equal(pub) {
		t.Errorf("peer keys %v, %v; want m2's", k, err)
	}
	c.Secure.PeerKeys = "missing.pem"
	if _, err := c.PeerKeys(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigInsecureHTTP: plain http is accepted on loopback, to another host
// only with insecure_http, and https anywhere.
func TestConfigInsecureHTTP(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"http://127.0.0.1:8700", false, true},
		{"http://localhost:8700", false, true},
		{"http://[::1]:8700", false, true},
		{"http://127.0.0.2", false, true},
		{"https://agg.example:8700", false, true},
		{"http://agg.example:8700", false, false},
		{"http://localhost.agg.example", false, false},
		{"http://agg.example:8700", true, true},
	} {
		cfg := strings.Replace(validConfig, "aggregator: http://127.0.0.1:8700", "aggregator: "+tc.url, 1)
		if tc.insecure {
			cfg += "insecure_http: true\n"
		}
		_, err := ParseConfig("shop.yaml", "/", []byte(cfg))
		if (err == nil) != tc.ok {
			t.Errorf("%s (insecure_http %v): err %v, want ok %v", tc.url, tc.insecure, err, tc.ok)
		}
	}
}
