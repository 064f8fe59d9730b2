// Package compliance gathers what a compliance reviewer asks of a Kairos
// federation from its store: each merchant's privacy budget recomputed from
// its ledger rows by the RDP accountant, with the ε after every release (the
// ε spent over time) and a plain-language privacy statement; pages of the audit log
// filtered by actor, action, time and identifier HMAC; the model registry
// with its lineage and the policy hashes it has seen.
//
// Rendering (HTML report, SVG charts) lives in compliance/report.
package compliance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// Point is a merchant's cumulative ε just after one ledger release.
type Point struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Round   string    `json:"round,omitempty"`
	Epsilon float64   `json:"epsilon"`
}

// Budget is one merchant's privacy budget as the accountant recomputes it
// from the ledger.
type Budget struct {
	Merchant string  `json:"merchant"`
	Cap      float64 `json:"epsilon_cap"`
	Delta    float64 `json:"delta"`
	// Epsilon is the ε at Delta of every release composed by RDP (never a sum
	// of per-release ε values); Order is the Rényi order attaining it (0
	// before the first release).
	Epsilon     float64   `json:"epsilon"`
	Order       float64   `json:"order,omitempty"`
	Releases    int       `json:"releases"`
	LastRelease time.Time `json:"last_release,omitzero"`
	// Mechanisms counts the releases by mechanism (dp.Gaussian for
	// training, counts and evaluations; dp.DDGauss for secure rounds), for
	// the statement to name each; nil when the caller does not know them.
	Mechanisms map[dp.Mechanism]int `json:"mechanisms,omitempty"`
	// InPolicy is false for a merchant with ledger rows that the policy no
	// longer lists; Cap and Delta are then zero and ε is measured at
	// FallbackDelta.
	InPolicy bool `json:"in_policy"`
	// LocalCap and LocalDelta are the merchant's own, stricter cap, when it
	// reported one (it does when it stops at it: the audit log's
	// merchant.stop); 0 when unknown.
	LocalCap   float64 `json:"local_epsilon_cap,omitempty"`
	LocalDelta float64 `json:"local_delta,omitempty"`
	// Points is ε spent over time: ε after each release, in ledger order.
	Points []Point `json:"points"`
	// Statement says in plain language what the numbers mean.
	Statement string `json:"statement"`
}

// FallbackDelta is the δ at which the ε of a merchant missing from the
// policy is reported.
const FallbackDelta = 1e-6

// ComputeBudget recomputes a merchant's budget from its ledger rows with the
// accountant's default orders: the ε after each row composes the RDP curves
// of that row and every earlier one, converted at delta. mp is nil for a
// merchant the policy does not list.
func ComputeBudget(merchant string, mp *policies.MerchantPolicy, rows []aggregator.LedgerRow) (Budget, error) {
	b := Budget{Merchant: merchant, Points: []Point{}, Delta: FallbackDelta}
	if mp != nil {
		b.Cap, b.Delta, b.InPolicy = mp.EpsilonCap, mp.Delta, true
	}
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return Budget{}, fmt.Errorf("budget %s: %w", merchant, err)
	}
	for i, r := range rows {
		if i > 0 && r.Seq <= rows[i-1].Seq {
			return Budget{}, fmt.Errorf("budget %s: ledger row %d: seq %d after %d", merchant, i+1, r.Seq, rows[i-1].Seq)
		}
		if err := l.Add(r.Release); err != nil {
			return Budget{}, fmt.Errorf("budget %s: ledger row seq %d: %w", merchant, r.Seq, err)
		}
		if b.Mechanisms == nil {
			b.Mechanisms = map[dp.Mechanism]int{}
		}
		mech := r.Release.Mechanism
		if mech == "" {
			mech = dp.Gaussian // what an empty mechanism means
		}
		b.Mechanisms[mech]++
		eps, order, err := l.Epsilon(b.Delta)
		if err != nil {
			return Budget{}, fmt.Errorf("budget %s: ledger row seq %d: %w", merchant, r.Seq, err)
		}
		b.Points = append(b.Points, Point{Seq: r.Seq, At: r.At.UTC(), Round: r.Round, Epsilon: eps})
		b.Epsilon, b.Order = eps, order
		b.LastRelease = r.At.UTC()
	}
	b.Releases = len(rows)
	b.Statement = Statement(b)
	return b, nil
}

// Statement is the plain-language privacy statement of a budget: the privacy
// unit, the adjacency relation, the accountant and its orders, and what was
// spent against the cap.
func Statement(b Budget) string {
	var s strings.Builder
	fmt.Fprintf(&s, "Privacy unit: one customer of merchant %s (all of that customer's events at this merchant). ", b.Merchant)
	s.WriteString("Neighbouring data sets differ by adding or removing one customer. ")
	fmt.Fprintf(&s, "Accountant: Rényi differential privacy of %s, composed over all %d %s of the ledger, ",
		mechanismsText(b.Mechanisms), b.Releases, plural(b.Releases, "release", "releases"))
	fmt.Fprintf(&s, "converted to (ε, δ) with the improved conversion of Balle et al. (2020) at δ = %s and minimised over the Rényi orders %s",
		formatFloat(b.Delta), ordersText())
	if b.Order > 0 {
		fmt.Fprintf(&s, " (the minimum is at α = %s)", formatFloat(b.Order))
	}
	s.WriteString(". ")
	switch {
	case !b.InPolicy:
		fmt.Fprintf(&s, "Spent: ε = %.5f; the policy no longer lists this merchant, so it has no cap. ", b.Epsilon)
	case b.Releases == 0:
		fmt.Fprintf(&s, "Spent: nothing yet, against a cap of ε = %s. ", formatFloat(b.Cap))
	default:
		fmt.Fprintf(&s, "Spent: ε = %.5f of a cap of %s (%.2f%%). ", b.Epsilon, formatFloat(b.Cap), 100*b.Epsilon/b.Cap)
	}
	s.WriteString("Meaning: whether or not any one customer's data was used changes the probability of anything the federation released from this merchant by at most a factor e^ε, except with probability δ.")
	return s.String()
}

// mechanismNames says what each mechanism a ledger composes is, in the
// order the statement names them.
var mechanismNames = []struct {
	mech dp.Mechanism
	name string
}{
	{dp.Gaussian, "the Poisson-subsampled Gaussian mechanism"},
	{dp.DDGauss, "the distributed discrete Gaussian mechanism on a secure sum (Kairouz, Liu and Steinke 2021)"},
	{dp.ZCDP, "releases known by their zCDP parameter ρ"},
	{dp.Pure, "ε-DP releases, through min(ε, α·ε²/2)"},
}

// mechanismsText names the mechanisms of counts with their release counts;
// without counts (the caller does not know them), the two a Kairos ledger
// holds.
func mechanismsText(counts map[dp.Mechanism]int) string {
	if len(counts) == 0 {
		return "each release's mechanism (the Poisson-subsampled Gaussian, or the distributed discrete Gaussian of a secure round)"
	}
	var parts []string
	for _, m := range mechanismNames {
		if n := counts[m.mech]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d %s)", m.name, n, plural(n, "release", "releases")))
		}
	}
	return strings.Join(parts, " and of ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ordersText summarises dp.DefaultOrders: their count and range.
func ordersText() string {
	o := dp.DefaultOrders()
	if len(o) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("α ∈ [%s, %s] (%d orders)", formatFloat(o[0]), formatFloat(o[len(o)-1]), len(o))
}

// ErrNoBudget is returned (wrapped) by LoadBudget for a merchant with no
// budget row: one that never enrolled.
var ErrNoBudget = errors.New("no budget")

// LoadBudgets reads every merchant's ledger in one read transaction and
// recomputes its budget under pol. Merchants with a budget row come first
// in id order; policy merchants that never enrolled are not listed.
func LoadBudgets(ctx context.Context, st aggregator.Store, pol *policies.Policy) ([]Budget, error) {
	var heads []aggregator.BudgetHead
	ledgers := map[string][]aggregator.LedgerRow{}
	err := st.InTx(ctx, func(tx aggregator.Tx) error {
		clear(ledgers)
		var err error
		if heads, err = tx.Budgets(ctx); err != nil {
			return err
		}
		for _, h := range heads {
			rows, err := tx.Ledger(ctx, h.Merchant)
			if err != nil {
				return fmt.Errorf("ledger of %s: %w", h.Merchant, err)
			}
			ledgers[h.Merchant] = rows
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load budgets: %w", err)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i].Merchant < heads[j].Merchant })
	out := make([]Budget, 0, len(heads))
	for _, h := range heads {
		b, err := budgetOf(h, pol, ledgers[h.Merchant])
		if err != nil {
			return nil, fmt.Errorf("load budgets: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// LoadBudget is LoadBudgets for one merchant: it reads only that merchant's
// ledger. A merchant without a budget row is an error wrapping ErrNoBudget.
func LoadBudget(ctx context.Context, st aggregator.Store, pol *policies.Policy, merchant string) (Budget, error) {
	var head *aggregator.BudgetHead
	var rows []aggregator.LedgerRow
	err := st.InTx(ctx, func(tx aggregator.Tx) error {
		head, rows = nil, nil
		heads, err := tx.Budgets(ctx)
		if err != nil {
			return err
		}
		for i := range heads {
			if heads[i].Merchant == merchant {
				head = &heads[i]
			}
		}
		if head == nil {
			return nil
		}
		if rows, err = tx.Ledger(ctx, merchant); err != nil {
			return fmt.Errorf("ledger of %s: %w", merchant, err)
		}
		return nil
	})
	if err != nil {
		return Budget{}, fmt.Errorf("load budget of %s: %w", merchant, err)
	}
	if head == nil {
		return Budget{}, fmt.Errorf("load budget of %s: %w", merchant, ErrNoBudget)
	}
	b, err := budgetOf(*head, pol, rows)
	if err != nil {
		return Budget{}, fmt.Errorf("load budget of %s: %w", merchant, err)
	}
	return b, nil
}

// budgetOf recomputes the budget of h's merchant from its ledger rows under
// pol and checks it against the head's release count.
func budgetOf(h aggregator.BudgetHead, pol *policies.Policy, rows []aggregator.LedgerRow) (Budget, error) {
	var mp *policies.MerchantPolicy
	if p, err := pol.Merchant(h.Merchant); err == nil {
		mp = &p
	} else if !errors.Is(err, policies.ErrUnknownMerchant) {
		return Budget{}, err
	}
	b, err := ComputeBudget(h.Merchant, mp, rows)
	if err != nil {
		return Budget{}, err
	}
	if h.Releases != b.Releases {
		return Budget{}, fmt.Errorf("merchant %s: budget row counts %d releases, ledger holds %d", h.Merchant, h.Releases, b.Releases)
	}
	return b, nil
}
