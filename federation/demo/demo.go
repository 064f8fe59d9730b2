// Package demo runs the Kairos demo: ten merchants of very different sizes and
// customers, drawn from the cdnow-100 split of CDNOW, federate as real
// processes on loopback (one `kairos aggregator serve`, one `kairos client
// run` each, through package harness) at ε = 1, δ = 1e-6 each; then every
// merchant's own customers are scored at the test cutoff by its local-only
// non-private model, the federated model and its personalised model, pooled
// per size bucket, and the aggregator's audit log is verified. With
// Options.All the same runs with every merchant of a cdnow-N split
// (`kairos sim --scenario cdnow-N --processes`).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/federation/harness"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Options configure Run.
type Options struct {
	// Exe is the kairos binary the processes run; Data is CDNOW_master.txt.
	Exe, Data string
	// WorkDir is the run's directory ("": a new temporary one, removed after
	// a successful run unless Keep).
	WorkDir string
	Keep    bool
	// Seed is the split's seed (0: 1).
	Seed uint64
	// Split is the number of merchants of the cdnow-N split (sim.SplitCDNOW)
	// the merchants are drawn from (0: 100).
	Split int
	// All federates every merchant of the split (kairos sim --scenario
	// cdnow-N --processes) instead of the demo's ten (Pick). A merchant whose
	// update the policy refuses (its DP customer count below one) drops out.
	All bool
	// Progress receives a line per stage (nil: none).
	Progress io.Writer
}

// Report is the demo's outcome; its JSON form is what `kairos demo --json` prints.
type Report struct {
	Scenario        string  `json:"scenario"`
	Seed            uint64  `json:"seed"`
	TestCutoff      string  `json:"test_cutoff"`
	Rounds          int     `json:"rounds"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Delta           float64 `json:"delta"`
	EpsilonMax      float64 `json:"epsilon_max"`
	// Merchants are the federation's merchants, in the split's order.
	Merchants []Merchant `json:"merchants"`
	// Dropouts counts merchants that left after a refused update (All only).
	Dropouts int `json:"dropouts"`
	// AUC30 pools every merchant's own test customers: the federated model
	// on all of them, the centralised non-private model trained on the same
	// merchants' rows pooled, and each merchant's local-only and personalised
	// models on its own.
	AUC30  sim.PooledAUC      `json:"auc_30"`
	BySize []sim.BucketReport `json:"by_size"`
	// PersonalizedGELocal is the share of merchants (with buyers and
	// non-buyers among their test customers) whose personalised AUC@30 is at
	// least their local-only one.
	PersonalizedGELocal float64           `json:"personalized_ge_local_only"`
	AuditVerified       bool              `json:"audit_verified"`
	AuditEntries        int               `json:"audit_entries,omitempty"`
	TestCustomers       int               `json:"test_customers"`
	Seconds             float64           `json:"seconds"`
	Timings             map[string]string `json:"timings,omitempty"`
	WorkDir             string            `json:"work_dir,omitempty"`
}

// Merchant is one merchant's row of the report.
type Merchant struct {
	ID string `json:"id"`
	// SplitIndex is its index in the cdnow-100 split.
	SplitIndex int    `json:"split_index"`
	Customers  int    `json:"customers"`
	Bucket     string `json:"bucket"`
	// Rounds is the number of its updates the aggregator accepted; Releases,
	// Epsilon and EpsilonCap are the aggregator's ledger for it.
	Rounds     int     `json:"rounds_joined"`
	Releases   int     `json:"releases"`
	Epsilon    float64 `json:"epsilon"`
	EpsilonCap float64 `json:"epsilon_cap"`
	// Own are its own test customers scored by the three models.
	Own sim.MerchantResult `json:"own"`
	// Dropped says the policy refused one of its updates and it left.
	Dropped bool `json:"dropped,omitempty"`
}

// Run runs the demo. On error the run's directory is kept and named in the error.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	start := time.Now()
	if o.Seed == 0 {
		o.Seed = 1
	}
	say := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
		}
	}
	timings := map[string]string{}
	mark := func(name string, since time.Time) {
		timings[name] = time.Since(since).Round(10 * time.Millisecond).String()
	}

	dir := o.WorkDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kairos-demo-"); err != nil {
			return rep, fmt.Errorf("demo: %w", err)
		}
	}
	if o.Keep || o.WorkDir != "" {
		rep.WorkDir = dir
	}
	defer func() {
		switch {
		case err != nil:
			err = fmt.Errorf("%w\n(logs, databases and states kept in %s)", err, dir)
		case rep.WorkDir == "":
			_ = os.RemoveAll(dir)
		}
	}()

	// The split, the pick and each merchant's own order file.
	t := time.Now()
	events, err := sim.LoadCDNOW(ctx, o.Data)
	if err != nil {
		return rep, err
	}
	if o.Split == 0 {
		o.Split = sim.CDNOW100Merchants
	}
	full, err := sim.SplitCDNOW(events, o.Split, o.Seed)
	if err != nil {
		return rep, err
	}
	picked := make([]int, len(full.Merchants))
	for i := range picked {
		picked[i] = i
	}
	if !o.All {
		if picked, err = Pick(full); err != nil {
			return rep, err
		}
	}
	split := full
	if !o.All {
		split = Subset(full, picked)
	}
	_, test := sim.ReferenceCutoffs()
	rep.Scenario, rep.Seed, rep.TestCutoff = split.Name, o.Seed, test.Format(time.DateOnly)
	ids := make([]string, len(picked))
	files := make([]string, len(picked))
	rep.Merchants = make([]Merchant, len(picked))
	for k, i := range picked {
		ids[k] = fmt.Sprintf("shop-%02d", i)
		files[k] = filepath.Join(dir, ids[k], "orders.txt")
		c := full.Merchants[i].Customers
		rep.Merchants[k] = Merchant{ID: ids[k], SplitIndex: i, Customers: c, Bucket: bucket(c)}
	}
	if err := WriteShards(o.Data, split, files); err != nil {
		return rep, err
	}
	mark("split", t)
	say("%d merchants drawn from %s (seed %d), each with its own order file", len(ids), full.Name, o.Seed)

	// Comparison rows and the centralised model, in this process while the
	// federation runs in the others.
	base := startBaselines(ctx, events, split, o.Seed)

	rounds := Rounds(len(ids))
	poll := 100 * time.Millisecond
	if o.All {
		// Every merchant that is left in every round, however many dropped
		// out; slower polls for a hundred clients on one machine.
		rounds.Quorum, rounds.Deadline = 1, 5*time.Minute
		poll = 500 * time.Millisecond
	}
	t = time.Now()
	fed, err := harness.Launch(ctx, harness.Options{Exe: o.Exe, Dir: dir, Policy: Policy(ids), Rounds: rounds}, ids)
	if err != nil {
		return rep, err
	}
	defer fed.Close()
	say("aggregator serving at %s (SQLite in %s), %d merchants enrolled", fed.URL, fed.DB, len(ids))
	for k, m := range fed.Merchants {
		if err := fed.WriteClientConfig(m, harness.ClientConfig{Data: files[k], EpsilonCap: 1, PollInterval: poll}); err != nil {
			return rep, err
		}
		if _, err := fed.StartClient(m, nil); err != nil {
			return rep, err
		}
	}
	say("started %d merchant clients", len(ids))
	if rep.NoiseMultiplier, rep.Delta, err = plan(ctx, fed); err != nil {
		return rep, err
	}
	published := 0
	tick := func() {
		if n, err := fed.Published(ctx); err == nil && n > published {
			published = n
			say("round %d/%d published", n, rounds.PlannedRounds)
		}
	}
	var exited func(*harness.Merchant, error) error
	if o.All {
		exited = func(m *harness.Merchant, err error) error {
			if !refused(fed, m) {
				return err
			}
			rep.Merchants[m.Index].Dropped = true
			rep.Dropouts++
			say("%s dropped out: an update refused by the policy", m.ID)
			return fed.StopMerchant(ctx, m, "dropped out: an update refused by the policy")
		}
	}
	if err := fed.WaitClients(ctx, 500*time.Millisecond, tick, exited); err != nil {
		return rep, err
	}
	// Every client has stopped at its budget; the last round publishes at the
	// aggregator's next tick.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = fed.WaitPublished(wctx, rounds.PlannedRounds)
	cancel()
	if err != nil {
		return rep, err
	}
	if rep.Rounds, err = fed.Published(ctx); err != nil {
		return rep, err
	}
	mv, err := fed.Admin.Model(ctx, 0)
	if err != nil {
		return rep, fmt.Errorf("fetch the published model: %w", err)
	}
	global, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		return rep, fmt.Errorf("published model %d: %w", mv.Version, err)
	}
	if err := ledgers(ctx, fed, &rep); err != nil {
		return rep, err
	}
	mark("federation", t)
	say("federation done: %d rounds in %s", rep.Rounds, timings["federation"])

	t = time.Now()
	out, verr := fed.VerifyAudit(ctx)
	mark("audit_verify", t)
	rep.AuditVerified = verr == nil
	if n, ok := ParseAuditEntries(out); ok {
		rep.AuditEntries = n
	}
	if verr != nil {
		say("audit verification FAILED: %v", verr)
	} else {
		say("audit log verified: %s", firstLine(out))
	}

	say("scoring the local-only, federated and personalised models of every merchant")
	b, err := base.wait(ctx)
	if err != nil {
		return rep, err
	}
	t = time.Now()
	if err := compare(ctx, b, global, split, o.Seed, &rep); err != nil {
		return rep, err
	}
	mark("compare", t)
	for k, v := range b.timings {
		timings[k] = v
	}
	rep.Timings = timings
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// Rounds is the aggregator's round configuration for n merchants: the plan
// tuned in client/train/sim (DefaultFedOptions: 40 rounds of 10 DP-SGD steps
// at q = 0.05, ε = 1 at δ = 1e-6) with the customer count's noise at
// CountNoise, every merchant in every round.
func Rounds(n int) aggregator.RoundConfig {
	fo := sim.DefaultFedOptions()
	train, _ := sim.ReferenceCutoffs()
	return aggregator.RoundConfig{
		Deadline: 2 * time.Minute, Quorum: n, SampleFraction: 1,
		StepsPerRound: fo.Steps, PlannedRounds: fo.Rounds, SamplingRate: fo.SamplingRate,
		LearningRate: fo.LearningRate, L2: fo.L2, CountNoise: CountNoise, Cutoffs: train,
		Server: fo.Server, ServerLR: fo.ServerLR, ServerTau: fo.Tau, NormBound: fo.Merge.NormBound,
		Seed: 1, TickInterval: 50 * time.Millisecond,
	}
}

// Policy is the demo federation's policy: every merchant at ε = 1, δ = 1e-6,
// and a minimum of one customer per update (the demo's merchants are small).
func Policy(ids []string) []byte {
	var b []byte
	b = append(b, `# The Kairos demo federation: merchants drawn from the cdnow-100 split,
# each with a lifetime budget of ε = 1 at δ = 1e-6.
version: 1
federation: kairos-demo

defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 1
  allowed_features: [all]
  retention_days: 365

aggregation:
  merge: fedavg

merchants:
`...)
	for _, id := range ids {
		b = fmt.Appendf(b, "  %s: {}\n", id)
	}
	return b
}

// refused reports whether m's client ended on an update the policy refused.
func refused(fed *harness.Federation, m *harness.Merchant) bool {
	st, err := fed.State(m)
	if err != nil || len(st.Rounds) == 0 {
		return false
	}
	last := st.Rounds[len(st.Rounds)-1]
	return last.Outcome == client.OutcomeRefused && last.Reason == "policy-violation"
}

// plan reads the round plan's noise multiplier and δ, as a merchant sees them.
func plan(ctx context.Context, fed *harness.Federation) (z, delta float64, err error) {
	mc, err := apiclient.New(fed.URL, fed.Merchants[0].Token)
	if err != nil {
		return 0, 0, fmt.Errorf("round plan: %w", err)
	}
	r, err := mc.CurrentRound(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("round plan: %w", err)
	}
	return r.Plan.NoiseMultiplier, r.Plan.Delta, nil
}

// bucket names the size bucket of a merchant of c customers.
func bucket(c int) string {
	for _, b := range sim.SizeBuckets {
		if c < b.Below {
			return b.Name
		}
	}
	return ""
}

// ledgers fills each merchant's rounds (from its client state) and the
// aggregator's ledger for it.
func ledgers(ctx context.Context, fed *harness.Federation, rep *Report) error {
	budgets, err := fed.Budgets(ctx)
	if err != nil {
		return err
	}
	for k, m := range fed.Merchants {
		st, err := fed.State(m)
		if err != nil {
			return err
		}
		r := &rep.Merchants[k]
		r.Rounds = st.Accepted()
		b, ok := budgets[m.ID]
		if !ok && !r.Dropped {
			return fmt.Errorf("no budget for %s", m.ID)
		}
		r.Epsilon, r.EpsilonCap, r.Releases = b.Epsilon, b.Cap, b.Releases
		rep.EpsilonMax = max(rep.EpsilonMax, b.Epsilon)
	}
	return nil
}

// compare scores the models (sim.Data.CompareMerchants) and fills the report.
func compare(ctx context.Context, b *baselines, global *hazard.Model, split *sim.Split, seed uint64, rep *Report) error {
	var sr sim.ScenarioReport
	if err := b.data.CompareMerchants(ctx, global, split, seed, &sr); err != nil {
		return fmt.Errorf("compare models: %w", err)
	}
	fed, err := b.data.Evaluate(global, -1)
	if err != nil {
		return fmt.Errorf("compare models: %w", err)
	}
	rep.AUC30 = sr.AUC30
	rep.AUC30.Federated, rep.AUC30.Centralized = fed.AUC30, b.central.AUC30
	rep.BySize = slices.DeleteFunc(sr.BySize, func(br sim.BucketReport) bool { return br.Merchants == 0 })
	rep.PersonalizedGELocal = sr.PersonalizedGELocal
	rep.TestCustomers = len(b.data.Test)
	for k := range rep.Merchants {
		rep.Merchants[k].Own = sr.PerMerchant[k]
	}
	return nil
}

// baselines builds the comparison rows and the centralised model.
type baselines struct {
	done    chan struct{}
	err     error
	data    *sim.Data
	central sim.Scores
	timings map[string]string
}

func startBaselines(ctx context.Context, events []model.Event, split *sim.Split, seed uint64) *baselines {
	b := &baselines{done: make(chan struct{}), timings: map[string]string{}}
	go func() {
		defer close(b.done)
		t := time.Now()
		var own []model.Event
		for _, e := range events {
			if _, ok := split.Owner[e.Customer]; ok {
				own = append(own, e)
			}
		}
		d, err := sim.PrepareSplit(own, split, sim.DataOptions{})
		if err != nil {
			b.err = fmt.Errorf("comparison rows: %w", err)
			return
		}
		b.data = d
		b.timings["prepare"] = time.Since(t).Round(10 * time.Millisecond).String()
		t = time.Now()
		if _, b.central, err = d.Centralized(ctx, seed); err != nil {
			b.err = fmt.Errorf("centralised model: %w", err)
			return
		}
		b.timings["centralized"] = time.Since(t).Round(10 * time.Millisecond).String()
	}()
	return b
}

func (b *baselines) wait(ctx context.Context) (*baselines, error) {
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("comparison models: %w", ctx.Err())
	}
	if b.err != nil {
		return nil, b.err
	}
	if b.data == nil {
		return nil, errors.New("comparison models: no data")
	}
	return b, nil
}
