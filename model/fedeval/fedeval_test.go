package fedeval_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// cell returns the index of bin b, class c.
func cell(b, c int) int { return b*protocol.EvalClasses + c }

// TestComputeHandWorked: two bins. Bin 0 holds 0 / 1 / 3 customers of the
// classes within-7 / days 8–30 / none, bin 1 holds 1 / 1 / 1.
//
//	AUC@30: positives 1 (bin 0) and 2 (bin 1), negatives 3 and 1; pairs won:
//	  bin 0: 1·(0 + 3/2) = 1.5, bin 1: 2·(3 + 1/2) = 7 → 8.5 / (3·4) = 0.708333…
//	AUC@7: positives 0 and 1, negatives 4 and 2: 1·(4 + 2/2) = 5 → 5 / 6
//	AP@30: bin 1 first: recall 2/3 at precision 2/3, then bin 0: recall 1 at
//	  precision 3/7 → 4/9 + 1/7 = 37/63
func TestComputeHandWorked(t *testing.T) {
	counts := make([]float64, 2*protocol.EvalClasses)
	counts[cell(0, protocol.EvalWithin30)] = 1
	counts[cell(0, protocol.EvalNone)] = 3
	counts[cell(1, protocol.EvalWithin7)] = 1
	counts[cell(1, protocol.EvalWithin30)] = 1
	counts[cell(1, protocol.EvalNone)] = 1
	m, err := fedeval.Compute(counts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"auc_30", m.AUC30, 8.5 / 12}, {"auc_7", m.AUC7, 5.0 / 6}, {"pr_auc_30", m.PRAUC30, 37.0 / 63},
		{"positive_rate_30", m.PositiveRate30, 3.0 / 7}, {"customers", m.Customers, 7},
	} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %.15g, want %.15g", c.name, c.got, c.want)
		}
	}
}

// TestComputeMatchesMetrics: the histogram metrics equal metrics.AUC and
// metrics.AveragePrecision computed per customer with the bin index as score.
func TestComputeMatchesMetrics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		bins := 1 + rng.IntN(12)
		counts := make([]float64, bins*protocol.EvalClasses)
		var scores []float64
		var y30, y7 []bool
		for range 5 + rng.IntN(300) {
			b, c := rng.IntN(bins), rng.IntN(protocol.EvalClasses)
			counts[cell(b, c)]++
			scores = append(scores, float64(b))
			y30 = append(y30, c != protocol.EvalNone)
			y7 = append(y7, c == protocol.EvalWithin7)
		}
		m, err := fedeval.Compute(counts)
		auc30, err30 := metrics.AUC(scores, y30)
		auc7, err7 := metrics.AUC(scores, y7)
		if err30 != nil || err7 != nil {
			if !errors.Is(err, fedeval.ErrNoData) {
				t.Errorf("trial %d: one-class data: got %v, want ErrNoData", trial, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		ap, err := metrics.AveragePrecision(scores, y30)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(m.AUC30-auc30) > 1e-12 || math.Abs(m.AUC7-auc7) > 1e-12 || math.Abs(m.PRAUC30-ap) > 1e-12 {
			t.Errorf("trial %d: histogram (%.12f, %.12f, %.12f), per customer (%.12f, %.12f, %.12f)",
				trial, m.AUC30, m.AUC7, m.PRAUC30, auc30, auc7, ap)
		}
	}
}

func TestComputeRefusals(t *testing.T) {
	for name, counts := range map[string][]float64{
		"empty":         nil,
		"partial bin":   {1, 2},
		"NaN cell":      {1, math.NaN(), 3},
		"no positives":  {0, 0, 5, 0, 0, 4},
		"only negative": {-3, -1, -2},
	} {
		if _, err := fedeval.Compute(counts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Negative (noisy) cells enter as they are: bins (1, 0, 10) and (2, 0, −1)
	// have positives 1 and 2, negatives 10 and −1, so P = 3, N = 9 and the
	// pairs won are 1·(0 + 10/2) + 2·(10 − 1/2) = 24: AUC@30 = 24/27.
	m, err := fedeval.Compute([]float64{1, 0, 10, 2, 0, -1})
	if err != nil || m.Customers != 12 || math.Abs(m.AUC30-24.0/27) > 1e-12 {
		t.Errorf("negative cell: %+v, %v; want 12 customers and AUC@30 24/27", m, err)
	}
}

func TestBinsAndEdges(t *testing.T) {
	edges := fedeval.DefaultEdges()
	if err := fedeval.CheckPlan(&protocol.EvaluationPlan{Cutoff: time.Unix(1, 0), Edges: edges, Sigma: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    float64
		want int
	}{{0, 0}, {0.001, 0}, {0.002, 1}, {0.005, 2}, {0.075, 9}, {0.09, 9}, {0.5, 14}, {1, 14}} {
		if got := fedeval.Bin(edges, c.p); got != c.want {
			t.Errorf("Bin(%v) = %d, want %d", c.p, got, c.want)
		}
	}
	for label, want := range map[int]int{0: protocol.EvalNone, 1: protocol.EvalWithin7, 7: protocol.EvalWithin7,
		8: protocol.EvalWithin30, 30: protocol.EvalWithin30, 31: protocol.EvalNone} {
		if got := fedeval.Class(label); got != want {
			t.Errorf("Class(%d) = %d, want %d", label, got, want)
		}
	}
	for name, p := range map[string]protocol.EvaluationPlan{
		"no cutoff":   {Edges: edges, Sigma: 1},
		"zero sigma":  {Cutoff: time.Unix(1, 0), Edges: edges},
		"no edges":    {Cutoff: time.Unix(1, 0), Sigma: 1},
		"edge at 1":   {Cutoff: time.Unix(1, 0), Edges: []float64{0.5, 1}, Sigma: 1},
		"not sorted":  {Cutoff: time.Unix(1, 0), Edges: []float64{0.5, 0.4}, Sigma: 1},
		"inf sigma":   {Cutoff: time.Unix(1, 0), Edges: edges, Sigma: math.Inf(1)},
		"equal edges": {Cutoff: time.Unix(1, 0), Edges: []float64{0.2, 0.2}, Sigma: 1},
	} {
		if err := fedeval.CheckPlan(&p); err == nil {
			t.Errorf("%s: plan accepted", name)
		}
	}
}

// TestReleaseNoise: the noise has the standard deviation the evaluation
// declares (within 5% over 3,000 cells: the sample standard deviation of 3,000
// normal draws is within ±5% of σ with probability > 0.99), the declared σ is
// the plan's up to the library's 0.1% calibration, and the debit is the
// Gaussian mechanism at that σ.
func TestReleaseNoise(t *testing.T) {
	plan := &protocol.EvaluationPlan{Cutoff: time.Unix(1e9, 0), Sigma: 20}
	plan.Edges = make([]float64, 999)
	for i := range plan.Edges {
		plan.Edges[i] = float64(i+1) / 1000
	}
	counts := make([]float64, 1000*protocol.EvalClasses)
	for i := range counts {
		counts[i] = float64(i % 17)
	}
	ev, rel, err := fedeval.Release(counts, plan)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Sigma < 20 || ev.Sigma > 20.02 {
		t.Errorf("σ %v, want in [20, 20.02]", ev.Sigma)
	}
	if want := (dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: ev.Sigma, Steps: 1}); rel != want {
		t.Errorf("release %+v, want %+v", rel, want)
	}
	if !ev.Cutoff.Equal(plan.Cutoff) || len(ev.Counts) != len(counts) {
		t.Fatalf("evaluation at %v with %d cells", ev.Cutoff, len(ev.Counts))
	}
	var ss float64
	for i := range counts {
		d := ev.Counts[i] - counts[i]
		ss += d * d
	}
	if sd := math.Sqrt(ss / float64(len(counts))); math.Abs(sd/20-1) > 0.05 {
		t.Errorf("noise standard deviation %.3f, want 20 ± 5%%", sd)
	}
	if counts[5] != 5 {
		t.Error("Release modified its input")
	}
	if _, _, err := fedeval.Release(counts[:3], plan); err == nil {
		t.Error("wrong cell count accepted")
	}
}

func TestSum(t *testing.T) {
	a := protocol.Evaluation{Counts: []float64{1, 2, 3}, Sigma: 3}
	b := protocol.Evaluation{Counts: []float64{10, 20, 30}, Sigma: 4}
	sum, sigma, err := fedeval.Sum([]protocol.Evaluation{a, b})
	if err != nil || !slices.Equal(sum, []float64{11, 22, 33}) || sigma != 5 {
		t.Errorf("sum %v σ %v err %v; want [11 22 33], 5", sum, sigma, err)
	}
	if _, _, err := fedeval.Sum([]protocol.Evaluation{a, {Counts: []float64{1}}}); err == nil {
		t.Error("mismatched histograms summed")
	}
	if _, _, err := fedeval.Sum(nil); err == nil {
		t.Error("empty sum accepted")
	}
}

// TestCDNOWEvaluation: on the CDNOW reference test cutoff (23,570 customers), a
// centralised model's AUCs from the default 15-bin histogram without noise are
// within 0.003 of the exact per-customer metrics (metrics.AUC on the predicted
// P(within 30 days)), PR-AUC within 0.05 (binning loses the top of the ranking);
// with the demo's noise (σ = 10 per cell from each of five merchants) the
// bootstrap standard error matches the spread of 60 independent releases
// (ratio in [0.6, 1.6]), and every noisy AUC@30 is within 5 standard errors of
// the binned value.
func TestCDNOWEvaluation(t *testing.T) {
	path := os.Getenv("KAIROS_DATA")
	if path == "" {
		path = "../../../shared/data"
	}
	path += "/cdnow/CDNOW_master.txt"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CDNOW data missing under CI: %v", err)
		}
		t.Skipf("CDNOW_master.txt not found at %s (set KAIROS_DATA)", path)
	}
	ctx := context.Background()
	events, err := sim.LoadCDNOW(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sim.Prepare(events, sim.DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := d.Centralized(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var p30 []float64
	var y30, y7 []bool
	for _, r := range d.Test {
		p, err := m.Predict(r.X)
		if err != nil {
			t.Fatal(err)
		}
		p30 = append(p30, p.Within[len(hazard.Horizons)-1])
		y30 = append(y30, r.Label >= 1)
		y7 = append(y7, r.Label >= 1 && r.Label <= 7)
	}
	exact := map[string]float64{}
	if exact["auc_30"], err = metrics.AUC(p30, y30); err != nil {
		t.Fatal(err)
	}
	if exact["auc_7"], err = metrics.AUC(p30, y7); err != nil {
		t.Fatal(err)
	}
	if exact["pr_auc_30"], err = metrics.AveragePrecision(p30, y30); err != nil {
		t.Fatal(err)
	}
	plan := &protocol.EvaluationPlan{Cutoff: time.Unix(1, 0), Edges: fedeval.DefaultEdges(), Sigma: 10}
	counts, err := fedeval.Histogram(m, d.Test, plan.Edges)
	if err != nil {
		t.Fatal(err)
	}
	binned, err := fedeval.Compute(counts)
	if err != nil {
		t.Fatal(err)
	}
	if binned.Customers != float64(len(d.Test)) {
		t.Errorf("histogram holds %v customers, want %d", binned.Customers, len(d.Test))
	}
	for _, c := range []struct {
		name   string
		binned float64
		tol    float64
	}{{"auc_30", binned.AUC30, 0.003}, {"auc_7", binned.AUC7, 0.003}, {"pr_auc_30", binned.PRAUC30, 0.05}} {
		t.Logf("%s: exact %.4f, 15 bins %.4f", c.name, exact[c.name], c.binned)
		if math.Abs(c.binned-exact[c.name]) > c.tol {
			t.Errorf("%s: binned %.4f, exact %.4f: binning costs more than %v", c.name, c.binned, exact[c.name], c.tol)
		}
	}
	// Five merchants' noise on the sum, 60 times.
	const reps = 60
	var sum1, sum2, seSum float64
	for rep := range reps {
		evals := make([]protocol.Evaluation, 5)
		for i := range evals {
			part := make([]float64, len(counts))
			if i == 0 {
				copy(part, counts)
			}
			if evals[i], _, err = fedeval.Release(part, plan); err != nil {
				t.Fatal(err)
			}
		}
		sum, sigma, err := fedeval.Sum(evals)
		if err != nil {
			t.Fatal(err)
		}
		noisy, err := fedeval.Compute(sum)
		if err != nil {
			t.Fatal(err)
		}
		se, err := fedeval.StandardErrors(sum, sigma, 200, uint64(rep))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(noisy.AUC30-binned.AUC30) > 5*se.AUC30 {
			t.Errorf("release %d: AUC@30 %.4f, binned %.4f, standard error %.4f", rep, noisy.AUC30, binned.AUC30, se.AUC30)
		}
		sum1 += noisy.AUC30
		sum2 += noisy.AUC30 * noisy.AUC30
		seSum += se.AUC30
	}
	sd := math.Sqrt((sum2/reps - (sum1/reps)*(sum1/reps)) * reps / (reps - 1))
	t.Logf("AUC@30 over %d releases: mean %.4f, sd %.4f, mean bootstrap standard error %.4f", reps, sum1/reps, sd, seSum/reps)
	if r := seSum / reps / sd; r < 0.6 || r > 1.6 {
		t.Errorf("bootstrap standard error %.4f against a spread of %.4f (ratio %.2f)", seSum/reps, sd, r)
	}
}

// FuzzCompute: any histogram gives metrics in range or an error, never a
// panic (the aggregator computes them from merchants' noisy counts).
func FuzzCompute(f *testing.F) {
	f.Add(1.0, 0.0, 10.0, 2.0, 0.0, -1.0, uint8(2))
	f.Add(-5.0, 3.0, 0.0, 1e300, -1e300, 7.0, uint8(1))
	f.Fuzz(func(t *testing.T, a, b, c, d, e, g float64, bins uint8) {
		vals := []float64{a, b, c, d, e, g}
		n := int(bins%8) + 1
		counts := make([]float64, n*protocol.EvalClasses)
		for i := range counts {
			counts[i] = vals[i%len(vals)] * float64(1+i%3)
		}
		m, err := fedeval.Compute(counts)
		if err != nil {
			return
		}
		for name, v := range map[string]float64{"auc_30": m.AUC30, "auc_7": m.AUC7, "pr_auc_30": m.PRAUC30} {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("%s = %v outside [0, 1] for %v", name, v, counts)
			}
		}
	})
}

// TestPlausible checks the range a histogram must fall in against values
// worked out by hand: count 1000 (σ 50), 45 cells at σ 10 give
// tol = 6·√(2500 + 4500) = 502.0 (to 0.1), so the total must lie in
// [498.0, 2002.0] and every cell in [−60, 2002.0].
func TestPlausible(t *testing.T) {
	r := fedeval.TotalRange(protocol.NoisyCount{Value: 1000, Sigma: 50}, true, 45, 10)
	tol := 6 * math.Sqrt(7000)
	if math.Abs(r.Lo-(1000-tol)) > 1e-9 || math.Abs(r.Hi-(1500+tol)) > 1e-9 || r.MinCell != -60 {
		t.Fatalf("range %+v, want [%v, %v] with cells ≥ −60", r, 1000-tol, 1500+tol)
	}
	unknown := fedeval.TotalRange(protocol.NoisyCount{Value: 1e6}, false, 45, 10)
	if !math.IsInf(unknown.Lo, -1) || math.Abs(unknown.Hi-(1e6+6*math.Sqrt(4500))) > 1e-6 {
		t.Fatalf("range without a released count %+v, want (−∞, 1e6 + 6·√4500]", unknown)
	}
	cells := func(total float64, edit func([]float64)) *protocol.Evaluation {
		c := make([]float64, 45)
		for i := range c {
			c[i] = total / 45
		}
		if edit != nil {
			edit(c)
		}
		return &protocol.Evaluation{Counts: c, Sigma: 10}
	}
	for _, tc := range []struct {
		name string
		e    *protocol.Evaluation
		ok   bool
	}{
		{"the count", cells(1000, nil), true},
		{"just above the low end", cells(499, nil), true},
		{"below the low end", cells(497, nil), false},
		{"grown by half", cells(2000, nil), true},
		{"above the high end", cells(2003, nil), false},
		{"one negative cell within the noise", cells(1000, func(c []float64) { c[3] = -59 }), true},
		{"one cell too negative", cells(1000, func(c []float64) { c[3] = -61 }), false},
		{"one cell above the high end", cells(0, func(c []float64) { c[0] = 2003; c[1] = -1500 }), false},
		{"NaN cell", cells(1000, func(c []float64) { c[7] = math.NaN() }), false},
	} {
		err := fedeval.CheckPlausible(tc.e, r)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, fedeval.ErrImplausible)) {
			t.Errorf("%s: got %v, want ok %v (ErrImplausible otherwise)", tc.name, err, tc.ok)
		}
	}
}

// FuzzCheckPlausible: for any histogram and range, CheckPlausible returns
// nil exactly when every cell is in [MinCell, Hi] and the total in [Lo, Hi].
func FuzzCheckPlausible(f *testing.F) {
	f.Add(100.0, 0.0, -5.0, 50.0, 3.0, 40.0, 8.0)
	f.Add(1e9, 1e9, 0.0, 1e9, 1e9, 0.0, 1e9)
	f.Add(-1.0, 2.0, math.Inf(1), math.NaN(), 0.0, 0.0, 1.0)
	f.Fuzz(func(t *testing.T, lo, hi, minCell, a, b, c, d float64) {
		e := &protocol.Evaluation{Counts: []float64{a, b, c, d}, Sigma: 1}
		r := fedeval.Range{Lo: lo, Hi: hi, MinCell: minCell}
		want := true
		var total float64
		for _, x := range e.Counts {
			want = want && x >= minCell && x <= hi
			total += x
		}
		want = want && total >= lo && total <= hi
		if err := fedeval.CheckPlausible(e, r); (err == nil) != want {
			t.Fatalf("CheckPlausible(%v, %+v) = %v, want ok %v", e.Counts, r, err, want)
		}
	})
}
