package bgnbd

import (
	"bufio"
	"errors"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/mathext"
)

const week = 7 * 24 * time.Hour

// published are the BG/NBD estimates for the CDNOW sample, weeks 1–39 (Fader,
// Hardie and Lee 2005, table 1; lifetimes tests/test_estimation.py), and the
// log-likelihood the paper reports for them.
var published = Params{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}

const publishedLL = -9582.43

func readSummaryFile(t testing.TB, path string) []Customer {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cs, err := ReadSummary(f)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// readCDNOWSample parses CDNOW_sample.txt (id_in_master id_in_sample
// YYYYMMDD cds dollars) into purchase times per id_in_sample.
func readCDNOWSample(t testing.TB, path string) map[int][]time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[int][]time.Time)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 {
			t.Fatalf("%s: line %d: %d fields, want 5", path, line, len(fs))
		}
		id, err := strconv.Atoi(fs[1])
		if err != nil {
			t.Fatalf("%s: line %d: %v", path, line, err)
		}
		d, err := time.Parse("20060102", fs[2])
		if err != nil {
			t.Fatalf("%s: line %d: %v", path, line, err)
		}
		out[id] = append(out[id], d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func summarizeSample(t testing.TB) []Customer {
	t.Helper()
	byID := readCDNOWSample(t, "testdata/CDNOW_sample.txt")
	ids := make([]int, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	end := time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC)
	cs := make([]Customer, len(ids))
	for i, id := range ids {
		c, err := Summarize(byID[id], end, week)
		if err != nil {
			t.Fatalf("customer %d: %v", id, err)
		}
		cs[i] = c
	}
	return cs
}

// checkPublished asserts that a fit rounds to the published values.
func checkPublished(t *testing.T, got Params, ll float64) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"r", got.R, published.R},
		{"alpha", got.Alpha, published.Alpha},
		{"a", got.A, published.A},
		{"b", got.B, published.B},
	} {
		if math.Abs(c.got-c.want) > 0.0005 {
			t.Errorf("%s: got %.6f, want %.3f to 3 decimals", c.name, c.got, c.want)
		}
	}
	if math.Abs(ll-publishedLL) > 0.005 {
		t.Errorf("log-likelihood: got %.4f, want %.2f", ll, publishedLL)
	}
}

func TestFitCDNOWSummary(t *testing.T) {
	cs := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	if len(cs) != 2357 {
		t.Fatalf("got %d customers, want 2357", len(cs))
	}
	p, ll, err := Fit(cs, FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary fit: %+v, log-likelihood %.4f", p, ll)
	checkPublished(t, p, ll)
	// An independent fit with SciPy (Nelder–Mead on a separately written
	// likelihood): /usr/bin/python3 model/bgnbd/testdata/reference_fit.py
	scipy := Params{R: 0.242593, Alpha: 4.413532, A: 0.792886, B: 2.425754}
	const scipyLL = -9582.425561
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"r", p.R, scipy.R}, {"alpha", p.Alpha, scipy.Alpha}, {"a", p.A, scipy.A}, {"b", p.B, scipy.B}, {"loglik", ll, scipyLL}} {
		if math.Abs(c.got-c.want) > 5e-6*math.Max(1, math.Abs(c.want)) {
			t.Errorf("%s: got %.7f, SciPy %.6f", c.name, c.got, c.want)
		}
	}
	e, err := p.ExpectedPurchases(Customer{X: 2, Tx: 30.43, T: 38.86}, 39)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(e-1.225910) > 2e-6 {
		t.Errorf("E[Y(39) | 2, 30.43, 38.86] at the fit: got %.7f, SciPy hyp2f1 1.225910", e)
	}
}

// TestSummarizeMatchesCSV establishes how the reference summary was built:
// distinct purchase days, the end day 1997-09-30 included, ages in weeks from
// the first purchase day to the end day. The CSV rounds to 2 decimals.
func TestSummarizeMatchesCSV(t *testing.T) {
	want := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	got := summarizeSample(t)
	if len(got) != len(want) {
		t.Fatalf("got %d customers from the raw sample, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.X != w.X || math.Abs(g.Tx-w.Tx) > 0.0051 || math.Abs(g.T-w.T) > 0.0051 {
			t.Errorf("customer %d: got %+v, want %+v", i+1, g, w)
		}
	}
}

func TestSummarizeEndDayInclusive(t *testing.T) {
	// First purchase 1997-01-01, two on 1997-01-08 (one day), one on the end
	// day 1997-09-30 late in the day, one after it.
	d := func(m time.Month, day, h int) time.Time { return time.Date(1997, m, day, h, 0, 0, 0, time.UTC) }
	purchases := []time.Time{d(1, 1, 10), d(1, 8, 9), d(1, 8, 18), d(9, 30, 23), d(10, 1, 0)}
	got, err := Summarize(purchases, d(9, 30, 0), week)
	if err != nil {
		t.Fatal(err)
	}
	// Days: Jan 1, Jan 8, Sep 30 → x = 2; t_x = T = 272 days = 272/7 weeks.
	want := Customer{X: 2, Tx: 272.0 / 7, T: 272.0 / 7}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	got, err = Summarize(purchases, d(9, 29, 0), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Customer{X: 1, Tx: 7, T: 271}); got != want {
		t.Errorf("end 09-29 in days: got %+v, want %+v", got, want)
	}
	if _, err := Summarize(purchases, d(1, 0, 0), week); !errors.Is(err, ErrNoPurchases) {
		t.Errorf("end before first purchase: got %v, want ErrNoPurchases", err)
	}
	if _, err := Summarize(purchases, d(9, 29, 0), 0); err == nil {
		t.Error("zero unit: got nil error, want an error")
	}
}

func TestFitCDNOWRaw(t *testing.T) {
	p, ll, err := Fit(summarizeSample(t), FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw fit: %+v, log-likelihood %.4f", p, ll)
	checkPublished(t, p, ll)
}

func TestFitEveryStartConverges(t *testing.T) {
	cs := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	for i, s := range defaultStarts {
		p, ll, err := Fit(cs, FitOptions{Starts: []Params{s}})
		if err != nil {
			t.Errorf("start %d: %v", i, err)
			continue
		}
		checkPublished(t, p, ll)
	}
}

func TestFitErrors(t *testing.T) {
	cs := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	if _, _, err := Fit(cs, FitOptions{MaxIterations: 2}); !errors.Is(err, ErrNotConverged) {
		t.Errorf("2 iterations: got %v, want ErrNotConverged", err)
	}
	if _, _, err := Fit([]Customer{{0, 0, 3}, {0, 0, 5}}, FitOptions{}); !errors.Is(err, ErrNoRepeats) {
		t.Errorf("no repeat purchases: got %v, want ErrNoRepeats", err)
	}
	if _, _, err := Fit(nil, FitOptions{}); err == nil {
		t.Error("no customers: got nil error, want an error")
	}
	if _, _, err := Fit([]Customer{{X: 1, Tx: 5, T: 2}}, FitOptions{}); !errors.Is(err, ErrInvalidCustomer) {
		t.Errorf("t_x > T: got %v, want ErrInvalidCustomer", err)
	}
	if _, _, err := Fit(cs, FitOptions{Starts: []Params{{R: -1, Alpha: 1, A: 1, B: 1}}}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("negative start: got %v, want ErrInvalidParams", err)
	}
}

// TestHardieSpreadsheet checks the predictions against Hardie's BG/NBD
// spreadsheet as quoted by lifetimes' tests. The spreadsheet evaluates at the
// unrounded maximum-likelihood estimates; at the 3-decimal published values
// E[X(78)] moves by 0.003, so the check uses this package's own fit.
func TestHardieSpreadsheet(t *testing.T) {
	mle, _, err := Fit(readSummaryFile(t, "testdata/cdnow_customers_summary.csv"), FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{published, mle} {
		got, err := p.ExpectedPurchases(Customer{X: 2, Tx: 30.43, T: 38.86}, 39)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-1.226) > 0.0005 {
			t.Errorf("%+v: E[Y(39) | 2, 30.43, 38.86]: got %.5f, want 1.226", p, got)
		}
	}
	times := []float64{0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00}
	want := []float64{0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576}
	for i, tm := range times {
		got, err := mle.ExpectedPurchasesNew(tm)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want[i]) > 0.0005 {
			t.Errorf("E[X(%v)]: got %.5f, want %.4f", tm, got, want[i])
		}
	}
}

// directExpected is FHL's conditional expectation exactly as printed, with
// gonum's ₂F₁ — a second method for the transformed series.
func directExpected(p Params, c Customer, t float64) float64 {
	z := t / (p.Alpha + c.T + t)
	f := mathext.Hypergeo(p.R+c.X, p.B+c.X, p.A+p.B+c.X-1, z)
	num := (p.A + p.B + c.X - 1) / (p.A - 1) * (1 - math.Pow((p.Alpha+c.T)/(p.Alpha+c.T+t), p.R+c.X)*f)
	den := 1.0
	if c.X > 0 {
		den += p.A / (p.B + c.X - 1) * math.Pow((p.Alpha+c.T)/(p.Alpha+c.Tx), p.R+c.X)
	}
	return num / den
}

func TestExpectedPurchasesAgainstDirectFormula(t *testing.T) {
	params := []Params{published, {R: 1.2, Alpha: 3, A: 1.5, B: 2.5}, {R: 0.5, Alpha: 10, A: 0.999, B: 0.8}}
	customers := []Customer{{0, 0, 10}, {1, 3, 10}, {5, 30, 38}, {12, 35, 39}}
	for _, p := range params {
		for _, c := range customers {
			for _, tm := range []float64{0.5, 4, 39, 200} {
				got, err := p.ExpectedPurchases(c, tm)
				if err != nil {
					t.Fatal(err)
				}
				want := directExpected(p, c, tm)
				if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
					t.Errorf("%+v %+v t=%v: got %.12g, want %.12g", p, c, tm, got, want)
				}
			}
		}
	}
	// At a = 1 the printed formula is 0/0; the transformed one is continuous.
	c := Customer{X: 3, Tx: 20, T: 30}
	at1, err := Params{R: 0.5, Alpha: 4, A: 1, B: 2}.ExpectedPurchases(c, 10)
	if err != nil {
		t.Fatal(err)
	}
	near := directExpected(Params{R: 0.5, Alpha: 4, A: 1 + 1e-6, B: 2}, c, 10)
	if math.Abs(at1-near) > 1e-5 {
		t.Errorf("a = 1: got %.9f, want ≈ %.9f (a = 1+1e−6)", at1, near)
	}
	if _, err := published.ExpectedPurchases(c, -1); err == nil {
		t.Error("negative horizon: got nil error, want an error")
	}
}

func TestExpectedPurchasesLargeX(t *testing.T) {
	// x = 500 overflows the printed formula's series terms; the transformed
	// series stays finite and, with P(alive) ≈ 1 and t_x = T, E ≈ (r+x)/(α+T)·t·(survival) < x.
	c := Customer{X: 500, Tx: 38, T: 38}
	got, err := published.ExpectedPurchases(c, 4)
	if err != nil {
		t.Fatal(err)
	}
	rate := (published.R + c.X) / (published.Alpha + c.T) // posterior mean λ
	if !(got > 0 && got < rate*4) {
		t.Errorf("E[Y(4)] for x = 500: got %v, want within (0, %v)", got, rate*4)
	}
}

// posterior computes, by Gauss–Legendre quadrature over (λ, p) against the
// Gamma(r, α) and Beta(a, b) priors, P(alive), P(no purchase in t) and
// E[Y(t)] given one customer's history — straight from the model's definition
// (FHL 2005, eqs. 1–3), independent of the closed forms.
func posterior(pr Params, c Customer, t float64) (alive, none, expect float64) {
	x := c.X
	const n = 400
	pNodes, pWeights := make([]float64, n), make([]float64, n)
	quad.Legendre{}.FixedLocations(pNodes, pWeights, 0, 1)
	lNodes, lWeights := make([]float64, n), make([]float64, n)
	quad.Legendre{}.FixedLocations(lNodes, lWeights, 0, (pr.R+x+80)/(pr.Alpha+c.Tx))
	var den, numAlive, numNone, numE float64
	for i, p := range pNodes {
		prior := pWeights[i] * math.Pow(p, pr.A-1) * math.Pow(1-p, pr.B-1)
		for j, lam := range lNodes {
			w := prior * lWeights[j] * math.Pow(lam, pr.R-1) * math.Exp(-pr.Alpha*lam)
			aliveLik := math.Pow(1-p, x) * math.Pow(lam, x) * math.Exp(-lam*c.T)
			deadLik := 0.0
			if x > 0 {
				deadLik = p * math.Pow(1-p, x-1) * math.Pow(lam, x) * math.Exp(-lam*c.Tx)
			}
			den += w * (aliveLik + deadLik)
			numAlive += w * aliveLik
			numNone += w * (aliveLik*math.Exp(-lam*t) + deadLik)
			// Alive at T: purchases in t are λ∫₀ᵗ e^(−λps) ds = (1 − e^(−λpt))/p.
			numE += w * aliveLik * -math.Expm1(-lam*p*t) / p
		}
	}
	return numAlive / den, numNone / den, numE / den
}

func TestPredictionsAgainstQuadrature(t *testing.T) {
	// Parameters with r+x ≥ 1, a > 1 and b+x ≥ 2 keep the integrands smooth
	// enough for plain Gauss–Legendre.
	pr := Params{R: 1.3, Alpha: 4, A: 1.6, B: 2.2}
	for _, c := range []Customer{{1, 3, 10}, {4, 20, 38}, {2, 2.5, 30}} {
		alive, none, expect := posterior(pr, c, 6)
		if got := pr.PAlive(c); math.Abs(got-alive) > 1e-6 {
			t.Errorf("PAlive(%+v): got %.9f, want %.9f", c, got, alive)
		}
		if got := pr.ProbNoPurchase(c, 6); math.Abs(got-none) > 1e-6 {
			t.Errorf("ProbNoPurchase(%+v, 6): got %.9f, want %.9f", c, got, none)
		}
		got, err := pr.ExpectedPurchases(c, 6)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-expect) > 1e-6 {
			t.Errorf("ExpectedPurchases(%+v, 6): got %.9f, want %.9f", c, got, expect)
		}
	}
}

func TestPAliveAndProbabilities(t *testing.T) {
	c0 := Customer{X: 0, Tx: 0, T: 20}
	if got := published.PAlive(c0); got != 1 {
		t.Errorf("PAlive with x = 0: got %v, want 1", got)
	}
	// x = 0, T = 20: P(no purchase in t) = ((α+T)/(α+T+t))^r.
	wantNone := math.Pow((4.414+20)/(4.414+20+7), 0.243)
	if got := published.ProbNoPurchase(c0, 7); math.Abs(got-wantNone) > 1e-15 {
		t.Errorf("ProbNoPurchase: got %.17g, want %.17g", got, wantNone)
	}
	c := Customer{X: 2, Tx: 30.43, T: 38.86}
	// Hand-computed: a/(b+x−1) = 0.793/3.426, ((α+T)/(α+t_x))^(r+x) = (43.274/34.844)^2.243.
	odds := 0.793 / 3.426 * math.Pow(43.274/34.844, 2.243)
	if got, want := published.PAlive(c), 1/(1+odds); math.Abs(got-want) > 1e-12 {
		t.Errorf("PAlive: got %.15f, want %.15f", got, want)
	}
	if got := published.ProbPurchaseWithin(c, 0); got != 0 {
		t.Errorf("ProbPurchaseWithin(t = 0): got %v, want 0", got)
	}
	prev := 0.0
	for _, tm := range []float64{0.1, 1, 4, 13, 52, 1e6} {
		p := published.ProbPurchaseWithin(c, tm)
		if !(p > prev && p <= published.PAlive(c)) {
			t.Errorf("ProbPurchaseWithin(%v) = %v, want increasing and ≤ P(alive)", tm, p)
		}
		if s := p + published.ProbNoPurchase(c, tm); math.Abs(s-1) > 1e-15 {
			t.Errorf("within + none = %v, want 1", s)
		}
		prev = p
	}
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	p := Params{R: 0.7, Alpha: 3.1, A: 0.9, B: 2.2}
	for _, c := range []Customer{{0, 0, 30}, {1, 4, 30}, {7, 25, 38.5}, {40, 38, 39}} {
		var g [4]float64
		p.logLik(c, g[:])
		th := [4]float64{math.Log(p.R), math.Log(p.Alpha), math.Log(p.A), math.Log(p.B)}
		at := func(th [4]float64) float64 {
			q := Params{math.Exp(th[0]), math.Exp(th[1]), math.Exp(th[2]), math.Exp(th[3])}
			return q.logLik(c, nil)
		}
		for k := range 4 {
			const h = 1e-5
			up, dn := th, th
			up[k] += h
			dn[k] -= h
			num := (at(up) - at(dn)) / (2 * h)
			if math.Abs(num-g[k]) > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("%+v: ∂/∂θ%d: got %.9g, want %.9g (central difference)", c, k, g[k], num)
			}
		}
	}
}

func TestLogLikelihoodHandWorked(t *testing.T) {
	// r = α = a = b = 1, x = 1, t_x = 1, T = 2:
	// B(1,2)/B(1,1) = ½; Γ(2)·1/Γ(1) = 1; (α+T)^−2 = 1/9; a/(b+x−1) = 1, (α+t_x)^−2 = ¼.
	// L = ½·(1/9 + ¼) = 13/72.
	p := Params{1, 1, 1, 1}
	got, err := p.LogLikelihood([]Customer{{1, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Log(13.0 / 72); math.Abs(got-want) > 1e-14 {
		t.Errorf("got %.15g, want %.15g", got, want)
	}
	// x = 0, T = 3: L = B(1,1)/B(1,1)·(α+T)^−r = ¼.
	got, err = p.LogLikelihood([]Customer{{0, 0, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Log(0.25); math.Abs(got-want) > 1e-15 {
		t.Errorf("got %.15g, want %.15g", got, want)
	}
	// Large x stays finite (lgamma, not gamma).
	got, err = published.LogLikelihood([]Customer{{5000, 38, 39}})
	if err != nil || math.IsInf(got, 0) || math.IsNaN(got) {
		t.Errorf("x = 5000: got %v, %v, want a finite log-likelihood", got, err)
	}
}

func TestHyp2F1(t *testing.T) {
	tests := []struct {
		name       string
		a, b, c, z float64
		want       float64
	}{
		// ₂F₁(1,1;2;z) = −ln(1−z)/z.
		{"log", 1, 1, 2, 0.5, -math.Log(0.5) / 0.5},
		{"log near 1", 1, 1, 2, 0.99, -math.Log(0.01) / 0.99},
		// ₂F₁(a,b;b;z) = (1−z)^−a.
		{"binomial", 0.7, 3, 3, 0.3, math.Pow(0.7, -0.7)},
		// ₂F₁(½,1;3/2;z²) = atanh(z)/z.
		{"atanh", 0.5, 1, 1.5, 0.25, math.Atanh(0.5) / 0.5},
		// Terminating: ₂F₁(−2,b;c;z) = 1 − 2bz/c + b(b+1)z²/(c(c+1)).
		{"polynomial", -2, 3, 4, 0.6, 1 - 2*3*0.6/4 + 3*4*0.36/(4*5)},
		{"negative z", 1, 1, 2, -0.5, math.Log(1.5) / 0.5},
	}
	for _, tc := range tests {
		got, err := Hyp2F1(tc.a, tc.b, tc.c, tc.z)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if math.Abs(got-tc.want) > 1e-13*math.Max(1, math.Abs(tc.want)) {
			t.Errorf("%s: got %.16g, want %.16g", tc.name, got, tc.want)
		}
	}
	for _, z := range []float64{0.1, 0.5, 0.9} {
		got, err := Hyp2F1(2.243, 4.426, 5.219, z)
		if err != nil {
			t.Fatal(err)
		}
		want := mathext.Hypergeo(2.243, 4.426, 5.219, z)
		if math.Abs(got-want) > 1e-11*want {
			t.Errorf("z=%v: got %.15g, gonum %.15g", z, got, want)
		}
	}
	for _, bad := range [][4]float64{{1, 1, 0, 0.5}, {1, 1, -3, 0.5}, {1, 1, 2, 1}, {1, 1, 2, math.NaN()}} {
		if _, err := Hyp2F1(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("Hyp2F1%v: got nil error, want an error", bad)
		}
	}
	if _, err := Hyp2F1(1, 1, 2, 1-1e-9); !errors.Is(err, ErrNoConvergence) {
		t.Errorf("z = 1−1e−9: got %v, want ErrNoConvergence", err)
	}
}

func BenchmarkFit(b *testing.B) {
	cs := readSummaryFile(b, "testdata/cdnow_customers_summary.csv")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Fit(cs, FitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
