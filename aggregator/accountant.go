package aggregator

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// accountant computes a merchant's ε after a debit the way dp.Ledger does —
// the RDP curves of every release summed order by order, each distinct
// mechanism's per-step curve scaled by its total steps, then converted at the
// policy's δ — but keeps what does not change between debits: the per-step
// curve of each mechanism (a few hundred microseconds to compute, and every
// merchant of a federation releases under a handful of them), and each
// merchant's ledger summarised as its distinct mechanisms with their steps,
// keyed by the budget head version it was read at. The version advances with
// every debit under the head's row lock, so a summary whose version equals
// the locked head's is exactly the stored ledger; any other (another replica
// debited meanwhile, a rerun transaction) is read again from the rows.
type accountant struct {
	mu      sync.Mutex
	orders  []float64
	curves  map[dp.Release][]float64 // per-step curve by release with Steps = 1
	ledgers map[string]ledgerSummary // by merchant
}

// ledgerSummary is a merchant's ledger at a budget head version: its
// distinct mechanisms in first-use order with their steps summed.
type ledgerSummary struct {
	version int64
	groups  []dp.Release
}

// maxCurves bounds the curve cache; mechanisms come from the plans of a few
// policies, so the bound is only reached by a federation whose policies keep
// changing, and then the cache starts over.
const maxCurves = 4096

func newAccountant() (*accountant, error) {
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return nil, fmt.Errorf("accountant: %w", err)
	}
	return &accountant{orders: l.Orders(), curves: map[dp.Release][]float64{}, ledgers: map[string]ledgerSummary{}}, nil
}

// summary returns merchant's ledger summary if it was taken at version.
func (a *accountant) summary(merchant string, version int64) ([]dp.Release, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.ledgers[merchant]
	if !ok || s.version != version {
		return nil, false
	}
	return slices.Clone(s.groups), true
}

// latest returns merchant's ledger summary at whatever version it was
// taken: the stored ledger or a prefix of it (rows are only appended).
func (a *accountant) latest(merchant string) ([]dp.Release, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.ledgers[merchant]
	if !ok {
		return nil, false
	}
	return slices.Clone(s.groups), true
}

// has reports whether a summary of merchant's ledger is cached, at any version.
func (a *accountant) has(merchant string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ledgers[merchant]
	return ok
}

// remember records merchant's ledger summary at version (after a commit).
func (a *accountant) remember(merchant string, s ledgerSummary) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.ledgers[merchant]; ok && cur.version > s.version {
		return
	}
	a.ledgers[merchant] = s
}

// summarize groups ledger rows by mechanism, validating each.
func summarize(rows []LedgerRow) ([]dp.Release, error) {
	var groups []dp.Release
	for _, r := range rows {
		if err := r.Release.Validate(); err != nil {
			return nil, fmt.Errorf("ledger row %d: %w", r.Seq, err)
		}
		groups = addRelease(groups, r.Release)
	}
	return groups, nil
}

// addRelease adds r to groups: to the group of the same mechanism parameters
// (RDP is additive over steps of one mechanism), or as a new last group.
func addRelease(groups []dp.Release, r dp.Release) []dp.Release {
	key := r
	key.Steps = 0
	i := slices.IndexFunc(groups, func(g dp.Release) bool { g.Steps = 0; return g == key })
	if i < 0 {
		return append(groups, r)
	}
	groups[i].Steps += r.Steps
	return groups
}

// curve returns the per-step RDP curve of r's mechanism.
func (a *accountant) curve(r dp.Release) ([]float64, error) {
	r.Steps = 1
	a.mu.Lock()
	c, ok := a.curves[r]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return nil, err
	}
	if err := l.Add(r); err != nil {
		return nil, err
	}
	c = l.RDP()
	a.mu.Lock()
	if len(a.curves) >= maxCurves {
		clear(a.curves)
	}
	a.curves[r] = c
	a.mu.Unlock()
	return c, nil
}

// epsilon composes groups and converts the curve to ε at delta.
func (a *accountant) epsilon(groups []dp.Release, delta float64) (float64, error) {
	total := make([]float64, len(a.orders))
	for _, g := range groups {
		c, err := a.curve(g)
		if err != nil {
			return 0, err
		}
		steps := float64(g.Steps)
		for i := range total {
			total[i] += steps * c[i]
		}
	}
	eps, _, err := dp.EpsilonFromRDP(a.orders, total, delta)
	return eps, err
}

// debit composes the merchant's ledger (groups, not modified) with the new
// releases in order and returns ε after each of them and the ledger after all;
// or an error wrapping dp.ErrBudgetExhausted if ε after all would pass the cap
// by more than dp.FilterTolerance (dp.Filter's rule).
func (a *accountant) debit(groups []dp.Release, releases []dp.Release, mp policies.MerchantPolicy) (eps []float64, after []dp.Release, err error) {
	if !(mp.EpsilonCap > 0) || math.IsInf(mp.EpsilonCap, 0) {
		return nil, nil, fmt.Errorf("budget check: cap %v must be finite and > 0", mp.EpsilonCap)
	}
	if len(releases) == 0 {
		return nil, nil, fmt.Errorf("%w: no release to debit", protocol.ErrInvalidUpdate)
	}
	if eps, after, err = a.compose(groups, releases, mp.Delta); err != nil {
		return nil, nil, err
	}
	if last := eps[len(eps)-1]; last > mp.EpsilonCap*(1+dp.FilterTolerance) {
		return nil, nil, fmt.Errorf("budget check: ε would be %.6g at δ %g, cap %.6g: %w", last, mp.Delta, mp.EpsilonCap, dp.ErrBudgetExhausted)
	}
	return eps, after, nil
}

// compose adds releases to the ledger groups (not modified) in order and
// returns ε at delta after each of them and the ledger after all, whatever
// the cap: debit checks the cap, and a release the aggregator has already
// seen is recorded even past it (Service.accountRefused).
func (a *accountant) compose(groups []dp.Release, releases []dp.Release, delta float64) (eps []float64, after []dp.Release, err error) {
	after = slices.Clone(groups)
	eps = make([]float64, len(releases))
	for i, r := range releases {
		if err := r.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", protocol.ErrInvalidUpdate, err)
		}
		after = addRelease(after, r)
		if eps[i], err = a.epsilon(after, delta); err != nil {
			return nil, nil, err
		}
	}
	return eps, after, nil
}
