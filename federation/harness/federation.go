package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// The files `kairos aggregator init` writes in the aggregator's directory.
const (
	configFile = config.File
	tokenFile  = config.TokenFile
	dbFile     = config.DBFile
	keysDir    = config.KeysDir
)

// Options configure a federation.
type Options struct {
	// Exe is the kairos binary every process runs.
	Exe string
	// Dir is the run's directory: the aggregator's in Dir/aggregator, each
	// merchant's in Dir/ID, logs beside them. It is created if missing.
	Dir string
	// Policy is the federation's policy file (YAML); it must list every
	// merchant that will be enrolled.
	Policy []byte
	// DB is the aggregator's store URL ("": SQLite in its directory).
	DB string
	// InitArgs are more flags for `kairos aggregator init` (e.g. --classic).
	InitArgs []string
	// Rounds is the round configuration of the federation proper.
	Rounds aggregator.RoundConfig
}

// Federation is an aggregator directory, its server process and its merchants.
type Federation struct {
	Exe string
	// Dir is the run's directory; AggDir the aggregator's.
	Dir, AggDir string
	// DB is the aggregator's store (a SQLite file path or a PostgreSQL URL).
	DB string
	// URL is the aggregator's base URL; it stays the same across restarts.
	URL string
	// Admin is an API client with the admin token.
	Admin *apiclient.Client
	// Aggregator is the running `aggregator serve` (nil when stopped).
	Aggregator *Process
	Merchants  []*Merchant
	listen     string
	rounds     aggregator.RoundConfig
}

// Merchant is one enrolled merchant.
type Merchant struct {
	ID string
	// Index is the merchant's position in Federation.Merchants.
	Index int
	// Dir holds its keys (Dir/keys), token (Dir/token), state (Dir/state),
	// configuration (Config) and client log (Dir/client.log).
	Dir, Config string
	Token       string
	// Client is the last client process started for it.
	Client *Process
}

// Launch initialises an aggregator (`kairos aggregator init`), enrols the
// merchants ids while its round loop is idle, so that the first round samples
// every one of them, and restarts it with opt.Rounds. The merchants have keys
// and tokens but no client configuration yet (WriteClientConfig). On error
// the processes started are killed.
func Launch(ctx context.Context, opt Options, ids []string) (_ *Federation, err error) {
	if opt.Exe == "" || opt.Dir == "" {
		return nil, errors.New("launch federation: Exe and Dir are required")
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("launch federation: %w", err)
	}
	listen, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("launch federation: %w", err)
	}
	f := &Federation{Exe: opt.Exe, Dir: opt.Dir, AggDir: filepath.Join(opt.Dir, "aggregator"), listen: listen, rounds: opt.Rounds}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	policy := filepath.Join(opt.Dir, "policy.yaml")
	if err := os.WriteFile(policy, opt.Policy, 0o600); err != nil {
		return nil, fmt.Errorf("launch federation: %w", err)
	}
	args := append([]string{"aggregator", "init", "--dir", f.AggDir, "--listen", listen, "--policy", policy}, opt.InitArgs...)
	f.DB = filepath.Join(f.AggDir, dbFile)
	if opt.DB != "" {
		f.DB = opt.DB
		args = append(args, "--db", opt.DB)
	}
	if out, err := exec.CommandContext(ctx, opt.Exe, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("aggregator init: %w: %s", err, bytes.TrimSpace(out))
	}
	tok, err := os.ReadFile(filepath.Join(f.AggDir, tokenFile))
	if err != nil {
		return nil, fmt.Errorf("launch federation: %w", err)
	}
	f.URL = "http://" + listen
	if f.Admin, err = apiclient.New(f.URL, strings.TrimSpace(string(tok))); err != nil {
		return nil, fmt.Errorf("launch federation: %w", err)
	}

	idle := opt.Rounds
	idle.TickInterval = time.Hour
	if err := f.writeRounds(idle); err != nil {
		return nil, err
	}
	if err := f.StartAggregator(ctx); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := f.Enrol(ctx, id, "UTC"); err != nil {
			return nil, err
		}
	}
	if err := f.StopAggregator(); err != nil {
		return nil, fmt.Errorf("stop the aggregator after enrolment: %w", err)
	}
	if err := f.writeRounds(opt.Rounds); err != nil {
		return nil, err
	}
	if err := f.StartAggregator(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// SetRounds rewrites the round configuration; it takes effect when the
// aggregator next starts.
func (f *Federation) SetRounds(r aggregator.RoundConfig) error {
	f.rounds = r
	return f.writeRounds(r)
}

// writeRounds replaces the rounds section of the aggregator's config file,
// reading and writing it through the aggregator's own config loader (strict,
// validated), so the harness writes only what serve accepts.
func (f *Federation) writeRounds(r aggregator.RoundConfig) error {
	path := filepath.Join(f.AggDir, configFile)
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("write rounds: %w", err)
	}
	cfg.Rounds = r
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("write rounds: %w", err)
	}
	out, err := config.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("write rounds: %w", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("write rounds: %w", err)
	}
	return nil
}

// ReadyTimeout bounds how long StartAggregator waits for readiness.
const ReadyTimeout = 60 * time.Second

// StartAggregator starts `kairos aggregator serve` (log: Dir/aggregator.log,
// appended) and waits until it answers ready.
func (f *Federation) StartAggregator(ctx context.Context) error {
	p, err := Start(filepath.Join(f.Dir, "aggregator.log"), nil, f.Exe, "aggregator", "serve", "--dir", f.AggDir, "--log-json")
	if err != nil {
		return err
	}
	f.Aggregator = p
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for {
		err := f.Admin.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("aggregator exited before it was ready (%s)\n%s", ExitText(p.Err()), p.Tail(20))
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("waiting for the aggregator to be ready: %w (last: %w)\n%s", ctx.Err(), err, p.Tail(20))
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// StopAggregator stops the aggregator with SIGTERM (it flushes its audit log)
// and returns its exit error.
func (f *Federation) StopAggregator() error {
	if f.Aggregator == nil {
		return nil
	}
	if err := f.Aggregator.Stop(); err != nil {
		return fmt.Errorf("aggregator: %w\n%s", err, f.Aggregator.Tail(20))
	}
	return nil
}

// Enrol creates merchant id's keys in Dir/id/keys, enrols it with the running
// aggregator and writes its token to Dir/id/token.
func (f *Federation) Enrol(ctx context.Context, id, zone string) (*Merchant, error) {
	m := &Merchant{ID: id, Index: len(f.Merchants), Dir: filepath.Join(f.Dir, id)}
	m.Config = filepath.Join(m.Dir, "client.yaml")
	k, err := keys.GenerateMerchant(rand.Reader, id)
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	if err := keys.WriteMerchant(filepath.Join(m.Dir, "keys"), k, nil); err != nil {
		return nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	e, err := f.Admin.Enrol(ctx, protocol.EnrolRequest{ID: id, TimeZone: zone, PublicKey: k.Public().Signing})
	if err != nil {
		return nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	m.Token = e.Token
	if err := os.WriteFile(filepath.Join(m.Dir, "token"), []byte(e.Token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	f.Merchants = append(f.Merchants, m)
	return m, nil
}

// ClientConfig is what varies between merchants' client configurations.
type ClientConfig struct {
	// Data is the merchant's order file; Format its format (default cdnow).
	Data, Format string
	// Shard, when set, is the flow mapping of data.shard, such as
	// "{of: [1, 1], index: 0, key: customer-hash}".
	Shard string
	// TimeZone is the merchant's zone (default UTC).
	TimeZone string
	// EpsilonCap is the merchant's own cap; 0 writes none (Extra may).
	EpsilonCap float64
	// PollInterval is how often the client polls for a round (default 50 ms).
	PollInterval time.Duration
	// Extra is appended to the file as it is (e.g. "clock_offset: 3h\n").
	Extra string
}

// WriteClientConfig writes m's client configuration and checks that the
// client loads it.
func (f *Federation) WriteClientConfig(m *Merchant, c ClientConfig) error {
	if c.Format == "" {
		c.Format = "cdnow"
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if c.PollInterval == 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Merchant %s, written by the federation harness.\naggregator: %s\nkeys_dir: keys\ntoken_file: token\ntime_zone: %s\n", m.ID, f.URL, c.TimeZone)
	if c.EpsilonCap > 0 {
		fmt.Fprintf(&b, "epsilon_cap: %g\n", c.EpsilonCap)
	}
	fmt.Fprintf(&b, "state_dir: state\npoll_interval: %s\ndata:\n  format: %s\n  path: %s\n", c.PollInterval, c.Format, c.Data)
	if c.Shard != "" {
		fmt.Fprintf(&b, "  shard: %s\n", c.Shard)
	}
	b.WriteString(c.Extra)
	if err := os.WriteFile(m.Config, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("client config %s: %w", m.ID, err)
	}
	if _, err := client.LoadConfig(m.Config); err != nil {
		return fmt.Errorf("client config %s: %w", m.ID, err)
	}
	return nil
}

// StartClient starts `kairos client run --config … --log-json` for m with more
// args and environment; its log is Dir/ID/client.log (appended).
func (f *Federation) StartClient(m *Merchant, env []string, args ...string) (*Process, error) {
	a := append([]string{"client", "run", "--config", m.Config, "--log-json"}, args...)
	p, err := Start(filepath.Join(m.Dir, "client.log"), env, f.Exe, a...)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", m.ID, err)
	}
	m.Client = p
	return p, nil
}

// WaitClients waits until every merchant's client has exited, calling tick
// (if not nil) every interval meanwhile; exits are noticed within an interval,
// in whatever order they happen. It fails as soon as the aggregator exits or a
// client exits with an error, unless exited (if not nil) accepts that
// client's end by returning nil.
func (f *Federation) WaitClients(ctx context.Context, interval time.Duration, tick func(), exited func(*Merchant, error) error) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var aggDone <-chan struct{}
	if f.Aggregator != nil {
		aggDone = f.Aggregator.Done()
	}
	var running []*Merchant
	for _, m := range f.Merchants {
		if m.Client != nil {
			running = append(running, m)
		}
	}
	for {
		left := running[:0]
		for _, m := range running {
			if !m.Client.Exited() {
				left = append(left, m)
				continue
			}
			err := m.Client.Err()
			if err != nil && exited != nil {
				err = exited(m, err)
			}
			if err != nil {
				return fmt.Errorf("client %s: %w\n%s", m.ID, err, m.Client.Tail(15))
			}
		}
		running = left
		if len(running) == 0 {
			return nil
		}
		select {
		case <-running[0].Client.Done():
		case <-aggDone:
			return fmt.Errorf("aggregator exited (%s)\n%s", ExitText(f.Aggregator.Err()), f.Aggregator.Tail(15))
		case <-ticker.C:
			if tick != nil {
				tick()
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d clients (%s first): %w", len(running), running[0].ID, ctx.Err())
		}
	}
}

// StopMerchant tells the aggregator, with m's own token, that m sends no more
// updates (POST /v1/merchants/me:stop), so that rounds stop waiting for it.
func (f *Federation) StopMerchant(ctx context.Context, m *Merchant, reason string) error {
	c, err := apiclient.New(f.URL, m.Token)
	if err != nil {
		return fmt.Errorf("stop %s: %w", m.ID, err)
	}
	if err := c.StopMerchant(ctx, protocol.MerchantStop{Reason: reason}); err != nil {
		return fmt.Errorf("stop %s: %w", m.ID, err)
	}
	return nil
}

// Published counts the model versions published by rounds.
func (f *Federation) Published(ctx context.Context) (int, error) {
	ms, err := f.Admin.Models(ctx)
	if err != nil {
		return 0, fmt.Errorf("list models: %w", err)
	}
	n := 0
	for _, m := range ms {
		if m.Round != "" {
			n++
		}
	}
	return n, nil
}

// WaitPublished waits until rounds have published at least n model versions.
func (f *Federation) WaitPublished(ctx context.Context, n int) error {
	got := 0
	for {
		var err error
		if got, err = f.Published(ctx); err == nil && got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			tail := ""
			if f.Aggregator != nil {
				tail = f.Aggregator.Tail(20)
			}
			return fmt.Errorf("published %d model versions, want %d: %w\n%s", got, n, ctx.Err(), tail)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Budgets returns the aggregator's ledger heads by merchant.
func (f *Federation) Budgets(ctx context.Context) (map[string]protocol.BudgetInfo, error) {
	bs, err := f.Admin.Budgets(ctx)
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	out := make(map[string]protocol.BudgetInfo, len(bs))
	for _, b := range bs {
		out[b.Merchant] = b
	}
	return out, nil
}

// State reads m's client state.
func (f *Federation) State(m *Merchant) (*client.State, error) {
	st, err := client.ReadState(filepath.Join(m.Dir, "state"))
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", m.ID, err)
	}
	return st, nil
}

// VerifyAudit stops the aggregator (which flushes its audit log) and runs
// `kairos compliance audit verify` on its store. It returns the command's
// output and an error when verification failed.
func (f *Federation) VerifyAudit(ctx context.Context) (string, error) {
	if err := f.StopAggregator(); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, f.Exe, "compliance", "audit", "verify", "--db", f.DB, "--keys", filepath.Join(f.AggDir, keysDir)).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("audit verify: %w: %s", err, bytes.TrimSpace(out))
	}
	if !bytes.HasPrefix(out, []byte("OK:")) {
		return string(out), fmt.Errorf("audit verify: unexpected output %q", bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Close kills every process of the federation that is still running.
func (f *Federation) Close() {
	for _, m := range f.Merchants {
		m.Client.Kill()
	}
	f.Aggregator.Kill()
}
