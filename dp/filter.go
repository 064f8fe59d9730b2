package dp

import (
	"errors"
	"fmt"
	"math"
)

// ErrBudgetExhausted is returned (wrapped) by Filter.Check when a release would take the
// composed ε past the cap. The caller must not make the release.
var ErrBudgetExhausted = errors.New("privacy budget exhausted")

// FilterTolerance is the relative slack Filter.Check allows above the cap: a release is
// refused when ε after it exceeds Cap·(1 + FilterTolerance). It absorbs floating-point
// noise in recomputing the same ε (a plan calibrated to spend exactly the cap must pass)
// and is far below any meaningful privacy difference.
const FilterTolerance = 1e-9

// Filter is a privacy filter: it admits a release only if the ε of everything already in
// the ledger plus that release, at Delta, stays within Cap. There is no implicit refresh:
// a budget spent stays spent for the life of the ledger.
type Filter struct {
	Cap   float64 // ε cap, finite and > 0
	Delta float64 // δ at which ε is measured, in (0, 1)
}

// Check returns ε after next would be debited. It returns an error wrapping
// ErrBudgetExhausted (together with that ε) when the cap would be exceeded, and an error
// wrapping ErrInvalidParameter for an invalid filter or release. Check does not debit; on
// success the caller makes the release and then calls ledger.Add(next).
func (f Filter) Check(l *Ledger, next Release) (epsAfter float64, err error) {
	if !(f.Cap > 0) || math.IsInf(f.Cap, 0) {
		return 0, fmt.Errorf("budget check: cap %v must be finite and > 0: %w", f.Cap, ErrInvalidParameter)
	}
	if err := checkDelta(f.Delta); err != nil {
		return 0, fmt.Errorf("budget check: %w", err)
	}
	eps, _, err := l.EpsilonAfter(next, f.Delta)
	if err != nil {
		return 0, fmt.Errorf("budget check: %w", err)
	}
	if eps > f.Cap*(1+FilterTolerance) {
		return eps, fmt.Errorf("budget check: ε would be %.6g at δ %g, cap %.6g: %w", eps, f.Delta, f.Cap, ErrBudgetExhausted)
	}
	return eps, nil
}
