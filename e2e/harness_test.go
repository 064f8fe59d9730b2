package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/federation/harness"
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

// proc is a kairos process started by a test (harness.Process with t.Fatal).
type proc struct{ *harness.Process }

func start(t *testing.T, logPath string, env []string, args ...string) *proc {
	t.Helper()
	p, err := harness.Start(logPath, env, kairosBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return &proc{p}
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\n%s", p.Name(), timeout, p.Tail(20))
		return nil
	}
}

func tail(path string, n int) string { return harness.Tail(path, n) }

// fedOptions shape a test federation.
type fedOptions struct {
	merchants int
	rounds    int // planned rounds: each merchant's ε cap is spent in this many
	quorum    int // 0: every merchant
	store     string
	// dbURL, when set, is the store (an empty database) instead of one per store.
	dbURL string
	// defaults and aggregation are extra policy lines (two-space indented)
	// under defaults: and aggregation:; roundConfig, when set, changes the
	// round configuration.
	defaults, aggregation string
	roundConfig           func(*aggregator.RoundConfig)
}

// merchant is a harness merchant with the process the test last started.
type merchant struct {
	*harness.Merchant
	id, dir, token string
	index          int
	proc           *proc
}

// fed is a harness federation (aggregator directory, server process,
// merchants) whose helpers fail the test on error.
type fed struct {
	*harness.Federation
	t         *testing.T
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

// e2eCutoffs are the training cutoffs of every test federation.
var e2eCutoffs = []time.Time{
	time.Date(1997, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(1997, 9, 1, 0, 0, 0, 0, time.UTC),
	time.Date(1997, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(1998, 1, 1, 0, 0, 0, 0, time.UTC),
}

// newFed launches (harness.Launch) an aggregator for opt.merchants merchants
// m1..mN, enrolled while the round loop was idle (so that the first round
// samples all of them), serving with a fast round loop, and writes each
// merchant's client config. Clients are not started.
func newFed(t *testing.T, opt fedOptions) *fed {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	if opt.quorum == 0 {
		opt.quorum = opt.merchants
	}
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
` + opt.defaults + `aggregation:
  merge: fedavg
` + opt.aggregation + `merchants:
`)
	ids := make([]string, opt.merchants)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%d", i+1)
		fmt.Fprintf(&policy, "  %s: {}\n", ids[i])
	}
	ho := harness.Options{
		Exe: kairosBin, Dir: t.TempDir(), Policy: []byte(policy.String()), InitArgs: []string{"--classic"},
		Rounds: aggregator.RoundConfig{
			Deadline: 45 * time.Second, Quorum: opt.quorum, SampleFraction: 1,
			StepsPerRound: 3, PlannedRounds: opt.rounds, SamplingRate: 0.05, LearningRate: 0.5, CountNoise: 50,
			Server: "fedavg", Seed: 1, Cutoffs: e2eCutoffs, TickInterval: 50 * time.Millisecond,
		},
	}
	if opt.roundConfig != nil {
		opt.roundConfig(&ho.Rounds)
	}
	switch {
	case opt.dbURL != "":
		ho.DB = opt.dbURL
	case opt.store == "postgres":
		ho.DB = freshPostgres(t)
	}
	h, err := harness.Launch(context.Background(), ho, ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	f := &fed{Federation: h, t: t, agg: &proc{h.Aggregator}, opt: opt}
	for _, hm := range h.Merchants {
		m := &merchant{Merchant: hm, id: hm.ID, dir: hm.Dir, token: hm.Token, index: hm.Index}
		f.merchants = append(f.merchants, m)
		f.writeClientConfig(m, "")
	}
	return f
}

// startAggregator starts `kairos aggregator serve` and waits until it is ready.
func (f *fed) startAggregator() {
	f.t.Helper()
	if err := f.StartAggregator(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.agg = &proc{f.Aggregator}
}

// writeClientConfig writes m's config (its shard of the CDNOW slice, ε cap 1);
// extra is appended (e.g. a clock offset, or a cap of its own).
func (f *fed) writeClientConfig(m *merchant, extra string) {
	t := f.t
	t.Helper()
	c := harness.ClientConfig{Data: cdnowSlice(t), EpsilonCap: 1, Extra: extra}
	if n := f.opt.merchants; n > 1 {
		parts := strings.TrimSuffix(strings.Repeat("1, ", n), ", ")
		c.Shard = fmt.Sprintf("{of: [%s], index: %d, key: customer-hash}", parts, m.index)
	}
	if strings.Contains(extra, "epsilon_cap:") {
		c.EpsilonCap = 0 // the caller sets its own cap
	}
	if err := f.WriteClientConfig(m.Merchant, c); err != nil {
		t.Fatal(err)
	}
}

// run starts m's client (`kairos client run`) with extra args and environment.
func (f *fed) run(m *merchant, env []string, args ...string) *proc {
	f.t.Helper()
	p, err := f.StartClient(m.Merchant, env, args...)
	if err != nil {
		f.t.Fatal(err)
	}
	m.proc = &proc{p}
	return m.proc
}

// published counts the model versions published by rounds (-1 on error).
func (f *fed) published() int {
	n, err := f.Published(context.Background())
	if err != nil {
		return -1
	}
	return n
}

func (f *fed) waitPublished(n int, timeout time.Duration) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.WaitPublished(ctx, n); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fed) budgets() map[string]protocol.BudgetInfo {
	f.t.Helper()
	bs, err := f.Budgets(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return bs
}

func (f *fed) state(m *merchant) *client.State {
	f.t.Helper()
	st, err := f.State(m.Merchant)
	if err != nil {
		f.t.Fatal(err)
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
	ms, err := f.Admin.Models(context.Background())
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

// verifyAudit stops the aggregator (f.agg) and runs `kairos compliance audit verify`.
func (f *fed) verifyAudit() {
	f.t.Helper()
	f.Aggregator = f.agg.Process
	if out, err := f.VerifyAudit(context.Background()); err != nil {
		f.t.Errorf("%v\n%s", err, out)
	}
}

// killed reports whether the process died of SIGKILL.
func killed(err error) bool { return harness.Killed(err) }
