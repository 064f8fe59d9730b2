package dp

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// SGDOptions configures a DP-SGD gradient step.
type SGDOptions struct {
	// SamplingRate is the Poisson sampling rate q ∈ (0, 1]: each customer is in a step's
	// batch independently with probability q.
	SamplingRate float64
	// NoiseMultiplier is the target z; the noise per coordinate is σ ≥ z·Clip (see
	// VectorGaussian for how the library is made to add it).
	NoiseMultiplier float64
	// Clip is the L2 bound C on one customer's gradient (summed over all of that customer's
	// examples), the sensitivity of the batch sum under add/remove of one customer.
	Clip float64
	// Customers, when positive, is the customer count the noisy sum is divided by (as
	// q·Customers). It must not depend on the private data beyond what has been released:
	// pass a DP count (already debited) or a public figure. When zero, Step divides by q·n
	// with the true n, which treats the number of customers as public — acceptable under
	// replace-one adjacency but a small leak under add/remove adjacency, so private callers
	// set it.
	Customers float64
}

// SGD is a differentially private gradient step with user-level (customer-level) clipping.
// Each Step Poisson-samples customers with rate q, clips each sampled customer's gradient
// to L2 norm ≤ C, sums, adds Gaussian noise of σ = z·C per coordinate through the DP
// library and divides by the expected batch size q·n. It satisfies the hazard model's
// GradientStep interface structurally.
//
// Sampling randomness comes from a ChaCha8 generator seeded from crypto/rand when the SGD
// is built: the amplification-by-sampling analysis assumes the adversary cannot predict
// which customers are sampled. The noise comes from the DP library's own crypto/rand
// source. An SGD is not safe for concurrent use.
type SGD struct {
	q       float64
	norm    float64 // SGDOptions.Customers; 0 = use the true n
	mech    *VectorGaussian
	rng     *rand.Rand
	steps   int
	dropped int
	buf     []float64
}

// NewSGD validates opt and calibrates the noise.
func NewSGD(opt SGDOptions) (*SGD, error) {
	if !(opt.SamplingRate > 0 && opt.SamplingRate <= 1) {
		return nil, fmt.Errorf("new sgd: sampling rate %v must be in (0, 1]: %w", opt.SamplingRate, ErrInvalidParameter)
	}
	if opt.Customers < 0 || math.IsNaN(opt.Customers) || math.IsInf(opt.Customers, 0) {
		return nil, fmt.Errorf("new sgd: customers %v must be a finite non-negative number: %w", opt.Customers, ErrInvalidParameter)
	}
	mech, err := NewVectorGaussian(GaussianOptions{Clip: opt.Clip, NoiseMultiplier: opt.NoiseMultiplier})
	if err != nil {
		return nil, fmt.Errorf("new sgd: %w", err)
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never returns an error since Go 1.24
	return &SGD{q: opt.SamplingRate, norm: opt.Customers, mech: mech, rng: rand.New(rand.NewChaCha8(seed))}, nil
}

// ErrNoCustomers is returned by Step when n < 0.
var ErrNoCustomers = errors.New("negative number of customers")

// Step writes into dir (zeroed by Step) the noisy descent direction for one step:
// (Σ over sampled customers of clip(gᵢ) + N(0, σ²I)) / (q·N), N = SGDOptions.Customers
// when set, else max(n, 1). grad(i, out) must add customer i's loss gradient into out.
//
// Whether a step completes never depends on the data: a customer whose gradient holds a
// NaN or an Inf contributes zero (a vector of norm 0 ≤ C, so the sum's sensitivity stays
// C; Dropped counts them), and n = 0 releases noise alone. Refusing instead would make
// "this merchant submitted" a function of one customer's data, outside any accounting.
func (s *SGD) Step(n int, grad func(i int, out []float64) float64, dir []float64) error {
	if n < 0 {
		return fmt.Errorf("dp step: n = %d: %w", n, ErrNoCustomers)
	}
	s.clippedSum(n, grad, dir)
	if err := s.mech.AddNoise(dir); err != nil {
		clear(dir)
		return fmt.Errorf("dp step: %w", err)
	}
	norm := float64(max(n, 1))
	if s.norm > 0 {
		norm = max(s.norm, 1)
	}
	scale := 1 / (s.q * norm)
	for i := range dir {
		dir[i] *= scale
	}
	s.steps++
	return nil
}

// clippedSum is the noiseless part of Step: dir = Σ over Poisson-sampled customers of
// their clipped gradients, a non-finite gradient counting as zero. Tests use it to check
// clipping without noise.
func (s *SGD) clippedSum(n int, grad func(i int, out []float64) float64, dir []float64) {
	clear(dir)
	if cap(s.buf) < len(dir) {
		s.buf = make([]float64, len(dir))
	}
	g := s.buf[:len(dir)]
	c := s.mech.Clip()
	for i := range n {
		if s.q < 1 && s.rng.Float64() >= s.q {
			continue
		}
		clear(g)
		grad(i, g)
		if _, err := ClipL2(g, c); err != nil {
			// Only a non-finite gradient fails to clip (c was validated): it
			// contributes nothing.
			s.dropped++
			continue
		}
		for k, x := range g {
			dir[k] += x
		}
	}
}

// Steps returns how many steps have been released.
func (s *SGD) Steps() int { return s.steps }

// Dropped returns how many sampled customer gradients so far held a NaN or an Inf and
// contributed zero. It describes the private data: keep it local, never release it.
func (s *SGD) Dropped() int { return s.dropped }

// Sigma returns the noise standard deviation actually added per coordinate of the sum.
func (s *SGD) Sigma() float64 { return s.mech.Sigma() }

// Release returns what the steps so far cost: {Q: q, Z: σ actually added / C, Steps}. The
// caller debits it to the merchant's ledger. Steps is 0 before the first step, which
// Release.Validate refuses: there is nothing to debit yet.
func (s *SGD) Release() Release {
	return Release{Mechanism: Gaussian, Q: s.q, Z: s.mech.NoiseMultiplier(), Steps: s.steps}
}

// PlanOptions describes a training to calibrate for a target (ε, δ).
type PlanOptions struct {
	// Epsilon and Delta are the target; the plan spends at most Epsilon at Delta.
	Epsilon, Delta float64
	// Customers is the number n of customers (privacy units) in the training data; needed
	// with BatchSize.
	Customers int
	// Exactly one of BatchSize (expected batch size, q = BatchSize/n) and SamplingRate.
	BatchSize    float64
	SamplingRate float64
	// Exactly one of Epochs (expected passes over the customers; steps = ⌈Epochs/q⌉) and
	// Steps.
	Epochs float64
	Steps  int
	// Accountant selects the orders and series; the zero value is the default accountant.
	// Ignored when Spent is set.
	Accountant AccountantOptions
	// Spent, if not nil, holds releases already debited: the plan then spends at most
	// Epsilon in total, ledger included, over the ledger's orders and series.
	Spent *Ledger
}

// Plan is a calibrated DP-SGD configuration.
type Plan struct {
	SamplingRate    float64 `json:"sampling_rate"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Steps           int     `json:"steps"`
	// Epsilon is the ε of the plan at Delta (with PlanOptions.Spent: of the ledger plus the
	// plan): equal to the target to within the bisection's precision and never above it. The SGD built from the plan adds σ up to 1e-3 larger
	// (library calibration), so the ε it is charged is at most this.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Order   float64 `json:"order"`
}

// Release returns the debit the whole planned training makes.
func (p Plan) Release() Release {
	return Release{Mechanism: Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps}
}

// PlanTraining returns (q, z, steps) for a training that spends the target ε at δ: q from
// the batch size, steps from the epochs, and the smallest z meeting the target by
// NoiseMultiplier.
func PlanTraining(opt PlanOptions) (Plan, error) {
	q := opt.SamplingRate
	switch {
	case opt.BatchSize != 0 && q != 0:
		return Plan{}, fmt.Errorf("plan training: give a batch size or a sampling rate, not both: %w", ErrInvalidParameter)
	case opt.BatchSize != 0:
		if opt.Customers < 1 {
			return Plan{}, fmt.Errorf("plan training: customers %d must be ≥ 1 with a batch size: %w", opt.Customers, ErrInvalidParameter)
		}
		if !(opt.BatchSize > 0 && opt.BatchSize <= float64(opt.Customers)) {
			return Plan{}, fmt.Errorf("plan training: batch size %v must be in (0, customers = %d]: %w",
				opt.BatchSize, opt.Customers, ErrInvalidParameter)
		}
		q = opt.BatchSize / float64(opt.Customers)
	}
	if !(q > 0 && q <= 1) {
		return Plan{}, fmt.Errorf("plan training: sampling rate %v must be in (0, 1]: %w", q, ErrInvalidParameter)
	}
	steps := opt.Steps
	switch {
	case opt.Epochs != 0 && steps != 0:
		return Plan{}, fmt.Errorf("plan training: give epochs or steps, not both: %w", ErrInvalidParameter)
	case opt.Epochs != 0:
		if !(opt.Epochs > 0) || math.IsInf(opt.Epochs, 0) {
			return Plan{}, fmt.Errorf("plan training: epochs %v must be finite and > 0: %w", opt.Epochs, ErrInvalidParameter)
		}
		stepsF := math.Ceil(opt.Epochs/q - 1e-9)
		if stepsF > 1e9 {
			return Plan{}, fmt.Errorf("plan training: %v steps is too many: %w", stepsF, ErrInvalidParameter)
		}
		steps = int(stepsF)
	}
	if steps < 1 {
		return Plan{}, fmt.Errorf("plan training: steps %d must be ≥ 1 (give epochs or steps): %w", steps, ErrInvalidParameter)
	}
	var z float64
	var err error
	if opt.Spent != nil {
		z, err = opt.Spent.NoiseMultiplierAfter(opt.Epsilon, opt.Delta, q, steps)
	} else {
		z, err = NoiseMultiplier(opt.Epsilon, opt.Delta, q, steps, opt.Accountant)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("plan training: %w", err)
	}
	p := Plan{SamplingRate: q, NoiseMultiplier: z, Steps: steps, Delta: opt.Delta}
	if opt.Spent != nil {
		p.Epsilon, p.Order, err = opt.Spent.EpsilonAfter(p.Release(), opt.Delta)
	} else {
		p.Epsilon, p.Order, err = Epsilon([]Release{p.Release()}, opt.Delta, opt.Accountant)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("plan training: %w", err)
	}
	return p, nil
}
