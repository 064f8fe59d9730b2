// Package fedeval is federated evaluation under differential privacy: each
// merchant scores a model on its own customers and releases a histogram of
// (score bin × outcome) counts with Gaussian noise; the aggregator sums the
// merchants' histograms and computes the federation's metrics from the sum.
// No customer's score or outcome leaves its merchant, and the metrics are
// post-processing of the noisy histograms.
//
// # What is released
//
// One customer is one row at the plan's cutoff (every customer with a purchase
// before it) and falls in exactly one cell: the bin of its predicted
// P(purchase within 30 days) by the plan's edges, and its outcome class
// (protocol.EvalWithin7, EvalWithin30 for days 8–30, EvalNone). Adding or
// removing a customer changes one cell by one, so the histogram has L2
// sensitivity 1 and Gaussian noise of standard deviation σ per cell is the
// Gaussian mechanism with noise multiplier σ; Release returns its debit.
//
// # What is computed
//
// The hazard model's P(within h days) is increasing in its score for every h,
// so one binning serves both horizons. AUC@30 and AUC@7 are the Mann–Whitney
// statistic over the bins (a positive beats every negative in a lower bin and
// ties with those in its own bin), PR-AUC@30 is average precision with each bin
// one threshold — without noise exactly metrics.AUC and
// metrics.AveragePrecision applied to the bin index as score (see Compute for
// how noisy cells are treated). Binning loses
// only the order inside a bin; with the default edges (DefaultEdges) that costs
// 0.002–0.003 AUC@30 and 0.04 PR-AUC@30 on the CDNOW reference cutoff.
//
// The noise dominates: StandardErrors estimates each metric's standard error
// from the noise by simulation, and the aggregator stores it beside the metric.
package fedeval

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// ErrNoData is returned when a histogram holds no positives or no negatives
// after the noise, so a metric is undefined.
var ErrNoData = errors.New("evaluation histogram has no positives or no negatives")

// DefaultEdges are the inner edges of 15 bins of P(purchase within 30 days)
// at round probabilities, finer below 1% than a non-private model needs
// because DP-trained models under-predict (the demo's federated model puts
// 60% of CDNOW's customers below 0.4%).
//
// Fewer bins lose ranking inside a bin, more bins add noise, and noise in the
// lowest bins costs most (a phantom positive there loses to every negative).
// Measured on the CDNOW reference cutoff (23,570 customers) with five
// merchants each adding σ = 10 per cell: for the centralised non-private
// model, binning loses 0.0017 AUC@30 and the noise gives a spread of 0.025
// (TestCDNOWEvaluation); for the demo's federated DP model binning loses
// 0.003. A 12-bin set without the bins below 0.5% lost 0.012 on the DP model.
func DefaultEdges() []float64 {
	return []float64{0.002, 0.004, 0.006, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5}
}

// CheckPlan validates an evaluation plan.
func CheckPlan(p *protocol.EvaluationPlan) error {
	if p == nil {
		return errors.New("evaluation plan: missing")
	}
	if p.Cutoff.IsZero() {
		return errors.New("evaluation plan: missing cutoff")
	}
	if !(p.Sigma > 0) || math.IsInf(p.Sigma, 0) {
		return fmt.Errorf("evaluation plan: σ %v must be finite and > 0", p.Sigma)
	}
	if len(p.Edges) == 0 {
		return errors.New("evaluation plan: no bin edges")
	}
	for i, e := range p.Edges {
		if !(e > 0 && e < 1) {
			return fmt.Errorf("evaluation plan: edge %d = %v outside (0, 1)", i, e)
		}
		if i > 0 && !(e > p.Edges[i-1]) {
			return fmt.Errorf("evaluation plan: edge %d = %v not above edge %d = %v", i, e, i-1, p.Edges[i-1])
		}
	}
	return nil
}

// Cost is the release an evaluation under plan makes (at the planned σ; the
// noise actually added is never smaller).
func Cost(plan *protocol.EvaluationPlan) dp.Release {
	return dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: plan.Sigma, Steps: 1}
}

// Bin returns the bin of probability p: the number of edges ≤ p.
func Bin(edges []float64, p float64) int {
	return sort.Search(len(edges), func(i int) bool { return edges[i] > p })
}

// Class returns the outcome class of a row label (feature.Row.Label: the day
// 1..Horizon of the first purchase, 0 for none).
func Class(label int) int {
	switch {
	case label >= 1 && label <= 7:
		return protocol.EvalWithin7
	case label >= 8 && label <= 30:
		return protocol.EvalWithin30
	default:
		return protocol.EvalNone
	}
}

// Histogram counts rows (one per customer, at the plan's cutoff) by the bin of
// m's P(purchase within 30 days) and outcome class, without noise. It refuses a
// model whose horizon is shorter than 30 days and rows of more than one cutoff.
func Histogram(m *hazard.Model, rows []feature.Row, edges []float64) ([]float64, error) {
	if m.Horizon < 30 {
		return nil, fmt.Errorf("evaluation histogram: model horizon %d days < 30", m.Horizon)
	}
	h30 := slices.Index(hazard.Horizons[:], 30)
	if h30 < 0 {
		return nil, errors.New("evaluation histogram: 30 days is not a prediction horizon")
	}
	counts := make([]float64, (len(edges)+1)*protocol.EvalClasses)
	seen := make(map[string]bool, len(rows))
	for i, r := range rows {
		if r.Cutoff != rows[0].Cutoff {
			return nil, fmt.Errorf("evaluation histogram: row %d is at cutoff %d, row 0 at %d (one cutoff only)", i, r.Cutoff, rows[0].Cutoff)
		}
		if seen[r.Customer] {
			return nil, fmt.Errorf("evaluation histogram: row %d: customer %q appears twice", i, r.Customer)
		}
		seen[r.Customer] = true
		p, err := m.Predict(r.X)
		if err != nil {
			return nil, fmt.Errorf("evaluation histogram: row %d: %w", i, err)
		}
		counts[Bin(edges, p.Within[h30])*protocol.EvalClasses+Class(r.Label)]++
	}
	return counts, nil
}

// Release adds Gaussian noise of standard deviation plan.Sigma (through the DP
// library, dp.VectorGaussian with sensitivity 1) to every cell of counts and
// returns the evaluation to send with its debit.
func Release(counts []float64, plan *protocol.EvaluationPlan) (protocol.Evaluation, dp.Release, error) {
	if err := CheckPlan(plan); err != nil {
		return protocol.Evaluation{}, dp.Release{}, err
	}
	if want := plan.Cells(); len(counts) != want {
		return protocol.Evaluation{}, dp.Release{}, fmt.Errorf("evaluation release: %d cells, want %d", len(counts), want)
	}
	g, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: plan.Sigma})
	if err != nil {
		return protocol.Evaluation{}, dp.Release{}, fmt.Errorf("evaluation release: %w", err)
	}
	noisy := slices.Clone(counts)
	if err := g.AddNoise(noisy); err != nil {
		return protocol.Evaluation{}, dp.Release{}, fmt.Errorf("evaluation release: %w", err)
	}
	return protocol.Evaluation{Cutoff: plan.Cutoff, Counts: noisy, Sigma: g.Sigma()}, g.Release(1), nil
}

// ErrImplausible is wrapped by CheckPlausible's errors: a histogram that no
// honest merchant with the released count could have sent.
var ErrImplausible = errors.New("implausible evaluation histogram")

// PlausibleSigmas is how many standard deviations of the noise a released
// histogram may stray from what its merchant's released count allows: an
// honest histogram passes with probability about 1 − 2e-9 per check.
const PlausibleSigmas = 6

// Growth is how much larger than its released customer count a merchant's
// evaluation may be before the noise: the count is taken at the training
// cutoffs, the evaluation at a cutoff at least 30 days later, so customers
// whose first purchase falls in between are evaluated but were not counted.
// Half again as many covers a shop whose customer base grows 50% over that
// gap.
const Growth = 0.5

// Range is the interval [Lo, Hi] a histogram's total must fall in and every
// cell's upper limit; MinCell is every cell's lower limit (noise makes an
// empty cell negative).
type Range struct {
	Lo, Hi, MinCell float64
}

// TotalRange is the Range of an evaluation with cells cells at noise σ per
// cell for a merchant whose released customer count is count (value c,
// noise σ_c): with tol = PlausibleSigmas·√(σ_c² + cells·σ²) — the noise of
// the count and of the histogram's total together — the total must lie in
// [c − tol, (1 + Growth)·c + tol], no cell above that upper end, and none below
// −PlausibleSigmas·σ. When known is false (the merchant released no count)
// the lower end is −∞ and c is the merchant's plausible number of customers
// (the policy's max_customers, else 1/δ) without Growth.
func TotalRange(count protocol.NoisyCount, known bool, cells int, sigma float64) Range {
	tol := PlausibleSigmas * math.Sqrt(count.Sigma*count.Sigma+float64(cells)*sigma*sigma)
	r := Range{Lo: count.Value - tol, Hi: (1+Growth)*count.Value + tol, MinCell: -PlausibleSigmas * sigma}
	if !known {
		r.Lo, r.Hi = math.Inf(-1), count.Value+tol
	}
	return r
}

// CheckPlausible reports whether evaluation e lies in r: every cell in
// [r.MinCell, r.Hi] and the total in [r.Lo, r.Hi]. The error names the first
// offending cell or the total and wraps ErrImplausible.
func CheckPlausible(e *protocol.Evaluation, r Range) error {
	var total float64
	for i, c := range e.Counts {
		if !(c >= r.MinCell && c <= r.Hi) {
			return fmt.Errorf("%w: cell %d (bin %d, class %d) = %.6g outside [%.1f, %.1f]",
				ErrImplausible, i, i/protocol.EvalClasses, i%protocol.EvalClasses, c, r.MinCell, r.Hi)
		}
		total += c
	}
	if !(total >= r.Lo && total <= r.Hi) {
		return fmt.Errorf("%w: %.6g customers in total, outside [%.1f, %.1f] allowed by the released customer count and both noises",
			ErrImplausible, total, r.Lo, r.Hi)
	}
	return nil
}

// Sum adds the merchants' histograms cell by cell; all must have the same
// length. It also returns the standard deviation of the sum's noise per cell.
func Sum(evals []protocol.Evaluation) (counts []float64, sigma float64, err error) {
	if len(evals) == 0 {
		return nil, 0, errors.New("sum evaluations: none")
	}
	counts = make([]float64, len(evals[0].Counts))
	var v float64
	for i, e := range evals {
		if len(e.Counts) != len(counts) {
			return nil, 0, fmt.Errorf("sum evaluations: evaluation %d has %d cells, evaluation 0 has %d", i, len(e.Counts), len(counts))
		}
		for j, c := range e.Counts {
			counts[j] += c
		}
		v += e.Sigma * e.Sigma
	}
	return counts, math.Sqrt(v), nil
}

// Metrics are what a (noisy) evaluation histogram says about a model.
type Metrics struct {
	AUC30, AUC7, PRAUC30 float64
	// PositiveRate30 is the share of customers who bought within 30 days.
	PositiveRate30 float64
	// Customers is the (noisy) number of customers evaluated.
	Customers float64
}

// Compute derives the metrics from a histogram with len(counts)/EvalClasses
// bins.
//
// Noise makes some cells negative. The AUCs use the cells as they are: the
// Mann–Whitney numerator and its denominator P·N are sums of products of
// cells with independent zero-mean noise, so both are unbiased, whereas
// clipping each cell at zero would add about 0.4σ of phantom customers to
// every empty cell and pull the AUC towards ½. Average precision walks the
// bins from the top with cumulative counts made non-decreasing and at most the
// customers seen (post-processing that only removes impossible values).
func Compute(counts []float64) (Metrics, error) {
	if len(counts) == 0 || len(counts)%protocol.EvalClasses != 0 {
		return Metrics{}, fmt.Errorf("evaluation metrics: %d cells is not a whole number of bins of %d classes", len(counts), protocol.EvalClasses)
	}
	bins := len(counts) / protocol.EvalClasses
	w7 := make([]float64, bins)  // bought within 7 days
	w30 := make([]float64, bins) // bought within 30 days
	all := make([]float64, bins)
	for b := range bins {
		for c := range protocol.EvalClasses {
			v := counts[b*protocol.EvalClasses+c]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Metrics{}, fmt.Errorf("evaluation metrics: cell %d = %v is not finite", b*protocol.EvalClasses+c, v)
			}
			all[b] += v
			if c == protocol.EvalWithin7 {
				w7[b] += v
			}
			if c != protocol.EvalNone {
				w30[b] += v
			}
		}
	}
	var m Metrics
	var err error
	if m.AUC30, err = binnedAUC(w30, all); err != nil {
		return Metrics{}, fmt.Errorf("evaluation metrics: auc@30: %w", err)
	}
	if m.AUC7, err = binnedAUC(w7, all); err != nil {
		return Metrics{}, fmt.Errorf("evaluation metrics: auc@7: %w", err)
	}
	if m.PRAUC30, err = binnedAP(w30, all); err != nil {
		return Metrics{}, fmt.Errorf("evaluation metrics: pr-auc@30: %w", err)
	}
	var pos float64
	for b := range bins {
		m.Customers += all[b]
		pos += w30[b]
	}
	m.PositiveRate30 = pos / m.Customers
	return m, nil
}

// binnedAUC is the Mann–Whitney AUC of bins ordered by increasing score, with
// pos[b] positives among all[b] customers in bin b; the result is clamped to
// [0, 1] (noise can push the ratio of two noisy sums outside it).
func binnedAUC(pos, all []float64) (float64, error) {
	var P, N float64
	for b := range pos {
		P += pos[b]
		N += all[b] - pos[b]
	}
	if !(P >= 1) || !(N >= 1) {
		return 0, ErrNoData
	}
	var u, negBelow float64
	for b := range pos {
		neg := all[b] - pos[b]
		u += pos[b] * (negBelow + neg/2)
		negBelow += neg
	}
	return min(max(u/(P*N), 0), 1), nil
}

// binnedAP is average precision with one threshold per bin, from the highest
// bin down, over cumulative counts repaired to be non-decreasing with the
// positives never more than the customers.
func binnedAP(pos, all []float64) (float64, error) {
	var P float64
	for _, p := range pos {
		P += p
	}
	if !(P >= 1) {
		return 0, ErrNoData
	}
	var ap, tp, seen, rawTP, rawSeen, prevRecall float64
	for b := len(pos) - 1; b >= 0; b-- {
		rawTP += pos[b]
		rawSeen += all[b]
		tp = min(max(tp, rawTP), P)
		seen = max(seen, rawSeen, tp)
		if seen <= 0 {
			continue
		}
		recall := tp / P
		ap += (recall - prevRecall) * tp / seen
		prevRecall = recall
	}
	return ap, nil
}

// StandardErrors estimates the standard error that noise of standard deviation
// sigma per cell gives each metric of Compute(counts), by parametric bootstrap:
// reps histograms counts + N(0, sigma²) from a generator seeded by seed, the
// metrics of each, their standard deviations. It is post-processing of the
// released histogram (the generator is not privacy noise). Replicates whose
// metrics are undefined are skipped.
func StandardErrors(counts []float64, sigma float64, reps int, seed uint64) (Metrics, error) {
	if !(sigma >= 0) || math.IsInf(sigma, 0) || reps < 2 {
		return Metrics{}, fmt.Errorf("standard errors: σ %v and %d replicates (want σ ≥ 0 finite, ≥ 2 replicates)", sigma, reps)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6b6169726f73))
	var s1, s2 [numMetrics]float64 // sums and sums of squares, field by field
	n := 0
	rep := make([]float64, len(counts))
	for range reps {
		for i, c := range counts {
			rep[i] = c + sigma*rng.NormFloat64()
		}
		m, err := Compute(rep)
		if err != nil {
			continue
		}
		n++
		for i, v := range m.fields() {
			s1[i] += *v
			s2[i] += *v * *v
		}
	}
	if n < 2 {
		return Metrics{}, fmt.Errorf("standard errors: %d of %d replicates defined: %w", n, reps, ErrNoData)
	}
	var se Metrics
	k := float64(n)
	for i, v := range se.fields() {
		*v = math.Sqrt(max(s2[i]/k-(s1[i]/k)*(s1[i]/k), 0) * k / (k - 1))
	}
	return se, nil
}

// numMetrics is the number of fields of Metrics.
const numMetrics = 5

// fields points at m's fields in metricKeys order.
func (m *Metrics) fields() [numMetrics]*float64 {
	return [numMetrics]*float64{&m.AUC30, &m.AUC7, &m.PRAUC30, &m.PositiveRate30, &m.Customers}
}

// metricKeys name Metrics' fields in a model version's metrics.
var metricKeys = [numMetrics]string{"auc_30", "auc_7", "pr_auc_30", "positive_rate_30", "customers"}

// MetricsMap is m as a model version's metrics (metricKeys), with se, when
// given, under the same keys suffixed "_se".
func (m Metrics) MetricsMap(se *Metrics) map[string]float64 {
	out := make(map[string]float64, 2*numMetrics)
	for i, v := range m.fields() {
		out[metricKeys[i]] = *v
	}
	if se != nil {
		for i, v := range se.fields() {
			out[metricKeys[i]+"_se"] = *v
		}
	}
	return out
}
