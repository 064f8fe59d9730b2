package distributed

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/kairos-fl/kairos/dp"
)

// Release returns the ledger debit of steps rounds encoded with p, in which each of a
// merchant's customers is Poisson-sampled at rate q and the sum carries the noise of at
// least minCohort honest merchants: the DDGauss release with p's noise variance (rounded
// down to a float64, which can only raise ε), the rounding's norm bounds and the padded
// dimension.
func (p Params) Release(minCohort int, q float64, steps int) (dp.Release, error) {
	if err := p.Validate(); err != nil {
		return dp.Release{}, fmt.Errorf("release: %w", err)
	}
	s2, _ := p.LocalVariance.Float64()
	if new(big.Rat).SetFloat64(s2).Cmp(p.LocalVariance) > 0 {
		s2 = math.Nextafter(s2, 0)
	}
	r := dp.Release{
		Mechanism: dp.DDGauss, Q: q, Steps: steps,
		Sigma2: s2, Cohort: minCohort, L2: p.NormBound(), L1: p.L1Bound(), Dim: p.PaddedDim(),
	}
	if err := r.Validate(); err != nil {
		return dp.Release{}, fmt.Errorf("release: %w", err)
	}
	return r, nil
}

// PlanOptions describes a secure-aggregation training to plan.
type PlanOptions struct {
	Dim  int     // parameters per contribution
	Clip float64 // L2 bound C per customer
	// Beta is the conditional rounding's β; 0 means e^−½, the paper's choice.
	Beta float64
	// MinCohort is the number of honest merchants whose noise shares the privacy
	// guarantee counts on (the policy's min_cohort); each merchant adds 1/MinCohort of
	// the variance.
	MinCohort int
	// MaxCohort and MaxCustomers bound a round's merchants and contributing customers in
	// all, for the modulus; MaxCohort ≥ MinCohort.
	MaxCohort, MaxCustomers int
	// SamplingRate is each customer's Poisson sampling rate per round; Steps the rounds.
	SamplingRate float64
	Steps        int
	// Epsilon at Delta is the total budget, including what Spent (if not nil) holds.
	Epsilon, Delta float64
	Spent          *dp.Ledger
	// Accountant selects the orders when Spent is nil.
	Accountant dp.AccountantOptions
	// Bits is the largest modulus exponent allowed; 0 means 32.
	Bits int
	// WrapProbability bounds the chance that a round's sum wraps; 0 means 1e-9.
	WrapProbability float64
	// Gamma fixes the grid step; 0 chooses the finest C/2^k (k ≤ 24) whose sum fits Bits.
	Gamma float64
	// Seed is the round's public rotation seed, copied into the parameters.
	Seed Seed
}

// Plan is a chosen encoding and what it costs.
type Plan struct {
	Params  Params     `json:"params"`
	Release dp.Release `json:"release"`
	// Epsilon is ε at Delta after the training (and whatever Spent held), at Order.
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Order   float64 `json:"order"`
	// NoiseStd is the standard deviation per coordinate, in the update's units, of the
	// noise in a sum of MinCohort merchants' encodings (at most γ·√(MinCohort·σ²));
	// a larger cohort adds proportionally more variance.
	NoiseStd float64 `json:"noise_std"`
	// NoiseMultiplier is NoiseStd / Clip, comparable with plain DP-SGD's z.
	NoiseMultiplier float64 `json:"noise_multiplier"`
}

// ErrNoPlan is returned when no grid step fits the modulus.
var ErrNoPlan = errors.New("no encoding fits the modulus")

// MakePlan chooses γ, the noise share and the modulus for o: for each grid step γ = C/2^k,
// finest first (or o.Gamma alone), the smallest local variance whose release keeps ε ≤
// o.Epsilon (bisection, relative precision 1e-6, always on the safe side), then the bits
// RequiredBits needs; the first γ that fits o.Bits wins.
func MakePlan(o PlanOptions) (Plan, error) {
	if o.Beta == 0 {
		o.Beta = DefaultBeta()
	}
	if o.Bits == 0 {
		o.Bits = MaxBits
	}
	if o.WrapProbability == 0 {
		o.WrapProbability = 1e-9
	}
	switch {
	case o.MinCohort < 1:
		return Plan{}, fmt.Errorf("plan: min cohort %d must be ≥ 1: %w", o.MinCohort, ErrInvalidParams)
	case o.MaxCohort < o.MinCohort:
		return Plan{}, fmt.Errorf("plan: max cohort %d below min cohort %d: %w", o.MaxCohort, o.MinCohort, ErrInvalidParams)
	case o.MaxCustomers < 1:
		return Plan{}, fmt.Errorf("plan: max customers %d must be ≥ 1: %w", o.MaxCustomers, ErrInvalidParams)
	case !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0):
		return Plan{}, fmt.Errorf("plan: ε %v must be finite and > 0: %w", o.Epsilon, ErrInvalidParams)
	case o.Steps < 1:
		return Plan{}, fmt.Errorf("plan: steps %d must be ≥ 1: %w", o.Steps, ErrInvalidParams)
	}
	spent := o.Spent
	if spent == nil {
		l, err := dp.NewLedger(o.Accountant)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		spent = l
	}
	gammas := []float64{o.Gamma}
	if o.Gamma == 0 {
		gammas = gammas[:0]
		for k := 24; k >= 0; k-- {
			gammas = append(gammas, o.Clip/math.Ldexp(1, k))
		}
	}
	var lastErr error
	for _, g := range gammas {
		p := Params{Dim: o.Dim, Clip: o.Clip, Gamma: g, Beta: o.Beta, Bits: MaxBits, Seed: o.Seed, LocalVariance: big.NewRat(1, 1)}
		if err := p.Validate(); err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		plan, err := planAt(p, o, spent)
		if err != nil {
			return Plan{}, err
		}
		b, err := RequiredBits(plan.Params, o.MaxCohort, o.MaxCustomers, o.WrapProbability)
		if err != nil || b > o.Bits {
			lastErr = err
			continue
		}
		plan.Params.Bits = b
		return plan, nil
	}
	if lastErr == nil {
		lastErr = ErrNoPlan
	}
	return Plan{}, fmt.Errorf("plan: no grid step fits %d bits for %d merchants and %d customers: %w", o.Bits, o.MaxCohort, o.MaxCustomers, errors.Join(ErrNoPlan, lastErr))
}

// planAt finds the smallest local variance for the grid step of p.
func planAt(p Params, o PlanOptions, spent *dp.Ledger) (Plan, error) {
	epsAt := func(s2 float64) (float64, float64, dp.Release, error) {
		q := p
		q.LocalVariance = new(big.Rat).SetFloat64(s2)
		r, err := q.Release(o.MinCohort, o.SamplingRate, o.Steps)
		if err != nil {
			return 0, 0, dp.Release{}, err
		}
		e, ord, err := spent.EpsilonAfter(r, o.Delta)
		return e, ord, r, err
	}
	lo, hi := 0.25, 1.0
	for {
		e, _, _, err := epsAt(hi)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		if e <= o.Epsilon {
			break
		}
		lo, hi = hi, 4*hi
		if hi > 1<<60 {
			return Plan{}, fmt.Errorf("plan: ε %v at δ %v out of reach with local variance ≤ 2^60 at γ %v: %w", o.Epsilon, o.Delta, p.Gamma, ErrNoPlan)
		}
	}
	for hi-lo > 1e-6*hi {
		mid := (lo + hi) / 2
		e, _, _, err := epsAt(mid)
		if err != nil {
			return Plan{}, fmt.Errorf("plan: %w", err)
		}
		if e > o.Epsilon {
			lo = mid
		} else {
			hi = mid
		}
	}
	e, ord, r, err := epsAt(hi)
	if err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	p.LocalVariance = new(big.Rat).SetFloat64(hi)
	std := p.Gamma * math.Sqrt(float64(o.MinCohort)*hi)
	return Plan{Params: p, Release: r, Epsilon: e, Delta: o.Delta, Order: ord, NoiseStd: std, NoiseMultiplier: std / p.Clip}, nil
}
