package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// backend opens stores over one database; open may be called several times
// (replicas, restarts).
type backend struct {
	name string
	open func(t testing.TB) store.Store
	// dir is the SQLite database's directory; dsn the PostgreSQL database's
	// URL (once opened): what a test reads the raw stored bytes from.
	dir string
	dsn func() string
}

// backends returns SQLite and, with KAIROS_TEST_POSTGRES_URL, PostgreSQL
// (a fresh database per call); without it PostgreSQL is skipped unless CI=true.
func backends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{sqliteBackend(t)}
	u := os.Getenv(pgtest.EnvURL)
	switch {
	case u != "":
		bs = append(bs, postgresBackend(t, u))
	case os.Getenv("CI") == "true":
		t.Fatal(pgtest.EnvURL + " is not set but CI=true: PostgreSQL tests must run in CI")
	default:
		t.Log(pgtest.EnvURL + " not set; PostgreSQL skipped")
	}
	return bs
}

func sqliteBackend(t testing.TB) backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kairos.db")
	return backend{name: "sqlite", dir: filepath.Dir(path), open: func(t testing.TB) store.Store {
		t.Helper()
		return openMigrated(t, path)
	}}
}

func postgresBackend(t testing.TB, base string) backend {
	t.Helper()
	var once sync.Once
	var dsn string
	return backend{name: "postgres", dsn: func() string { return dsn }, open: func(tb testing.TB) store.Store {
		tb.Helper()
		// One database per backends call, shared by the stores a test opens on it
		// (a restart reopens the same data); dropped when the test ends.
		once.Do(func() { dsn = pgtest.Database(t, base, "kairos_agg_") })
		return openMigrated(tb, dsn)
	}}
}

func openMigrated(t testing.TB, url string) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testPolicy = `version: 1
federation: test
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
merchants:
  m1: {}
  m2: {}
  m3: {}
  m4: {}
  poor: { epsilon_cap: 0.5 }
`

// fed is one test federation: an aggregator key set and policy shared by the
// services (replicas) opened over one backend.
type fed struct {
	t        testing.TB
	b        backend
	agg      *keys.Aggregator
	recip    age.Recipient
	policy   *policies.Policy
	clock    *clock
	cfg      aggregator.RoundConfig
	merchant map[string]ed25519.PrivateKey
	initial  *hazard.Model // version 1's model (nil: the policy's default)
	logger   *slog.Logger  // the services' logger (nil: discarded)

	mu     sync.Mutex
	counts map[string]string // merchant → round whose accepted update released its count
	// customers overrides the DP count value an honest update sends (default 1000).
	customers map[string]float64
}

// countReleased records that merchant's accepted update in round released its
// customer count; later honest updates send it again.
func (f *fed) countReleased(merchant, round string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.counts[merchant]; !ok {
		f.counts[merchant] = round
	}
}

func newFed(t testing.TB, b backend, cfg aggregator.RoundConfig) *fed {
	t.Helper()
	p, err := policies.Parse("test.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return newFedPolicy(t, b, cfg, p)
}

// newFedPolicy is newFed under policy p.
func newFedPolicy(t testing.TB, b backend, cfg aggregator.RoundConfig, p *policies.Policy) *fed {
	t.Helper()
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	recip, err := keys.ParseRecipient(agg.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	return &fed{t: t, b: b, agg: agg, recip: recip, policy: p,
		clock: &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}, cfg: cfg,
		merchant: map[string]ed25519.PrivateKey{}, counts: map[string]string{}, customers: map[string]float64{}}
}

// replica is one Service with its own store handle and audit log.
type replica struct {
	svc   *aggregator.Service
	store store.Store
	log   *audit.Log
}

// start opens a store handle, an audit log and a Service.
func (f *fed) start(t testing.TB) *replica {
	t.Helper()
	ctx := context.Background()
	st := f.b.open(t)
	log, err := audit.New(ctx, audit.Options{Store: st, HMACKey: f.agg.AuditHMAC, SigningKey: f.agg.Checkpoint, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	svc, err := aggregator.New(ctx, aggregator.Options{
		Store: st.(aggregator.Store), Policy: f.policy, Keys: f.agg, Audit: log, Now: f.clock.Now, Rounds: f.cfg,
		InitialModel: f.initial, Logger: f.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{svc: svc, store: st, log: log}
}

// enrol enrols ids with fresh signing keys.
func (f *fed) enrol(t testing.TB, r *replica, ids ...string) {
	t.Helper()
	for _, id := range ids {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Enrol(context.Background(), "admin:test", aggregator.Merchant{ID: id, TimeZone: "Europe/Berlin", PublicKey: pub}); err != nil {
			t.Fatalf("enrol %s: %v", id, err)
		}
		f.merchant[id] = priv
	}
}

// update builds merchant's honest update for round r as the plan allows.
func (f *fed) update(t testing.TB, r protocol.Round, merchant string) protocol.Update {
	t.Helper()
	m, err := hazard.Unmarshal(r.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	delta := make([]float64, len(m.Params))
	for i := range delta {
		delta[i] = 0.01 * float64(i%7-3)
	}
	f.mu.Lock()
	released := f.counts[merchant]
	value, ok := f.customers[merchant]
	f.mu.Unlock()
	if !ok {
		value = 1000
	}
	return protocol.Update{
		Version: protocol.Version, Round: r.ID, Merchant: merchant, BaseVersion: r.BaseVersion,
		SchemaHash: m.Schema.Hash, Delta: delta,
		Release:   protocol.Release{SamplingRate: r.Plan.SamplingRate, NoiseMultiplier: r.Plan.NoiseMultiplier, Steps: r.Plan.Steps, ClipNorm: r.Plan.ClipNorm},
		Customers: protocol.NoisyCount{Value: value, Sigma: r.Plan.CountNoise, ReleasedIn: released},
	}
}

// seal seals u as signer (default: u.Merchant's key) at the clock's time.
func (f *fed) seal(t testing.TB, u protocol.Update, opts ...func(*sealOpts)) []byte {
	t.Helper()
	o := sealOpts{header: seal.Header{MerchantID: u.Merchant, Round: u.Round, ModelVersion: strconv.Itoa(u.BaseVersion), CreatedAt: f.clock.Now()},
		key: f.merchant[u.Merchant], rand: rand.Reader}
	for _, fn := range opts {
		fn(&o)
	}
	payload := o.payload
	if payload == nil {
		var err error
		if payload, err = json.Marshal(u); err != nil {
			t.Fatal(err)
		}
	}
	if o.key == nil {
		_, o.key, _ = ed25519.GenerateKey(rand.Reader)
	}
	env, err := seal.Seal(o.rand, o.header, payload, o.key, f.recip)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

type sealOpts struct {
	payload []byte // raw payload instead of the update's JSON
	header  seal.Header
	key     ed25519.PrivateKey
	rand    io.Reader
}

// submitHonest fetches the current round as merchant and submits an honest update.
func (f *fed) submitHonest(t testing.TB, r *replica, merchant string) (protocol.Receipt, error) {
	t.Helper()
	round, err := r.svc.CurrentRound(context.Background(), merchant)
	if err != nil {
		t.Fatalf("current round for %s: %v", merchant, err)
	}
	u := f.update(t, round, merchant)
	rc, err := r.svc.Submit(context.Background(), merchant, f.seal(t, u))
	if err == nil && u.Customers.ReleasedIn == "" {
		f.countReleased(merchant, round.ID)
	}
	return rc, err
}

// auditActions counts the audit entries by action and outcome.
func auditActions(t testing.TB, st store.Store) map[string]int {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range es {
		out[fmt.Sprintf("%s %s", e.Action, e.Outcome)]++
	}
	return out
}

func (f *fed) verifyAudit(t testing.TB, r *replica) {
	t.Helper()
	if _, err := audit.Verify(context.Background(), r.store, f.agg.Checkpoint.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
}
