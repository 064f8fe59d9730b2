// Package fedrun runs a federation of in-process merchants through the real
// protocol: every round each merchant fetches the round and its model from an
// aggregator.Service, trains with DP-SGD (train.Local), seals its update (age
// to the aggregator's post-quantum recipient, Ed25519-signed) and submits it;
// the service verifies, debits each merchant's ledger, audits, merges and
// publishes. Only the network is missing: the merchants call the service's
// methods instead of its HTTP API. Benchmarks (kairos bench federation) and
// the synthetic-1000 scenario of kairos sim use it.
package fedrun

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
	"github.com/kairos-fl/kairos/store/postgres"
)

// Merchant is one in-process merchant: its id, declared time zone and
// labelled rows at the round configuration's cutoffs.
type Merchant struct {
	ID   string
	Zone string
	Rows []feature.Row
}

// Options configures Run.
type Options struct {
	// Store is an opened, migrated store with the federation tables (SQLite or
	// PostgreSQL); Run does not close it.
	Store store.Store
	// Rounds configures the aggregator (PlannedRounds rounds are run; Deadline
	// defaults to an hour of the simulated clock, Quorum to every merchant).
	Rounds aggregator.RoundConfig
	// EpsilonCap and Delta are every merchant's policy budget (defaults 1 and
	// 1e-6); MinCustomers is the policy's min_customers_per_update (default 100).
	EpsilonCap, Delta float64
	MinCustomers      int
	// Initial is version 1's model (nil: hazard.Initial over the policy's features).
	Initial *hazard.Model
	// Progress, when set, receives a line per round.
	Progress io.Writer
}

// Result is what Run measured.
type Result struct {
	Store  string `json:"store"`
	Params int    `json:"params"`
	// RoundSeconds are the wall times of the rounds, from the first fetch to
	// the publication.
	RoundSeconds []float64 `json:"round_seconds"`
	// Sums over merchants and rounds of each stage's wall time (merchants run
	// GOMAXPROCS at a time), and the publications' total.
	TrainSeconds   float64 `json:"train_seconds_sum"`
	SealSeconds    float64 `json:"seal_seconds_sum"`
	SubmitSeconds  float64 `json:"submit_seconds_sum"`
	PublishSeconds float64 `json:"publish_seconds"`
	// Dropouts counts merchants whose update the aggregator refused under its
	// policy (for instance a DP customer count below the minimum). Such a
	// merchant sends nothing in the later rounds: its count is released once
	// and would be refused again, and the aggregator debits every refused
	// update it decrypted, the re-sent count included (it cannot tell a reuse
	// of a count it never accepted from a new release).
	Dropouts int `json:"dropouts"`
	// Published is the number of rounds that published a model.
	Published int `json:"published"`
	// MaxEpsilon is the largest ε at Delta the aggregator's ledger holds for a
	// merchant.
	MaxEpsilon float64 `json:"max_epsilon"`
	// AuditEntries is the number of audit log entries verified after the run
	// (chain and checkpoint signatures).
	AuditEntries uint64 `json:"audit_entries"`
	// NoiseMultiplier is z of the last round's plan.
	NoiseMultiplier float64 `json:"noise_multiplier"`
	// Model is the last published model.
	Model *hazard.Model `json:"-"`
}

// Run enrols merchants with an aggregator on opt.Store and runs
// opt.Rounds.PlannedRounds rounds, every merchant in every round until the
// aggregator refuses one of its updates (Result.Dropouts). The
// aggregator's clock is simulated: a round's deadline passes when every
// merchant has answered, so refused merchants do not hold it up.
func Run(ctx context.Context, merchants []Merchant, opt Options) (*Result, error) {
	if len(merchants) == 0 {
		return nil, errors.New("fedrun: no merchants")
	}
	if opt.Store == nil {
		return nil, errors.New("fedrun: no store")
	}
	if opt.EpsilonCap == 0 {
		opt.EpsilonCap = 1
	}
	if opt.Delta == 0 {
		opt.Delta = 1e-6
	}
	if opt.MinCustomers == 0 {
		opt.MinCustomers = 100
	}
	cfg := opt.Rounds
	if cfg.PlannedRounds < 1 {
		return nil, fmt.Errorf("fedrun: planned rounds %d, want ≥ 1", cfg.PlannedRounds)
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = time.Hour
	}
	if cfg.Quorum == 0 {
		cfg.Quorum = len(merchants)
	}
	cfg.SampleFraction, cfg.MaxRounds = 1, 0
	if _, ok := opt.Store.(aggregator.Store); !ok {
		return nil, fmt.Errorf("fedrun: store %T has no federation tables", opt.Store)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UTC().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }

	pol, err := policy(merchants, opt)
	if err != nil {
		return nil, err
	}
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{})
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	rcpt, err := keys.ParseRecipient(agg.Recipient)
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	// The aggregator as serve assembles it, on the simulated clock.
	a, err := server.New(ctx, server.Options{Store: opt.Store, Keys: agg, Policy: pol, Rounds: cfg, InitialModel: opt.Initial, Now: now})
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	svc, log := a.Service, a.Audit
	closed := false
	defer func() {
		if !closed {
			_ = log.Close()
		}
	}()
	signers := make([]ed25519.PrivateKey, len(merchants))
	for i, m := range merchants {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("fedrun: %w", err)
		}
		if _, err := svc.Enrol(ctx, "admin:fedrun", aggregator.Merchant{ID: m.ID, TimeZone: m.Zone, PublicKey: pub}); err != nil {
			return nil, fmt.Errorf("fedrun: enrol %s: %w", m.ID, err)
		}
		signers[i] = priv
	}
	// The first round opened before anyone was enrolled: this tick fails it
	// and opens one that samples every merchant.
	if err := svc.Tick(ctx); err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	res := &Result{Store: "sqlite"}
	if _, ok := opt.Store.(*postgres.Store); ok {
		res.Store = "postgres"
	}
	var trainNS, sealNS, submitNS atomic.Int64
	var dropouts atomic.Int64
	var z atomic.Uint64
	counts := make([]*protocol.NoisyCount, len(merchants)) // released in the first round, sent again after
	out := make([]bool, len(merchants))                    // refused once: sits out the later rounds
	for r := range cfg.PlannedRounds {
		rs := time.Now()
		err := Parallel(len(merchants), func(i int) error {
			m := merchants[i]
			if out[i] {
				return nil
			}
			round, err := svc.CurrentRound(ctx, m.ID)
			if err != nil {
				return err
			}
			base, err := hazard.Unmarshal(round.Model, "")
			if err != nil {
				return err
			}
			t := time.Now()
			lr, err := train.Local(ctx, base, m.Rows, round.Plan, train.Options{Count: counts[i]})
			if err != nil {
				return fmt.Errorf("merchant %s: %w", m.ID, err)
			}
			counts[i] = lr.CountToReuse(round.ID)
			if i == 0 {
				z.Store(math.Float64bits(round.Plan.NoiseMultiplier))
			}
			trainNS.Add(int64(time.Since(t)))
			t = time.Now()
			payload, err := json.Marshal(protocol.Update{
				Version: protocol.Version, Round: round.ID, Merchant: m.ID, BaseVersion: round.BaseVersion,
				SchemaHash: base.Schema.Hash, Delta: lr.Delta, Release: lr.Release, Customers: lr.Customers,
			})
			if err != nil {
				return err
			}
			h := seal.Header{MerchantID: m.ID, Round: round.ID, ModelVersion: strconv.Itoa(round.BaseVersion), CreatedAt: now()}
			env, err := seal.Seal(rand.Reader, h, payload, signers[i], rcpt)
			if err != nil {
				return fmt.Errorf("merchant %s: seal: %w", m.ID, err)
			}
			sealNS.Add(int64(time.Since(t)))
			t = time.Now()
			_, err = svc.Submit(ctx, m.ID, env)
			submitNS.Add(int64(time.Since(t)))
			switch {
			case errors.Is(err, aggregator.ErrPolicy):
				dropouts.Add(1)
				out[i] = true
			case err != nil:
				return fmt.Errorf("merchant %s: %w", m.ID, err)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fedrun: round %d: %w", r+1, err)
		}
		t := time.Now()
		clock.Add(int64(cfg.Deadline + time.Second))
		if err := svc.Tick(ctx); err != nil {
			return nil, fmt.Errorf("fedrun: round %d: publish: %w", r+1, err)
		}
		res.PublishSeconds += time.Since(t).Seconds()
		res.RoundSeconds = append(res.RoundSeconds, time.Since(rs).Seconds())
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "  round %d: %.2f s\n", r+1, res.RoundSeconds[r])
		}
	}
	res.TrainSeconds = time.Duration(trainNS.Load()).Seconds()
	res.SealSeconds = time.Duration(sealNS.Load()).Seconds()
	res.SubmitSeconds = time.Duration(submitNS.Load()).Seconds()
	res.Dropouts = int(dropouts.Load())
	res.NoiseMultiplier = math.Float64frombits(z.Load())
	models, err := svc.Models(ctx)
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	res.Published = len(models) - 1
	last, err := svc.Model(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	if res.Model, err = hazard.Unmarshal(last.Model, ""); err != nil {
		return nil, fmt.Errorf("fedrun: last model: %w", err)
	}
	res.Params = len(res.Model.Params)
	budgets, err := svc.Budgets(ctx)
	if err != nil {
		return nil, fmt.Errorf("fedrun: %w", err)
	}
	for _, b := range budgets {
		res.MaxEpsilon = max(res.MaxEpsilon, b.Epsilon)
	}
	closed = true
	if err := log.Close(); err != nil {
		return nil, fmt.Errorf("fedrun: audit: %w", err)
	}
	v, err := audit.Verify(ctx, opt.Store, agg.Checkpoint.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("fedrun: audit log: %w", err)
	}
	res.AuditEntries = v.Entries
	return res, nil
}

// policy is one default for every merchant.
func policy(merchants []Merchant, opt Options) (*policies.Policy, error) {
	var p strings.Builder
	fmt.Fprintf(&p, "version: 1\nfederation: fedrun\ndefaults:\n  epsilon_cap: %g\n  delta: %g\n  min_noise_multiplier: 0.5\n  clip_norm: 1.0\n  min_customers_per_update: %d\n  allowed_features: [all]\n  retention_days: 365\nmerchants:\n",
		opt.EpsilonCap, opt.Delta, opt.MinCustomers)
	for _, m := range merchants {
		fmt.Fprintf(&p, "  %s: {}\n", m.ID)
	}
	pol, err := policies.Parse("fedrun.yaml", []byte(p.String()))
	if err != nil {
		return nil, fmt.Errorf("fedrun: policy: %w", err)
	}
	return pol, nil
}

// Parallel runs fn(0..n-1) on GOMAXPROCS goroutines and returns the first error.
func Parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
				}
			}
		})
	}
	wg.Wait()
	return first
}
