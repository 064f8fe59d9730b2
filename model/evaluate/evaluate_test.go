package evaluate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
)

func TestMonthlyCutoffs(t *testing.T) {
	got := MonthlyCutoffs(date("1997-10-15"), date("1998-03-01"))
	// 1998-01-01 + 30 d = 1998-01-31 ≤ 03-01; 1998-02-01 + 30 d = 03-03 > 03-01.
	want := []time.Time{date("1997-11-01"), date("1997-12-01"), date("1998-01-01")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestRunRejectsLeakyCutoffs(t *testing.T) {
	events := []model.Event{{Customer: "a", Time: date("1998-01-01"), Kind: model.Purchase}}
	tests := []struct {
		name  string
		train []time.Time
		want  string
	}{
		{"window past test", []time.Time{date("1998-02-15")}, "label window ends"},
		{"after test", []time.Time{date("1998-03-05")}, "not before the test cutoff"},
		{"none", nil, "at least one training cutoff"},
	}
	for _, tc := range tests {
		_, err := Run(context.Background(), events, Config{TestCutoff: date("1998-03-01"), TrainCutoffs: tc.train})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRunSmall checks the report on a hand-made log: four customers, test cutoff
// March 1; b and d buy in the test window (on days 2 and 10), so the 30-day
// positive rate is 2/4 and the 1-day rate 0.
func TestRunSmall(t *testing.T) {
	p := func(c, d string) model.Event {
		return model.Event{Customer: c, Time: date(d), Kind: model.Purchase, Amount: 10, HasAmount: true}
	}
	events := []model.Event{
		p("a", "1997-01-05"), p("a", "1997-06-01"),
		p("b", "1997-01-10"), p("b", "1997-12-20"), p("b", "1998-01-20"), p("b", "1998-03-02"),
		p("c", "1997-02-01"), p("c", "1997-12-15"), p("c", "1998-01-03"),
		p("d", "1997-03-01"), p("d", "1998-02-20"), p("d", "1998-03-10"),
	}
	rep, err := Run(context.Background(), events, Config{
		TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodRecency, MethodFrequency365},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Customers != 4 || rep.PositiveRate[30] != 0.5 || rep.PositiveRate[1] != 0 || rep.PositiveRate[3] != 0.25 {
		t.Errorf("got %d customers, positive rates %v; want 4 and {1: 0, 3: 0.25, 30: 0.5}", rep.Customers, rep.PositiveRate)
	}
	// Days since the last purchase: d 9 (1998-02-20), b 40 (1998-01-20), c 57
	// (1998-01-03), a 273: order d, b, c, a. The buyers d and b rank first: AUC 1.
	if got := rep.Methods[0].AUC[30]; got != 1 {
		t.Errorf("recency AUC@30: got %v, want 1", got)
	}
	// Purchases in [τ−365d, τ): a 1, b 2 (1997-01-10 is too old), c 2, d 2 (d's
	// 1997-03-01 is exactly 365 days before 1998-03-01, so inside). Positive
	// pairs (b,d) vs (a,c): b>a, b=c (½), d>a, d=c (½): AUC = 3/4.
	if got := rep.Methods[1].AUC[30]; got != 0.75 {
		t.Errorf("frequency_365 AUC@30: got %v, want 0.75", got)
	}
}

// TestPreparedRunsAgain: a Prepared split run twice, with different methods in
// between, gives the same report as Run, and a run does not alter the shared
// positive rates.
func TestPreparedRunsAgain(t *testing.T) {
	p := func(c, d string) model.Event {
		return model.Event{Customer: c, Time: date(d), Kind: model.Purchase, Amount: 10, HasAmount: true}
	}
	events := []model.Event{
		p("a", "1997-01-05"), p("a", "1997-06-01"), p("b", "1997-01-10"), p("b", "1998-01-20"), p("b", "1998-03-02"),
		p("c", "1997-02-01"), p("c", "1998-01-03"), p("d", "1997-03-01"), p("d", "1998-02-20"), p("d", "1998-03-10"),
	}
	cfg := Config{
		TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodRecency, MethodFrequency365},
	}
	want, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	prep, err := Prepare(events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, methods := range [][]string{{MethodRecency, MethodFrequency365}, {MethodFrequency365}, {MethodRecency, MethodFrequency365}} {
		c := cfg
		c.Methods = methods
		got, err := prep.Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		got.PositiveRate[30] = -1 // must not leak into the next run
		if len(methods) == 2 && (got.Methods[0].AUC[30] != want.Methods[0].AUC[30] || got.Methods[1].AUC[30] != want.Methods[1].AUC[30]) {
			t.Errorf("run %d: AUC@30 %v, %v; want %v, %v", i, got.Methods[0].AUC[30], got.Methods[1].AUC[30],
				want.Methods[0].AUC[30], want.Methods[1].AUC[30])
		}
		if got.Customers != want.Customers || got.TrainRows != want.TrainRows {
			t.Errorf("run %d: %d customers, %d rows; want %d, %d", i, got.Customers, got.TrainRows, want.Customers, want.TrainRows)
		}
	}
	if again, _ := prep.Run(context.Background(), cfg); again.PositiveRate[30] != want.PositiveRate[30] {
		t.Errorf("positive rate after runs: got %v, want %v", again.PositiveRate[30], want.PositiveRate[30])
	}
}

// TestWarningsAndUndefined uses TestRunSmall's log, where no test customer buys
// on day 1, one (b, day 2) within 3 and 7 days and two (d, day 10) within 14 and 30 days: the
// 1-day ranking metrics are undefined and every horizon has fewer than
// MinPositives buyers.
func TestWarningsAndUndefined(t *testing.T) {
	p := func(c, d string) model.Event {
		return model.Event{Customer: c, Time: date(d), Kind: model.Purchase}
	}
	events := []model.Event{
		p("a", "1997-01-05"), p("a", "1997-06-01"),
		p("b", "1997-01-10"), p("b", "1997-12-20"), p("b", "1998-01-20"), p("b", "1998-03-02"),
		p("c", "1997-02-01"), p("c", "1997-12-15"), p("c", "1998-01-03"),
		p("d", "1997-03-01"), p("d", "1998-02-20"), p("d", "1998-03-10"),
	}
	cfg := Config{TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodRecency}}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantPos := map[int]int{1: 0, 3: 1, 7: 1, 14: 2, 30: 2}
	for h, n := range wantPos {
		if rep.Positives[h] != n {
			t.Errorf("positives@%d: got %d, want %d", h, rep.Positives[h], n)
		}
	}
	if got := rep.Undefined(1); got != "no positives" {
		t.Errorf("Undefined(1): got %q, want no positives", got)
	}
	if got := rep.Undefined(30); got != "" {
		t.Errorf("Undefined(30): got %q, want defined", got)
	}
	if a := rep.Methods[0].AUC[1]; !math.IsNaN(a) {
		t.Errorf("AUC@1: got %v, want NaN", a)
	}
	want := []string{
		"no test customer buys within 1 day of the test cutoff: AUC@1 and PR-AUC@1 are undefined",
		"only 1 test customer buys within 3 days of the test cutoff (fewer than 30): AUC@3 and PR-AUC@3 are unreliable",
		"only 1 test customer buys within 7 days of the test cutoff (fewer than 30): AUC@7 and PR-AUC@7 are unreliable",
		"only 2 test customers buy within 14 days of the test cutoff (fewer than 30): AUC@14 and PR-AUC@14 are unreliable",
		"only 2 test customers buy within 30 days of the test cutoff (fewer than 30): AUC@30 and PR-AUC@30 are unreliable",
	}
	if got := rep.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got, want)
	}
	// Nobody buys in the 30 days after 1998-04-15: nothing to rank.
	cfg.TestCutoff = date("1998-04-15")
	cfg.TrainCutoffs = []time.Time{date("1998-01-01")}
	if _, err := Run(context.Background(), events, cfg); err == nil || !strings.Contains(err.Error(), "0 of the 4 test customers buy within 30 days of the test cutoff 1998-04-15") {
		t.Errorf("got %v, want an error naming 0 of 4 buyers", err)
	}
}

// TestDayBaselines: in a shop whose customers buy exactly every 10 or every
// 45 days at noon, the last purchase plus the customer's own mean gap is the
// true first purchase day of every test buyer (S2 = 1, MAE = 0), and the
// best constant day is no better than that; the hazard model's four days are
// scored on the same buyers.
func TestDayBaselines(t *testing.T) {
	start := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)
	var events []model.Event
	for i := range 120 {
		period, phase := []int{10, 45}[i%2], (i*7)%45
		for d := phase; d < 400; d += period {
			events = append(events, model.Event{Customer: "c" + strconv.Itoa(i), Kind: model.Purchase, Time: start.AddDate(0, 0, d)})
		}
	}
	day := func(d int) time.Time { return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	rep, err := Run(context.Background(), events, Config{TestCutoff: day(300), TrainCutoffs: []time.Time{day(150), day(200), day(250)},
		Methods: []string{MethodHazard}, Hazard: hazard.TrainOptions{Steps: 50}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.DayBaselines) != 3 || rep.DayBaselines[0].Predictor != DayLastPlusGap || rep.DayBaselines[1].Predictor != DayBestConstant ||
		rep.DayBaselines[2].Predictor != DayBestConstantMAE {
		t.Fatalf("day baselines %+v", rep.DayBaselines)
	}
	if g := rep.DayBaselines[0]; g.S2 != 1 || g.MAE != 0 {
		t.Errorf("last + own gap: S2 %v, MAE %v; want 1 and 0", g.S2, g.MAE)
	}
	if c := rep.DayBaselines[1]; !(c.S2 < 1 && c.MAE > 0) {
		t.Errorf("best constant: S2 %v, MAE %v; want below 1 and above 0 (the buyers' days differ)", c.S2, c.MAE)
	}
	// The lowest-MAE constant, worked out from the shop's construction: each
	// training cutoff's buyers' first purchase days, the constant with the
	// least total distance to them, and its MAE on the test buyers.
	buyDays := func(c int) []int {
		var out []int
		for i := range 120 {
			period, phase := []int{10, 45}[i%2], (i*7)%45
			for d := phase; d < 400; d += period {
				if d >= c {
					if d < c+model.Horizon {
						out = append(out, d-c+1)
					}
					break
				}
			}
		}
		return out
	}
	train := append(append(buyDays(150), buyDays(200)...), buyDays(250)...)
	bestC, bestSum := 0, math.MaxInt
	for c := 1; c <= model.Horizon; c++ {
		sum := 0
		for _, d := range train {
			sum += max(d-c, c-d)
		}
		if sum < bestSum {
			bestC, bestSum = c, sum
		}
	}
	var abs float64
	test := buyDays(300)
	for _, d := range test {
		abs += math.Abs(float64(d - bestC))
	}
	if got, want := rep.DayBaselines[2].MAE, abs/float64(len(test)); math.Abs(got-want) > 1e-12 {
		t.Errorf("best constant (MAE): MAE %v, want %v (day %d)", got, want, bestC)
	}
	var names []string
	for _, d := range rep.Methods[0].Days {
		names = append(names, d.Predictor)
		if !(d.S2 > 0 && d.S2 <= 1 && d.MAE >= 0 && d.MAE < model.Horizon) {
			t.Errorf("%s: S2 %v, MAE %v out of range", d.Predictor, d.S2, d.MAE)
		}
	}
	if !slices.Equal(names, []string{DayMostLikely, DayMedian, DayExpected, DayClosest}) {
		t.Errorf("hazard days %v", names)
	}
}

// TestLongHorizons: in a shop whose customers buy every 10, 45 or 100 days,
// the 60- and 90-day test labels are those worked out from each customer's
// period and phase; AUC, PR-AUC and Brier are reported at both horizons when
// the log covers the window, and not at 90 days when the log ends earlier.
func TestLongHorizons(t *testing.T) {
	start := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)
	shop := func(end int) []model.Event {
		var events []model.Event
		for i := range 150 {
			period, phase := []int{10, 45, 100}[i%3], (i*7)%[]int{10, 45, 100}[i%3]
			for d := phase; d < end; d += period {
				events = append(events, model.Event{Customer: "c" + strconv.Itoa(i), Kind: model.Purchase, Time: start.AddDate(0, 0, d)})
			}
		}
		return events
	}
	want := func(h, end int) int {
		n := 0
		for i := range 150 {
			period, phase := []int{10, 45, 100}[i%3], (i*7)%[]int{10, 45, 100}[i%3]
			next := phase
			for next < 300 {
				next += period
			}
			if next < 300+h && next < end {
				n++
			}
		}
		return n
	}
	day := func(d int) time.Time { return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d) }
	cfg := Config{TestCutoff: day(300), TrainCutoffs: []time.Time{day(150), day(200), day(250)},
		Methods: []string{MethodHazard, MethodBGNBD, MethodRecency}, Hazard: hazard.TrainOptions{Steps: 50}}
	rep, err := Run(context.Background(), shop(400), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.LongHorizons, []int{60, 90}) {
		t.Fatalf("long horizons %v, want [60 90]", rep.LongHorizons)
	}
	for _, h := range []int{60, 90} {
		if got, w := rep.Positives[h], want(h, 400); got != w {
			t.Errorf("positives@%d: got %d, want %d", h, got, w)
		}
		if w := want(h, 400); w == 0 || w == 150 {
			t.Fatalf("positives@%d = %d: the shop must have buyers and non-buyers", h, w)
		}
		for _, m := range rep.Methods {
			if a := m.AUC[h]; !(a > 0 && a <= 1) {
				t.Errorf("%s AUC@%d = %v", m.Name, h, a)
			}
			if _, ok := m.Brier[h]; ok != (m.Name != MethodRecency) {
				t.Errorf("%s: Brier@%d present %v", m.Name, h, ok)
			}
		}
	}
	rep, err = Run(context.Background(), shop(385), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.LongHorizons, []int{60}) {
		t.Errorf("log ending on day 384: long horizons %v, want [60]", rep.LongHorizons)
	}
	if _, ok := rep.Methods[0].AUC[90]; ok {
		t.Errorf("AUC@90 reported for a log that ends before the 90-day window")
	}
}

// TestConcentrationHints: a log whose customer column names orders (every id
// buys once) is refused saying so, before any row is built, rather than with
// "choose another test cutoff"; a placeholder id holding most purchases is a
// warning of the report.
func TestConcentrationHints(t *testing.T) {
	cfg := Config{TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodRecency}}
	var orders []model.Event
	for i, d := range []string{"1997-01-05", "1997-06-01", "1997-12-20", "1998-01-20", "1998-03-02"} {
		orders = append(orders, model.Event{Customer: fmt.Sprintf("order-%d", i), Time: date(d), Kind: model.Purchase})
	}
	_, err := Run(context.Background(), orders, cfg)
	if err == nil || !strings.Contains(err.Error(), "none of the 5 customers has purchases at two different times") {
		t.Fatalf("order ids as customers: got %v", err)
	}
	// 200 customers buying in the test window and before it, and "guest" with
	// 30,000 purchases: 30,000 / 30,400 = 98.7% and 15,000× the others' mean.
	var events []model.Event
	for i := range 200 {
		c := fmt.Sprintf("c%03d", i)
		events = append(events, model.Event{Customer: c, Time: date("1997-10-01").Add(time.Duration(i) * time.Hour), Kind: model.Purchase})
		events = append(events, model.Event{Customer: c, Time: date("1998-03-01").Add(time.Duration(i%20) * model.Day), Kind: model.Purchase})
	}
	for i := range 30000 {
		events = append(events, model.Event{Customer: "guest", Time: date("1997-01-01").Add(time.Duration(i) * 15 * time.Minute), Kind: model.Purchase})
	}
	// Half the customers' second purchase falls after the window: some non-buyers.
	for i := range 100 {
		events[2*i+1].Time = date("1998-06-01")
	}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := `customer "guest" holds 30000 of the 30400 purchases (98.7%)`
	if !slices.ContainsFunc(rep.Warnings(), func(w string) bool { return strings.HasPrefix(w, want) }) {
		t.Errorf("warnings %q: want one beginning %q", rep.Warnings(), want)
	}
}
