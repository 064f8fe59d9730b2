package merge

import (
	"fmt"
	"math"
)

// Adam is the FedAdam server optimizer of Reddi et al. 2021 ("Adaptive Federated
// Optimization", Algorithm 2). The combined update Δ of a round (local − base, so
// it already points downhill) is a pseudo-gradient:
//
//	m ← β₁·m + (1 − β₁)·Δ
//	v ← β₂·v + (1 − β₂)·Δ²
//	x ← x + η·m / (√v + τ)
//
// with no bias correction, as in the paper; τ bounds the adaptivity (a coordinate
// whose updates are tiny moves by at most η·|m|/τ). The struct is the whole state,
// so it is stored as JSON between rounds and a restarted aggregator continues
// exactly where it was.
type Adam struct {
	LR    float64   `json:"lr"`    // η, > 0
	Beta1 float64   `json:"beta1"` // β₁ ∈ [0, 1)
	Beta2 float64   `json:"beta2"` // β₂ ∈ [0, 1)
	Tau   float64   `json:"tau"`   // τ > 0
	M     []float64 `json:"m,omitempty"`
	V     []float64 `json:"v,omitempty"`
	T     int       `json:"t"` // rounds applied
}

// NewAdam returns a FedAdam optimizer with step size lr and adaptivity tau and the
// paper's moment decays β₁ = 0.9, β₂ = 0.99.
func NewAdam(lr, tau float64) *Adam {
	return &Adam{LR: lr, Beta1: DefaultFedAdamBeta1, Beta2: DefaultFedAdamBeta2, Tau: tau}
}

// Validate reports whether a's hyper-parameters and state are usable.
func (a *Adam) Validate() error {
	switch {
	case !(a.LR > 0) || math.IsInf(a.LR, 0):
		return fmt.Errorf("%w: adam learning rate %v must be finite and > 0", ErrOptions, a.LR)
	case !(a.Beta1 >= 0 && a.Beta1 < 1):
		return fmt.Errorf("%w: adam beta1 %v outside [0, 1)", ErrOptions, a.Beta1)
	case !(a.Beta2 >= 0 && a.Beta2 < 1):
		return fmt.Errorf("%w: adam beta2 %v outside [0, 1)", ErrOptions, a.Beta2)
	case !(a.Tau > 0) || math.IsInf(a.Tau, 0):
		return fmt.Errorf("%w: adam tau %v must be finite and > 0", ErrOptions, a.Tau)
	case len(a.M) != len(a.V):
		return fmt.Errorf("%w: adam state has %d first and %d second moments", ErrOptions, len(a.M), len(a.V))
	case a.T < 0:
		return fmt.Errorf("%w: adam step count %d < 0", ErrOptions, a.T)
	}
	for i := range a.M {
		if math.IsNaN(a.M[i]) || math.IsInf(a.M[i], 0) || !(a.V[i] >= 0) || math.IsInf(a.V[i], 0) {
			return fmt.Errorf("%w: adam state coordinate %d is (m %v, v %v)", ErrOptions, i, a.M[i], a.V[i])
		}
	}
	return nil
}

// Step applies one server step to params in place, with aggregatedDelta as the
// pseudo-gradient. The moments are created on the first step; afterwards every
// length must match. On error nothing is changed.
func (a *Adam) Step(params, aggregatedDelta []float64) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("adam step: %w", err)
	}
	if len(params) != len(aggregatedDelta) {
		return fmt.Errorf("adam step: %w: %d parameters, delta has %d", ErrLength, len(params), len(aggregatedDelta))
	}
	if a.M != nil && len(a.M) != len(params) {
		return fmt.Errorf("adam step: %w: state has %d parameters, model has %d", ErrLength, len(a.M), len(params))
	}
	for i, x := range aggregatedDelta {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("adam step: %w: delta coordinate %d is %v", ErrNonFinite, i, x)
		}
	}
	for i, x := range params {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("adam step: %w: parameter %d is %v", ErrNonFinite, i, x)
		}
	}
	if a.M == nil {
		a.M, a.V = make([]float64, len(params)), make([]float64, len(params))
	}
	for i, g := range aggregatedDelta {
		a.M[i] = a.Beta1*a.M[i] + (1-a.Beta1)*g
		a.V[i] = a.Beta2*a.V[i] + (1-a.Beta2)*g*g
		params[i] += a.LR * a.M[i] / (math.Sqrt(a.V[i]) + a.Tau)
	}
	a.T++
	return nil
}
