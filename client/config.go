package client

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// MaxConfigSize bounds a client configuration file.
const MaxConfigSize = 1 << 20

// Data source kinds besides the client/ingest file formats.
const (
	// SourcePostgres reads events from the shop's own PostgreSQL database.
	SourcePostgres = "postgres"
	// ShardKeyCustomerHash splits customers by a hash of their raw id (the
	// shared data README's merchant split).
	ShardKeyCustomerHash = "customer-hash"
)

// Config is a merchant client's configuration file (YAML, parsed strictly:
// unknown keys are errors). Relative paths are resolved against the directory of
// the file.
//
//	aggregator: http://127.0.0.1:8700
//	keys_dir: keys            # crypto/keys merchant set
//	token_file: token         # the merchant JWT handed out at enrolment
//	time_zone: America/New_York
//	epsilon_cap: 0.8          # local cap, may be stricter than the federation's
//	delta: 1e-6               # the δ of that cap; rounds planned at a larger δ are refused
//	state_dir: state
//	data:
//	  format: cdnow           # any client/ingest format, or postgres
//	  path: CDNOW_master.txt
//	  shard: {of: [40, 25, 15, 12, 8], index: 0, key: customer-hash}
//	secure:
//	  peer_keys: peers.pem    # the cohort's signing keys, from the operator
//	  round_timeout: 1h       # leave a secure round that has not ended by then
type Config struct {
	// Aggregator is the aggregator's base URL (http or https).
	Aggregator string `yaml:"aggregator"`
	// KeysDir holds the merchant's keys (signing and pseudonym keys).
	KeysDir string `yaml:"keys_dir"`
	// PassphraseFile, when set, holds the passphrase of the key files.
	PassphraseFile string `yaml:"passphrase_file"`
	// TokenFile holds the merchant-role JWT.
	TokenFile string `yaml:"token_file"`
	// TimeZone is the merchant's IANA time zone (local-time features, score dates).
	TimeZone string `yaml:"time_zone"`
	// EpsilonCap is the merchant's own lifetime ε cap, checked before every round
	// at the merchant's δ (MerchantDelta), never at a δ the aggregator chooses.
	EpsilonCap float64 `yaml:"epsilon_cap"`
	// Delta is the δ at which EpsilonCap and the local ledger are measured
	// (default DefaultDelta). A round whose plan states a larger δ is refused: ε
	// read at a large δ can be small for any release (the demo's releases are
	// ε = 1 at δ = 1e-6 and 0 at δ = 0.3).
	Delta *float64 `yaml:"delta"`
	// StateDir holds the local ledger, the pending upload and the receipts.
	StateDir string `yaml:"state_dir"`
	// Data is where the customer events come from.
	Data DataConfig `yaml:"data"`
	// Optimizer is the local optimizer of client/train ("sgd" or "adam"; empty = sgd).
	Optimizer string `yaml:"optimizer"`
	// PollInterval is how often the client asks for a new round (default 2s).
	PollInterval Duration `yaml:"poll_interval"`
	// ClockOffset shifts the client's clock (tests of clock skew; default 0).
	ClockOffset Duration `yaml:"clock_offset"`
	// InsecureHTTP allows an http:// aggregator URL whose host is not
	// loopback (the merchant token then crosses the network in clear: only
	// on a private network). Without it such a URL is refused.
	InsecureHTTP bool `yaml:"insecure_http"`
	// Secure configures secure-aggregation rounds.
	Secure SecureConfig `yaml:"secure"`

	// dir is the directory relative paths are resolved against.
	dir string
}

// SecureConfig configures the client's side of secure-aggregation rounds.
type SecureConfig struct {
	// PeerKeys, when set, is a peer keys file (keys.ParsePeerKeys: each
	// merchant id followed by its signing.pub) handed out by the operator out
	// of band: every neighbour's advertised keys must carry a signature that
	// verifies with its key there, and a neighbour missing from it is
	// refused. Unset, adverts are checked with the signing keys the
	// aggregator reports, whose fingerprints are logged (docs/privacy.md §14a).
	PeerKeys string `yaml:"peer_keys"`
	// RoundTimeout bounds the time the client spends in one secure round
	// (default DefaultSecureRoundTimeout, 1h): past it the client leaves
	// the round, which an aggregator could otherwise keep at one stage for
	// ever, and polls for the next. Keep it well above six times the
	// aggregator's secure_stage_timeout.
	RoundTimeout Duration `yaml:"round_timeout"`
}

// PeerKeys loads Secure.PeerKeys; nil when it is not set.
func (c *Config) PeerKeys() (map[string]ed25519.PublicKey, error) {
	if c.Secure.PeerKeys == "" {
		return nil, nil
	}
	return keys.LoadPeerKeys(c.Path(c.Secure.PeerKeys))
}

// DataConfig selects the source of a merchant's events.
type DataConfig struct {
	// Format is a client/ingest format (cdnow, cdnow-sample, taobao,
	// online-retail, csv) or "postgres".
	Format string `yaml:"format"`
	// Path is the file to read (file formats).
	Path string `yaml:"path"`
	// Mapping is the column mapping file of a csv source.
	Mapping string `yaml:"mapping"`
	// OnError is "fail" (default) or "skip" for malformed rows.
	OnError string `yaml:"on_error"`
	// MaxInvalidShare bounds the malformed rows a "skip" read accepts: a file
	// in which more than this share of the rows are bad input (a wrong time
	// layout, an unmapped kind value, a bad amount) fails to load instead of
	// training on what is left. Nil means DefaultMaxInvalidShare; 1 accepts any
	// number. Rows a format excludes by rule (returns, guest checkouts) never count.
	MaxInvalidShare *float64 `yaml:"max_invalid_share"`
	// TimeZone is the zone of naive timestamps in the file (default UTC).
	TimeZone string `yaml:"time_zone"`
	// Postgres configures a database source.
	Postgres *PostgresConfig `yaml:"postgres"`
	// Shard, when set, keeps only one part of the customers (simulated merchants).
	Shard *ShardConfig `yaml:"shard"`
}

// PostgresConfig reads events with one SQL query against the shop's database.
// The query must return four columns in order: customer (text), time
// (timestamptz), kind (text: view, cart, favorite, purchase) and amount (a
// nullable number).
type PostgresConfig struct {
	// URL is a postgres:// connection string; URLFile, when set instead, names a
	// file holding it (so that the password stays out of the config).
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
	Query   string `yaml:"query"`
}

// ShardConfig keeps the customers whose hashed id falls in part Index of the
// parts Of (relative sizes, e.g. percentages).
type ShardConfig struct {
	Of    []float64 `yaml:"of"`
	Index int       `yaml:"index"`
	Key   string    `yaml:"key"`
}

// Shares returns Of normalised to fractions that sum to one.
func (s *ShardConfig) Shares() []float64 {
	var total float64
	for _, x := range s.Of {
		total += x
	}
	out := make([]float64, len(s.Of))
	for i, x := range s.Of {
		out[i] = x / total
	}
	return out
}

// Duration is a time.Duration written as a Go duration string ("2s", "-3h").
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadConfig reads and validates the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load client config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("load client config: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("load client config: %s: larger than %d bytes", path, MaxConfigSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load client config: %w", err)
	}
	return ParseConfig(path, filepath.Dir(abs), data)
}

// ParseConfig parses a configuration named name (for errors) whose relative
// paths are relative to dir, and validates it.
func ParseConfig(name, dir string, data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse client config %s: empty file", name)
		}
		return nil, fmt.Errorf("parse client config %s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse client config %s: more than one YAML document", name)
	}
	c.dir = dir
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("parse client config %s: %w", name, err)
	}
	return &c, nil
}

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Aggregator == "" {
		bad("aggregator: required")
	} else if u, err := url.Parse(c.Aggregator); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("aggregator: %q is not an http(s) URL with a host", c.Aggregator)
	} else if u.Scheme == "http" && !c.InsecureHTTP && !apiclient.Loopback(u.Host) {
		bad("aggregator: %q is plain http to a host that is not loopback, which would send the merchant token in clear: use https://, or set insecure_http: true on a private network", c.Aggregator)
	}
	if c.KeysDir == "" {
		bad("keys_dir: required")
	}
	if c.TokenFile == "" {
		bad("token_file: required")
	}
	if c.StateDir == "" {
		bad("state_dir: required")
	}
	if _, err := c.Location(); err != nil {
		bad("time_zone: %v", err)
	}
	if !(c.EpsilonCap > 0) || math.IsInf(c.EpsilonCap, 0) {
		bad("epsilon_cap: %v, want finite and > 0", c.EpsilonCap)
	}
	if d := c.MerchantDelta(); !(d > 0 && d < 1) {
		bad("delta: %v, want in (0, 1)", d)
	}
	switch c.Optimizer {
	case "", "sgd", "adam":
	default:
		bad("optimizer: %q, want sgd or adam", c.Optimizer)
	}
	if c.PollInterval < 0 {
		bad("poll_interval: %v, want ≥ 0", time.Duration(c.PollInterval))
	}
	if c.Secure.RoundTimeout < 0 {
		bad("secure.round_timeout: %v, want ≥ 0 (0: the default, %v)", time.Duration(c.Secure.RoundTimeout), DefaultSecureRoundTimeout)
	}
	errs = append(errs, c.Data.validate()...)
	return errors.Join(errs...)
}

func (d *DataConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("data: "+format, args...)) }
	switch d.Format {
	case "":
		bad("format: required (%s or %s)", formatNames(), SourcePostgres)
	case SourcePostgres:
		switch {
		case d.Postgres == nil:
			bad("postgres: required with format postgres")
		case (d.Postgres.URL == "") == (d.Postgres.URLFile == ""):
			bad("postgres: exactly one of url and url_file")
		case strings.TrimSpace(d.Postgres.Query) == "":
			bad("postgres.query: required")
		}
		if d.Path != "" || d.Mapping != "" {
			bad("path and mapping do not apply to format postgres")
		}
	default:
		f, err := ingest.ParseFormat(d.Format)
		if err != nil {
			bad("format: %v", err)
			break
		}
		if d.Path == "" {
			bad("path: required with format %s", d.Format)
		}
		if (f == ingest.CSV) != (d.Mapping != "") {
			bad("mapping: required with format csv and only with it")
		}
		if d.Postgres != nil {
			bad("postgres: only with format postgres")
		}
	}
	switch d.OnError {
	case "", "fail", "skip":
	default:
		bad("on_error: %q, want fail or skip", d.OnError)
	}
	if m := d.MaxInvalidShare; m != nil {
		if !(*m >= 0 && *m <= 1) {
			bad("max_invalid_share: %v, want a share in [0, 1]", *m)
		}
		if d.OnError != "skip" {
			bad("max_invalid_share: only with on_error: skip (fail stops at the first bad row)")
		}
	}
	if d.TimeZone != "" {
		if _, err := time.LoadLocation(d.TimeZone); err != nil {
			bad("time_zone: %v", err)
		}
	}
	if s := d.Shard; s != nil {
		if len(s.Of) < 1 {
			bad("shard.of: want at least one part")
		}
		for i, x := range s.Of {
			if !(x > 0) || math.IsInf(x, 0) {
				bad("shard.of[%d]: %v, want finite and > 0", i, x)
			}
		}
		if s.Index < 0 || s.Index >= len(s.Of) {
			bad("shard.index: %d outside 0..%d", s.Index, len(s.Of)-1)
		}
		if s.Key != ShardKeyCustomerHash {
			bad("shard.key: %q, want %s", s.Key, ShardKeyCustomerHash)
		}
	}
	return errs
}

func formatNames() string {
	var names []string
	for _, f := range ingest.Formats() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

// Location returns the merchant's time zone (UTC when unset).
func (c *Config) Location() (*time.Location, error) {
	if c.TimeZone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(c.TimeZone)
}

// DefaultDelta is the merchant's δ when the configuration sets none.
const DefaultDelta = 1e-6

// MerchantDelta is the δ of the merchant's own cap: Delta, or DefaultDelta.
func (c *Config) MerchantDelta() float64 {
	if c.Delta == nil {
		return DefaultDelta
	}
	return *c.Delta
}

// Path resolves p against the configuration file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Token reads the merchant token from TokenFile, refused (keys.ErrInsecureMode)
// when group or others can access the file, as the key files are.
func (c *Config) Token() (string, error) {
	b, err := keys.ReadSecretFile(c.Path(c.TokenFile))
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("read token: %s is empty", c.Path(c.TokenFile))
	}
	return t, nil
}

// Passphrase reads the key passphrase (nil when no file is configured) with
// keys.ReadSecretLine: refused when group or others can write the file; its
// mode is returned for the command to warn when they can read it.
func (c *Config) Passphrase() ([]byte, fs.FileMode, error) {
	if c.PassphraseFile == "" {
		return nil, 0, nil
	}
	line, mode, err := keys.ReadSecretLine(c.Path(c.PassphraseFile))
	if err != nil {
		return nil, 0, fmt.Errorf("read passphrase: %w", err)
	}
	return line, mode, nil
}
