package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api"
)

const good = `listen: 127.0.0.1:8700
db: sqlite:kairos.db
keys: keys
policy: policy.yaml
admin_token: admin.token
tokens: {merchant_ttl: 24h, leeway: 30s}
limits: {max_envelope_bytes: 4096, max_json_bytes: 1024}
rounds: {deadline: 90s, quorum: 2, sample_fraction: 0.5, steps_per_round: 10, planned_rounds: 5,
  cutoffs: [1997-09-01T00:00:00Z, 1997-10-01], server: fedavg, tick_interval: 250ms}
envelopes: {max_skew: 5m, require_post_quantum: true}
`

func TestParse(t *testing.T) {
	c, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := aggregator.RoundConfig{Deadline: 90 * time.Second, Quorum: 2, SampleFraction: 0.5, StepsPerRound: 10, PlannedRounds: 5,
		Cutoffs: []time.Time{time.Date(1997, 9, 1, 0, 0, 0, 0, time.UTC), time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)},
		Server:  aggregator.ServerFedAvg, TickInterval: 250 * time.Millisecond}
	if !reflect.DeepEqual(c.Rounds, want) {
		t.Errorf("rounds: got %+v, want %+v", c.Rounds, want)
	}
	if c.Tokens.MerchantTTL != 24*time.Hour || c.Limits.MaxJSONBytes != 1024 || c.Envelopes.MaxSkew != 5*time.Minute || !c.Envelopes.RequirePostQuantum {
		t.Errorf("got tokens %+v limits %+v envelopes %+v", c.Tokens, c.Limits, c.Envelopes)
	}
}

// TestParseErrors: every refusal names the file, then the key as written in
// the file, and says what the key takes in YAML terms, never a Go type.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", good + "extra: 1\n", "extra: line 11: unknown key; (top level) takes admin_token, audit,"},
		{"unknown nested key", strings.Replace(good, "quorum: 2", "quorum: 2, quorom: 3", 1), "rounds.quorom: line 8: unknown key; rounds takes count_noise, cutoffs, deadline,"},
		{"two documents", good + "---\nlisten: x\n", "more than one YAML document"},
		{"empty", "", "empty file"},
		{"comments only", "# nothing\n", "empty file"},
		{"not a mapping", "- a\n- b\n", "(top level): line 1: want a mapping of keys"},
		{"bad duration", strings.Replace(good, "deadline: 90s", "deadline: soon", 1), `rounds.deadline: line 8: want a duration such as "10m" or "90s", got "soon"`},
		{"bare number as duration", strings.Replace(good, "deadline: 90s", "deadline: 90", 1), `rounds.deadline: line 8: want a duration`},
		{"bad date", strings.Replace(good, "1997-10-01", "October", 1), `rounds.cutoffs[1]: line 9: want a date such as 1997-07-01 or an RFC 3339 time such as 1997-07-01T00:00:00Z, got "October"`},
		{"wrong type", strings.Replace(good, "quorum: 2", "quorum: two", 1), `rounds.quorum: line 8: want a whole number, got "two"`},
		{"scalar for a section", strings.Replace(good, "tokens: {merchant_ttl: 24h, leeway: 30s}", "tokens: 24h", 1), `tokens: line 6: want a mapping of keys (leeway, merchant_ttl), got "24h"`},
		{"missing listen", strings.Replace(good, "listen: 127.0.0.1:8700\n", "", 1), "listen: required"},
		{"bad listen", strings.Replace(good, "127.0.0.1:8700", "localhost", 1), "listen: address localhost: missing port"},
		{"negative quorum", strings.Replace(good, "quorum: 2", "quorum: -1", 1), "rounds.quorum: must be ≥ 1 (got -1"},
		{"fraction", strings.Replace(good, "sample_fraction: 0.5", "sample_fraction: 1.5", 1), "rounds.sample_fraction: must be in (0, 1] (got 1.5"},
		{"nan", strings.Replace(good, "sample_fraction: 0.5", "sample_fraction: .nan", 1), "rounds.sample_fraction: must be in (0, 1] (got NaN"},
		{"server", strings.Replace(good, "server: fedavg", "server: sgd", 1), `rounds.server: "sgd": want fedadam or fedavg`},
		{"evaluation without cutoff", strings.Replace(good, "server: fedavg", "server: fedavg, evaluation: {sigma: 5}", 1), "rounds.evaluation.cutoff: required"},
		{"evaluation overlapping training", strings.Replace(good, "server: fedavg", "server: fedavg, evaluation: {cutoff: 1997-10-15}", 1), "rounds.evaluation.cutoff: 1997-10-15T00:00:00Z is less than 30 days after training cutoff"},
		{"repeated key", strings.Replace(good, "quorum: 2", "quorum: 2, quorum: 3", 1), "rounds.quorum: line 8: given twice (first on line 8)"},
		{"merge key", "base: &b {listen: x}\n<<: *b\n", "merge keys (<<) are not supported"},
		{"leeway", strings.Replace(good, "leeway: 30s", "leeway: 1h", 1), "tokens.leeway: 1h0m0s outside"},
		{"tls half", good + "tls: {cert: c.pem}\n", "tls: cert and key go together"},
		{"negative budget", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, max_inflight_bytes: -1", 1), "limits.max_inflight_bytes: -1 is negative"},
		{"section twice", good + "limits: {max_inflight_bytes: 1}\n", "limits: line 11: given twice (first on line 7)"},
		{"checkpoint interval", good + "audit: {checkpoint_interval: -1s}\n", "audit.checkpoint_interval: -1s is negative"},
		// A careless 1ms (or 1ns) signed up to a thousand checkpoints a second
		// (a core spinning at 1ns) into a table and a witness file that are
		// never pruned (review round 5).
		{"checkpoint interval too short", good + "audit: {checkpoint_interval: 1ms}\n", "audit.checkpoint_interval: 1ms is shorter than 100ms"},
		{"checkpoint interval 1ns", good + "audit: {checkpoint_interval: 1ns}\n", "audit.checkpoint_interval: 1ns is shorter than 100ms"},
		{"misspelt audit key", good + "audit: {witnes: w.jsonl}\n", "audit.witnes: line 11: unknown key; audit takes checkpoint_interval, witness"},
		{"metrics listener", good + "metrics_listen: 127.0.0.1\n", "metrics_listen: address 127.0.0.1: missing port"},
		{"zero limit", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 0", 1), "limits.max_json_bytes: 0 must be positive"},
		{"negative merchant rate", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, merchant_rate_per_second: -1", 1), "limits.merchant_rate_per_second: -1 must be finite and ≥ 0"},
		{"infinite merchant rate", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, merchant_rate_per_second: .inf", 1), "limits.merchant_rate_per_second: +Inf must be finite"},
		{"negative merchant burst", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, merchant_burst: -3", 1), "limits.merchant_burst: -3 is negative"},
		{"infinite overseer rate", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, overseer_rate_per_second: .inf", 1), "limits.overseer_rate_per_second: +Inf must be finite"},
		{"negative overseer burst", strings.Replace(good, "max_json_bytes: 1024", "max_json_bytes: 1024, overseer_burst: -3", 1), "limits.overseer_burst: -3 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "read config c.yaml: ") {
				t.Fatalf("got %v, want an error starting %q and containing %q", err, "read config c.yaml: ", tt.want)
			}
			if strings.Contains(err.Error(), "main.") || strings.Contains(err.Error(), "config.") || strings.Contains(err.Error(), "aggregator.") ||
				strings.Contains(err.Error(), "time.Duration") || strings.Contains(err.Error(), "!!") {
				t.Errorf("error names a Go type or YAML tag: %v", err)
			}
		})
	}
}

// TestAllErrorsAtOnce: a file with several mistakes gets them all in one
// answer, so the operator does not fix them one restart at a time.
func TestAllErrorsAtOnce(t *testing.T) {
	bad := strings.Replace(strings.Replace(good, "quorum: 2", "quorum: two", 1), "leeway: 30s", "leway: 30s", 1)
	_, err := Parse("c.yaml", []byte(bad))
	for _, want := range []string{"rounds.quorum: line 8", "tokens.leway: line 6: unknown key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}

// TestInitFile: the file `kairos aggregator init` wrote before this package
// (testdata/init.yaml, kept byte for byte, durations as 10m0s) still loads,
// as Default with the CDNOW cutoffs; Default now marshals with durations as
// a person writes them, and that reads back as the same config.
func TestInitFile(t *testing.T) {
	c, err := Load("testdata/init.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default("127.0.0.1:8700", "sqlite:kairos.db")
	for _, d := range []string{"1997-07-01", "1997-09-01", "1997-11-01", "1998-01-01"} {
		ct, _ := time.Parse(time.DateOnly, d)
		want.Rounds.Cutoffs = append(want.Rounds.Cutoffs, ct)
	}
	want.dir, want.file = "testdata", "testdata/init.yaml"
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("init.yaml loaded as\n%+v\nwant\n%+v", *c, want)
	}
	out, err := Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"  merchant_ttl: 2160h\n", "  leeway: 30s\n", "  deadline: 10m\n", "    - 1997-07-01T00:00:00Z\n", "  witness: audit-witness.jsonl\n"} {
		if !strings.Contains(string(out), line) {
			t.Errorf("Default marshals without %q:\n%s", line, out)
		}
	}
	back, err := Parse("new.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	back.dir, back.file = want.dir, want.file
	if !reflect.DeepEqual(*back, want) {
		t.Errorf("marshalled Default reads back as\n%+v\nwant\n%+v", *back, want)
	}
	if c.Limits.MaxInflightBytes != api.DefaultMaxInflightBytes || c.Audit.Witness != WitnessFile {
		t.Errorf("init config: limits %+v audit %+v", c.Limits, c.Audit)
	}
}

func TestShortDuration(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 250 * time.Millisecond, 30 * time.Second, 10 * time.Minute,
		90 * time.Minute, 2160 * time.Hour, time.Hour + 30*time.Second, 36*time.Hour + 5*time.Minute} {
		got := shortDuration(d.String())
		back, err := time.ParseDuration(got)
		if err != nil || back != d || strings.HasSuffix(got, "m0s") || strings.HasSuffix(got, "h0m") {
			t.Errorf("shortDuration(%q) = %q (parses as %v, %v); want %v without a zero tail", d.String(), got, back, err, d)
		}
	}
}

func TestPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	def := Default("0.0.0.0:9999", "sqlite:kairos.db")
	data, err := Marshal(&def)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ got, want string }{
		{c.BaseURL(), "http://127.0.0.1:9999"},
		{c.DBURL(""), "sqlite:" + filepath.Join(dir, DBFile)},
		{c.DBURL("postgres://u@h/d"), "postgres://u@h/d"},
		{c.Path(c.Policy), filepath.Join(dir, PolicyFile)},
		{c.Path("/abs/keys"), "/abs/keys"},
		{c.Filename(), path},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	c.TLS = TLS{Cert: "c.pem", Key: "k.pem"}
	c.URL = ""
	if got := c.BaseURL(); got != "https://127.0.0.1:9999" {
		t.Errorf("with TLS: base URL %q, want https://127.0.0.1:9999", got)
	}
}

// TestApplyEnv: the environment overrides the file's keys, a *_FILE
// variable reads a secret from a file, relative paths from the environment
// are the working directory's, and bad values are refused naming the
// variable or key.
func TestApplyEnv(t *testing.T) {
	dir := t.TempDir()
	def := Default("127.0.0.1:8700", "sqlite:kairos.db")
	data, err := Marshal(&def)
	if err != nil {
		t.Fatal(err)
	}
	load := func() *Config {
		c, err := Parse("kairos.yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		c.dir = dir
		return c
	}
	secret := filepath.Join(dir, "db_url")
	if err := os.WriteFile(secret, []byte("postgres://kairos:s3cret@db:5432/kairos\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Compose mounts file secrets with the host file's mode, often 0644:
	// readable by others is accepted (the command warns), writable refused.
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(dir, "db_url_writable")
	if err := os.WriteFile(writable, []byte("postgres://kairos:s3cret@db:5432/kairos\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o662); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		EnvListen: "0.0.0.0:9000", EnvDBFile: secret, EnvPolicy: "conf/policy.yaml", EnvMetricsListen: "127.0.0.1:9100",
	}
	c := load()
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.MetricsListen != "127.0.0.1:9100" || c.DB != "postgres://kairos:s3cret@db:5432/kairos" ||
		c.Path(c.Policy) != filepath.Join(wd, "conf", "policy.yaml") || c.Path(c.Keys) != filepath.Join(dir, "keys") {
		t.Errorf("got listen %s metrics %s db %s policy %s keys %s", c.Listen, c.MetricsListen, c.DB, c.Path(c.Policy), c.Path(c.Keys))
	}
	if c.BaseURL() != "http://127.0.0.1:9000" {
		t.Errorf("base URL %s, want http://127.0.0.1:9000", c.BaseURL())
	}
	if got := RedactDB(c.DBURL("")); got != "postgres://kairos:xxxxx@db:5432/kairos" {
		t.Errorf("redacted store URL %q", got)
	}
	c = load()
	if err := c.ApplyEnv(func(k string) string { return map[string]string{EnvDB: "sqlite:rel.db"}[k] }); err != nil {
		t.Fatal(err)
	}
	if want := "sqlite:" + filepath.Join(wd, "rel.db"); c.DBURL("") != want {
		t.Errorf("$%s sqlite:rel.db: got %s, want %s (the working directory's)", EnvDB, c.DBURL(""), want)
	}
	for _, bad := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvDB: "sqlite:x.db", EnvDBFile: secret}, "set one, not both"},
		{map[string]string{EnvDBFile: filepath.Join(dir, "missing")}, EnvDBFile},
		{map[string]string{EnvListen: "nonsense"}, "listen: address nonsense"},
		{map[string]string{EnvDBFile: writable}, writable + " has mode 0662: writable by group or others"},
	} {
		c := load()
		if err := c.ApplyEnv(func(k string) string { return bad.env[k] }); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v, want an error naming %s", bad.env, err, bad.want)
		}
	}
}

func TestRedactDB(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://kairos:s3cret@db:5432/k?sslmode=disable", "postgres://kairos:xxxxx@db:5432/k?sslmode=disable"},
		{"postgres://kairos@db/k", "postgres://kairos@db/k"},
		{"sqlite:/var/lib/kairos.db", "sqlite:/var/lib/kairos.db"},
		// pgx reads a password from the query too (round 6).
		{"postgres://kairos@db/k?sslmode=disable&password=s3cret", "postgres://kairos@db/k?password=xxxxx&sslmode=disable"},
		{"postgresql://kairos@db/k?PASSWORD=s3cret&sslpassword=k3y", "postgresql://kairos@db/k?PASSWORD=xxxxx&sslpassword=xxxxx"},
		{"postgres://kairos:p@ss@db/k?password=a@b", "postgres://kairos:xxxxx@db/k?password=xxxxx"},
		{"postgres://kairos:s3cret@db/k?password=%zz", "postgres://(unparsed URL, not shown)"},
	}
	for _, tt := range tests {
		if got := RedactDB(tt.in); got != tt.want {
			t.Errorf("RedactDB(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse: any input is either refused with an error naming the file, or
// accepted as a config that passes its own checks and survives a write and
// re-read unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("listen: 127.0.0.1:8700\ndb: sqlite:k.db\nkeys: keys\npolicy: p.yaml\nadmin_token: t\n" +
		"tokens: {merchant_ttl: 1h}\nlimits: {max_envelope_bytes: 10, max_json_bytes: 10}\nrounds: {deadline: 1m, evaluation: {cutoff: 2030-01-01, edges: [0.5]}}\n"))
	if data, err := os.ReadFile("testdata/init.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("rounds: {cutoffs: [2020-01-01]}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("&a x: *a\n"))
	f.Add([]byte("rounds: &r {quorum: 1}\naudit: *r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read config f.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("accepted config fails its checks: %v", err)
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse("f.yaml", out)
		if err != nil {
			t.Fatalf("re-read of a written config: %v\n%s", err, out)
		}
		out2, err := Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("config changed through a write and re-read:\n%s\n%s", out, out2)
		}
	})
}
