package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/train/sim/fedrun"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/synth"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// FederationResult is what `kairos bench federation` measures; also its JSON.
type FederationResult struct {
	GoMaxProcs int    `json:"gomaxprocs"`
	LoadAvg    string `json:"loadavg_at_start"`
	// Federation has one run per --merchants entry.
	Federation []*FederationRun `json:"federation,omitempty"`
	Accept     *AcceptRun       `json:"accept,omitempty"`
}

// FederationRun is the simulated federation: merchants train, seal and submit, the
// aggregator publishes.
type FederationRun struct {
	Store                string    `json:"store"`
	Merchants            int       `json:"merchants"`
	CustomersPerMerchant int       `json:"customers_per_merchant"`
	Events               int       `json:"events"`
	Rows                 int       `json:"rows"`
	Params               int       `json:"params"`
	DataSeconds          float64   `json:"data_and_features_seconds"`
	Rounds               int       `json:"rounds"`
	RoundSeconds         []float64 `json:"round_seconds"`
	RoundsPerMinute      float64   `json:"rounds_per_minute"`
	MeanRoundSeconds     float64   `json:"mean_round_seconds"`
	// Sums over merchants of each stage's wall time (they run in parallel).
	TrainSeconds   float64 `json:"train_seconds_sum"`
	SealSeconds    float64 `json:"seal_seconds_sum"`
	SubmitSeconds  float64 `json:"submit_seconds_sum"`
	PublishSeconds float64 `json:"publish_seconds"`
	MaxEpsilon     float64 `json:"max_epsilon"`
	EpsilonCap     float64 `json:"epsilon_cap"`
	// Secure is the same merchants' secure-mode rounds (--secure).
	Secure *SecureRun `json:"secure,omitempty"`
}

// AcceptRun is the aggregator's acceptance throughput: pre-sealed updates of a
// model of about Params parameters submitted by Submitters goroutines.
type AcceptRun struct {
	Store         string  `json:"store"`
	Updates       int     `json:"updates"`
	Submitters    int     `json:"submitters"`
	Params        int     `json:"params"`
	EnvelopeBytes int     `json:"envelope_bytes"`
	Seconds       float64 `json:"seconds"`
	PerSecond     float64 `json:"updates_per_second"`
	P50ms         float64 `json:"p50_ms"`
	P99ms         float64 `json:"p99_ms"`
	CPUus         float64 `json:"process_cpu_us_per_update"`
	AuditEntries  uint64  `json:"audit_entries"`
	AuditBatches  uint64  `json:"audit_batches"`
}

// FederationOptions configure Federation; the command's flags of the same
// names say what each one does.
type FederationOptions struct {
	// DB is the rounds' store: a SQLite path or a postgres:// URL (a fresh
	// database is created beside it); empty: a temporary SQLite file.
	DB string
	// AcceptDB is the acceptance measurement's store; empty: skipped.
	AcceptDB string
	// Merchants runs the rounds once per entry with that many merchants.
	Merchants []int
	// Customers per merchant and Rounds to run.
	Customers, Rounds int
	// Updates (one per merchant) sent by Submitters goroutines, of a model
	// of about Params parameters, for the acceptance measurement.
	Updates, Submitters, Params int
	Seed                        uint64
	SkipRounds, SkipAccept      bool
	// Secure also runs Rounds secure-aggregation rounds on the same merchants.
	Secure bool
}

// Federation measures federated rounds per minute and the aggregator's
// accepted updates per second, writing progress lines to progress.
func Federation(ctx context.Context, progress io.Writer, o FederationOptions) (FederationResult, error) {
	res := FederationResult{GoMaxProcs: runtime.GOMAXPROCS(0), LoadAvg: loadAvg()}
	switch {
	case len(o.Merchants) == 0 || slices.Min(o.Merchants) < 1 || o.Customers < 1 || o.Rounds < 1:
		return res, fmt.Errorf("merchants %v, customers %d and rounds %d must be ≥ 1", o.Merchants, o.Customers, o.Rounds)
	case o.Updates < 1 || o.Submitters < 1 || o.Params < 1:
		return res, fmt.Errorf("updates %d, submitters %d and params %d must be ≥ 1", o.Updates, o.Submitters, o.Params)
	}
	for _, n := range o.Merchants {
		if o.SkipRounds {
			break
		}
		fmt.Fprintf(progress, "rounds: %d merchants × %d customers, %d rounds\n", n, o.Customers, o.Rounds)
		r, err := benchRounds(ctx, progress, o, n)
		if err != nil {
			return res, fmt.Errorf("rounds with %d merchants: %w", n, err)
		}
		res.Federation = append(res.Federation, r)
	}
	if !o.SkipAccept && o.AcceptDB != "" {
		fmt.Fprintf(progress, "acceptance: %d updates from %d submitters\n", o.Updates, o.Submitters)
		a, err := benchAccept(ctx, o)
		if err != nil {
			return res, fmt.Errorf("acceptance: %w", err)
		}
		res.Accept = a
	}
	return res, nil
}

// benchFed is one aggregator over a fresh store, with its merchants' keys.
type benchFed struct {
	svc     *aggregator.Service
	log     *audit.Log
	recip   string
	signers map[string]ed25519.PrivateKey
	kind    string
	closers []func()
}

func (b *benchFed) close() {
	if b.log != nil {
		_ = b.log.Close()
	}
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// fedBenchPolicy is a policy naming ids with one default for all.
func fedBenchPolicy(ids []string, epsCap float64) (*policies.Policy, error) {
	var p strings.Builder
	fmt.Fprintf(&p, "version: 1\nfederation: bench\ndefaults:\n  epsilon_cap: %g\n  delta: 1e-6\n  min_noise_multiplier: 0.5\n  clip_norm: 1.0\n  min_customers_per_update: 100\n  allowed_features: [all]\n  retention_days: 365\nmerchants:\n", epsCap)
	for _, id := range ids {
		fmt.Fprintf(&p, "  %s: {}\n", id)
	}
	return policies.Parse("bench.yaml", []byte(p.String()))
}

// openBenchFed opens a fresh store at db, creates an aggregator over it with
// a post-quantum key set and enrols ids.
func openBenchFed(ctx context.Context, db string, pol *policies.Policy, cfg aggregator.RoundConfig, initial *hazard.Model, ids []string) (_ *benchFed, err error) {
	b := &benchFed{signers: map[string]ed25519.PrivateKey{}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	st, _, kind, err := openBenchStore(ctx, db, "kairos-bench-fed-", &b.closers)
	if err != nil {
		return nil, err
	}
	b.kind = kind
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{})
	if err != nil {
		return nil, err
	}
	b.recip = agg.Recipient
	a, err := server.New(ctx, server.Options{Store: st, Keys: agg, Policy: pol, Rounds: cfg, InitialModel: initial})
	if err != nil {
		return nil, err
	}
	b.svc, b.log = a.Service, a.Audit
	for _, id := range ids {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if _, err := b.svc.Enrol(ctx, "admin:bench", aggregator.Merchant{ID: id, TimeZone: "UTC", PublicKey: pub}); err != nil {
			return nil, err
		}
		b.signers[id] = priv
	}
	// The first round opened before anyone was enrolled: this tick fails it
	// and opens one that samples every merchant.
	if err := b.svc.Tick(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// sealUpdate seals u for the aggregator as its merchant.
func (b *benchFed) sealUpdate(u protocol.Update) ([]byte, error) {
	payload, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	rcpt, err := keys.ParseRecipient(b.recip)
	if err != nil {
		return nil, err
	}
	h := seal.Header{MerchantID: u.Merchant, Round: u.Round, ModelVersion: strconv.Itoa(u.BaseVersion), CreatedAt: time.Now().UTC()}
	return seal.Seal(rand.Reader, h, payload, b.signers[u.Merchant], rcpt)
}

func benchIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return ids
}

func benchRounds(ctx context.Context, progress io.Writer, o FederationOptions, merchants int) (*FederationRun, error) {
	run := &FederationRun{Store: "sqlite", Merchants: merchants, CustomersPerMerchant: o.Customers, Rounds: o.Rounds, EpsilonCap: 1}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoffs := []time.Time{start.AddDate(0, 8, 0), start.AddDate(0, 9, 0), start.AddDate(0, 10, 0)}
	ids := benchIDs("m", merchants)

	// Each merchant's data and rows, built in parallel (not part of a round).
	t0 := time.Now()
	schema, err := feature.NewSchema(nil)
	if err != nil {
		return nil, err
	}
	ms := make([]fedrun.Merchant, merchants)
	events := make([]int, merchants)
	err = fedrun.Parallel(merchants, func(i int) error {
		g, err := synth.New(synth.Config{Seed: o.Seed + uint64(i), Start: start, Days: 365, Customers: o.Customers, EventsPerCustomer: 15,
			Merchants: []synth.Merchant{{Name: ids[i], Zone: time.UTC, Weight: 1}}})
		if err != nil {
			return err
		}
		var evs []model.Event
		for c := range o.Customers {
			evs = append(evs, g.Customer(c).Events...)
		}
		events[i] = len(evs)
		rows, err := client.BuildRows(evs, cutoffs, time.UTC, schema)
		ms[i] = fedrun.Merchant{ID: ids[i], Zone: "UTC", Rows: rows}
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range ms {
		run.Events += events[i]
		run.Rows += len(ms[i].Rows)
	}
	run.DataSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(progress, "  data and features: %d events, %d rows in %.1f s\n", run.Events, run.Rows, run.DataSeconds)

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	st, _, kind, err := openBenchStore(ctx, o.DB, "kairos-bench-fed-", &closers)
	if err != nil {
		return nil, err
	}
	run.Store = kind
	res, err := fedrun.Run(ctx, ms, fedrun.Options{
		Store:      st,
		Rounds:     aggregator.RoundConfig{Deadline: time.Hour, Quorum: merchants, PlannedRounds: o.Rounds, Cutoffs: cutoffs},
		EpsilonCap: run.EpsilonCap, Progress: progress,
		// The measurement is of throughput, not of the policy: a floor of one
		// customer keeps a small --customers from refusing a noisy count.
		MinCustomers: 1,
	})
	if err != nil {
		return nil, err
	}
	if res.Published != o.Rounds || res.Dropouts != 0 {
		return nil, fmt.Errorf("%d rounds published of %d, %d updates refused", res.Published, o.Rounds, res.Dropouts)
	}
	run.Params, run.RoundSeconds, run.MaxEpsilon = res.Params, res.RoundSeconds, res.MaxEpsilon
	run.TrainSeconds, run.SealSeconds, run.SubmitSeconds, run.PublishSeconds = res.TrainSeconds, res.SealSeconds, res.SubmitSeconds, res.PublishSeconds
	total := 0.0
	for _, s := range run.RoundSeconds {
		total += s
	}
	run.RoundsPerMinute = 60 * float64(o.Rounds) / total
	run.MeanRoundSeconds = total / float64(o.Rounds)
	if o.Secure {
		rows := make([][]feature.Row, len(ms))
		for i, m := range ms {
			rows[i] = m.Rows
		}
		if run.Secure, err = benchSecureRounds(ctx, progress, o, schema, rows, run.RoundSeconds); err != nil {
			return nil, err
		}
	}
	return run, nil
}

func benchAccept(ctx context.Context, o FederationOptions) (*AcceptRun, error) {
	run := &AcceptRun{Store: "sqlite", Updates: o.Updates, Submitters: o.Submitters}
	if store.IsPostgres(o.AcceptDB) {
		run.Store = "postgres"
	}
	ids := benchIDs("b", o.Updates)
	pol, err := fedBenchPolicy(ids, 1)
	if err != nil {
		return nil, err
	}
	schema, err := feature.NewSchema(nil)
	if err != nil {
		return nil, err
	}
	// An MLP's size is hidden·(features + 2) plus a few dozen baseline terms.
	hidden := max(1, (o.Params-30)/(schema.Len()+2))
	initial, err := hazard.New(hazard.KindMLP, schema, hazard.FixedStandardization(schema), hidden, 0.003)
	if err != nil {
		return nil, err
	}
	run.Params = len(initial.Params)
	fed, err := openBenchFed(ctx, o.AcceptDB, pol, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1}, initial, ids)
	if err != nil {
		return nil, err
	}
	defer fed.close()
	round, err := fed.svc.CurrentRound(ctx, ids[0])
	if err != nil {
		return nil, err
	}
	envs := make([][]byte, len(ids))
	err = fedrun.Parallel(len(ids), func(i int) error {
		delta := make([]float64, run.Params)
		for j := range delta {
			delta[j] = 0.01 * float64(j%7-3)
		}
		envs[i], err = fed.sealUpdate(protocol.Update{
			Version: protocol.Version, Round: round.ID, Merchant: ids[i], BaseVersion: round.BaseVersion,
			SchemaHash: schema.Hash, Delta: delta,
			Release:   protocol.Release{SamplingRate: round.Plan.SamplingRate, NoiseMultiplier: round.Plan.NoiseMultiplier, Steps: round.Plan.Steps, ClipNorm: round.Plan.ClipNorm},
			Customers: protocol.NoisyCount{Value: 1000, Sigma: round.Plan.CountNoise},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	run.EnvelopeBytes = len(envs[0])
	before := fed.log.Stats()
	lat := make([]time.Duration, len(ids))
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	cpu0, t0 := cpuTime(), time.Now()
	for range o.Submitters {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				s := time.Now()
				if _, err := fed.svc.Submit(ctx, ids[i], envs[i]); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(s)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	if p := failed.Load(); p != nil {
		return nil, *p
	}
	after := fed.log.Stats()
	slices.Sort(lat)
	run.Seconds = elapsed.Seconds()
	run.PerSecond = float64(len(ids)) / elapsed.Seconds()
	run.P50ms, run.P99ms = pct(lat, 0.50), pct(lat, 0.99)
	run.CPUus = float64(cpu.Microseconds()) / float64(len(ids))
	run.AuditEntries, run.AuditBatches = after.Entries-before.Entries, after.Batches-before.Batches
	return run, nil
}

// loadAvg is /proc/loadavg's first three fields ("" where it does not exist).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// WriteFederationTable writes res as the table `kairos bench federation` prints.
func WriteFederationTable(w io.Writer, res FederationResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GOMAXPROCS\t%d\tload average at start %s\n", res.GoMaxProcs, res.LoadAvg)
	for _, r := range res.Federation {
		fmt.Fprintf(tw, "federation (%s)\t%d merchants × %d customers\t%d events, %d rows, %d parameters\n", r.Store, r.Merchants, r.CustomersPerMerchant, r.Events, r.Rows, r.Params)
		fmt.Fprintf(tw, "data + features\t%.1f s\t(once, before the rounds)\n", r.DataSeconds)
		secs := make([]string, len(r.RoundSeconds))
		for i, s := range r.RoundSeconds {
			secs[i] = fmt.Sprintf("%.2f", s)
		}
		fmt.Fprintf(tw, "rounds\t%d\t%s s\n", r.Rounds, strings.Join(secs, ", "))
		fmt.Fprintf(tw, "rounds per minute\t%.1f\n", r.RoundsPerMinute)
		fmt.Fprintf(tw, "per round and merchant\ttrain %.1f ms\tseal %.2f ms\tsubmit %.2f ms\n",
			1000*r.TrainSeconds/float64(r.Rounds*r.Merchants), 1000*r.SealSeconds/float64(r.Rounds*r.Merchants), 1000*r.SubmitSeconds/float64(r.Rounds*r.Merchants))
		fmt.Fprintf(tw, "publish (merge, FedAdam, next round)\t%.0f ms per round\n", 1000*r.PublishSeconds/float64(r.Rounds))
		fmt.Fprintf(tw, "largest ε spent\t%.4f\tcap %.4f\n", r.MaxEpsilon, r.EpsilonCap)
		if r.Secure != nil {
			writeSecureRun(tw, r.Secure)
		}
	}
	if a := res.Accept; a != nil {
		fmt.Fprintf(tw, "acceptance (%s)\t%d updates of %d parameters (%d-byte envelopes), %d submitters\n", a.Store, a.Updates, a.Params, a.EnvelopeBytes, a.Submitters)
		fmt.Fprintf(tw, "accepted updates per second\t%.0f\tp50 %.2f ms\tp99 %.2f ms\n", a.PerSecond, a.P50ms, a.P99ms)
		fmt.Fprintf(tw, "process CPU per update\t%.0f µs\t(aggregator; the database's is not counted)\n", a.CPUus)
		fmt.Fprintf(tw, "audit\t%d entries in %d group commits\n", a.AuditEntries, a.AuditBatches)
	}
	return tw.Flush()
}
