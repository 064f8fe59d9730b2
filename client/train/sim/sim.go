// Package sim simulates a federation in one process, without a network: merchants
// hold disjoint customers of one event log (split by a hash of the customer id), run
// train.Local from the global model every round, and a server merges their deltas
// with aggregator/merge and steps the global model (FedAvg or FedAdam). It also
// trains the comparison models — each merchant alone under the same privacy budget,
// and a centralized non-private hazard model — and scores everything on the pooled
// test cutoff, so that tests, benchmarks and `kairos demo` quote the same numbers.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// StandardShares is the reference split of the shared data README: five merchants
// holding 40, 25, 15, 12 and 8% of the customers.
var StandardShares = []float64{0.40, 0.25, 0.15, 0.12, 0.08}

// ReferenceCutoffs returns the CDNOW reference benchmark's training cutoffs and
// test cutoff (shared data README).
func ReferenceCutoffs() (train []time.Time, test time.Time) {
	d := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	return []time.Time{d(1997, 7), d(1997, 9), d(1997, 11), d(1998, 1)}, d(1998, 3)
}

// Merchant returns the merchant (index into shares) that holds customer: the first
// 64 bits of SHA-256("kairos-split\x00" ‖ customer) as a uniform number in [0, 1),
// placed on the cumulative shares. shares need not sum to exactly 1; the last
// merchant takes any remainder.
func Merchant(customer string, shares []float64) int {
	h := sha256.Sum256(append([]byte("kairos-split\x00"), customer...))
	u := float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
	var c float64
	for i, s := range shares {
		c += s
		if u < c {
			return i
		}
	}
	return len(shares) - 1
}

// LoadCDNOW reads CDNOW_master.txt through client/ingest.
func LoadCDNOW(ctx context.Context, path string) ([]model.Event, error) {
	var events []model.Event
	_, err := ingest.ReadFile(ctx, path, ingest.Options{Format: ingest.CDNOW}, func(e model.Event) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load cdnow: %w", err)
	}
	return events, nil
}

// DataOptions says how to cut an event log into merchants and examples.
type DataOptions struct {
	// Shares are the merchants' fractions of the customers (default StandardShares).
	Shares []float64
	// TrainCutoffs and TestCutoff default to ReferenceCutoffs.
	TrainCutoffs []time.Time
	TestCutoff   time.Time
	// Allow restricts the feature schema (feature.Config.Allow).
	Allow []string
	// LocalTime builds each merchant's features (day of week, hour) in the
	// time zone its split declares (PrepareSplit only); otherwise in UTC.
	LocalTime bool
}

// Data is an event log turned into per-merchant training rows and pooled test rows.
type Data struct {
	Schema feature.Schema
	Shares []float64
	// Train[m] are merchant m's rows at the training cutoffs.
	Train [][]feature.Row
	// Test are every merchant's rows at the test cutoff; TestMerchant[i] owns Test[i].
	Test         []feature.Row
	TestMerchant []int
	// Customers[m] is merchant m's number of training customers.
	Customers []int
}

// Prepare builds the rows once so that several runs can share them.
func Prepare(events []model.Event, opt DataOptions) (*Data, error) {
	if opt.Shares == nil {
		opt.Shares = StandardShares
	}
	for _, s := range opt.Shares {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("prepare: share %v, want finite and > 0", s)
		}
	}
	owner := map[string]int{}
	d, err := prepareRows(events, opt, opt.Shares, nil, func(customer string) (int, bool) {
		m, ok := owner[customer]
		if !ok {
			m = Merchant(customer, opt.Shares)
			owner[customer] = m
		}
		return m, true
	})
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return d, nil
}

// prepareRows builds the feature rows of events at opt's cutoffs and hands
// each customer's rows to the merchant owner names: training rows per
// merchant, test rows with their merchant. shares are Data.Shares. With locs
// (one per merchant), each merchant's rows are built in its own zone.
func prepareRows(events []model.Event, opt DataOptions, shares []float64, locs []*time.Location, owner func(customer string) (int, bool)) (*Data, error) {
	if opt.TrainCutoffs == nil {
		opt.TrainCutoffs, opt.TestCutoff = ReferenceCutoffs()
	}
	for _, c := range opt.TrainCutoffs {
		if c.Add(model.Horizon * model.Day).After(opt.TestCutoff) {
			return nil, fmt.Errorf("training cutoff %s: label window passes the test cutoff %s",
				c.Format(time.DateOnly), opt.TestCutoff.Format(time.DateOnly))
		}
	}
	cutoffs := append(append([]time.Time(nil), opt.TrainCutoffs...), opt.TestCutoff)
	builders := make([]*feature.Builder, max(len(locs), 1))
	for i := range builders {
		var loc *time.Location
		if locs != nil {
			loc = locs[i]
		}
		b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Allow: opt.Allow, Location: loc})
		if err != nil {
			return nil, err
		}
		builders[i] = b
	}
	for i, e := range events {
		b := builders[0]
		if locs != nil {
			m, ok := owner(e.Customer)
			if !ok {
				return nil, fmt.Errorf("customer %s has no merchant", e.Customer)
			}
			b = builders[m]
		}
		if err := b.Add(e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	var all []feature.Row
	for _, b := range builders {
		all = append(all, b.Rows()...)
	}
	n := len(shares)
	d := &Data{Schema: builders[0].Schema(), Shares: shares, Train: make([][]feature.Row, n), Customers: make([]int, n)}
	test := len(cutoffs) - 1
	for _, r := range all {
		m, ok := owner(r.Customer)
		if !ok {
			return nil, fmt.Errorf("customer %s has no merchant", r.Customer)
		}
		if r.Cutoff == test {
			d.Test = append(d.Test, r)
			d.TestMerchant = append(d.TestMerchant, m)
			continue
		}
		d.Train[m] = append(d.Train[m], r)
	}
	for m := range d.Train {
		d.Customers[m] = len(train.GroupByCustomer(d.Train[m]))
		if d.Customers[m] == 0 {
			return nil, fmt.Errorf("merchant %d has no training customers", m)
		}
	}
	if len(d.Test) == 0 {
		return nil, errors.New("no test rows")
	}
	return d, nil
}

// Scores are a model's test metrics on a set of test rows.
type Scores struct {
	AUC30   float64 `json:"auc_30"`
	AUC7    float64 `json:"auc_7"`
	PRAUC30 float64 `json:"pr_auc_30"`
	// Brier30 is the Brier score of P(buy within 30 days): it sees miscalibration
	// that the rank-based AUC cannot.
	Brier30 float64 `json:"brier_30"`
}

// Evaluate scores m on the pooled test rows (merchant < 0) or on one merchant's.
func (d *Data) Evaluate(m *hazard.Model, merchant int) (Scores, error) {
	var scores, p30 []float64
	var y30, y7 []bool
	for i, r := range d.Test {
		if merchant >= 0 && d.TestMerchant[i] != merchant {
			continue
		}
		s, err := m.Score(r.X)
		if err != nil {
			return Scores{}, fmt.Errorf("evaluate: %w", err)
		}
		scores = append(scores, s)
		p30 = append(p30, m.PredictScore(s).Within[len(hazard.Horizons)-1])
		y30 = append(y30, r.Label >= 1)
		y7 = append(y7, r.Label >= 1 && r.Label <= 7)
	}
	var sc Scores
	var err error
	if sc.AUC30, err = metrics.AUC(scores, y30); err != nil {
		return Scores{}, fmt.Errorf("evaluate: auc@30: %w", err)
	}
	if sc.AUC7, err = metrics.AUC(scores, y7); err != nil {
		return Scores{}, fmt.Errorf("evaluate: auc@7: %w", err)
	}
	if sc.PRAUC30, err = metrics.AveragePrecision(scores, y30); err != nil {
		return Scores{}, fmt.Errorf("evaluate: pr-auc@30: %w", err)
	}
	if sc.Brier30, err = metrics.Brier(p30, y30); err != nil {
		return Scores{}, fmt.Errorf("evaluate: brier@30: %w", err)
	}
	return sc, nil
}

// Centralized trains the non-private hazard model on every merchant's rows pooled,
// with the engine's defaults for the reference benchmark (early stopping on the
// latest training cutoff, L2 1e-4), and scores it.
func (d *Data) Centralized(ctx context.Context, seed uint64) (*hazard.Model, Scores, error) {
	var rows []feature.Row
	for _, r := range d.Train {
		rows = append(rows, r...)
	}
	m, _, err := hazard.Train(ctx, d.Schema, rows, hazard.TrainOptions{Kind: hazard.KindLinear, EarlyStopping: true, L2: 1e-4, Seed: seed})
	if err != nil {
		return nil, Scores{}, fmt.Errorf("centralized: %w", err)
	}
	sc, err := d.Evaluate(m, -1)
	if err != nil {
		return nil, Scores{}, fmt.Errorf("centralized: %w", err)
	}
	return m, sc, nil
}

// Server optimizers.
const (
	ServerFedAvg  = merge.ServerFedAvg  // θ ← θ + ServerLR·Δ
	ServerFedAdam = merge.ServerFedAdam // merge.Adam with ServerLR and Tau
)

// Attacks a malicious merchant may mount on its honest update Δ.
const (
	AttackScale  = "scale"  // send 100·Δ
	AttackFlip   = "flip"   // send −10·Δ
	AttackRandom = "random" // send Gaussian noise with 100 times Δ's norm
)

// FedOptions configures a federated run.
type FedOptions struct {
	// Rounds and Steps (DP-SGD steps per round) fix the run's length.
	Rounds, Steps int
	// SamplingRate, ClipNorm, LearningRate and L2 form the round's training plan.
	SamplingRate, ClipNorm, LearningRate, L2 float64
	// Optimizer is the local optimizer (train.Options).
	Optimizer string
	// Anneal decays the plan's learning rate linearly over the rounds, from
	// LearningRate in the first round to LearningRate/10 in the last, so that the
	// last rounds average out the DP noise instead of adding to it.
	Anneal bool
	// Average, when > 0, makes the final model the mean of the global models of the
	// last ⌈Average·Rounds⌉ rounds (tail averaging; post-processing, no privacy cost).
	Average float64
	// Epsilon and Delta are each merchant's budget over the whole run. The noise
	// multiplier is the smallest that keeps every merchant within it, counting every
	// round's DP-SGD steps and its one customer count. NoiseMultiplier > 0 fixes it
	// instead (Epsilon is then only reported).
	Epsilon, Delta  float64
	NoiseMultiplier float64
	// CountNoise is the σ of each merchant's customer count, released in its first
	// round and sent again after (default 50).
	CountNoise float64
	// Server is ServerFedAdam or ServerFedAvg; zero values take the aggregator's
	// defaults (merge.ServerOptions): FedAdam, ServerLR 0.01 for FedAdam and 1 for
	// FedAvg, Tau 1e-3. DefaultFedOptions sets FedAvg.
	Server        string
	ServerLR, Tau float64
	// Merge configures the combination of the deltas; FedAvg weights are the DP
	// customer counts (clamped at 1) raised to WeightPower (0 means 1). Power 2
	// weights by inverse noise variance: a merchant's delta carries noise ∝ 1/n.
	Merge       merge.Options
	WeightPower float64
	// Merger merges one round's updates (nil: PlainMerger(Merge), every
	// merchant's own noisy delta combined in the clear). It is the seam where a
	// secure-aggregation round plugs in.
	Merger Merger
	// Merchants restricts the federation to these merchants (nil: all). A single
	// merchant is the local-only model.
	Merchants []int
	// Attackers (merchant indices) replace their update by Attack; Seed seeds the
	// random attack.
	Attackers []int
	Attack    string
	Seed      uint64
}

// Merger merges the deltas the merchants sent in round round, with their
// weights (their DP customer counts raised to FedOptions.WeightPower), into the
// update the server applies.
type Merger func(ctx context.Context, round int, deltas [][]float64, weights []float64) ([]float64, error)

// PlainMerger merges with merge.Combine: the plain mode, in which each
// merchant's delta carries the noise of its own budget.
func PlainMerger(opt merge.Options) Merger {
	return func(_ context.Context, _ int, deltas [][]float64, weights []float64) ([]float64, error) {
		return merge.Combine(deltas, weights, opt)
	}
}

// FedResult is the outcome of a federated run.
type FedResult struct {
	Model *hazard.Model
	// Pooled scores the model on every merchant's test rows.
	Pooled Scores
	// NoiseMultiplier is the z planned for every DP-SGD step.
	NoiseMultiplier float64
	// MedianNorm[r] is the median L2 norm of the updates sent in round r (attackers
	// included), a guide for choosing a norm bound.
	MedianNorm []float64
	// Epsilon[i] is the ε at Delta that merchant Merchants[i] (or i) spent, from the
	// releases train.Local reported.
	Epsilon []float64
}

func (o *FedOptions) defaults() error {
	if o.CountNoise == 0 {
		o.CountNoise = 50
	}
	so := o.serverOptions().WithDefaults()
	o.Server, o.ServerLR, o.Tau = so.Optimizer, so.LR, so.Tau
	if err := so.Validate(); err != nil {
		return err
	}
	switch {
	case o.Rounds < 1 || o.Steps < 1:
		return fmt.Errorf("rounds %d and steps %d, want ≥ 1", o.Rounds, o.Steps)
	case o.NoiseMultiplier == 0 && !(o.Epsilon > 0 && o.Delta > 0 && o.Delta < 1):
		return fmt.Errorf("budget (ε %v, δ %v) needs ε > 0 and δ in (0, 1)", o.Epsilon, o.Delta)
	}
	return nil
}

// serverOptions are the server step's options in o.
func (o *FedOptions) serverOptions() merge.ServerOptions {
	return merge.ServerOptions{Optimizer: o.Server, LR: o.ServerLR, Tau: o.Tau}
}

// Calibrate returns the smallest noise multiplier z (to 0.1%) such that rounds
// rounds of steps DP-SGD steps at rate q and noise z, plus one Gaussian count of
// noise countNoise (released in the first round, sent again after), spend at
// most eps at delta.
func Calibrate(eps, delta, q float64, steps, rounds int, countNoise float64) (float64, error) {
	spend := func(z float64) (float64, error) {
		return epsilonAt(delta, z, q, steps, rounds, countNoise)
	}
	lo, hi := 0.5, 1.0
	for {
		e, err := spend(lo)
		if err != nil {
			return 0, fmt.Errorf("calibrate: %w", err)
		}
		if e > eps {
			break
		}
		if hi, lo = lo, lo/2; lo < 0.05 {
			return hi, nil // the accountant's orders reach no further; this much noise is plenty
		}
	}
	for {
		e, err := spend(hi)
		if err != nil {
			return 0, fmt.Errorf("calibrate: %w", err)
		}
		if e <= eps {
			break
		}
		if lo, hi = hi, hi*2; hi > 1e4 {
			return 0, fmt.Errorf("calibrate: ε %v at δ %v out of reach (the counts alone may spend it)", eps, delta)
		}
	}
	for hi/lo > 1.001 {
		mid := math.Sqrt(lo * hi)
		e, err := spend(mid)
		if err != nil {
			return 0, fmt.Errorf("calibrate: %w", err)
		}
		if e <= eps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

func epsilonAt(delta, z, q float64, steps, rounds int, countNoise float64) (float64, error) {
	e, _, err := dp.Epsilon([]dp.Release{
		{Mechanism: dp.Gaussian, Q: q, Z: z, Steps: steps * rounds},
		{Mechanism: dp.Gaussian, Q: 1, Z: countNoise, Steps: 1}, // released once, sent again
	}, delta, dp.AccountantOptions{})
	return e, err
}

// Federate runs the federation and scores its final model on the pooled test rows.
func (d *Data) Federate(ctx context.Context, opt FedOptions) (FedResult, error) {
	if err := opt.defaults(); err != nil {
		return FedResult{}, fmt.Errorf("federate: %w", err)
	}
	members := opt.Merchants
	if members == nil {
		for m := range d.Train {
			members = append(members, m)
		}
	}
	z := opt.NoiseMultiplier
	if z == 0 {
		var err error
		if z, err = Calibrate(opt.Epsilon, opt.Delta, opt.SamplingRate, opt.Steps, opt.Rounds, opt.CountNoise); err != nil {
			return FedResult{}, fmt.Errorf("federate: %w", err)
		}
	}
	plan := protocol.TrainingPlan{
		Steps: opt.Steps, SamplingRate: opt.SamplingRate, NoiseMultiplier: z, ClipNorm: opt.ClipNorm,
		LearningRate: opt.LearningRate, L2: opt.L2, Delta: opt.Delta, CountNoise: opt.CountNoise,
	}
	global, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		return FedResult{}, fmt.Errorf("federate: %w", err)
	}
	attacker := map[int]bool{}
	for _, a := range opt.Attackers {
		attacker[a] = true
	}
	mergeRound := opt.Merger
	if mergeRound == nil {
		mergeRound = PlainMerger(opt.Merge)
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x61747461636b))
	server, err := merge.NewServer(opt.serverOptions(), nil)
	if err != nil {
		return FedResult{}, fmt.Errorf("federate: %w", err)
	}
	ledgers := make([][]dp.Release, len(members))
	deltas := make([][]float64, len(members))
	weights := make([]float64, len(members))
	wp := opt.WeightPower
	if wp == 0 {
		wp = 1
	}
	counts := make([]*protocol.NoisyCount, len(members)) // each merchant's count, once released
	var medNorms []float64
	tail := int(math.Ceil(opt.Average * float64(opt.Rounds)))
	avg := make([]float64, len(global.Params))
	for r := range opt.Rounds {
		if opt.Anneal {
			plan.LearningRate = opt.LearningRate * (1 - 0.9*float64(r)/float64(max(opt.Rounds-1, 1)))
		}
		for i, m := range members {
			res, err := train.Local(ctx, global, d.Train[m], plan, train.Options{Optimizer: opt.Optimizer, Count: counts[i]})
			if err != nil {
				return FedResult{}, fmt.Errorf("federate: merchant %d: %w", m, err)
			}
			counts[i] = res.CountToReuse(fmt.Sprint("sim-round-", r))
			ledgers[i] = append(ledgers[i], res.Releases...)
			deltas[i], weights[i] = res.Delta, math.Pow(max(res.Customers.Value, 1), wp)
			if attacker[m] {
				deltas[i] = attack(opt.Attack, res.Delta, rng)
			}
		}
		norms := make([]float64, len(deltas))
		for i, v := range deltas {
			norms[i] = l2(v)
		}
		slices.Sort(norms)
		medNorms = append(medNorms, norms[len(norms)/2])
		agg, err := mergeRound(ctx, r, deltas, weights)
		if err != nil {
			return FedResult{}, fmt.Errorf("federate: %w", err)
		}
		if err := server.Step(global.Params, agg); err != nil {
			return FedResult{}, fmt.Errorf("federate: round %d: %w", r, err)
		}
		if r >= opt.Rounds-tail {
			for j, x := range global.Params {
				avg[j] += x / float64(tail)
			}
		}
	}
	if tail > 0 {
		copy(global.Params, avg)
	}
	res := FedResult{Model: global, NoiseMultiplier: z, MedianNorm: medNorms}
	for _, l := range ledgers {
		e, _, err := dp.Epsilon(l, opt.Delta, dp.AccountantOptions{})
		if err != nil {
			return FedResult{}, fmt.Errorf("federate: %w", err)
		}
		res.Epsilon = append(res.Epsilon, e)
	}
	if res.Pooled, err = d.Evaluate(global, -1); err != nil {
		return FedResult{}, fmt.Errorf("federate: %w", err)
	}
	return res, nil
}

func l2(v []float64) float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	return math.Sqrt(ss)
}

func attack(kind string, delta []float64, rng *rand.Rand) []float64 {
	out := make([]float64, len(delta))
	switch kind {
	case AttackScale:
		for j, x := range delta {
			out[j] = 100 * x
		}
	case AttackFlip:
		for j, x := range delta {
			out[j] = -10 * x
		}
	case AttackRandom:
		s := 100 * l2(delta) / math.Sqrt(float64(len(delta)))
		for j := range out {
			out[j] = s * rng.NormFloat64()
		}
	default:
		copy(out, delta)
	}
	return out
}
