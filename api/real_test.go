package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// realPolicy admits the merchants the tests enrol. "once" can afford about
// one round: its cap is tiny next to the others'.
const realPolicy = `version: 1
federation: api-test
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
  new-1: {}
`

// testClock is a settable clock shared by the service and the envelopes.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// realFixture is a fixture over a real aggregator.Service on SQLite, with
// merchants m1 and m2 enrolled.
type realFixture struct {
	*fixture
	svc    *aggregator.Service
	store  store.Store
	clock  *testClock
	policy *policies.Policy
	keys   *keys.Aggregator
}

func newRealFixture(t testing.TB, rounds aggregator.RoundConfig, opts Options) *realFixture {
	t.Helper()
	return newRealFixtureWith(t, "", realPolicy, nil, rounds, opts)
}

// newRealFixtureWith is newRealFixture over the store at dbURL (a new SQLite
// file when empty) with another policy and more merchants (besides m1 and m2)
// to enrol, each with a token under its own name.
func newRealFixtureWith(t testing.TB, dbURL, policy string, more []string, rounds aggregator.RoundConfig, opts Options) *realFixture {
	t.Helper()
	ctx := context.Background()
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(t.TempDir(), "kairos.db")
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	alog, err := audit.New(ctx, audit.Options{Store: st, HMACKey: agg.AuditHMAC, SigningKey: agg.Checkpoint, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	pol, err := policies.Parse("api-test.yaml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := aggregator.New(ctx, aggregator.Options{
		Store: st.(aggregator.Store), Policy: pol, Keys: agg, Audit: alog, Now: clock.Now, Rounds: rounds,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Ready = func(ctx context.Context) error { _, err := st.IsTokenRevoked(ctx, "probe"); return err }
	opts.RoundCounts, opts.Revoker = svc, svc
	f := newFixture(t, svc, opts)
	f.recipient, err = keys.ParseRecipient(agg.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range more {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.merchantKeys[id] = priv
		f.tokens[id] = issue(t, f.issuer, auth.Grant{Subject: id, Role: auth.RoleMerchant, Merchants: []string{id}, TTL: time.Hour})
	}
	for id, key := range f.merchantKeys {
		if _, err := svc.Enrol(ctx, "admin:test", aggregator.Merchant{ID: id, TimeZone: "Europe/Berlin", PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
			t.Fatalf("enrol %s: %v", id, err)
		}
	}
	// The first round opened before anyone was enrolled; let it miss its
	// quorum so that the next one samples the enrolled merchants.
	if rounds.Deadline == 0 {
		t.Fatal("newRealFixture: give the rounds a deadline")
	}
	clock.Add(rounds.Deadline + time.Second)
	if err := svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	return &realFixture{fixture: f, svc: svc, store: st, clock: clock, policy: pol, keys: agg}
}

// honest returns merchant's sealed honest update for its current round.
func (f *realFixture) honest(t testing.TB, merchant string, edit ...func(*protocol.Update, *seal.Header)) []byte {
	t.Helper()
	r, err := f.svc.CurrentRound(context.Background(), merchant)
	if err != nil {
		t.Fatalf("current round of %s: %v", merchant, err)
	}
	m, err := hazard.Unmarshal(r.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	delta := make([]float64, len(m.Params))
	for i := range delta {
		delta[i] = 0.001 * float64(i%5-2)
	}
	u := protocol.Update{
		Version: protocol.Version, Round: r.ID, Merchant: merchant, BaseVersion: r.BaseVersion,
		SchemaHash: m.Schema.Hash, Delta: delta,
		Release:   protocol.Release{SamplingRate: r.Plan.SamplingRate, NoiseMultiplier: r.Plan.NoiseMultiplier, Steps: r.Plan.Steps, ClipNorm: r.Plan.ClipNorm},
		Customers: protocol.NoisyCount{Value: 500, Sigma: r.Plan.CountNoise},
	}
	h := seal.Header{MerchantID: merchant, Round: r.ID, ModelVersion: strconv.Itoa(r.BaseVersion), CreatedAt: f.clock.Now()}
	for _, e := range edit {
		e(&u, &h)
	}
	payload, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	// Seal draws the nonce from its rand; a nonce set by an edit is fed to it.
	rnd := rand.Reader
	if h.Nonce != ([seal.NonceSize]byte{}) {
		rnd = io.MultiReader(bytes.NewReader(h.Nonce[:]), rand.Reader)
	}
	env, err := seal.Seal(rnd, h, payload, f.merchantKeys[merchant], f.recipient)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func edKey() (ed25519.PublicKey, ed25519.PrivateKey, error) { return ed25519.GenerateKey(rand.Reader) }
