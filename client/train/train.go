// Package train is a merchant's side of a federated round: differentially private
// local training of the hazard model from the round's base model, returning the
// parameter change, the release that paid for it and a DP count of the customers.
//
// # Privacy
//
// The unit of privacy is one customer: Local groups the merchant's rows by customer
// (all of a customer's cutoffs together), and dp.SGD clips each sampled customer's
// summed gradient to the plan's clip norm before adding Gaussian noise through the DP
// library. The customer count is a second release, a Gaussian count with
// σ = plan.CountNoise, made first: it normalises the noisy gradient sums (the true
// count is not public under add/remove adjacency) and travels with the update as
// its merge weight. It is released once: later rounds pass it back in
// Options.Count and release none. Everything derived from the two (the delta, the local model) is
// post-processing. Result.Releases lists both, and Cost gives them before any data
// is touched so that a local ledger can refuse the round first.
// Result.Loss is computed on the raw local rows without noise: it is for the
// merchant's own eyes and must never be sent.
//
// # Standardisation
//
// The model sees (x − Mean)/Scale. A merchant must not refit Mean and Scale on its
// own rows: they would travel inside every model and leak, and merchants would each
// train in a different coordinate system. Kairos uses a data-independent
// standardisation instead (hazard.FixedStandardization): every feature's transform and unit
// (log1p of days, log1p of counts, log1p of money, shares and flags in [0, 1], signed
// log1p of days) fixes a centre and a scale from the ranges those units take in any
// shop, not from any shop's data. It costs no privacy budget, needs no extra protocol
// step, and for a linear hazard it changes only the conditioning of the optimisation,
// not what the model can express: the baselines absorb any centring error, and a
// scale wrong by a small factor is absorbed by the weights. A feature whose signal a
// customer lacks (views in a purchases-only shop, spend in a log without amounts)
// enters as 0 whatever its centre (hazard.Model.Standardize), so constants chosen for
// one kind of shop do not turn another shop's missing signal into a value. The time
// scale comes from each customer's own gaps (feature gap_due_share, overdue_ratio),
// not from a merchant statistic that would need a DP release (docs/privacy.md §5a). The federated simulation
// (package sim) measures the utility. The aggregator creates the initial model with
// hazard.Initial so that every merchant trains in the same coordinates.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Local optimizers.
const (
	OptimizerSGD  = "sgd"
	OptimizerAdam = "adam"
)

// ErrNoCustomers says that a merchant has no customer with an event before the
// cutoffs. Local does not return it: a merchant without customers trains on no
// rows and sends noise (see Local); callers that build rows use it to say so.
var ErrNoCustomers = errors.New("no customers to train on")

// Options configures Local beyond the round's plan.
type Options struct {
	// Optimizer turns the noisy DP-SGD directions into parameter steps:
	// OptimizerSGD (default: θ ← θ − η·g) or OptimizerAdam (Adam with fresh moments
	// every round, η the plan's learning rate). Either is post-processing.
	Optimizer string
	// Count, when set, is a DP count of these customers released earlier (same
	// cutoffs): Local uses it instead of releasing a new one, so the round makes
	// no count release. The customers of a merchant at fixed cutoffs do not
	// change from round to round, and re-using a released value is
	// post-processing; a fresh count every round would be, over 40 rounds at
	// σ = 50, ε = 0.55 at δ = 1e-6 on its own (kairos dp epsilon --release
	// q=1,z=50,steps=40 --delta 1e-6).
	Count *protocol.NoisyCount
}

// Result is the outcome of one local round.
type Result struct {
	// Delta is the local parameters minus the base parameters.
	Delta []float64
	// Release is the DP-SGD release actually made: the noise multiplier is σ actually
	// added / ClipNorm (the DP library may add up to 0.1% more than planned).
	Release protocol.Release
	// Customers is the DP count of the customers trained on.
	Customers protocol.NoisyCount
	// Loss is the mean negative log-likelihood per row over every customer sampled
	// during the round, each at the parameters of its step (a running training loss
	// that costs no extra pass; NaN when no customer was sampled). It is not private:
	// keep it local.
	Loss float64
	// Dropped counts the sampled customer gradients that held a NaN or an Inf
	// and contributed zero (dp.SGD.Dropped). Like Loss it describes the data:
	// keep it local.
	Dropped int
	// Releases are the mechanisms this call ran, to debit from the merchant's ledger:
	// the DP-SGD steps and the count.
	Releases []dp.Release
}

// CountToReuse is the count to pass as Options.Count in later rounds: the one
// this result sent, naming round (the round its update goes to) when this
// call released it.
func (r Result) CountToReuse(round string) *protocol.NoisyCount {
	c := r.Customers
	if c.ReleasedIn == "" {
		c.ReleasedIn = round
	}
	return &c
}

// Cost returns the releases a round under plan makes, at the planned noise: Local's
// DP-SGD steps and, unless countKnown (Options.Count), its count — neither when the
// round only evaluates — then the evaluation histogram when the plan asks for one
// (fedeval.Cost). The noise actually added is never smaller, so a ledger that
// accepts Cost accepts the result.
func Cost(plan protocol.TrainingPlan, countKnown bool) []dp.Release {
	var rs []dp.Release
	if !plan.EvaluationOnly() {
		rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: plan.SamplingRate, Z: plan.NoiseMultiplier, Steps: plan.Steps})
		if !countKnown {
			rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: plan.CountNoise, Steps: 1})
		}
	}
	if plan.Evaluation != nil {
		rs = append(rs, fedeval.Cost(plan.Evaluation))
	}
	return rs
}

func checkPlan(plan protocol.TrainingPlan) error {
	finitePos := func(x float64) bool { return x > 0 && !math.IsInf(x, 0) }
	switch {
	case plan.Steps < 1:
		return fmt.Errorf("plan: steps %d, want ≥ 1", plan.Steps)
	case !(plan.SamplingRate > 0 && plan.SamplingRate <= 1):
		return fmt.Errorf("plan: sampling rate %v outside (0, 1]", plan.SamplingRate)
	case !finitePos(plan.NoiseMultiplier):
		return fmt.Errorf("plan: noise multiplier %v, want finite and > 0", plan.NoiseMultiplier)
	case !finitePos(plan.ClipNorm):
		return fmt.Errorf("plan: clip norm %v, want finite and > 0", plan.ClipNorm)
	case !finitePos(plan.LearningRate):
		return fmt.Errorf("plan: learning rate %v, want finite and > 0", plan.LearningRate)
	case !(plan.L2 >= 0) || math.IsInf(plan.L2, 0):
		return fmt.Errorf("plan: l2 %v, want finite and ≥ 0", plan.L2)
	case !finitePos(plan.CountNoise):
		return fmt.Errorf("plan: count noise %v, want finite and > 0", plan.CountNoise)
	}
	return nil
}

// GroupByCustomer groups rows by customer in order of first appearance: the unit
// that Local clips and samples.
func GroupByCustomer(rows []feature.Row) [][]feature.Row {
	idx := map[string]int{}
	var groups [][]feature.Row
	for _, r := range rows {
		g, ok := idx[r.Customer]
		if !ok {
			g = len(groups)
			idx[r.Customer] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], r)
	}
	return groups
}

// Local runs plan.Steps DP-SGD steps from base's parameters on the merchant's rows
// (base itself is not modified) and returns the change with what it cost. ctx is
// checked between steps.
//
// Whether Local returns an update never depends on one customer: with no rows it
// releases a count of 0 and plan.Steps steps of noise alone, the same fields and the
// same debit as any other round, and a customer whose gradient is not finite
// contributes zero to its steps (dp.SGD). Only the caller's own mistakes (a plan,
// base model or row shape that is invalid whatever the data) are errors.
func Local(ctx context.Context, base *hazard.Model, rows []feature.Row, plan protocol.TrainingPlan, opt Options) (Result, error) {
	if base == nil {
		return Result{}, errors.New("local training: nil base model")
	}
	if err := checkPlan(plan); err != nil {
		return Result{}, fmt.Errorf("local training: %w", err)
	}
	switch opt.Optimizer {
	case "", OptimizerSGD, OptimizerAdam:
	default:
		return Result{}, fmt.Errorf("local training: optimizer %q (want %s or %s)", opt.Optimizer, OptimizerSGD, OptimizerAdam)
	}
	work := *base
	work.Params = slices.Clone(base.Params)
	// Validate every row once so that the per-customer gradient cannot fail mid-step.
	for i, r := range rows {
		if len(r.X) != base.Schema.Len() {
			return Result{}, fmt.Errorf("local training: row %d: %w: got %d, want %d", i, hazard.ErrFeatureCount, len(r.X), base.Schema.Len())
		}
		if r.Label < 0 || r.Label > base.Horizon {
			return Result{}, fmt.Errorf("local training: row %d: label %d outside 0..%d", i, r.Label, base.Horizon)
		}
	}
	groups := GroupByCustomer(rows)
	// The true number of customers is not public under add/remove adjacency, so the
	// DP count is released first and dp.SGD divides its noisy sums by q·count: every
	// step is post-processing of DP releases only.
	var count protocol.NoisyCount
	var countRels []dp.Release
	if opt.Count != nil {
		count = *opt.Count
		if math.IsNaN(count.Value) || math.IsInf(count.Value, 0) || !(count.Sigma >= plan.CountNoise*(1-1e-9)) {
			return Result{}, fmt.Errorf("local training: earlier count %v (σ %v) is not finite or has less noise than the plan's %v", count.Value, count.Sigma, plan.CountNoise)
		}
	} else {
		var rel dp.Release
		var err error
		if count, rel, err = noisyCount(len(groups), plan.CountNoise); err != nil {
			return Result{}, fmt.Errorf("local training: %w", err)
		}
		countRels = []dp.Release{rel}
	}
	sgd, err := dp.NewSGD(dp.SGDOptions{
		SamplingRate:    plan.SamplingRate,
		NoiseMultiplier: plan.NoiseMultiplier,
		Clip:            plan.ClipNorm,
		Customers:       max(count.Value, 1),
	})
	if err != nil {
		return Result{}, fmt.Errorf("local training: %w", err)
	}
	var gradErr error
	var lossSum float64
	var lossRows int
	grad := func(i int, out []float64) float64 {
		l, err := work.CustomerLoss(groups[i], out)
		if err != nil && gradErr == nil {
			gradErr = err
		}
		if !math.IsNaN(l) && !math.IsInf(l, 0) {
			lossSum += l
			lossRows += len(groups[i])
		}
		return l
	}
	p := work.Params
	H := base.Horizon
	dir := make([]float64, len(p))
	var mom, vel []float64
	if opt.Optimizer == OptimizerAdam {
		mom, vel = make([]float64, len(p)), make([]float64, len(p))
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	for s := 1; s <= plan.Steps; s++ {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("local training: %w", err)
		}
		if err := sgd.Step(len(groups), grad, dir); err != nil {
			return Result{}, fmt.Errorf("local training: step %d: %w", s, err)
		}
		if gradErr != nil {
			return Result{}, fmt.Errorf("local training: step %d: %w", s, gradErr)
		}
		for j := range p {
			g := dir[j]
			if j >= H {
				g += plan.L2 * p[j] // data-independent ridge term: no privacy cost
			}
			if mom == nil {
				p[j] -= plan.LearningRate * g
				continue
			}
			mom[j] = b1*mom[j] + (1-b1)*g
			vel[j] = b2*vel[j] + (1-b2)*g*g
			c1 := 1 - math.Pow(b1, float64(s))
			c2 := 1 - math.Pow(b2, float64(s))
			p[j] -= plan.LearningRate * (mom[j] / c1) / (math.Sqrt(vel[j]/c2) + eps)
		}
	}
	if err := dp.CheckFinite(p); err != nil {
		return Result{}, fmt.Errorf("local training: diverged: %w", err)
	}
	res := Result{Delta: make([]float64, len(p)), Loss: math.NaN()}
	for j := range p {
		res.Delta[j] = p[j] - base.Params[j]
	}
	rel := sgd.Release()
	res.Release = protocol.Release{SamplingRate: rel.Q, NoiseMultiplier: rel.Z, Steps: rel.Steps, ClipNorm: plan.ClipNorm}
	res.Customers = count
	res.Dropped = sgd.Dropped()
	res.Releases = append([]dp.Release{rel}, countRels...)
	if lossRows > 0 {
		res.Loss = lossSum / float64(lossRows)
	}
	return res, nil
}

// noisyCount releases n + N(0, σ²) through the DP library (sensitivity 1: one
// customer more or less changes n by one).
func noisyCount(n int, sigma float64) (protocol.NoisyCount, dp.Release, error) {
	g, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: sigma})
	if err != nil {
		return protocol.NoisyCount{}, dp.Release{}, fmt.Errorf("customer count: %w", err)
	}
	v := []float64{float64(n)}
	if err := g.AddNoise(v); err != nil {
		return protocol.NoisyCount{}, dp.Release{}, fmt.Errorf("customer count: %w", err)
	}
	return protocol.NoisyCount{Value: v[0], Sigma: g.Sigma()}, g.Release(1), nil
}
