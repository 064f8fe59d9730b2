package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/audit"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// AuditOptions configures PrivacyAudit. Zero values take the documented defaults.
type AuditOptions struct {
	// Epsilon and Delta are the budget every training is calibrated to.
	Epsilon, Delta float64
	// Runs is the number of trainings with the canary, and again without (default 1000).
	Runs int
	// Customers is the number of ordinary synthetic customers (default 50), each
	// with RowsPerCustomer rows (cutoffs; default 3).
	Customers, RowsPerCustomer int
	// Steps is the number of full-batch DP-SGD steps per training (default 10).
	Steps int
	// Clip is the per-customer clip norm (default 1).
	Clip float64
	// CanaryScale is the canary's value of its private feature (default 100).
	CanaryScale float64
	// Alpha is one minus the confidence of the bound (default 0.05).
	Alpha float64
	// Seed fixes the synthetic customers (not the DP randomness).
	Seed uint64
}

func (o *AuditOptions) defaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Runs, 1000)
	def(&o.Customers, 50)
	def(&o.RowsPerCustomer, 3)
	def(&o.Steps, 10)
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
	case !(o.Clip > 0) || !(o.CanaryScale > 0) || !(o.Alpha > 0 && o.Alpha < 1):
		return errors.New("clip and canary scale must be > 0, α in (0, 1)")
	}
	return nil
}

// AuditReport is the outcome of PrivacyAudit.
type AuditReport struct {
	// Release is one training's DP-SGD release; Epsilon its ε at Delta by the RDP
	// accountant (the guarantee Kairos claims) and Order the order attaining it.
	Release dp.Release `json:"release"`
	Epsilon float64    `json:"accountant_epsilon"`
	Delta   float64    `json:"delta"`
	Order   float64    `json:"order"`
	// ExactEpsilon is the exact ε at Delta of the full-batch training: Steps
	// Gaussian steps of noise multiplier z compose to one Gaussian of noise
	// multiplier z/√Steps (Balle and Wang 2018). No audit can exceed it; the
	// gap to Epsilon is the accountant's slack.
	ExactEpsilon float64 `json:"exact_epsilon"`
	// Transcript is the bound from the sum over steps of the released noisy
	// gradient's canary coordinate (an adversary who sees every step);
	// FinalModel the bound from the canary's weight in the final model only.
	Transcript audit.Bound `json:"transcript"`
	FinalModel audit.Bound `json:"final_model"`
	// Mu is the measured shift of the transcript score between the two worlds
	// in units of its standard deviation, MuLower its one-sided lower confidence
	// bound at 1 − Alpha (normal approximation), and GaussianEpsilon the ε at
	// Delta of a Gaussian mechanism with shift MuLower. It is not a proof: it
	// assumes the score is Gaussian with equal variance in both worlds, which
	// holds for full-batch DP-SGD up to the library's discretisation. It shows
	// how much of the gap between the bounds and ExactEpsilon is due to the
	// finite number of runs.
	Mu              float64 `json:"mu"`
	MuLower         float64 `json:"mu_lower"`
	GaussianEpsilon float64 `json:"gaussian_epsilon"`
	Runs            int     `json:"runs"`
}

// auditStep is dp.SGD whose noisy sum is normalised by a public constant rather
// than by the true number of customers, and which records the canary coordinate
// of every released sum.
type auditStep struct {
	sgd    *dp.SGD
	n      float64 // public normaliser: the number of ordinary customers
	coord  int
	record float64
}

func (s *auditStep) Step(n int, grad func(i int, out []float64) float64, dir []float64) error {
	if err := s.sgd.Step(n, grad, dir); err != nil {
		return err
	}
	// dp.SGD divided the noisy sum by q·n with q = 1.
	for j := range dir {
		dir[j] *= float64(n)
	}
	s.record += dir[s.coord]
	for j := range dir {
		dir[j] /= s.n
	}
	return nil
}

// PrivacyAudit measures an empirical lower bound on the ε of the hazard model's
// DP-SGD training and compares it with the accountant's ε. It trains Runs times
// with a canary customer and Runs times without, on the same synthetic customers,
// with the real training loop (hazard.Train), per-customer clipping and noise
// (dp.SGD), full batches (q = 1, so that the audit is not weakened by sampling),
// and calibrates the noise to (Epsilon, Delta) with the accountant.
//
// The canary is as distinguishable as the mechanism allows: its rows carry a
// feature that every other customer has at 0 with value CanaryScale, and it buys
// on day 1 at every cutoff, so its clipped gradient is (almost) C along a
// coordinate that no other customer moves. The membership score is the sum of
// that coordinate over the released noisy sums (Transcript; optimal for a
// full-batch Gaussian) or the final weight (FinalModel). audit.EpsilonLowerBound
// turns the scores into a bound at confidence 1 − Alpha.
func PrivacyAudit(ctx context.Context, o AuditOptions) (AuditReport, error) {
	if err := o.defaults(); err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	schema := feature.Schema{Version: 1, Names: []string{"x0", "x1", "x2", "canary"}, Transforms: []string{"", "", "", ""}}
	schema.Hash = schema.ComputeHash()
	d := schema.Len()
	std := hazard.Standardization{Mean: make([]float64, d), Scale: []float64{1, 1, 1, 1}}
	rng := rand.New(rand.NewPCG(o.Seed, 0x61756469))
	var base []feature.Row
	for c := range o.Customers {
		for k := range o.RowsPerCustomer {
			x := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), 0}
			label := 0
			if rng.Float64() < 1/(1+math.Exp(1.5-x[0])) {
				label = 1 + rng.IntN(model.Horizon)
			}
			base = append(base, feature.Row{Customer: fmt.Sprintf("c%d", c), Cutoff: k, X: x, Label: label})
		}
	}
	withCanary := append([]feature.Row(nil), base...)
	for k := range o.RowsPerCustomer {
		withCanary = append(withCanary, feature.Row{Customer: "canary", Cutoff: k, X: []float64{0, 0, 0, o.CanaryScale}, Label: 1})
	}
	z, err := dp.NoiseMultiplier(o.Epsilon, o.Delta, 1, o.Steps, dp.AccountantOptions{})
	if err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	coord := model.Horizon + d - 1 // the canary feature's weight
	var rep AuditReport
	train := func(rows []feature.Row) (transcript, final float64, err error) {
		sgd, err := dp.NewSGD(dp.SGDOptions{SamplingRate: 1, NoiseMultiplier: z, Clip: o.Clip})
		if err != nil {
			return 0, 0, err
		}
		step := &auditStep{sgd: sgd, n: float64(o.Customers), coord: coord}
		m, _, err := hazard.Train(ctx, schema, rows, hazard.TrainOptions{
			Kind: hazard.KindLinear, Step: step, Steps: o.Steps, Std: &std, LearningRate: 1e-4,
		})
		if err != nil {
			return 0, 0, err
		}
		rep.Release = sgd.Release()
		// The canary's loss falls as its weight rises: both scores are
		// "higher = member". The step size is small so that the weight stays
		// near 0 and the canary's gradient stays clipped at C on every step.
		return step.record * -1, m.Params[coord], nil
	}
	var inT, outT, inF, outF []float64
	for r := range o.Runs {
		if err := ctx.Err(); err != nil {
			return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
		}
		t, f, err := train(withCanary)
		if err != nil {
			return AuditReport{}, fmt.Errorf("privacy audit: run %d with canary: %w", r, err)
		}
		inT, inF = append(inT, t), append(inF, f)
		if t, f, err = train(base); err != nil {
			return AuditReport{}, fmt.Errorf("privacy audit: run %d without canary: %w", r, err)
		}
		outT, outF = append(outT, t), append(outF, f)
	}
	rep.Runs, rep.Delta = o.Runs, o.Delta
	if rep.Epsilon, rep.Order, err = dp.Epsilon([]dp.Release{rep.Release}, o.Delta, dp.AccountantOptions{}); err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	if rep.ExactEpsilon, err = dp.GaussianEpsilon(rep.Release.Z/math.Sqrt(float64(o.Steps)), o.Delta); err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	if rep.Transcript, err = audit.EpsilonLowerBound(inT, outT, o.Delta, o.Alpha); err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	if rep.FinalModel, err = audit.EpsilonLowerBound(inF, outF, o.Delta, o.Alpha); err != nil {
		return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
	}
	rep.Mu, rep.MuLower = gaussianShift(inT, outT, o.Alpha)
	if rep.MuLower > 0 {
		if rep.GaussianEpsilon, err = dp.GaussianEpsilon(1/rep.MuLower, o.Delta); err != nil {
			return AuditReport{}, fmt.Errorf("privacy audit: %w", err)
		}
	}
	return rep, nil
}

// gaussianShift returns (mean(in) − mean(out))/s, s the pooled standard
// deviation, and its one-sided lower confidence bound at 1 − alpha by the normal
// approximation (standard error √(2/n + μ²/(4n)) for n runs per side).
func gaussianShift(in, out []float64, alpha float64) (mu, lower float64) {
	mean := func(xs []float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	mi, mo := mean(in), mean(out)
	var ss float64
	for _, x := range in {
		ss += (x - mi) * (x - mi)
	}
	for _, x := range out {
		ss += (x - mo) * (x - mo)
	}
	n := float64(min(len(in), len(out)))
	mu = (mi - mo) / math.Sqrt(ss/float64(len(in)+len(out)-2))
	se := math.Sqrt(2/n + mu*mu/(4*n))
	zq := -math.Sqrt2 * math.Erfinv(2*alpha-1) // standard normal quantile 1 − alpha
	return mu, mu - zq*se
}
