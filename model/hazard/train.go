package hazard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// GradientStep turns per-customer gradients into one descent direction.
type GradientStep interface {
	// Step writes into dir (zeroed by Step) the descent direction for one step. n is the number of
	// customers; grad(i, out) adds customer i's loss gradient, summed over all of that customer's
	// examples, into out (len(out) == len(dir)) and returns that customer's loss.
	Step(n int, grad func(i int, out []float64) float64, dir []float64) error
}

// MeanStep is the non-private GradientStep: each step takes the next BatchSize
// customers of a seeded random permutation (a fresh permutation every epoch) and
// returns their mean gradient.
type MeanStep struct {
	batch int
	rng   *rand.Rand
	perm  []int
	pos   int
}

var _ GradientStep = (*MeanStep)(nil)

// NewMeanStep returns a MeanStep drawing batches of batch customers with a PCG
// generator seeded by seed.
func NewMeanStep(batch int, seed uint64) (*MeanStep, error) {
	if batch <= 0 {
		return nil, fmt.Errorf("new mean step: batch size %d, want > 0", batch)
	}
	return &MeanStep{batch: batch, rng: rand.New(rand.NewPCG(seed, 0x6b6169726f73))}, nil
}

// Step implements GradientStep.
func (s *MeanStep) Step(n int, grad func(i int, out []float64) float64, dir []float64) error {
	if n <= 0 {
		return errors.New("mean step: no customers")
	}
	clear(dir)
	if len(s.perm) != n {
		s.perm, s.pos = make([]int, n), n
		for i := range s.perm {
			s.perm[i] = i
		}
	}
	b := min(s.batch, n)
	for range b {
		if s.pos == n {
			s.rng.Shuffle(n, func(i, j int) { s.perm[i], s.perm[j] = s.perm[j], s.perm[i] })
			s.pos = 0
		}
		grad(s.perm[s.pos], dir)
		s.pos++
	}
	inv := 1 / float64(b)
	for j := range dir {
		dir[j] *= inv
	}
	return nil
}

// TrainOptions configures Train. Zero values take the documented defaults.
type TrainOptions struct {
	// Kind is KindLinear (default) or KindMLP; Hidden is the MLP's width.
	Kind   string
	Hidden int
	// Step makes the descent direction; nil means NewMeanStep(BatchSize, Seed).
	// The grad function Train hands it may be called concurrently with
	// distinct out slices.
	Step GradientStep
	// BatchSize is the default step's customers per step (default 256).
	BatchSize int
	// Steps is the number of optimizer steps. When 0, Epochs passes over the
	// customers at BatchSize per step (default 20 epochs), but never fewer than
	// MinSteps (default 2000): a fixed epoch count is 60 steps on a shop of
	// 1,500 customers, far from the optimum of a convex loss, and a model
	// stopped there is miscalibrated (docs/benchmarks.md, "Generalization").
	Steps    int
	Epochs   int
	MinSteps int
	// EarlyStopping holds out the rows of the latest cutoff (highest Row.Cutoff),
	// trains on the rest while measuring the held-out negative log-likelihood every
	// EvalEvery steps (default 50), stops after Patience evaluations without
	// improvement (default 8), and then refits on all rows for the best number of
	// steps (with Anneal, the refit anneals over that number). A DP caller
	// leaves it off and fixes Steps.
	EarlyStopping bool
	EvalEvery     int
	Patience      int
	// LearningRate is Adam's step size (default 0.005).
	LearningRate float64
	// Anneal decays the step size linearly from LearningRate to LearningRate/20
	// over the run, so that the last steps average out mini-batch noise.
	Anneal bool
	// L2 is the ridge penalty on every parameter except the baseline hazards,
	// added to the direction as L2·θ (data-independent).
	L2 float64
	// L2Hidden, a scratch option for measurement (docs/benchmarks.md, "A
	// nonlinear score across thirteen validation splits"), adds a ridge
	// penalty on the hidden-layer parameters (W1, c1, w2) of an MLP or wide
	// model on top of L2. 0, the default, changes nothing.
	L2Hidden float64
	// OwnDay asks the caller (evaluate) to fit the own-rhythm day's weight
	// on the training rows after training (Model.FitOwnDay); Train itself
	// ignores it, and it changes no probability.
	OwnDay bool
	// Rhythm adds the customer-dependent day shape (Model.EnableRhythm): the
	// hazard over the days of the horizon then depends on the customer's wait
	// relative to their own usual gap, not only on a shared baseline.
	Rhythm bool
	// Whether, in [0, 1], is the weight of the direct objective on P(buy
	// within the horizon) (whether.go): the loss is (1 − Whether)·NLL +
	// Whether·BCE of that probability, which leaves a non-buyer's row as it
	// is and moves weight in a buyer's row from the day of the purchase to
	// the purchase itself. 0 is the plain hazard likelihood.
	Whether float64
	// Seed seeds every random choice (batches, MLP initialisation).
	Seed uint64
	// Std, when set, is used as the standardization instead of statistics of the
	// training rows (a DP caller supplies private ones).
	Std *Standardization
	// BaseHazard is the initial daily hazard for every day (default 0.003).
	BaseHazard float64
	// Init, when set, is the starting point instead of zero weights and
	// BaseHazard: a prior model fitted on public data, which costs the
	// training data no privacy and lets a short DP-SGD run spend its few steps
	// on the shop's own differences. Its kind, width, schema (hash) and
	// standardisation must be the trained model's, and it must not have the
	// rhythm term.
	Init *Model
	// Meta is copied into the model's training metadata (Seed and Steps are
	// filled in by Train).
	Meta Metadata
}

// TrainReport says how training went.
type TrainReport struct {
	Steps     int     // optimizer steps of the returned model
	Rows      int     // training rows
	Customers int     // training customers (privacy units)
	TrainLoss float64 // mean negative log-likelihood per row on the training rows
	// ValLoss is the best held-out mean NLL per row (early stopping only).
	ValLoss float64
}

func (o *TrainOptions) defaults() error {
	if o.Kind == "" {
		o.Kind = KindLinear
	}
	if o.BatchSize == 0 {
		o.BatchSize = 256
	}
	if o.Epochs == 0 {
		o.Epochs = 20
	}
	if o.MinSteps == 0 {
		o.MinSteps = 2000
	}
	if o.EvalEvery == 0 {
		o.EvalEvery = 50
	}
	if o.Patience == 0 {
		o.Patience = 8
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.005
	}
	if o.BaseHazard == 0 {
		o.BaseHazard = 0.003
	}
	switch {
	case o.BatchSize < 0, o.Steps < 0, o.Epochs < 0, o.MinSteps < 0, o.EvalEvery < 0, o.Patience < 0:
		return errors.New("negative size option")
	case !(o.LearningRate > 0) || math.IsInf(o.LearningRate, 0):
		return fmt.Errorf("learning rate %v, want > 0", o.LearningRate)
	case !(o.L2 >= 0) || math.IsInf(o.L2, 0):
		return fmt.Errorf("l2 %v, want ≥ 0", o.L2)
	case !(o.L2Hidden >= 0) || math.IsInf(o.L2Hidden, 0):
		return fmt.Errorf("l2 hidden %v, want ≥ 0", o.L2Hidden)
	}
	if err := checkWhether(o.Whether); err != nil {
		return err
	}
	return nil
}

// dataset is rows standardised into one flat matrix and grouped by customer.
type dataset struct {
	d      int
	z      []float64 // row-major, len rows·d
	labels []int
	groups [][]int // customer -> row indices
}

func newDataset(m *Model, rows []feature.Row, keep func(feature.Row) bool) *dataset {
	d := m.Schema.Len()
	n := 0
	for _, r := range rows {
		if keep == nil || keep(r) {
			n++
		}
	}
	// One exact allocation: the matrix is the largest thing training holds.
	ds := &dataset{d: d, z: make([]float64, n*d), labels: make([]int, 0, n)}
	byCustomer := map[string]int{}
	for _, r := range rows {
		if keep != nil && !keep(r) {
			continue
		}
		i := len(ds.labels)
		m.standardize(r.X, ds.z[i*d:(i+1)*d])
		ds.labels = append(ds.labels, r.Label)
		g, ok := byCustomer[r.Customer]
		if !ok {
			g = len(ds.groups)
			byCustomer[r.Customer] = g
			ds.groups = append(ds.groups, nil)
		}
		ds.groups[g] = append(ds.groups[g], i)
	}
	return ds
}

func (ds *dataset) row(i int) []float64 { return ds.z[i*ds.d : (i+1)*ds.d] }

// meanLoss is the mean NLL per row under parameters p.
func (m *Model) meanLoss(p []float64, ds *dataset) float64 {
	if len(ds.labels) == 0 {
		return math.NaN()
	}
	hid, eb, rs := make([]float64, m.Hidden), make([]float64, m.Horizon), m.newRhythmScratch()
	m.expBaselines(p, eb)
	var s float64
	for i, y := range ds.labels {
		s += m.exampleLoss(p, eb, ds.row(i), y, nil, hid, rs)
	}
	return s / float64(len(ds.labels))
}

// CustomerLoss returns the loss of one customer's rows (summed) and, when grad is
// non-nil, adds its gradient into grad. It is what Train hands a GradientStep,
// exported so that callers can check gradients and clip norms themselves.
func (m *Model) CustomerLoss(rows []feature.Row, grad []float64) (float64, error) {
	hid, eb, rs := make([]float64, m.Hidden), make([]float64, m.Horizon), m.newRhythmScratch()
	m.expBaselines(m.Params, eb)
	z := make([]float64, m.Schema.Len())
	var s float64
	for _, r := range rows {
		if len(r.X) != len(z) {
			return 0, fmt.Errorf("customer loss: %w: got %d, want %d", ErrFeatureCount, len(r.X), len(z))
		}
		if r.Label < 0 || r.Label > m.Horizon {
			return 0, fmt.Errorf("customer loss: label %d outside 0..%d", r.Label, m.Horizon)
		}
		m.standardize(r.X, z)
		s += m.exampleLoss(m.Params, eb, z, r.Label, grad, hid, rs)
	}
	return s, nil
}

// ComputeStandardization returns per-feature means and standard deviations of the
// rows' vectors; a constant feature gets scale 1.
func ComputeStandardization(rows []feature.Row, d int) Standardization {
	s := Standardization{Mean: make([]float64, d), Scale: make([]float64, d)}
	if len(rows) == 0 {
		for j := range s.Scale {
			s.Scale[j] = 1
		}
		return s
	}
	n := float64(len(rows))
	for _, r := range rows {
		for j, v := range r.X {
			s.Mean[j] += v
		}
	}
	for j := range s.Mean {
		s.Mean[j] /= n
	}
	for _, r := range rows {
		for j, v := range r.X {
			dv := v - s.Mean[j]
			s.Scale[j] += dv * dv
		}
	}
	for j := range s.Scale {
		s.Scale[j] = math.Sqrt(s.Scale[j] / n)
		if !(s.Scale[j] > 1e-12) {
			s.Scale[j] = 1
		}
	}
	return s
}

// Train fits a hazard model on rows (features from schema) and returns it with a
// report. ctx cancels a long run between steps.
func Train(ctx context.Context, schema feature.Schema, rows []feature.Row, opts TrainOptions) (*Model, TrainReport, error) {
	if err := opts.defaults(); err != nil {
		return nil, TrainReport{}, fmt.Errorf("train hazard: %w", err)
	}
	if len(rows) == 0 {
		return nil, TrainReport{}, errors.New("train hazard: no rows")
	}
	for i, r := range rows {
		if len(r.X) != schema.Len() {
			return nil, TrainReport{}, fmt.Errorf("train hazard: row %d: %w: got %d, want %d", i, ErrFeatureCount, len(r.X), schema.Len())
		}
		if r.Label < 0 || r.Label > model.Horizon {
			return nil, TrainReport{}, fmt.Errorf("train hazard: row %d: label %d outside 0..%d", i, r.Label, model.Horizon)
		}
	}
	std := ComputeStandardization(rows, schema.Len())
	if opts.Std != nil {
		std = *opts.Std
	}
	m, err := New(opts.Kind, schema, std, opts.Hidden, opts.BaseHazard)
	if err != nil {
		return nil, TrainReport{}, fmt.Errorf("train hazard: %w", err)
	}
	m.whether = opts.Whether
	if opts.Rhythm {
		if err := m.EnableRhythm(); err != nil {
			return nil, TrainReport{}, fmt.Errorf("train hazard: rhythm: %w", err)
		}
	}
	if opts.Init != nil {
		if err := compatibleInit(opts.Init, m); err != nil {
			return nil, TrainReport{}, fmt.Errorf("train hazard: init: %w", err)
		}
	}
	all := newDataset(m, rows, nil)
	steps := opts.Steps
	if steps == 0 {
		steps = max(opts.Epochs*((len(all.groups)+opts.BatchSize-1)/opts.BatchSize), opts.MinSteps)
	}
	var rep TrainReport
	if opts.EarlyStopping {
		last := slices.MaxFunc(rows, func(a, b feature.Row) int { return a.Cutoff - b.Cutoff }).Cutoff
		train := newDataset(m, rows, func(r feature.Row) bool { return r.Cutoff != last })
		val := newDataset(m, rows, func(r feature.Row) bool { return r.Cutoff == last })
		if len(train.groups) == 0 || len(val.groups) == 0 {
			return nil, TrainReport{}, errors.New("train hazard: early stopping needs at least two cutoffs")
		}
		best, bestLoss := 0, math.Inf(1)
		bad := 0
		err := m.run(ctx, train, opts, steps, func(step int, p []float64) bool {
			if step%opts.EvalEvery != 0 {
				return true
			}
			l := m.meanLoss(p, val)
			if l < bestLoss-1e-6 {
				best, bestLoss, bad = step, l, 0
			} else {
				bad++
			}
			return bad < opts.Patience
		})
		if err != nil {
			return nil, TrainReport{}, fmt.Errorf("train hazard: %w", err)
		}
		steps, rep.ValLoss = max(best, opts.EvalEvery), bestLoss
	}
	if err := m.run(ctx, all, opts, steps, nil); err != nil {
		return nil, TrainReport{}, fmt.Errorf("train hazard: %w", err)
	}
	rep.Steps, rep.Rows, rep.Customers = steps, len(all.labels), len(all.groups)
	rep.TrainLoss = m.meanLoss(m.Params, all)
	m.Training = opts.Meta
	m.Training.Seed, m.Training.Steps = opts.Seed, steps
	m.Training.Rows, m.Training.Customers = rep.Rows, rep.Customers
	return m, rep, nil
}

// compatibleInit says why prior cannot start the training of m, or nil.
func compatibleInit(prior, m *Model) error {
	switch {
	case prior.Kind != m.Kind || prior.Hidden != m.Hidden:
		return fmt.Errorf("prior is %s/%d, model %s/%d", prior.Kind, prior.Hidden, m.Kind, m.Hidden)
	case prior.Schema.Hash != m.Schema.Hash:
		return fmt.Errorf("prior schema %.12s…, model schema %.12s…", prior.Schema.Hash, m.Schema.Hash)
	case prior.Rhythm():
		return errors.New("prior has the rhythm term")
	case len(prior.Params) != NumParams(m.Kind, m.Schema.Len(), m.Hidden, m.Horizon):
		return fmt.Errorf("prior has %d parameters, model %d", len(prior.Params), NumParams(m.Kind, m.Schema.Len(), m.Hidden, m.Horizon))
	case !slices.Equal(prior.Std.Mean, m.Std.Mean) || !slices.Equal(prior.Std.Scale, m.Std.Scale):
		return errors.New("prior and model standardise the features differently")
	}
	for _, v := range prior.Params {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("prior has a non-finite parameter")
		}
	}
	return nil
}

// run resets m's parameters to their seeded initial values and takes steps Adam
// steps on ds. after, if non-nil, is called after every step with the step number
// (1-based) and the parameters; returning false stops early.
func (m *Model) run(ctx context.Context, ds *dataset, opts TrainOptions, steps int, after func(int, []float64) bool) error {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x696e6974))
	H := m.Horizon
	lo := math.Log(opts.BaseHazard / (1 - opts.BaseHazard))
	p := m.Params
	for j := range p {
		p[j] = 0
		if j < H {
			p[j] = lo
		}
	}
	switch {
	case opts.Init != nil:
		copy(p, opts.Init.Params)
	case m.Kind == KindMLP:
		d, Hd := ds.d, m.Hidden
		w := p[H:]
		for j := range w[:Hd*d] {
			w[j] = rng.NormFloat64() / math.Sqrt(float64(d))
		}
		for j := range w[Hd*d+Hd : Hd*d+2*Hd] {
			w[Hd*d+Hd+j] = rng.NormFloat64() * 0.1 / math.Sqrt(float64(Hd))
		}
	case m.Kind == KindWide:
		// The linear part starts at zero and the residual at zero output
		// (w2 = 0), its input weights drawn as the MLP's.
		d, Hd := ds.d, m.Hidden
		w := p[H+d:]
		for j := range w[:Hd*d] {
			w[j] = rng.NormFloat64() / math.Sqrt(float64(d))
		}
	}
	// hidLo..hidHi are the hidden-layer parameters L2Hidden shrinks.
	hidLo, hidHi := 0, 0
	if opts.L2Hidden > 0 {
		switch m.Kind {
		case KindMLP:
			hidLo = H
		case KindWide:
			hidLo = H + ds.d
		}
		if hidLo > 0 {
			hidHi = hidLo + m.Hidden*ds.d + 2*m.Hidden
		}
	}
	step := opts.Step
	if step == nil {
		var err error
		if step, err = NewMeanStep(opts.BatchSize, opts.Seed); err != nil {
			return err
		}
	}
	eb := make([]float64, H)
	// grad may be called concurrently by a GradientStep (with distinct out
	// slices): it only reads p and eb and keeps its scratch local.
	grad := func(i int, out []float64) float64 {
		var hid []float64
		if m.Hidden > 0 {
			hid = make([]float64, m.Hidden)
		}
		rs := m.newRhythmScratch()
		var s float64
		for _, r := range ds.groups[i] {
			s += m.exampleLoss(p, eb, ds.row(r), ds.labels[r], out, hid, rs)
		}
		return s
	}
	dir := make([]float64, len(p))
	mom, vel := make([]float64, len(p)), make([]float64, len(p))
	const b1, b2, eps = 0.9, 0.999, 1e-8
	for s := 1; s <= steps; s++ {
		if s%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		m.expBaselines(p, eb) // p is fixed for the whole step
		if err := step.Step(len(ds.groups), grad, dir); err != nil {
			return fmt.Errorf("step %d: %w", s, err)
		}
		lr := opts.LearningRate
		if opts.Anneal {
			lr *= 1 - 0.95*float64(s-1)/float64(max(steps-1, 1))
		}
		c1 := 1 - math.Pow(b1, float64(s))
		c2 := 1 - math.Pow(b2, float64(s))
		for j := range p {
			g := dir[j]
			if j >= H {
				g += opts.L2 * p[j]
			}
			if j >= hidLo && j < hidHi {
				g += opts.L2Hidden * p[j]
			}
			mom[j] = b1*mom[j] + (1-b1)*g
			vel[j] = b2*vel[j] + (1-b2)*g*g
			p[j] -= lr * (mom[j] / c1) / (math.Sqrt(vel[j]/c2) + eps)
		}
		if after != nil && !after(s, p) {
			break
		}
	}
	return nil
}
