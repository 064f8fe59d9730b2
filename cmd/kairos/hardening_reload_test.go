package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/store"
)

// TestAggregatorReloadRefusedAudited (hardening review, session 18): a
// running `kairos aggregator serve` is asked to reload (1) a policy file
// that does not parse, (2) a kairos.yaml whose rounds.norm_bound is .nan
// and (3) one whose rounds.server_lr is .inf. Each is refused, the policy
// in force stays (the good reload that follows reports the original hash as
// the previous one), and each refusal is a config.reload entry in the audit
// log. Before the fix the unparsable policy left no audit entry at all, and
// the NaN / Inf rounds values were installed.
func TestAggregatorReloadRefusedAudited(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	agg := startServe(t, "--dir", dir)
	policyPath := filepath.Join(dir, config.PolicyFile)
	configPath := filepath.Join(dir, config.File)
	goodPolicy, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	goodConfig, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, config.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := apiclient.New(agg.base, strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	reload := func() (string, error) {
		return runAgg(t, "reload", "--dir", dir, "--url", agg.base)
	}

	// The hash in force, from a first (good) reload.
	out, err := reload()
	if err != nil {
		t.Fatalf("good reload: %v", err)
	}
	hashes := regexp.MustCompile(`policy (\S+) in force \(was (\S+)\)`).FindStringSubmatch(out)
	if hashes == nil || hashes[1] != hashes[2] {
		t.Fatalf("good reload printed %q; want the same hash before and after", out)
	}
	original := hashes[1]

	if err := os.WriteFile(policyPath, []byte("version: 1\nregions: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reload(); err == nil {
		t.Error("reload of an unparsable policy succeeded")
	}
	if err := os.WriteFile(policyPath, goodPolicy, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"norm_bound: .nan", "server_lr: .inf"} {
		cfg := strings.Replace(string(goodConfig), "\nrounds:\n", "\nrounds:\n  "+bad+"\n", 1)
		if cfg == string(goodConfig) {
			t.Fatalf("kairos.yaml has no rounds section:\n%s", goodConfig)
		}
		if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		// The CLI reads the file first and refuses it itself, naming the key;
		// the server, asked directly (as SIGHUP or the console would), refuses
		// and audits it.
		key := "rounds." + strings.SplitN(bad, ":", 2)[0]
		if _, err := reload(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("kairos aggregator reload with %s: got %v, want an error naming %s", bad, err, key)
		}
		if _, err := admin.Reload(t.Context()); err == nil {
			t.Errorf("POST /v1/config:reload with %s succeeded", bad)
		}
	}
	if err := os.WriteFile(configPath, goodConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = reload()
	if err != nil {
		t.Fatalf("good reload after the refusals: %v", err)
	}
	if !strings.Contains(out, "(was "+original+")") {
		t.Errorf("good reload printed %q; want the original policy %s still in force before it", out, original)
	}
	agg.stop(t)

	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, config.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(t.Context(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Action == "config.reload" {
			got = append(got, string(e.Outcome))
		}
	}
	want := []string{"ok", "denied", "denied", "denied", "ok"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("config.reload outcomes %v, want %v", got, want)
	}
}

// TestListenScope: `kairos client stream` says, beside the address of its
// unauthenticated scores endpoint, whether other hosts can reach it.
func TestListenScope(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want string
	}{
		{"127.0.0.1", "loopback only"},
		{"::1", "loopback only"},
		{"0.0.0.0", "WARNING"},
		{"10.1.2.3", "WARNING"},
	} {
		if got := listenScope(&net.TCPAddr{IP: net.ParseIP(tt.ip), Port: 8377}); !strings.HasPrefix(got, tt.want) {
			t.Errorf("listen on %s: %q, want it to start with %q", tt.ip, got, tt.want)
		}
	}
}
