// Package privacyaudit measures, from the outside, the privacy loss of what a
// merchant releases in a federated round, through the code that releases it: the
// DP-SGD update and the DP customer count of client/train.Local (customer
// grouping, Poisson sampling, the count as the normaliser, the DP library's
// noise) and the evaluation histogram of model/fedeval. It runs a round many times
// with a canary customer and many times without, scores each release as an
// adversary would, and bounds ε from below with dp/audit; a correct
// implementation never shows a lower bound above the accountant's ε.
package privacyaudit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/audit"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Canary is the customer whose presence the audit tries to detect.
type Canary int

const (
	// CanarySaturated has a feature no other customer has (value CanaryScale,
	// every other customer 0) and buys on day 1 at every cutoff: its gradient is
	// clipped to C almost entirely along one coordinate, the most a customer can
	// move the update.
	CanarySaturated Canary = iota
	// CanaryNonFinite has +Inf in that feature, so its gradient is NaN. Local
	// must neither abort nor let it move the update.
	CanaryNonFinite
)

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	// Epsilon and Delta calibrate each release on its own: the DP-SGD noise
	// multiplier for Steps steps at SamplingRate, and the σ of the count and of
	// each histogram cell (one unsampled Gaussian each), all to Epsilon at Delta.
	Epsilon, Delta float64
	// Runs is the number of rounds with the canary, and again without (default 1000).
	Runs int
	// Customers is the number of ordinary customers (default 50), each with
	// RowsPerCustomer rows (cutoffs; default 3). With NoCustomers the merchant
	// has none: the canary alone against an empty merchant.
	Customers, RowsPerCustomer int
	NoCustomers                bool
	// SamplingRate is the Poisson rate q of the DP-SGD steps (default 0.5) and
	// Steps their number (default 10).
	SamplingRate float64
	Steps        int
	// Clip is the per-customer clip norm (default 1).
	Clip float64
	// Canary selects the canary; CanaryScale is its private feature's value
	// (default 100).
	Canary      Canary
	CanaryScale float64
	// Alpha is one minus the confidence of the bounds (default 0.05).
	Alpha float64
	// Seed fixes the synthetic customers (never the DP randomness).
	Seed uint64
}

func (o *Options) defaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Runs, 1000)
	def(&o.Customers, 50)
	def(&o.RowsPerCustomer, 3)
	def(&o.Steps, 10)
	if o.SamplingRate == 0 {
		o.SamplingRate = 0.5
	}
	if o.Clip == 0 {
		o.Clip = 1
	}
	if o.CanaryScale == 0 {
		o.CanaryScale = 100
	}
	if o.Alpha == 0 {
		o.Alpha = 0.05
	}
	switch {
	case !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0):
		return fmt.Errorf("ε %v must be finite and > 0", o.Epsilon)
	case !(o.Delta > 0 && o.Delta < 1):
		return fmt.Errorf("δ %v must be in (0, 1)", o.Delta)
	case o.Runs < 8 || o.Customers < 1 || o.RowsPerCustomer < 1 || o.Steps < 1:
		return errors.New("runs must be ≥ 8, customers, rows per customer and steps ≥ 1")
	case !(o.SamplingRate > 0 && o.SamplingRate <= 1):
		return fmt.Errorf("sampling rate %v must be in (0, 1]", o.SamplingRate)
	case !(o.Clip > 0) || !(o.CanaryScale > 0) || !(o.Alpha > 0 && o.Alpha < 1):
		return errors.New("clip and canary scale must be > 0, α in (0, 1)")
	case o.Canary != CanarySaturated && o.Canary != CanaryNonFinite:
		return fmt.Errorf("unknown canary %d", o.Canary)
	}
	return nil
}

// Result is the audit of one release.
type Result struct {
	// Release is what one round's release cost (the noise actually added);
	// Epsilon its ε at the report's δ by the RDP accountant, alone.
	Release dp.Release `json:"release"`
	Epsilon float64    `json:"accountant_epsilon"`
	// ExactEpsilon is the exact ε of an unsampled single Gaussian release (count,
	// histogram; Balle and Wang 2018), 0 for the sampled DP-SGD update, which has
	// no closed form.
	ExactEpsilon float64 `json:"exact_epsilon,omitempty"`
	// Bound is the empirical lower bound on ε from this release's score, at
	// confidence 1 − Alpha (two tests at 1 − Alpha/2 each; see bound).
	Bound audit.Bound `json:"bound"`
}

// Report is the outcome of Run.
type Report struct {
	// Epsilon and Delta are the target every release was calibrated to.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Runs    int     `json:"runs"`
	// Update scores the canary's coordinate of the update, rescaled by the
	// released count to the sum of noisy gradient sums; Count the released
	// count; Histogram the noisy cell the canary's row falls in.
	Update    Result `json:"update"`
	Count     Result `json:"count"`
	Histogram Result `json:"histogram"`
	// RoundEpsilon is the accountant's ε of the three releases composed: what one
	// round costs the merchant.
	RoundEpsilon float64 `json:"round_epsilon"`
	// Aborted counts the rounds, with the canary and without, in which Local
	// returned an error and released nothing. An abort is itself an
	// observable outcome: it is scored as the strongest evidence of membership.
	Aborted [2]int `json:"aborted"`
}

// lr is small so that the canary's weight stays near 0 and its gradient stays
// clipped at C on every step: the update is then a sum of saturated steps.
const lr = 1e-4

// world is one side of the experiment.
type world struct {
	rows []feature.Row // training rows, every cutoff
	eval []feature.Row // one row per customer, cutoff 0
}

// Run audits Options.Runs rounds with the canary and as many without.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	schema := feature.Schema{Version: 1, Names: []string{"x0", "x1", "x2", "canary"}, Transforms: []string{"", "", "", ""}}
	schema.Hash = schema.ComputeHash()
	d := schema.Len()
	base, err := hazard.New(hazard.KindLinear, schema, hazard.Standardization{Mean: make([]float64, d), Scale: []float64{1, 1, 1, 1}}, 0, 0.003)
	if err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	out, in := worlds(o)
	z, err := dp.NoiseMultiplier(o.Epsilon, o.Delta, o.SamplingRate, o.Steps, dp.AccountantOptions{})
	if err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	sigma, err := dp.NoiseMultiplier(o.Epsilon, o.Delta, 1, 1, dp.AccountantOptions{})
	if err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	plan := protocol.TrainingPlan{
		Steps: o.Steps, SamplingRate: o.SamplingRate, NoiseMultiplier: z, ClipNorm: o.Clip,
		LearningRate: lr, Delta: o.Delta, CountNoise: sigma,
	}
	evalPlan := &protocol.EvaluationPlan{Cutoff: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Edges: fedeval.DefaultEdges(), Sigma: sigma}
	canaryCounts, err := fedeval.Histogram(base, in.eval[len(in.eval)-1:], evalPlan.Edges)
	if err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	cell := -1
	for i, c := range canaryCounts {
		if c == 1 {
			cell = i
		}
	}
	coord := base.Horizon + d - 1 // the canary feature's weight
	var rep Report
	round := func(w world, side int) (update, count, hist float64, err error) {
		res, err := train.Local(ctx, base, w.rows, plan, train.Options{})
		switch {
		case ctx.Err() != nil:
			return 0, 0, 0, ctx.Err()
		case err != nil:
			rep.Aborted[side]++
			update, count = math.NaN(), math.NaN() // nothing released: see bound
		default:
			rep.Update.Release, rep.Count.Release = res.Releases[0], res.Releases[1]
			// Each SGD step moves the canary's weight by −η·(noisy sum)/(q·N),
			// N = max(count, 1): undo that with released values only. The
			// canary's gradient on its weight is −C, so the score is C per step
			// the canary was sampled in, minus the noise: higher means member.
			update = res.Delta[coord] * o.SamplingRate * max(res.Customers.Value, 1) / lr
			count = res.Customers.Value
		}
		counts, err := fedeval.Histogram(base, w.eval, evalPlan.Edges)
		if err != nil {
			return 0, 0, 0, err
		}
		ev, rel, err := fedeval.Release(counts, evalPlan)
		if err != nil {
			return 0, 0, 0, err
		}
		rep.Histogram.Release = rel
		return update, count, ev.Counts[cell], nil
	}
	var scores [2][3][]float64 // side (0 without, 1 with), release
	for r := range o.Runs {
		for side, w := range []world{out, in} {
			u, c, h, err := round(w, side)
			if err != nil {
				return Report{}, fmt.Errorf("privacy audit: run %d: %w", r, err)
			}
			scores[side][0] = append(scores[side][0], u)
			scores[side][1] = append(scores[side][1], c)
			scores[side][2] = append(scores[side][2], h)
		}
	}
	rep.Epsilon, rep.Delta, rep.Runs = o.Epsilon, o.Delta, o.Runs
	if rep.Update.Release.Steps == 0 { // every round aborted
		rep.Update.Release = dp.Release{Mechanism: dp.Gaussian, Q: o.SamplingRate, Z: z, Steps: o.Steps}
		rep.Count.Release = dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: sigma, Steps: 1}
	}
	for i, res := range []*Result{&rep.Update, &rep.Count, &rep.Histogram} {
		if res.Epsilon, _, err = dp.Epsilon([]dp.Release{res.Release}, o.Delta, dp.AccountantOptions{}); err != nil {
			return Report{}, fmt.Errorf("privacy audit: %w", err)
		}
		if res.Release.Q == 1 && res.Release.Steps == 1 {
			if res.ExactEpsilon, err = dp.GaussianEpsilon(res.Release.Z, o.Delta); err != nil {
				return Report{}, fmt.Errorf("privacy audit: %w", err)
			}
		}
		if res.Bound, err = bound(scores[1][i], scores[0][i], o.Delta, o.Alpha); err != nil {
			return Report{}, fmt.Errorf("privacy audit: %w", err)
		}
	}
	rep.RoundEpsilon, _, err = dp.Epsilon([]dp.Release{rep.Update.Release, rep.Count.Release, rep.Histogram.Release}, o.Delta, dp.AccountantOptions{})
	if err != nil {
		return Report{}, fmt.Errorf("privacy audit: %w", err)
	}
	return rep, nil
}

// bound is audit.EpsilonLowerBound for scores where NaN marks a round that
// released nothing. Such an abort is evidence of membership if it happens with
// the canary and of non-membership if it happens without it (an empty merchant
// that stops), so it is scored once as the highest score and once as the
// lowest, each bound at confidence 1 − alpha/2, and the larger bound returned:
// by the union bound it holds with confidence 1 − alpha.
func bound(in, out []float64, delta, alpha float64) (audit.Bound, error) {
	var best audit.Bound
	for i, sentinel := range []float64{math.MaxFloat64, -math.MaxFloat64} {
		mark := func(xs []float64) []float64 {
			ys := make([]float64, len(xs))
			for j, x := range xs {
				ys[j] = x
				if math.IsNaN(x) {
					ys[j] = sentinel
				}
			}
			return ys
		}
		b, err := audit.EpsilonLowerBound(mark(in), mark(out), delta, alpha/2)
		if err != nil {
			return audit.Bound{}, err
		}
		if i == 0 || b.Epsilon > best.Epsilon {
			best = b
		}
	}
	best.Confidence = 1 - alpha
	return best, nil
}

// worlds builds the ordinary customers (out) and the same plus the canary (in).
// Ordinary customers have three N(0, 1) features, purchases driven by the first,
// and 0 in the canary's feature.
func worlds(o Options) (out, in world) {
	rng := rand.New(rand.NewPCG(o.Seed, 0x61756469))
	if !o.NoCustomers {
		for c := range o.Customers {
			for k := range o.RowsPerCustomer {
				x := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), 0}
				label := 0
				if rng.Float64() < 1/(1+math.Exp(1.5-x[0])) {
					label = 1 + rng.IntN(model.Horizon)
				}
				r := feature.Row{Customer: fmt.Sprintf("c%d", c), Cutoff: k, X: x, Label: label}
				out.rows = append(out.rows, r)
				if k == 0 {
					out.eval = append(out.eval, r)
				}
			}
		}
	}
	v := o.CanaryScale
	if o.Canary == CanaryNonFinite {
		v = math.Inf(1)
	}
	in.rows, in.eval = append([]feature.Row(nil), out.rows...), append([]feature.Row(nil), out.eval...)
	for k := range o.RowsPerCustomer {
		r := feature.Row{Customer: "canary", Cutoff: k, X: []float64{0, 0, 0, v}, Label: 1}
		in.rows = append(in.rows, r)
		if k == 0 {
			in.eval = append(in.eval, r)
		}
	}
	return out, in
}
