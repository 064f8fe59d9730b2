package synth

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// within fails unless got is within k standard errors of want.
func within(t *testing.T, what string, got, want, se, k float64) {
	t.Helper()
	if math.Abs(got-want) > k*se {
		t.Errorf("%s: got %.5g, want %.5g ± %.2g (%.0f standard errors)", what, got, want, k*se, k)
	}
}

// TestSamplers checks the samplers' means and variances against the closed
// forms: Gamma(k, θ) has mean kθ and variance kθ²; Beta(a, b) has mean
// a/(a+b); Poisson(μ) has mean and variance μ.
func TestSamplers(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	for _, tc := range []struct{ shape, scale float64 }{{0.4, 2}, {1, 1}, {2, 0.5}, {9, 3}} {
		var s, s2 float64
		for range n {
			x := gamma(r, tc.shape, tc.scale)
			s += x
			s2 += x * x
		}
		mean := s / n
		v := s2/n - mean*mean
		wantMean, wantVar := tc.shape*tc.scale, tc.shape*tc.scale*tc.scale
		within(t, "gamma mean", mean, wantMean, math.Sqrt(wantVar/n), 4)
		// Var of the sample variance ≈ (μ4 − σ⁴)/n; for a gamma μ4 = 3k(k+2)θ⁴.
		mu4 := 3 * tc.shape * (tc.shape + 2) * math.Pow(tc.scale, 4)
		within(t, "gamma variance", v, wantVar, math.Sqrt((mu4-wantVar*wantVar)/n), 4)
	}
	var sb float64
	for range n {
		sb += beta(r, 0.8, 6)
	}
	a, b := 0.8, 6.0
	within(t, "beta mean", sb/n, a/(a+b), math.Sqrt(a*b/((a+b)*(a+b)*(a+b+1))/n), 4)
	for _, mu := range []float64{0.5, 5, 25, 60} {
		var s float64
		for range n {
			s += float64(poisson(r, mu))
		}
		within(t, "poisson mean", s/n, mu, math.Sqrt(mu/n), 4)
	}
}

// TestGapsMatchRates checks the renewal process: every gap between
// consecutive purchases of a customer has mean 1/λ and variance
// 1/(GapShape·λ²), so the pooled mean gap must match Σ 1/λ_i over the gaps
// within its standard error. The window is long and customers never churn,
// so edge effects are negligible; the relocation of purchases to nearby local
// days only changes the first and last purchase times, which telescope.
func TestGapsMatchRates(t *testing.T) {
	g, err := New(Config{Seed: 7, Customers: 120, Days: 20000, NoChurn: true, BrowsePerPurchase: -1, BackgroundViewRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	var sumGaps, sumWant, sumVar, n float64
	var rates []float64
	for i := range 120 {
		c := g.Customer(i)
		rates = append(rates, c.Rate)
		var ps []time.Time
		for _, ev := range c.Events {
			if ev.Kind != model.Purchase {
				t.Fatalf("customer %d: got a %v event with browsing off", i, ev.Kind)
			}
			ps = append(ps, ev.Time)
		}
		if len(ps) < 2 {
			continue
		}
		gaps := float64(len(ps) - 1)
		sumGaps += ps[len(ps)-1].Sub(ps[0]).Hours() / 24
		sumWant += gaps / c.Rate
		sumVar += gaps / (2 * c.Rate * c.Rate)
		n += gaps
	}
	within(t, "pooled mean gap (days)", sumGaps/n, sumWant/n, math.Sqrt(sumVar)/n, 4)
	if n < 50000 {
		t.Errorf("got %.0f gaps, want a long enough window for 50,000", n)
	}
	// The rates themselves come from Gamma(1.5, mean 1/20): mean 0.05, sd 0.05/√1.5.
	var s float64
	for _, r := range rates {
		s += r
	}
	within(t, "mean purchase rate", s/float64(len(rates)), 0.05, 0.05/math.Sqrt(1.5)/math.Sqrt(float64(len(rates))), 4)
}

// TestPooledGapIsInverseMeanRate checks the population-level promise of the
// Config doc: with gamma-distributed rates the pooled mean gap is 1/RateMean.
func TestPooledGapIsInverseMeanRate(t *testing.T) {
	const customers = 1500
	g, err := New(Config{Seed: 3, Customers: customers, Days: 8000, NoChurn: true, BrowsePerPurchase: -1, BackgroundViewRate: -1, RateShape: 4, RateMean: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var span, gaps float64
	for i := range customers {
		c := g.Customer(i)
		if len(c.Events) >= 2 {
			span += c.Events[len(c.Events)-1].Time.Sub(c.Events[0].Time).Hours() / 24
			gaps += float64(len(c.Events) - 1)
		}
	}
	// The pooled mean is ≈ ΣT_i/Σλ_iT_i; its spread is dominated by the
	// sample mean of λ (relative sd 1/√(shape·n)).
	within(t, "pooled mean gap (days)", span/gaps, 10, 10/math.Sqrt(4*customers), 4)
}

func TestChurnMean(t *testing.T) {
	g, err := New(Config{Seed: 11, Customers: 5000, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for i := range 5000 {
		s += g.Customer(i).Churn
	}
	a, b := 0.8, 6.0
	within(t, "mean dropout probability", s/5000, a/(a+b), math.Sqrt(a*b/((a+b)*(a+b)*(a+b+1))/5000), 4)
}

func TestCustomerShape(t *testing.T) {
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	g, err := New(Config{Seed: 5, Customers: 300, Start: start, Days: 120})
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(120 * model.Day)
	var preViews, views int
	merchants := map[string]int{}
	for i := range 300 {
		c := g.Customer(i)
		merchants[c.Merchant]++
		var purchases []time.Time
		for j, ev := range c.Events {
			if ev.Customer != c.ID || ev.Kind < model.View || ev.Kind > model.Purchase {
				t.Fatalf("customer %d event %d: got %+v", i, j, ev)
			}
			if ev.Time.Before(start) || !ev.Time.Before(end) || ev.Time.Location() != time.UTC {
				t.Fatalf("customer %d event %d at %v, want UTC in [%v, %v)", i, j, ev.Time, start, end)
			}
			if j > 0 && ev.Time.Before(c.Events[j-1].Time) {
				t.Fatalf("customer %d: events out of order at %d", i, j)
			}
			if ev.HasAmount != (ev.Kind == model.Purchase) || (ev.HasAmount && !(ev.Amount > 0)) {
				t.Fatalf("customer %d event %d: amount %v (has %v) on a %v", i, j, ev.Amount, ev.HasAmount, ev.Kind)
			}
			if ev.Kind == model.Purchase {
				purchases = append(purchases, ev.Time)
			}
		}
		// Browsing intensifies before purchases: count views in the 3 days
		// before some purchase.
		for _, ev := range c.Events {
			if ev.Kind != model.View {
				continue
			}
			views++
			for _, p := range purchases {
				if d := p.Sub(ev.Time); d >= 0 && d < 3*model.Day {
					preViews++
					break
				}
			}
		}
	}
	// With the defaults (5 views per purchase, lead mean 2 days, 0.05
	// background views a day) most views precede a purchase closely; uniform
	// browsing would put only a small share there.
	if frac := float64(preViews) / float64(views); frac < 0.5 {
		t.Errorf("got %.2f of views within 3 days before a purchase, want > 0.5", frac)
	}
	if len(merchants) != 3 || merchants["m1"] < merchants["m3"] {
		t.Errorf("got merchant counts %v, want three with m1 (40%%) above m3 (25%%)", merchants)
	}
}

func TestWriteCSVDeterministicAndExact(t *testing.T) {
	write := func(cfg Config) (string, Stats) {
		t.Helper()
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		st, err := g.WriteCSV(context.Background(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf.String(), st
	}
	a, st := write(Config{Seed: 1, Events: 5000})
	b, _ := write(Config{Seed: 1, Events: 5000})
	c, _ := write(Config{Seed: 2, Events: 5000})
	if a != b {
		t.Errorf("two runs with seed 1 differ")
	}
	if a == c {
		t.Errorf("seeds 1 and 2 gave the same log")
	}
	lines := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	if lines[0] != Header || len(lines) != 5001 || st.Events != 5000 {
		t.Errorf("got header %q, %d lines, %d events; want %q, 5001, 5000", lines[0], len(lines), st.Events, Header)
	}
	sum := 0
	for _, k := range st.Kinds {
		sum += k
	}
	if sum != 5000 || st.Kinds[model.Purchase] == 0 || st.Kinds[model.View] == 0 {
		t.Errorf("got kind counts %v", st.Kinds)
	}
	// A log cut at 2,000 events is a prefix of the 5,000-event one.
	p, _ := write(Config{Seed: 1, Events: 2000})
	if !strings.HasPrefix(a, p) {
		t.Errorf("the 2,000-event log is not a prefix of the 5,000-event log")
	}
	// With a customer count the log holds exactly those customers.
	_, st = write(Config{Seed: 1, Customers: 37})
	if st.Customers != 37 {
		t.Errorf("got %d customers, want 37", st.Customers)
	}
}

func TestEventsPerCustomer(t *testing.T) {
	for _, want := range []float64{20, 60} {
		g, err := New(Config{Seed: 9, Customers: 2000, EventsPerCustomer: want})
		if err != nil {
			t.Fatal(err)
		}
		st, err := g.WriteCSV(context.Background(), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := float64(st.Events) / 2000; math.Abs(got-want) > 0.1*want {
			t.Errorf("got %.1f events per customer, want %.0f ± 15%%", got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Customers: -1},
		{Customers: 1, Days: -3},
		{Customers: 1, CartProb: 2},
		{Customers: 1, RateMean: math.NaN()},
		{Customers: 1, Merchants: []Merchant{{Name: "x", Weight: 1}}},
	} {
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "new generator: ") {
			t.Errorf("New(%+v): got %v, want a new generator error", cfg, err)
		}
	}
}

func BenchmarkWriteCSV(b *testing.B) {
	g, err := New(Config{Seed: 1, Events: 200000})
	if err != nil {
		b.Fatal(err)
	}
	events := 0
	for b.Loop() {
		st, err := g.WriteCSV(context.Background(), discard{})
		if err != nil {
			b.Fatal(err)
		}
		events += st.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestSeasonality checks the weekly and daily profiles in local time: with
// WeekendBoost 0.3 the three-day relocation gives a weekend share of
// purchases above the uniform 2/7, and the daily profile puts more purchases
// in the local evening (18:00–22:00, weight 28.5 of 90.6) than in the early
// morning (02:00–06:00, weight 1.5).
func TestSeasonality(t *testing.T) {
	g, err := New(Config{Seed: 21, Customers: 3000, NoChurn: true, BrowsePerPurchase: -1, BackgroundViewRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	zones := map[string]*time.Location{}
	for _, m := range g.Config().Merchants {
		zones[m.Name] = m.Zone
	}
	var n, weekend, evening, night float64
	for i := range 3000 {
		c := g.Customer(i)
		for _, ev := range c.Events {
			lt := ev.Time.In(zones[c.Merchant])
			n++
			if wd := lt.Weekday(); wd == time.Saturday || wd == time.Sunday {
				weekend++
			}
			switch h := lt.Hour(); {
			case h >= 18 && h < 22:
				evening++
			case h >= 2 && h < 6:
				night++
			}
		}
	}
	// Weekend share: a purchase lands on one of three days weighted 1 (or
	// 1.3 on weekends) with the middle day doubled; averaged over the week
	// this gives 0.3138 against 2/7 = 0.2857 (worked out by enumerating the
	// seven starting days).
	share := weekend / n
	within(t, "weekend share of purchases", share, 0.3138, math.Sqrt(0.3138*0.6862/n), 5)
	within(t, "evening share of purchases", evening/n, 28.5/90.6, math.Sqrt(0.315*0.685/n), 5)
	within(t, "night share of purchases", night/n, 1.5/90.6, math.Sqrt(0.0166*0.9834/n), 5)
}

func TestSeasonalDayInverts(t *testing.T) {
	// seasonalDay inverts Λ(t) = t + a·P/(2π)·(sin(2π(t − peak)/P) + sin(2π·peak/P)).
	const period = 365.25
	w := 2 * math.Pi / period
	for _, a := range []float64{0.1, 0.5, 0.9} {
		for _, u := range []float64{0, 1, 50, 200, 700} {
			got := seasonalDay(u, a, 120)
			back := got + a/w*(math.Sin(w*(got-120))+math.Sin(w*120))
			if math.Abs(back-u) > 1e-6 {
				t.Errorf("a %v, u %v: Λ(%v) = %v", a, u, got, back)
			}
		}
	}
}

func TestSeasonalIntensity(t *testing.T) {
	// Without churn a customer born at operational time b buys at rate λ·s(t),
	// s(t) = 1 + a·cos(2π(t − peak)/P), from calendar day Λ⁻¹(b) on, and births
	// are uniform in operational time over the window, so the expected
	// purchases on day t are ∝ s(t)·Λ(t) (the customers born by then). The
	// quarter-years around the peaks and around the troughs hold purchases in
	// the ratio of that density's integrals over them (numerically; without the
	// growth of the customer base it would be 2.64 for a = 0.5).
	const a, peak, period = 0.5, 100.0, 365.25
	g, err := New(Config{Seed: 9, Days: 730, Customers: 3000, NoChurn: true, Seasonality: a, SeasonPeak: peak,
		BrowsePerPurchase: -1, BackgroundViewRate: -1, Merchants: []Merchant{{Name: "m", Zone: time.UTC, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	start := g.Config().Start
	var near, far float64
	for i := range 3000 {
		for _, e := range g.Customer(i).Events {
			d := e.Time.Sub(start).Hours() / 24
			phase := math.Mod(d-peak+10*period, period) // days since the last peak
			switch {
			case phase < period/8 || phase > 7*period/8:
				near++
			case math.Abs(phase-period/2) < period/8:
				far++
			}
		}
	}
	w := 2 * math.Pi / period
	var wantNear, wantFar float64
	for d := 0.0005; d < 730; d += 0.001 {
		lam := d + a/w*(math.Sin(w*(d-peak))+math.Sin(w*peak))
		if lam > 730 {
			break
		}
		dens := (1 + a*math.Cos(w*(d-peak))) * lam
		phase := math.Mod(d-peak+10*period, period)
		switch {
		case phase < period/8 || phase > 7*period/8:
			wantNear += dens
		case math.Abs(phase-period/2) < period/8:
			wantFar += dens
		}
	}
	want := wantNear / wantFar
	t.Logf("peak/trough purchases %.3f, expected %.3f", near/far, want)
	if got := near / far; math.Abs(got-want) > 0.1*want {
		t.Errorf("peak/trough purchases %v / %v = %.3f, want %.3f ± 10%%", near, far, got, want)
	}
	if _, err := New(Config{Customers: 1, Seasonality: 1}); err == nil {
		t.Error("seasonality 1: got no error")
	}
}
