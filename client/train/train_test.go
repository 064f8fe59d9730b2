package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// fixture is a two-feature model and a few hand-made customers: c1 has two cutoffs,
// the others one; labels mix buyers (day 1..30) and censored rows (0).
func fixture(t *testing.T) (*hazard.Model, []feature.Row) {
	t.Helper()
	schema, err := feature.NewSchema([]string{"recency_days", "purchases_total"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hazard.Initial(schema, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	m.Params[m.Horizon] = 0.3 // a non-zero weight, so that gradients differ from the initial ones
	rows := []feature.Row{
		{Customer: "c1", Cutoff: 0, X: []float64{2.0, 1.1}, Label: 0},
		{Customer: "c2", Cutoff: 0, X: []float64{4.5, 0.0}, Label: 3},
		{Customer: "c1", Cutoff: 1, X: []float64{0.7, 1.6}, Label: 12},
		{Customer: "c3", Cutoff: 1, X: []float64{5.9, 0.7}, Label: 0},
		{Customer: "c4", Cutoff: 1, X: []float64{1.2, 2.3}, Label: 30},
	}
	return m, rows
}

// replicate copies the fixture's customers k times under new ids.
func replicate(rows []feature.Row, k int) []feature.Row {
	var out []feature.Row
	for i := range k {
		for _, r := range rows {
			r.Customer = fmt.Sprintf("%s-%d", r.Customer, i)
			out = append(out, r)
		}
	}
	return out
}

// minZ is about the smallest noise multiplier the DP library can be calibrated to
// (σ at its largest ε is 0.03·C).
const minZ = 0.05

// plan is a full-batch plan (q = 1) with as little noise as the library allows: the
// noise on a mean gradient over n customers is minZ·C/n per coordinate.
func plan(steps int, clip, lr float64) protocol.TrainingPlan {
	return protocol.TrainingPlan{
		Steps: steps, SamplingRate: 1, NoiseMultiplier: minZ, ClipNorm: clip,
		LearningRate: lr, Delta: 1e-6, CountNoise: minZ,
	}
}

func norm(v []float64) float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	return math.Sqrt(ss)
}

// numGrad is the finite-difference gradient of customer rows' summed loss: a second
// method next to the model's analytic gradient.
func numGrad(t *testing.T, m *hazard.Model, rows []feature.Row) []float64 {
	t.Helper()
	g := make([]float64, len(m.Params))
	w := *m
	w.Params = slices.Clone(m.Params)
	const h = 1e-6
	for j := range g {
		orig := w.Params[j]
		w.Params[j] = orig + h
		up, err := w.CustomerLoss(rows, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Params[j] = orig - h
		dn, err := w.CustomerLoss(rows, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Params[j] = orig
		g[j] = (up - dn) / (2 * h)
	}
	return g
}

func TestLocalOneStepIsMeanClippedGradient(t *testing.T) {
	base, few := fixture(t)
	var maxNorm, minNorm float64 = 0, math.Inf(1)
	for _, g := range GroupByCustomer(few) {
		nv := norm(numGrad(t, base, g))
		maxNorm, minNorm = max(maxNorm, nv), min(minNorm, nv)
	}
	rows := replicate(few, 40)
	groups := GroupByCustomer(rows)
	n := float64(len(groups))
	tests := []struct {
		name string
		clip float64
	}{
		{"no clipping", 1.01 * maxNorm},
		{"every customer clipped", 0.5 * minNorm},
		{"some customers clipped", (minNorm + maxNorm) / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const lr = 0.7
			want := make([]float64, len(base.Params))
			for _, g := range groups {
				gr := numGrad(t, base, g)
				s := min(1, tt.clip/norm(gr))
				for j, x := range gr {
					want[j] -= lr * s * x / n
				}
			}
			orig := slices.Clone(base.Params)
			res, err := Local(context.Background(), base, rows, plan(1, tt.clip, lr), Options{})
			if err != nil {
				t.Fatal(err)
			}
			// noise ≈ lr·minZ·C/n per coordinate; finite differences ≈ 1e-8
			tol := 6*lr*minZ*1.001*tt.clip/n + 1e-6
			if tol > 0.01*norm(want) {
				t.Fatalf("tolerance %v too loose for a delta of norm %v", tol, norm(want))
			}
			for j := range want {
				if math.Abs(res.Delta[j]-want[j]) > tol {
					t.Errorf("delta[%d]: got %.6g, want %.6g ± %.2g", j, res.Delta[j], want[j], tol)
				}
			}
			if !slices.Equal(base.Params, orig) {
				t.Errorf("base params modified: got %v, want %v", base.Params, orig)
			}
		})
	}
}

func TestLocalAdamFirstStepIsSignStep(t *testing.T) {
	// Adam's first bias-corrected step is lr·g/(|g| + 1e-8): lr·sign(g) wherever the
	// gradient is not tiny.
	base, few := fixture(t)
	rows := replicate(few, 40)
	groups := GroupByCustomer(rows)
	sum := make([]float64, len(base.Params))
	for _, g := range groups {
		for j, x := range numGrad(t, base, g) {
			sum[j] += x
		}
	}
	const lr = 0.01
	var clip float64
	for _, g := range GroupByCustomer(few) {
		clip = max(clip, 1.01*norm(numGrad(t, base, g)))
	}
	res, err := Local(context.Background(), base, rows, plan(1, clip, lr), Options{Optimizer: OptimizerAdam})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for j, g := range sum {
		if math.Abs(g/float64(len(groups))) < 100*minZ*clip/float64(len(groups)) { // noise could flip the sign
			continue
		}
		checked++
		if want := -lr * math.Copysign(1, g); math.Abs(res.Delta[j]-want) > 1e-6 {
			t.Errorf("delta[%d]: got %v, want %v", j, res.Delta[j], want)
		}
	}
	if checked < 2 {
		t.Fatalf("only %d coordinates with a clear gradient sign", checked)
	}
}

func TestLocalRelease(t *testing.T) {
	base, rows := fixture(t)
	p := protocol.TrainingPlan{
		Steps: 7, SamplingRate: 0.5, NoiseMultiplier: 1.3, ClipNorm: 0.8,
		LearningRate: 0.1, L2: 0.01, Delta: 1e-6, CountNoise: 4,
	}
	res, err := Local(context.Background(), base, rows, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Release
	if r.Steps != 7 || r.SamplingRate != 0.5 || r.ClipNorm != 0.8 {
		t.Errorf("release: got %+v, want steps 7, q 0.5, clip 0.8", r)
	}
	if !(r.NoiseMultiplier >= 1.3 && r.NoiseMultiplier <= 1.3*1.0011) {
		t.Errorf("release noise multiplier: got %v, want in [1.3, 1.3·1.001]", r.NoiseMultiplier)
	}
	if !(res.Customers.Sigma >= 4 && res.Customers.Sigma <= 4*1.0011) {
		t.Errorf("count sigma: got %v, want in [4, 4·1.001]", res.Customers.Sigma)
	}
	if len(res.Releases) != 2 {
		t.Fatalf("releases: got %d, want 2", len(res.Releases))
	}
	spent, _, err := dp.Epsilon(res.Releases, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	planned, _, err := dp.Epsilon(Cost(p, false), 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !(spent <= planned && spent > 0.99*planned) {
		t.Errorf("ε spent %v, want ≤ planned %v and within 1%%", spent, planned)
	}
	if math.IsNaN(res.Loss) || res.Loss <= 0 {
		t.Errorf("loss: got %v, want > 0", res.Loss)
	}
}

func TestLocalCustomerCount(t *testing.T) {
	base, rows := fixture(t)
	res, err := Local(context.Background(), base, rows, plan(1, 1, 0.1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// four distinct customers (c1 has two rows); σ = minZ
	if got, want := res.Customers.Value, 4.0; math.Abs(got-want) > 6*minZ {
		t.Errorf("customer count: got %v, want %v ± %v", got, want, 6*minZ)
	}
}

// TestLocalReusesCount: given an earlier count, Local releases none (its only
// release is DP-SGD, as Cost with countKnown says), reports that count as the
// update's, and refuses a count with less noise than the plan asks for.
func TestLocalReusesCount(t *testing.T) {
	base, rows := fixture(t)
	p := plan(1, 1, 0.1)
	earlier := protocol.NoisyCount{Value: 123.4, Sigma: p.CountNoise, ReleasedIn: "round-000003"}
	res, err := Local(context.Background(), base, rows, p, Options{Count: &earlier})
	if err != nil {
		t.Fatal(err)
	}
	if res.Customers != earlier {
		t.Errorf("count %+v, want the earlier %+v", res.Customers, earlier)
	}
	if got := *res.CountToReuse("round-000009"); got != earlier {
		t.Errorf("count to reuse after a reuse: %+v, want the earlier %+v (its round kept)", got, earlier)
	}
	fresh, err := Local(context.Background(), base, rows, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *fresh.CountToReuse("round-000001"); got.ReleasedIn != "round-000001" || got.Value != fresh.Customers.Value || got.Sigma != fresh.Customers.Sigma {
		t.Errorf("count to reuse after a release: %+v, want %+v released in round-000001", got, fresh.Customers)
	}
	cost := Cost(p, true)
	if len(res.Releases) != 1 || len(cost) != 1 || res.Releases[0].Q != p.SamplingRate || cost[0].Q != p.SamplingRate {
		t.Errorf("releases %+v, cost %+v: want the DP-SGD steps alone", res.Releases, cost)
	}
	weak := earlier
	weak.Sigma = p.CountNoise / 2
	if _, err := Local(context.Background(), base, rows, p, Options{Count: &weak}); err == nil {
		t.Error("a count with half the planned noise was accepted")
	}
}

func TestLocalNoiseScale(t *testing.T) {
	// With every gradient clipped to a tiny norm, the delta of one full-batch SGD step
	// is essentially the noise: lr·σ/n per coordinate with σ = z·C.
	base, rows := fixture(t)
	many := replicate(rows, 40) // 160 customers
	const lr, z, c = 1.0, 1000.0, 1e-4
	p := protocol.TrainingPlan{Steps: 1, SamplingRate: 1, NoiseMultiplier: z, ClipNorm: c, LearningRate: lr, Delta: 1e-6, CountNoise: 1}
	var ss float64
	var cnt int
	for range 40 {
		res, err := Local(context.Background(), base, many, p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range res.Delta {
			ss += x * x
			cnt++
		}
	}
	got := math.Sqrt(ss / float64(cnt))
	// The clipped mean gradient has norm ≤ C over 32 coordinates, < 3% of the noise
	// per coordinate; the RMS of 1,280 normal draws is within 10% with probability
	// 1 − 6e-7 (relative standard deviation 2%).
	want := lr * z * c / 160
	if math.Abs(got-want) > 0.1*want {
		t.Errorf("noise std per coordinate: got %.4g, want %.4g ± 10%% (from %d coordinates)", got, want, cnt)
	}
}

func TestLocalErrors(t *testing.T) {
	base, rows := fixture(t)
	good := plan(2, 1, 0.1)
	mod := func(f func(*protocol.TrainingPlan)) protocol.TrainingPlan {
		p := good
		f(&p)
		return p
	}
	short := slices.Clone(rows)
	short[2].X = []float64{1}
	badLabel := slices.Clone(rows)
	badLabel[1].Label = 31
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		base *hazard.Model
		rows []feature.Row
		plan protocol.TrainingPlan
		opt  Options
		is   error
	}{
		{"nil base", context.Background(), nil, rows, good, Options{}, nil},
		{"zero steps", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.Steps = 0 }), Options{}, nil},
		{"q zero", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.SamplingRate = 0 }), Options{}, nil},
		{"q above one", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.SamplingRate = 1.5 }), Options{}, nil},
		{"z zero", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.NoiseMultiplier = 0 }), Options{}, nil},
		{"clip NaN", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.ClipNorm = math.NaN() }), Options{}, nil},
		{"lr Inf", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.LearningRate = math.Inf(1) }), Options{}, nil},
		{"l2 negative", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.L2 = -1 }), Options{}, nil},
		{"count noise zero", context.Background(), base, rows, mod(func(p *protocol.TrainingPlan) { p.CountNoise = 0 }), Options{}, nil},
		{"unknown optimizer", context.Background(), base, rows, good, Options{Optimizer: "lbfgs"}, nil},
		{"feature count", context.Background(), base, short, good, Options{}, hazard.ErrFeatureCount},
		{"label", context.Background(), base, badLabel, good, Options{}, nil},
		{"cancelled", cancelled, base, rows, good, Options{}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Local(tt.ctx, tt.base, tt.rows, tt.plan, tt.opt)
			if err == nil {
				t.Fatalf("got %+v, want an error", res)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

// TestLocalNonFiniteCustomerContributesZero: a customer whose rows give a
// non-finite gradient (here a feature vector holding +Inf, built below the feature
// builder, which can no longer produce one) used to abort the round, so whether
// the merchant submitted depended on that customer. Every round now completes,
// and the customer contributes exactly nothing: at q = 1 and the least noise
// the library allows, Delta·N (N the released count; one SGD step gives
// Delta = −η·(Σ clipped gradients + noise)/N) is the same with and without it.
func TestLocalNonFiniteCustomerContributesZero(t *testing.T) {
	base, few := fixture(t)
	rows := replicate(few, 40)
	bad := feature.Row{Customer: "bad", X: []float64{math.Inf(1), 1}, Label: 1}
	g := make([]float64, len(base.Params))
	if _, err := base.CustomerLoss([]feature.Row{bad}, g); err != nil {
		t.Fatal(err)
	}
	if dp.CheckFinite(g) == nil {
		t.Fatal("precondition: the bad customer's gradient is finite")
	}
	const lr, clip = 0.7, 1.0
	p := plan(1, clip, lr)
	with, err := Local(context.Background(), base, append(slices.Clone(rows), bad), p, Options{})
	if err != nil {
		t.Fatalf("round with a non-finite customer: %v, want an update", err)
	}
	without, err := Local(context.Background(), base, rows, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if with.Dropped != 1 || without.Dropped != 0 {
		t.Errorf("dropped %d with the customer, %d without; want 1 and 0 (one step, q = 1)", with.Dropped, without.Dropped)
	}
	if with.Release != without.Release {
		t.Errorf("release with %+v, without %+v; want the same", with.Release, without.Release)
	}
	// Two independent noise draws of σ ≤ 1.001·minZ·C per coordinate, times η.
	tol := 6 * math.Sqrt2 * lr * 1.001 * minZ * clip
	for j := range with.Delta {
		a, b := with.Delta[j]*with.Customers.Value, without.Delta[j]*without.Customers.Value
		if math.IsNaN(a) || math.Abs(a-b) > tol {
			t.Errorf("Delta[%d]·N: with the customer %.6g, without %.6g, want equal ± %.2g", j, a, b, tol)
		}
	}
}

// TestLocalNoCustomers: a merchant with no customers used to get ErrNoCustomers
// and send nothing. It now sends an update of the same form — a Delta of every
// parameter, the plan's release, a DP count — and is debited the same releases
// as a merchant with customers.
func TestLocalNoCustomers(t *testing.T) {
	base, rows := fixture(t)
	p := protocol.TrainingPlan{Steps: 4, SamplingRate: 0.3, NoiseMultiplier: 1.5, ClipNorm: 1, LearningRate: 0.1, Delta: 1e-6, CountNoise: 20}
	empty, err := Local(context.Background(), base, nil, p, Options{})
	if err != nil {
		t.Fatalf("Local with no rows = %v, want an update", err)
	}
	full, err := Local(context.Background(), base, rows, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Delta) != len(base.Params) || dp.CheckFinite(empty.Delta) != nil || norm(empty.Delta) == 0 {
		t.Errorf("Delta = %v, want %d finite noisy values", empty.Delta, len(base.Params))
	}
	if empty.Release != full.Release || empty.Release.Steps != p.Steps {
		t.Errorf("release %+v, with customers %+v; want the same, %d steps", empty.Release, full.Release, p.Steps)
	}
	if !slices.Equal(empty.Releases, full.Releases) || len(empty.Releases) != 2 {
		t.Errorf("debit %+v, with customers %+v; want the same two releases (steps, count)", empty.Releases, full.Releases)
	}
	if c := empty.Customers; c.Sigma != full.Customers.Sigma || math.Abs(c.Value) > 6*c.Sigma {
		t.Errorf("count %+v, want 0 ± 6σ with σ %v", c, full.Customers.Sigma)
	}
}
