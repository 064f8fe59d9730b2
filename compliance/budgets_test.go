package compliance_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store/sqlite"
)

// gaussianEpsilon is the closed form for unsampled Gaussian releases: the RDP
// of z-noise at order α over s steps is s·α/(2z²); the improved conversion
// at δ is min over α of r(α) + ln(1−1/α) − (ln δ + ln α)/(α−1), at least 0.
func gaussianEpsilon(t *testing.T, rel []dp.Release, delta float64) float64 {
	t.Helper()
	best := math.Inf(1)
	for _, a := range dp.DefaultOrders() {
		r := 0.0
		for _, x := range rel {
			if x.Q != 1 {
				t.Fatalf("closed form needs q = 1, got %v", x.Q)
			}
			r += float64(x.Steps) * a / (2 * x.Z * x.Z)
		}
		best = math.Min(best, r+math.Log1p(-1/a)-(math.Log(delta)+math.Log(a))/(a-1))
	}
	return math.Max(best, 0)
}

func gauss(z float64, steps int) dp.Release {
	return dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: z, Steps: steps}
}

func ledger(merchant string, t0 time.Time, rel ...dp.Release) []aggregator.LedgerRow {
	rows := make([]aggregator.LedgerRow, len(rel))
	for i, r := range rel {
		rows[i] = aggregator.LedgerRow{Merchant: merchant, Seq: int64(i + 1), Release: r,
			Round: "r" + string(rune('1'+i/2)), Update: "u", At: t0.Add(time.Duration(i) * time.Hour)}
	}
	return rows
}

func TestComputeBudgetClosedForm(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	rel := []dp.Release{gauss(50, 1), gauss(2, 3), gauss(5, 1), gauss(1.5, 2)}
	mp := &policies.MerchantPolicy{ID: "m1", EpsilonCap: 8, Delta: 1e-6}
	b, err := compliance.ComputeBudget("m1", mp, ledger("m1", t0, rel...))
	if err != nil {
		t.Fatal(err)
	}
	if b.Releases != 4 || len(b.Points) != 4 {
		t.Fatalf("got %d releases and %d points, want 4 and 4", b.Releases, len(b.Points))
	}
	for i, p := range b.Points {
		want := gaussianEpsilon(t, rel[:i+1], 1e-6)
		if math.Abs(p.Epsilon-want) > 1e-9*math.Max(1, want) {
			t.Errorf("point %d: got ε %.12g, want %.12g", i+1, p.Epsilon, want)
		}
		if !p.At.Equal(t0.Add(time.Duration(i) * time.Hour)) {
			t.Errorf("point %d: got time %v", i+1, p.At)
		}
	}
	if b.Epsilon != b.Points[3].Epsilon || !b.LastRelease.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("got ε %v last %v, want the last point's", b.Epsilon, b.LastRelease)
	}
	// Composition by RDP is tighter than adding each release's ε.
	var sum float64
	for _, r := range rel {
		sum += gaussianEpsilon(t, []dp.Release{r}, 1e-6)
	}
	if b.Epsilon >= sum {
		t.Errorf("got ε %v, want below the sum of single-release ε %v", b.Epsilon, sum)
	}
	for _, want := range []string{"one customer of merchant m1", "adding or removing one customer",
		"Poisson-subsampled Gaussian", "δ = 1e-06", "4 releases", "of a cap of 8"} {
		if !strings.Contains(b.Statement, want) {
			t.Errorf("statement lacks %q:\n%s", want, b.Statement)
		}
	}
}

// TestComputeBudgetSubsampled checks the incremental ε against the
// accountant's one-shot composition of each prefix.
func TestComputeBudgetSubsampled(t *testing.T) {
	rel := []dp.Release{
		{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.1, Steps: 10}, gauss(50, 1),
		{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.1, Steps: 10}, gauss(50, 1),
	}
	b, err := compliance.ComputeBudget("m2", &policies.MerchantPolicy{EpsilonCap: 1, Delta: 1e-5}, ledger("m2", time.Unix(0, 0), rel...))
	if err != nil {
		t.Fatal(err)
	}
	for i := range rel {
		want, _, err := dp.Epsilon(rel[:i+1], 1e-5, dp.AccountantOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Points[i].Epsilon; math.Abs(got-want) > 1e-9 {
			t.Errorf("point %d: got ε %v, want %v", i+1, got, want)
		}
		if i > 0 && b.Points[i].Epsilon <= b.Points[i-1].Epsilon {
			t.Errorf("point %d: ε %v does not grow from %v", i+1, b.Points[i].Epsilon, b.Points[i-1].Epsilon)
		}
	}
}

func TestComputeBudgetErrors(t *testing.T) {
	t0 := time.Unix(0, 0)
	tests := []struct {
		name string
		rows []aggregator.LedgerRow
		want string
	}{
		{"seq out of order", append(ledger("m", t0, gauss(2, 1)), aggregator.LedgerRow{Seq: 1, Release: gauss(2, 1)}), "seq 1 after 1"},
		{"invalid release", ledger("m", t0, dp.Release{Mechanism: dp.Gaussian, Q: 2, Z: 1, Steps: 1}), "ledger row seq 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compliance.ComputeBudget("m", nil, tt.rows)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestComputeBudgetEmptyAndUnknown(t *testing.T) {
	b, err := compliance.ComputeBudget("m3", &policies.MerchantPolicy{EpsilonCap: 2, Delta: 1e-7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Epsilon != 0 || b.Releases != 0 || b.Points == nil || !strings.Contains(b.Statement, "nothing yet, against a cap of ε = 2") {
		t.Errorf("got %+v", b)
	}
	b, err = compliance.ComputeBudget("gone", nil, ledger("gone", time.Unix(0, 0), gauss(3, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if b.InPolicy || b.Delta != compliance.FallbackDelta || !strings.Contains(b.Statement, "no longer lists") {
		t.Errorf("got %+v", b)
	}
	if want := gaussianEpsilon(t, []dp.Release{gauss(3, 1)}, compliance.FallbackDelta); math.Abs(b.Epsilon-want) > 1e-9 {
		t.Errorf("got ε %v, want %v", b.Epsilon, want)
	}
}

const testPolicy = `version: 1
federation: test
defaults:
  epsilon_cap: 4
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 10
  allowed_features: [all]
  retention_days: 365
merchants:
  m1: { epsilon_cap: 2 }
  m2: {}
`

// TestLoadBudgetsSQLite writes ledger rows to a real store and reads them
// back through LoadBudgets.
func TestLoadBudgetsSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	ledgers := map[string][]aggregator.LedgerRow{
		"m1": ledger("m1", t0, gauss(3, 1), gauss(4, 2)),
		"m2": nil,
		"m9": ledger("m9", t0, gauss(2, 1)), // enrolled, since dropped from the policy
	}
	err = st.InTx(ctx, func(tx aggregator.Tx) error {
		for _, id := range []string{"m2", "m1", "m9"} {
			if err := tx.InsertMerchant(ctx, aggregator.Merchant{ID: id, TimeZone: "UTC", PublicKey: make([]byte, 32), EnrolledAt: t0}); err != nil {
				return err
			}
			for _, r := range ledgers[id] {
				if err := tx.InsertLedger(ctx, r); err != nil {
					return err
				}
			}
			if n := len(ledgers[id]); n > 0 {
				head := aggregator.BudgetHead{Merchant: id, Version: 1, Epsilon: 123, Releases: n, LastRelease: ledgers[id][n-1].At}
				if err := tx.AdvanceBudget(ctx, head, 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := compliance.LoadBudgets(ctx, st, pol)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || bs[0].Merchant != "m1" || bs[1].Merchant != "m2" || bs[2].Merchant != "m9" {
		t.Fatalf("got %+v, want m1, m2, m9", bs)
	}
	want := gaussianEpsilon(t, []dp.Release{gauss(3, 1), gauss(4, 2)}, 1e-6)
	if b := bs[0]; b.Cap != 2 || math.Abs(b.Epsilon-want) > 1e-9 || b.Releases != 2 || !b.LastRelease.Equal(t0.Add(time.Hour)) {
		t.Errorf("m1: got cap %v ε %v releases %d last %v, want 2, %v (not the head's cached 123), 2, %v", b.Cap, b.Epsilon, b.Releases, b.LastRelease, want, t0.Add(time.Hour))
	}
	if b := bs[1]; b.Cap != 4 || b.Epsilon != 0 || b.Releases != 0 {
		t.Errorf("m2: got %+v", b)
	}
	if b := bs[2]; b.InPolicy || b.Releases != 1 {
		t.Errorf("m9: got %+v", b)
	}
	// One merchant at a time gives the same budgets (checked above against
	// the closed form); an id with no budget row is ErrNoBudget.
	for _, want := range bs {
		got, err := compliance.LoadBudget(ctx, st, pol, want.Merchant)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LoadBudget(%s) = %+v, %v; want %+v", want.Merchant, got, err, want)
		}
	}
	if _, err := compliance.LoadBudget(ctx, st, pol, "m404"); !errors.Is(err, compliance.ErrNoBudget) || !strings.Contains(err.Error(), "m404") {
		t.Errorf("LoadBudget(m404): got %v, want ErrNoBudget naming m404", err)
	}
}

// TestStatementNamesEachMechanism: the statement named the Poisson-subsampled
// Gaussian accountant for every ledger, also one whose releases are secure
// rounds' distributed discrete Gaussian (ddgauss). A ddgauss-only ledger now
// names that mechanism alone, a mixed one both with their release counts, and
// ε stays the accountant's composition of every row.
func TestStatementNamesEachMechanism(t *testing.T) {
	ddg := dp.Release{Mechanism: dp.DDGauss, Q: 0.5, Sigma2: 4e4, Cohort: 3, L2: 100, L1: 1000, Dim: 100, Steps: 1}
	mp := &policies.MerchantPolicy{ID: "m1", EpsilonCap: 8, Delta: 1e-6}
	for _, tt := range []struct {
		name      string
		rel       []dp.Release
		want, not []string
	}{
		{"ddgauss", []dp.Release{ddg, ddg}, []string{"distributed discrete Gaussian mechanism on a secure sum", "(2 releases)", "all 2 releases"}, []string{"Poisson-subsampled Gaussian"}},
		{"mixed", []dp.Release{gauss(5, 1), ddg, gauss(2, 3)}, []string{"Poisson-subsampled Gaussian mechanism (2 releases)", "distributed discrete Gaussian mechanism on a secure sum", "(1 release)", "all 3 releases"}, nil},
		{"gaussian", []dp.Release{gauss(5, 1)}, []string{"Poisson-subsampled Gaussian mechanism (1 release)"}, []string{"discrete"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := compliance.ComputeBudget("m1", mp, ledger("m1", time.Unix(0, 0), tt.rel...))
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := dp.Epsilon(tt.rel, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(b.Epsilon-want) > 1e-9 {
				t.Errorf("ε %v, the accountant composes %v", b.Epsilon, want)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.Statement, w) {
					t.Errorf("statement lacks %q:\n%s", w, b.Statement)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(b.Statement, w) {
					t.Errorf("statement names %q:\n%s", w, b.Statement)
				}
			}
		})
	}
	// A caller that knows only the head (GET /v1/budgets) names neither alone.
	st := compliance.Statement(compliance.Budget{Merchant: "m1", Cap: 1, Delta: 1e-6, Epsilon: 0.5, Releases: 2, InPolicy: true})
	if !strings.Contains(st, "each release's mechanism (the Poisson-subsampled Gaussian, or the distributed discrete Gaussian of a secure round)") {
		t.Errorf("statement without mechanisms:\n%s", st)
	}
}
