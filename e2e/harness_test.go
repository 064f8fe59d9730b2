package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// kairosBin is the binary TestMain built.
var kairosBin string

// e2eCommit is the commit TestMain stamps into kairosBin.
const e2eCommit = "e2e0000000000000000000000000000000000000"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kairos-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kairosBin = filepath.Join(dir, "kairos")
	// The linker stamps a commit, as make build does (TestJourney reads it back).
	out, err := exec.Command("go", "build", "-ldflags", "-X github.com/kairos-fl/kairos/internal/buildinfo.commit="+e2eCommit,
		"-o", kairosBin, "../cmd/kairos").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build kairos: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stores returns the stores to run a test on: SQLite, and PostgreSQL when
// KAIROS_TEST_POSTGRES_URL is set.
func stores(t *testing.T) []string {
	t.Helper()
	s := []string{"sqlite"}
	if os.Getenv("KAIROS_TEST_POSTGRES_URL") != "" {
		s = append(s, "postgres")
	}
	return s
}

// freshPostgres creates an empty database on the server of
// KAIROS_TEST_POSTGRES_URL, dropped when the test ends, and returns its URL.
func freshPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("KAIROS_TEST_POSTGRES_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "kairos_e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// proc is a kairos process started by a test.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(t *testing.T, logPath string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kairosBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\n%s", strings.Join(p.cmd.Args[1:3], " "), timeout, tail(p.log, 20))
		return nil
	}
}

// stop sends SIGTERM and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 40*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", p.cmd.Args[1], err, tail(p.log, 20))
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + path + " ---\n" + strings.Join(lines, "\n")
}

// fedOptions shape a test federation.
type fedOptions struct {
	merchants int
	rounds    int // planned rounds: each merchant's ε cap is spent in this many
	quorum    int // 0: every merchant
	store     string
	// dbURL, when set, is the store (an empty database) instead of one per store.
	dbURL string
}

type merchant struct {
	id, dir, cfg string
	index        int
	token        string
	proc         *proc
}

// fed is an aggregator directory, its server process and its merchants.
type fed struct {
	t         *testing.T
	dir       string
	aggDir    string
	listen    string
	db        string
	url       string
	admin     *apiclient.Client
	agg       *proc
	merchants []*merchant
	opt       fedOptions
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func cdnowSlice(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/cdnow_2400.txt")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newFed initialises an aggregator for opt.merchants merchants m1..mN, enrols
// them with the round loop idle (so that the first round samples all of them),
// restarts the aggregator with a fast round loop, and writes each merchant's
// client config. Clients are not started.
func newFed(t *testing.T, opt fedOptions) *fed {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	if opt.quorum == 0 {
		opt.quorum = opt.merchants
	}
	f := &fed{t: t, dir: t.TempDir(), listen: freePort(t), opt: opt}
	f.aggDir = filepath.Join(f.dir, "aggregator")
	var policy strings.Builder
	policy.WriteString(`version: 1
federation: e2e
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
aggregation:
  merge: fedavg
merchants:
`)
	for i := range opt.merchants {
		fmt.Fprintf(&policy, "  m%d: {}\n", i+1)
	}
	policyPath := filepath.Join(f.dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(policy.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"aggregator", "init", "--dir", f.aggDir, "--listen", f.listen, "--policy", policyPath, "--classic"}
	f.db = filepath.Join(f.aggDir, "kairos.db")
	switch {
	case opt.dbURL != "":
		f.db = opt.dbURL
		args = append(args, "--db", f.db)
	case opt.store == "postgres":
		f.db = freshPostgres(t)
		args = append(args, "--db", f.db)
	}
	if out, err := exec.Command(kairosBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("aggregator init: %v\n%s", err, out)
	}
	tok, err := os.ReadFile(filepath.Join(f.aggDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + f.listen
	if f.admin, err = apiclient.New(f.url, strings.TrimSpace(string(tok))); err != nil {
		t.Fatal(err)
	}

	f.setRounds(time.Hour)
	f.startAggregator()
	for i := range opt.merchants {
		f.merchants = append(f.merchants, f.enrol(i))
	}
	f.agg.stop(t)
	f.setRounds(50 * time.Millisecond)
	f.startAggregator()
	return f
}

// setRounds writes the round configuration with the given tick interval.
func (f *fed) setRounds(tick time.Duration) {
	t := f.t
	t.Helper()
	path := filepath.Join(f.aggDir, "kairos.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["rounds"] = map[string]any{
		"deadline": "45s", "quorum": f.opt.quorum, "sample_fraction": 1.0,
		"steps_per_round": 3, "planned_rounds": f.opt.rounds, "sampling_rate": 0.05,
		"learning_rate": 0.5, "count_noise": 50.0, "server": "fedavg", "seed": 1,
		"cutoffs":       []string{"1997-07-01T00:00:00Z", "1997-09-01T00:00:00Z", "1997-11-01T00:00:00Z", "1998-01-01T00:00:00Z"},
		"tick_interval": tick.String(),
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAggregator starts `kairos aggregator serve` on f.listen and waits until it is ready.
func (f *fed) startAggregator() {
	t := f.t
	t.Helper()
	f.agg = start(t, filepath.Join(f.dir, "aggregator.log"), nil, "aggregator", "serve", "--dir", f.aggDir, "--log-json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if err := f.admin.Ready(ctx); err == nil {
			return
		}
		select {
		case <-f.agg.done:
			t.Fatalf("aggregator exited: %v\n%s", f.agg.err, tail(f.agg.log, 20))
		case <-ctx.Done():
			t.Fatalf("aggregator not ready\n%s", tail(f.agg.log, 20))
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// enrol creates merchant i's keys, enrols it and writes its client config.
func (f *fed) enrol(i int) *merchant {
	t := f.t
	t.Helper()
	m := &merchant{id: fmt.Sprintf("m%d", i+1), index: i}
	m.dir = filepath.Join(f.dir, m.id)
	k, err := keys.GenerateMerchant(rand.Reader, m.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteMerchant(filepath.Join(m.dir, "keys"), k, nil); err != nil {
		t.Fatal(err)
	}
	e, err := f.admin.Enrol(context.Background(), protocol.EnrolRequest{ID: m.id, TimeZone: "UTC", PublicKey: k.Public().Signing})
	if err != nil {
		t.Fatalf("enrol %s: %v", m.id, err)
	}
	m.token = e.Token
	if err := os.WriteFile(filepath.Join(m.dir, "token"), []byte(e.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.cfg = filepath.Join(m.dir, "client.yaml")
	f.writeClientConfig(m, "")
	return m
}

// writeClientConfig writes m's config; extra is appended (e.g. a clock offset).
func (f *fed) writeClientConfig(m *merchant, extra string) {
	t := f.t
	t.Helper()
	shard := ""
	if n := f.opt.merchants; n > 1 {
		parts := strings.TrimSuffix(strings.Repeat("1, ", n), ", ")
		shard = fmt.Sprintf("  shard: {of: [%s], index: %d, key: customer-hash}\n", parts, m.index)
	}
	capLine := "epsilon_cap: 1\n"
	if strings.Contains(extra, "epsilon_cap:") {
		capLine = "" // the caller sets its own cap
	}
	cfg := fmt.Sprintf(`aggregator: %s
keys_dir: keys
token_file: token
time_zone: UTC
%sstate_dir: state
poll_interval: 50ms
data:
  format: cdnow
  path: %s
%s%s`, f.url, capLine, cdnowSlice(t), shard, extra)
	if err := os.WriteFile(m.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run starts m's client (`kairos client run`) with extra args and environment.
func (f *fed) run(m *merchant, env []string, args ...string) *proc {
	f.t.Helper()
	a := append([]string{"client", "run", "--config", m.cfg, "--log-json"}, args...)
	m.proc = start(f.t, filepath.Join(m.dir, "client.log"), env, a...)
	return m.proc
}

// published counts the model versions published by rounds.
func (f *fed) published() int {
	ms, err := f.admin.Models(context.Background())
	if err != nil {
		return -1
	}
	n := 0
	for _, m := range ms {
		if m.Round != "" {
			n++
		}
	}
	return n
}

func (f *fed) waitPublished(n int, timeout time.Duration) {
	t := f.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for f.published() < n {
		if time.Now().After(deadline) {
			t.Fatalf("published %d model versions, want %d within %v\n%s", f.published(), n, timeout, tail(f.agg.log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fed) budgets() map[string]protocol.BudgetInfo {
	t := f.t
	t.Helper()
	bs, err := f.admin.Budgets(context.Background())
	if err != nil {
		t.Fatalf("budgets: %v", err)
	}
	out := map[string]protocol.BudgetInfo{}
	for _, b := range bs {
		out[b.Merchant] = b
	}
	return out
}

func (f *fed) state(m *merchant) *client.State {
	t := f.t
	t.Helper()
	st, err := client.ReadState(filepath.Join(m.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkLedgers asserts that the aggregator and every client agree: every
// update a client holds a receipt for was debited exactly once (its DP-SGD
// steps, plus the customer count in the first accepted one: later updates send
// that count again), no merchant is past its cap, and each client's last
// receipt reports the aggregator's ε.
func (f *fed) checkLedgers() {
	t := f.t
	t.Helper()
	bs := f.budgets()
	for _, m := range f.merchants {
		st := f.state(m)
		b := bs[m.id]
		accepted := st.Accepted()
		if got, want := b.Releases, accepted+min(accepted, 1); got != want {
			t.Errorf("%s: aggregator ledger holds %d releases, want %d (one for each of %d accepted updates and the count)", m.id, got, want, accepted)
		}
		local := len(st.Rounds)
		if st.Count != nil {
			local++
		}
		if st.Pending != nil {
			local++
			if st.Pending.Count != nil {
				local++
			}
		}
		if got := len(st.Releases); got != local {
			t.Errorf("%s: local ledger holds %d releases, want %d", m.id, got, local)
		}
		if b.Epsilon > b.Cap+1e-9 {
			t.Errorf("%s: ε %v past the cap %v", m.id, b.Epsilon, b.Cap)
		}
		if rc, ok := st.LastReceipt(); ok && st.Pending == nil && rc.Epsilon != b.Epsilon {
			t.Errorf("%s: last receipt ε %v, aggregator ε %v", m.id, rc.Epsilon, b.Epsilon)
		}
	}
}

// contributions counts each merchant's contributions to published versions.
func (f *fed) contributions() map[string]int {
	t := f.t
	t.Helper()
	ms, err := f.admin.Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range ms {
		for _, c := range m.Contributions {
			out[c.Merchant]++
		}
	}
	return out
}

// verifyAudit stops the aggregator and runs `kairos compliance audit verify`.
func (f *fed) verifyAudit() {
	t := f.t
	t.Helper()
	f.agg.stop(t)
	out, err := exec.Command(kairosBin, "compliance", "audit", "verify", "--db", f.db, "--keys", filepath.Join(f.aggDir, "keys")).CombinedOutput()
	if err != nil || !bytes.HasPrefix(out, []byte("OK:")) {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// killed reports whether the process died of SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
