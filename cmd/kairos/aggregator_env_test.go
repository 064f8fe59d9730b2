package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestAggConfigFromEnv: the environment overrides the file's keys, a
// *_FILE variable reads a secret from a file, relative paths from the
// environment are the working directory's, and bad values are refused
// naming the variable or key.
func TestAggConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, aggConfigFile)
	def := defaultAggConfig("127.0.0.1:8700", "sqlite:kairos.db")
	c, err := parseAggConfig(cfgPath, mustYAML(t, def))
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	secret := filepath.Join(dir, "db_url")
	if err := os.WriteFile(secret, []byte("postgres://kairos:s3cret@db:5432/kairos\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		envListen: "0.0.0.0:9000", envDBFile: secret, envPolicy: "conf/policy.yaml", envMetricsListen: "127.0.0.1:9100",
	}
	if err := c.applyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.MetricsListen != "127.0.0.1:9100" || c.DB != "postgres://kairos:s3cret@db:5432/kairos" ||
		c.path(c.Policy) != filepath.Join(wd, "conf", "policy.yaml") || c.path(c.Keys) != filepath.Join(dir, "keys") {
		t.Errorf("got listen %s metrics %s db %s policy %s keys %s", c.Listen, c.MetricsListen, c.DB, c.path(c.Policy), c.path(c.Keys))
	}
	if c.baseURL() != "http://127.0.0.1:9000" {
		t.Errorf("base URL %s, want http://127.0.0.1:9000", c.baseURL())
	}
	if got := redactDB(c.dbURL("")); strings.Contains(got, "s3cret") {
		t.Errorf("the logged store URL %q holds the password", got)
	}
	for _, bad := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{envDB: "sqlite:x.db", envDBFile: secret}, "set one, not both"},
		{map[string]string{envDBFile: filepath.Join(dir, "missing")}, envDBFile},
		{map[string]string{envListen: "nonsense"}, "listen"},
	} {
		c, _ := parseAggConfig(cfgPath, mustYAML(t, def))
		if err := c.applyEnv(func(k string) string { return bad.env[k] }); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want an error naming %s", bad.env, err, bad.want)
		}
	}
	// Every variable is documented for operators.
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(aggEnvKeys, envConfig, envPassphrase, envPassphraseFile, envClientConfig, envAggregator, envTokenFile) {
		if !strings.Contains(string(ops), k) {
			t.Errorf("docs/operations.md does not document $%s", k)
		}
	}
}

func mustYAML(t *testing.T, c aggConfig) []byte {
	t.Helper()
	b, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
