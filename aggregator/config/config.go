// Package config loads the aggregator's config file (kairos.yaml): strict
// YAML over the real configuration structs (the rounds section is
// aggregator.RoundConfig itself), defaults and validation in one place, and
// errors that name the key as the user wrote it (rounds.quorum).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/store"
)

// Files of an aggregator directory made by `kairos aggregator init`.
const (
	File       = "kairos.yaml"
	KeysDir    = "keys"
	PolicyFile = "policy.yaml"
	TokenFile  = "admin.token"
	DBFile     = "kairos.db"
	// WitnessFile is the audit witness init configures.
	WitnessFile = "audit-witness.jsonl"
)

// DefaultCheckpointInterval is how often serve signs the audit log's head
// when it moved: after a crash (kill -9) at most about this much traffic is
// left unsigned, which is what an operator with database access could
// rewrite unseen.
const DefaultCheckpointInterval = time.Second

// MinCheckpointInterval is the shortest audit.checkpoint_interval: checkpoints
// are never pruned from the database or the witness file, and 1ms would sign
// up to a thousand a second (1ns would spin a core doing it).
const MinCheckpointInterval = 100 * time.Millisecond

// Config is the aggregator's config file. Relative paths, including the file
// of an sqlite: database URL, are relative to the file's directory.
type Config struct {
	// Listen is the address serve binds.
	Listen string `yaml:"listen"`
	// URL is how the admin commands reach the server; derived from Listen when empty.
	URL string `yaml:"url,omitempty"`
	// MetricsListen is where serve answers GET /metrics without a token and
	// without per-merchant series, for the operator's scraper; empty: no
	// such listener (the API's /metrics needs a compliance or admin token).
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// DB is the store URL: "sqlite:FILE" or "postgres://…".
	DB         string `yaml:"db"`
	Keys       string `yaml:"keys"`
	Policy     string `yaml:"policy"`
	AdminToken string `yaml:"admin_token"`
	TLS        TLS    `yaml:"tls,omitempty"`
	Tokens     Tokens `yaml:"tokens"`
	Limits     Limits `yaml:"limits"`
	// Rounds configures the rounds; a zero or absent value takes the
	// aggregator's default.
	Rounds aggregator.RoundConfig `yaml:"rounds"`
	// Envelopes bounds the sealed updates the service opens.
	Envelopes Envelopes `yaml:"envelopes,omitempty"`
	// Audit sets how densely the audit log is signed and where its
	// checkpoints are pushed as they are signed.
	Audit Audit `yaml:"audit,omitempty"`

	dir  string // the config file's directory
	file string // the config file, re-read by a reload
}

// TLS is the server's certificate and key (PEM files); both or neither.
type TLS struct {
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
}

// Tokens configures the API tokens the server issues and accepts.
type Tokens struct {
	MerchantTTL time.Duration `yaml:"merchant_ttl"`
	Leeway      time.Duration `yaml:"leeway"`
}

// Limits bound request bodies and merchants' request rates.
type Limits struct {
	MaxEnvelopeBytes int64 `yaml:"max_envelope_bytes"`
	MaxJSONBytes     int64 `yaml:"max_json_bytes"`
	// MaxInflightBytes bounds the request bodies held at once (api
	// admission control); 0 or absent takes api.DefaultMaxInflightBytes.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes,omitempty"`
	// MerchantRatePerSecond and MerchantBurst are every merchant token's
	// request rate and burst at the API (one bucket per merchant, 429
	// beyond); 0 or absent takes api.DefaultMerchantRate and
	// api.DefaultMerchantBurst. Partners' rates are in the policy.
	MerchantRatePerSecond float64 `yaml:"merchant_rate_per_second,omitempty"`
	MerchantBurst         int     `yaml:"merchant_burst,omitempty"`
	// OverseerRatePerSecond and OverseerBurst are every admin and
	// compliance token's request rate and burst at the API (one bucket per
	// role and subject, every route, 429 beyond); 0 or absent takes
	// api.DefaultOverseerRate and api.DefaultOverseerBurst.
	OverseerRatePerSecond float64 `yaml:"overseer_rate_per_second,omitempty"`
	OverseerBurst         int     `yaml:"overseer_burst,omitempty"`
}

// Envelopes bounds the sealed updates the service opens.
type Envelopes struct {
	MaxSkew            time.Duration `yaml:"max_skew,omitempty"`
	RequirePostQuantum bool          `yaml:"require_post_quantum,omitempty"`
}

// Audit configures the audit log's checkpoints.
type Audit struct {
	// CheckpointInterval bounds how long a committed entry stays
	// unsigned; 0 or absent takes DefaultCheckpointInterval.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval,omitempty"`
	// Witness is a file outside the database (a path where the
	// database's operators cannot write) to which every checkpoint is
	// appended as it is signed; serve checks the stored log against it
	// before signing at start-up. Empty: no witness.
	Witness string `yaml:"witness,omitempty"`
}

// Default is the config `kairos aggregator init` writes.
func Default(listen, db string) Config {
	c := Config{Listen: listen, DB: db, Keys: KeysDir, Policy: PolicyFile, AdminToken: TokenFile}
	c.Tokens.MerchantTTL = api.DefaultMerchantTokenTTL
	c.Tokens.Leeway = 30 * time.Second
	c.Limits.MaxEnvelopeBytes = api.DefaultMaxEnvelopeBytes
	c.Limits.MaxJSONBytes = api.DefaultMaxJSONBytes
	c.Limits.MaxInflightBytes = api.DefaultMaxInflightBytes
	c.Rounds = aggregator.RoundConfig{Deadline: 10 * time.Minute, Quorum: 1, SampleFraction: 1, StepsPerRound: 10, PlannedRounds: 20}
	c.Audit.Witness = WitnessFile
	return c
}

// Load reads and checks a config file strictly.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(path)
	c.file = path
	return c, nil
}

// Parse decodes and checks a config held in data; name is the file's name
// for errors. Every error starts "read config NAME: ".
func Parse(name string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errEmpty
		}
		return nil, fmt.Errorf("read config %s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read config %s: more than one YAML document", name)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, fmt.Errorf("read config %s: %w", name, errEmpty)
		}
		root = root.Content[0]
	}
	var c Config
	if err := errors.Join(decodeStrict(root, reflect.ValueOf(&c).Elem(), "")...); err != nil {
		return nil, fmt.Errorf("read config %s: %w", name, err)
	}
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("read config %s: %w", name, err)
	}
	return &c, nil
}

// Marshal writes c as YAML (two-space indent), as init writes it, with
// durations as a person writes them ("10m", not "10m0s").
func Marshal(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	shortenDurations(&n, reflect.TypeFor[Config]())
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return buf.Bytes(), nil
}

// Check validates c; every error names its key. The rounds section is
// checked by aggregator.RoundConfig.WithDefaults, as the service checks it.
func (c *Config) Check() error {
	var errs []error
	req := func(key, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: required", key))
		}
	}
	req("listen", c.Listen)
	req("db", c.DB)
	req("keys", c.Keys)
	req("policy", c.Policy)
	req("admin_token", c.AdminToken)
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %w", err))
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %w", err))
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls: cert and key go together"))
	}
	if c.Tokens.MerchantTTL <= 0 {
		errs = append(errs, fmt.Errorf("tokens.merchant_ttl: %v must be positive", c.Tokens.MerchantTTL))
	}
	if c.Tokens.Leeway < 0 || c.Tokens.Leeway > auth.MaxLeeway {
		errs = append(errs, fmt.Errorf("tokens.leeway: %v outside [0, %v]", c.Tokens.Leeway, auth.MaxLeeway))
	}
	if c.Limits.MaxEnvelopeBytes <= 0 {
		errs = append(errs, fmt.Errorf("limits.max_envelope_bytes: %d must be positive", c.Limits.MaxEnvelopeBytes))
	}
	if c.Limits.MaxJSONBytes <= 0 {
		errs = append(errs, fmt.Errorf("limits.max_json_bytes: %d must be positive", c.Limits.MaxJSONBytes))
	}
	if c.Limits.MaxInflightBytes < 0 {
		errs = append(errs, fmt.Errorf("limits.max_inflight_bytes: %d is negative (0 takes the default %d)", c.Limits.MaxInflightBytes, api.DefaultMaxInflightBytes))
	}
	if !(c.Limits.MerchantRatePerSecond >= 0) || math.IsInf(c.Limits.MerchantRatePerSecond, 0) {
		errs = append(errs, fmt.Errorf("limits.merchant_rate_per_second: %v must be finite and ≥ 0 (0 takes the default %v)", c.Limits.MerchantRatePerSecond, api.DefaultMerchantRate))
	}
	if c.Limits.MerchantBurst < 0 {
		errs = append(errs, fmt.Errorf("limits.merchant_burst: %d is negative (0 takes the default %d)", c.Limits.MerchantBurst, api.DefaultMerchantBurst))
	}
	if !(c.Limits.OverseerRatePerSecond >= 0) || math.IsInf(c.Limits.OverseerRatePerSecond, 0) {
		errs = append(errs, fmt.Errorf("limits.overseer_rate_per_second: %v must be finite and ≥ 0 (0 takes the default %v)", c.Limits.OverseerRatePerSecond, api.DefaultOverseerRate))
	}
	if c.Limits.OverseerBurst < 0 {
		errs = append(errs, fmt.Errorf("limits.overseer_burst: %d is negative (0 takes the default %d)", c.Limits.OverseerBurst, api.DefaultOverseerBurst))
	}
	if _, err := c.Rounds.WithDefaults(); err != nil {
		errs = append(errs, err)
	}
	switch iv := c.Audit.CheckpointInterval; {
	case iv < 0:
		errs = append(errs, fmt.Errorf("audit.checkpoint_interval: %v is negative (0 takes the default %v)", iv, DefaultCheckpointInterval))
	case iv > 0 && iv < MinCheckpointInterval:
		errs = append(errs, fmt.Errorf("audit.checkpoint_interval: %v is shorter than %v (0 takes the default %v): each checkpoint stays in the database and the witness for ever", iv, MinCheckpointInterval, DefaultCheckpointInterval))
	}
	if c.Envelopes.MaxSkew < 0 {
		errs = append(errs, fmt.Errorf("envelopes.max_skew: %v is negative (0 takes the default)", c.Envelopes.MaxSkew))
	}
	return errors.Join(errs...)
}

// Filename is the config file c was loaded from ("" when parsed from bytes).
func (c *Config) Filename() string { return c.file }

// Path resolves p against the config file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// DBURL is the store URL with a relative sqlite file resolved against the
// config directory; override, when set, wins.
func (c *Config) DBURL(override string) string {
	if override != "" {
		return override
	}
	if store.IsPostgres(c.DB) {
		return c.DB
	}
	return "sqlite:" + c.Path(strings.TrimPrefix(c.DB, "sqlite:"))
}

// BaseURL is where the admin commands send their requests.
func (c *Config) BaseURL() string {
	if c.URL != "" {
		return c.URL
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	scheme := "http"
	if c.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// RedactDB drops the secrets from a database URL, for logs and reports: the
// userinfo's password and every query parameter pgx reads as a secret
// (password, sslpassword), each replaced by "xxxxx". A PostgreSQL URL that
// does not parse is not shown at all: its secret could be anywhere in it.
func RedactDB(u string) string {
	if !store.IsPostgres(u) {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		return dbScheme(u) + "://(unparsed URL, not shown)"
	}
	if p.User != nil {
		if _, ok := p.User.Password(); ok {
			p.User = url.UserPassword(p.User.Username(), "xxxxx")
		}
	}
	if p.RawQuery != "" {
		q, err := url.ParseQuery(p.RawQuery)
		if err != nil {
			return dbScheme(u) + "://(unparsed URL, not shown)"
		}
		for k := range q {
			if secretDBParam(k) {
				q[k] = []string{"xxxxx"}
			}
		}
		p.RawQuery = q.Encode()
	}
	return p.String()
}

// secretDBParam reports whether a connection parameter holds a secret.
func secretDBParam(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "sslpassword"
}

// dbScheme is the scheme of a URL store.IsPostgres accepted.
func dbScheme(u string) string {
	scheme, _, _ := strings.Cut(u, "://")
	return scheme
}
