package evaluate

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

func TestInnerCutoffs(t *testing.T) {
	tests := []struct {
		train     []string
		test      string
		wantTrain []string
	}{
		{nil, "", nil},
		{[]string{"2020-07-01"}, "", nil},
		{[]string{"2020-07-01", "2020-09-01", "2020-11-01"}, "2020-11-01", []string{"2020-07-01", "2020-09-01"}},
		// 2020-10-15 + 30 days = 11-14, after the inner test cutoff 11-01.
		{[]string{"2020-07-01", "2020-10-15", "2020-11-01"}, "2020-11-01", []string{"2020-07-01"}},
		{[]string{"2020-10-15", "2020-11-01"}, "", nil},
		// Exactly 30 days: the window ends on the cutoff, allowed.
		{[]string{"2020-10-02", "2020-11-01"}, "2020-11-01", []string{"2020-10-02"}},
	}
	for _, tc := range tests {
		var train []time.Time
		for _, s := range tc.train {
			train = append(train, date(s))
		}
		var got []string
		for _, c := range innerCutoffs(train) {
			got = append(got, train[c].Format(time.DateOnly))
		}
		test := time.Time{}
		if len(got) > 0 {
			test = train[len(train)-1]
		}
		wantTest := time.Time{}
		if tc.test != "" {
			wantTest = date(tc.test)
		}
		if !test.Equal(wantTest) || !slices.Equal(got, tc.wantTrain) {
			t.Errorf("innerCutoffs(%v) = %v, %v; want %s, %v", tc.train, test, got, tc.test, tc.wantTrain)
		}
	}
}

func TestDecide(t *testing.T) {
	base := InnerScore{Kind: "linear", AUC: 0.90, PRAUC: 0.60, Brier: 0.100}
	tests := []struct {
		name string
		alt  InnerScore
		se   float64
		keep bool
		why  string
	}{
		// 0.02 > 1.645 × 0.01 = 0.01645.
		{"wins everywhere", InnerScore{"mlp", 0.92, 0.61, 0.099}, 0.01, true, "mlp chosen"},
		// 0.015 ≤ 0.01645.
		{"gain inside the noise", InnerScore{"mlp", 0.915, 0.65, 0.090}, 0.01, false, "not above"},
		{"PR lower", InnerScore{"mlp", 0.95, 0.599, 0.090}, 0.01, false, "PR-AUC@30 is lower"},
		{"Brier higher", InnerScore{"mlp", 0.95, 0.65, 0.1001}, 0.01, false, "Brier@30 is higher"},
		{"ties are not wins", InnerScore{"mlp", 0.90, 0.60, 0.100}, 0, false, "not above"},
		{"equal PR and Brier keep a clear AUC win", InnerScore{"mlp", 0.93, 0.60, 0.100}, 0.01, true, "mlp chosen"},
	}
	for _, tc := range tests {
		keep, why := decide(base, tc.alt, tc.se, DefaultSelectionZ)
		if keep != tc.keep || !strings.Contains(why, tc.why) {
			t.Errorf("%s: decide = %v, %q; want %v and %q", tc.name, keep, why, tc.keep, tc.why)
		}
	}
}

// renewalLog is a subscription shop (scripts/heldout_cadences.py's
// subscription log, smaller): every customer renews on a cycle of 7, 14, 30
// or 60 days (± 1.5 days) until churning, with a churn probability per
// renewal of their own, and a fifth also buy add-ons at random. Whether a
// customer buys within 30 days is a window of their own cycle, which a linear
// score cannot form and an MLP can.
func renewalLog(n int, seed uint64) []model.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	start := date("2023-01-01")
	cycles := []float64{7, 14, 30, 30, 30, 60}
	var out []model.Event
	buy := func(c string, day, amount float64) {
		at := start.Add(time.Duration(day * 24 * float64(time.Hour)))
		out = append(out, model.Event{Customer: c, Time: at, Kind: model.Purchase, Amount: amount, HasAmount: true})
	}
	for i := range n {
		c := fmt.Sprintf("c%05d", i)
		cycle := cycles[r.IntN(len(cycles))]
		churn := 0.01 + 0.16*r.Float64()
		for day := 700 * r.Float64(); day < 730; day += cycle + 1.5*r.NormFloat64() {
			buy(c, day, cycle)
			if r.Float64() < churn {
				break
			}
		}
		if r.Float64() < 0.2 {
			for day := 730 * r.Float64(); day < 730; day += 90 * r.ExpFloat64() {
				buy(c, day, 5+20*r.Float64())
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
	return out
}

func TestSelectionRenewalChoosesMLP(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four models")
	}
	events := renewalLog(2000, 1)
	cfg := Config{Dataset: "renewal", TestCutoff: date("2024-12-01"), Seed: 1, Methods: []string{MethodHazard},
		TrainCutoffs: []time.Time{date("2024-08-03"), date("2024-09-02"), date("2024-10-02"), date("2024-11-01")},
		Hazard:       DefaultHazardOptions(), Select: DefaultSelection()}
	p, err := Prepare(events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Selection
	if s == nil {
		t.Fatal("no selection report")
	}
	t.Logf("%s; inner %d customers, %d buyers, SE %.4f", s.Reason, s.Customers, s.Buyers, s.SE)
	if s.Chosen != hazard.KindMLP || rep.Model.Kind != hazard.KindMLP || !s.InnerTest.Equal(date("2024-11-01")) ||
		len(s.InnerTrain) != 3 || !strings.HasPrefix(s.Reason, "mlp chosen") {
		t.Fatalf("chose %s (model %s) at inner test %s from %v: want the MLP at 2024-11-01 from three cutoffs",
			s.Chosen, rep.Model.Kind, s.InnerTest, s.InnerTrain)
	}
	// The choice reads nothing at or after the test cutoff: changing every
	// purchase in the test window changes the evaluation, not the choice.
	var moved []model.Event
	for _, e := range events {
		if !e.Time.Before(cfg.TestCutoff) {
			e.Time = e.Time.Add(12 * 24 * time.Hour)
		}
		moved = append(moved, e)
	}
	p2, err := Prepare(moved, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := p2.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep2.Selection, s) {
		t.Errorf("the choice moved with the test window:\n%+v\n%+v", rep2.Selection, s)
	}
	if rep2.Methods[0].AUC[model.Horizon] == rep.Methods[0].AUC[model.Horizon] {
		t.Error("moving the test window's purchases left the test AUC unchanged: the check above tests nothing")
	}
}

func TestSelectionWithoutInnerSplit(t *testing.T) {
	events := renewalLog(300, 2)
	cfg := Config{Dataset: "renewal", TestCutoff: date("2024-12-01"), Seed: 1, Methods: []string{MethodHazard},
		TrainCutoffs: []time.Time{date("2024-10-15"), date("2024-11-01")},
		Hazard:       DefaultHazardOptions(), Select: DefaultSelection()}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Selection; s == nil || s.Chosen != hazard.KindLinear || rep.Model.Kind != hazard.KindLinear ||
		!strings.Contains(s.Reason, "no inner validation split") || s.Base.Kind != "" {
		t.Fatalf("selection %+v, model %s: want linear kept for want of an inner split", s, rep.Model.Kind)
	}
}

// TestInnerSplitEqualsFreshPrepare: the inner split taken from the prepared
// rows equals the split Prepare builds afresh with the inner cutoffs: the
// same rows (customer, cutoff, features, label), the same counts, baseline
// day and JData list length.
func TestInnerSplitEqualsFreshPrepare(t *testing.T) {
	events := renewalLog(400, 3)
	train := []time.Time{date("2024-07-04"), date("2024-08-03"), date("2024-09-02"), date("2024-10-02"), date("2024-11-01")}
	p, err := Prepare(events, Config{TestCutoff: date("2024-12-01"), TrainCutoffs: train})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.inner(4, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Prepare(events, Config{TestCutoff: date("2024-11-01"), TrainCutoffs: train[1:4]})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		customer string
		at       time.Time
	}
	index := func(rows []feature.Row, cutoffs []time.Time) map[key]feature.Row {
		out := map[key]feature.Row{}
		for _, r := range rows {
			out[key{r.Customer, cutoffs[r.Cutoff]}] = r
		}
		return out
	}
	outerCutoffs := append(slices.Clone(train), date("2024-12-01"))
	freshCutoffs := append(slices.Clone(train[1:4]), date("2024-11-01"))
	for _, set := range []struct {
		name      string
		got, want []feature.Row
	}{{"train", q.trainRows, fresh.trainRows}, {"test", q.testRows, fresh.testRows}, {"latest training", q.lastTrain, fresh.lastTrain}} {
		got, want := index(set.got, outerCutoffs), index(set.want, freshCutoffs)
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s rows: %d from the prepared split, %d afresh", set.name, len(got), len(want))
		}
		for k, w := range want {
			g, ok := got[k]
			if !ok || g.Label != w.Label || !slices.Equal(g.X, w.X) {
				t.Fatalf("%s row %v differs: %+v vs %+v", set.name, k, g, w)
			}
		}
	}
	// The inner split describes the horizons up to 30 days only.
	for _, h := range hazard.LongHorizons {
		delete(fresh.base.Positives, h)
	}
	if q.base.Customers != fresh.base.Customers || !maps.Equal(q.base.Positives, fresh.base.Positives) ||
		q.base.TrainRows != fresh.base.TrainRows || q.medianDay != fresh.medianDay || q.topN != fresh.topN ||
		!q.base.TestCutoff.Equal(fresh.base.TestCutoff) || !slices.Equal(q.train, fresh.train) {
		t.Errorf("inner split %+v / %d / %d, afresh %+v / %d / %d", q.base, q.medianDay, q.topN, fresh.base, fresh.medianDay, fresh.topN)
	}
}
