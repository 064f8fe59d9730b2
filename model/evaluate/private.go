package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// DPOptions configures differentially private hazard training (TrainPrivate).
// The unit of privacy is one customer: all of a customer's training rows, from
// every cutoff, form one gradient that DP-SGD clips to Clip.
type DPOptions struct {
	// Epsilon and Delta are the budget the whole training spends, every release
	// included; Epsilon must be finite.
	Epsilon, Delta float64
	// Clip is the L2 bound on one customer's summed gradient (default 1).
	Clip float64
	// BatchSize is the expected number of customers per step (q = BatchSize/ñ,
	// ñ the DP customer count); default 1024, capped at ñ. Tuned on CDNOW
	// (see docs/benchmarks.md, Privacy).
	BatchSize float64
	// Epochs is the expected number of passes over the customers
	// (steps = ⌈Epochs/q⌉); default 20.
	Epochs float64
	// CountNoise is σ of the Gaussian customer count released first (sensitivity
	// 1); default 100, which costs almost nothing next to the training.
	CountNoise float64
	// Spent are releases already made on the same customers (the DP fit of the
	// classic features' parameters): the plan composes them with its own, so
	// that the whole run stays within Epsilon.
	Spent []dp.Release
	// ClassicShare is the fraction of Epsilon the DP fit of the classic
	// features' parameters plans for (Config.Classic = ClassicDP; default 0.1).
	ClassicShare float64
	// Std returns the standardisation for a schema. It must not look at customer
	// data (for example hazard.FixedStandardization); it is required,
	// because the default standardisation is computed from the rows.
	Std func(feature.Schema) hazard.Standardization
}

func (o *DPOptions) defaults() error {
	if o.Clip == 0 {
		o.Clip = 1
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1024
	}
	if o.Epochs == 0 {
		o.Epochs = 20
	}
	if o.CountNoise == 0 {
		o.CountNoise = 100
	}
	if o.ClassicShare == 0 {
		o.ClassicShare = 0.1
	}
	finitePos := func(x float64) bool { return x > 0 && !math.IsInf(x, 0) }
	switch {
	case !finitePos(o.Epsilon):
		return fmt.Errorf("ε %v must be finite and > 0", o.Epsilon)
	case !(o.Delta > 0 && o.Delta < 1):
		return fmt.Errorf("δ %v must be in (0, 1)", o.Delta)
	case !finitePos(o.Clip):
		return fmt.Errorf("clip %v must be finite and > 0", o.Clip)
	case !finitePos(o.BatchSize) || o.BatchSize < 1:
		return fmt.Errorf("batch size %v must be finite and ≥ 1", o.BatchSize)
	case !finitePos(o.Epochs):
		return fmt.Errorf("epochs %v must be finite and > 0", o.Epochs)
	case !finitePos(o.CountNoise):
		return fmt.Errorf("count noise %v must be finite and > 0", o.CountNoise)
	case !(o.ClassicShare > 0 && o.ClassicShare < 1):
		return fmt.Errorf("classic share %v must be in (0, 1)", o.ClassicShare)
	case o.Std == nil:
		return errors.New("a data-independent standardisation (Std) is required")
	}
	return nil
}

// PrivacyReport is what a private training charged.
type PrivacyReport struct {
	// TargetEpsilon and Delta are the budget asked for.
	TargetEpsilon float64 `json:"target_epsilon"`
	Delta         float64 `json:"delta"`
	// Epsilon is the ε at Delta of every release below, composed by the RDP
	// accountant, and Order the Rényi order that attains it.
	Epsilon float64 `json:"epsilon"`
	Order   float64 `json:"order"`
	// Clip, SamplingRate, NoiseMultiplier (σ actually added / Clip) and Steps
	// describe DP-SGD; PlannedNoiseMultiplier is the z the plan asked for.
	Clip                   float64 `json:"clip"`
	SamplingRate           float64 `json:"sampling_rate"`
	NoiseMultiplier        float64 `json:"noise_multiplier"`
	PlannedNoiseMultiplier float64 `json:"planned_noise_multiplier"`
	Steps                  int     `json:"steps"`
	BatchSize              float64 `json:"batch_size"`
	// CountSigma is σ actually added to the customer count, NoisyCustomers the
	// count released.
	CountSigma     float64 `json:"count_sigma"`
	NoisyCustomers float64 `json:"noisy_customers"`
	// Releases are all the mechanisms run, in order, for a ledger.
	Releases []dp.Release `json:"releases"`
}

// ErrOverBudget is returned (wrapped) when the releases actually made would
// exceed the target ε; TrainPrivate then returns no model.
var ErrOverBudget = errors.New("privacy budget exceeded")

// renormStep is dp.SGD with the noisy sum divided by q·ñ instead of q·n: the true
// customer count n is not public under add/remove adjacency, the DP count ñ is.
type renormStep struct {
	sgd   *dp.SGD
	scale float64 // n / ñ
}

func (s renormStep) Step(n int, grad func(i int, out []float64) float64, dir []float64) error {
	if err := s.sgd.Step(n, grad, dir); err != nil {
		return err
	}
	for j := range dir {
		dir[j] *= s.scale
	}
	return nil
}

// TrainPrivate trains the hazard model on rows with DP-SGD under o's (ε, δ)
// budget. It first releases a Gaussian count ñ of the customers, then plans
// DP-SGD with dp.PlanTraining to spend what remains of the budget after the
// count (the accountant composes both by RDP), and trains for exactly the planned
// number of steps: no early stopping, and o.Std instead of statistics of the rows.
// Of opts it uses Kind, Hidden, LearningRate, Anneal, L2, BaseHazard, Seed and
// Meta (the seed fixes the initialisation only: sampling and noise come from
// crypto/rand).
//
// The model and the PrivacyReport are (ε, δ)-DP with respect to adding or
// removing one customer. The model's metadata carries ñ, not the true counts.
// The returned TrainReport is not private (true row count, training loss): it is
// for the data holder only.
func TrainPrivate(ctx context.Context, schema feature.Schema, rows []feature.Row, opts hazard.TrainOptions, o DPOptions) (*hazard.Model, hazard.TrainReport, *PrivacyReport, error) {
	fail := func(err error) (*hazard.Model, hazard.TrainReport, *PrivacyReport, error) {
		return nil, hazard.TrainReport{}, nil, fmt.Errorf("train private: %w", err)
	}
	if err := o.defaults(); err != nil {
		return fail(err)
	}
	customers := map[string]struct{}{}
	for _, r := range rows {
		customers[r.Customer] = struct{}{}
	}
	n := len(customers)
	if n == 0 {
		return fail(errors.New("no rows"))
	}
	ledger, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return fail(err)
	}
	for _, r := range o.Spent {
		if err := ledger.Add(r); err != nil {
			return fail(fmt.Errorf("spent release: %w", err))
		}
	}
	counter, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: o.CountNoise})
	if err != nil {
		return fail(fmt.Errorf("customer count: %w", err))
	}
	v := []float64{float64(n)}
	if err := counter.AddNoise(v); err != nil {
		return fail(fmt.Errorf("customer count: %w", err))
	}
	if err := ledger.Add(counter.Release(1)); err != nil {
		return fail(err)
	}
	noisyN := max(v[0], 1)
	planN := max(int(math.Round(noisyN)), 1)
	plan, err := dp.PlanTraining(dp.PlanOptions{
		Epsilon: o.Epsilon, Delta: o.Delta, Customers: planN,
		BatchSize: min(o.BatchSize, float64(planN)), Epochs: o.Epochs, Spent: ledger,
	})
	if err != nil {
		return fail(err)
	}
	sgd, err := dp.NewSGD(dp.SGDOptions{SamplingRate: plan.SamplingRate, NoiseMultiplier: plan.NoiseMultiplier, Clip: o.Clip})
	if err != nil {
		return fail(err)
	}
	std := o.Std(schema)
	opts.Std = &std
	opts.Step = renormStep{sgd: sgd, scale: float64(n) / noisyN}
	opts.Steps, opts.EarlyStopping = plan.Steps, false
	m, tr, err := hazard.Train(ctx, schema, rows, opts)
	if err != nil {
		return fail(err)
	}
	rel := sgd.Release()
	if err := ledger.Add(rel); err != nil {
		return fail(err)
	}
	eps, order, err := ledger.Epsilon(o.Delta)
	if err != nil {
		return fail(err)
	}
	if eps > o.Epsilon*(1+1e-9) {
		return fail(fmt.Errorf("spent ε %v at δ %v, target %v: %w", eps, o.Delta, o.Epsilon, ErrOverBudget))
	}
	m.Training.Rows, m.Training.Customers = 0, planN
	return m, tr, &PrivacyReport{
		TargetEpsilon: o.Epsilon, Delta: o.Delta, Epsilon: eps, Order: order,
		Clip: o.Clip, SamplingRate: rel.Q, NoiseMultiplier: rel.Z, PlannedNoiseMultiplier: plan.NoiseMultiplier,
		Steps: rel.Steps, BatchSize: plan.SamplingRate * noisyN,
		CountSigma: counter.Sigma(), NoisyCustomers: noisyN, Releases: ledger.Releases(),
	}, nil
}
