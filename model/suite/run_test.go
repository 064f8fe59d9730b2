package suite

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/hazard"
)

// synthLog is a small purchase log: 600 customers, each buying at a rate of
// their own from a first purchase in 2020 on, every purchase at midnight.
func synthLog() []model.Event {
	r := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []model.Event
	for c := range 600 {
		id := "c" + string(rune('a'+c%26)) + string(rune('a'+c/26))
		gap := 5 + r.ExpFloat64()*60
		t := start.AddDate(0, 0, r.IntN(200))
		for t.Before(start.AddDate(1, 0, 0)) {
			evs = append(evs, model.Event{Customer: id, Time: t, Kind: model.Purchase, Amount: 10, HasAmount: true})
			t = t.AddDate(0, 0, 1+int(r.ExpFloat64()*gap))
		}
	}
	return evs
}

// TestRunShape: Run gives one entry per data set and method, in order, with
// the test split's counts as an independent count finds them, metric maps
// keyed "7"/"30", Brier and ECE only for probabilities, and failures as an
// error without metrics — a data set whose file cannot be read, and a method
// evaluate does not know.
func TestRunShape(t *testing.T) {
	evs := synthLog()
	test := time.Date(2020, 11, 1, 0, 0, 0, 0, time.UTC)
	good := Dataset{Name: "synth", Path: "synth.csv", Format: FormatCDNOW, TestCutoff: test,
		TrainCutoffs: []time.Time{time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 9, 1, 0, 0, 0, 0, time.UTC)}}
	missing := good
	missing.Name, missing.Path = "missing", "nowhere.csv"
	load := func(_ context.Context, d Dataset) ([]model.Event, error) {
		if d.Path != good.Path {
			return nil, errors.New("open nowhere.csv: no such file")
		}
		return evs, nil
	}
	opts := Options{Load: load, Models: DefaultModels()[:1], Baselines: []string{evaluate.MethodRecency, "nosuch"}, Seed: 1}
	res, err := Run(context.Background(), []Dataset{good, missing}, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The split, counted independently: customers with a purchase before the
	// test cutoff, and how many of them buy in [cutoff, cutoff+30 days).
	// The log ends 2020-12-31, so the 60-day window (to 2020-12-31) is
	// covered and the 90-day one is not.
	before, buy, buy60 := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, e := range evs {
		if e.Time.Before(test) {
			before[e.Customer] = true
			continue
		}
		if e.Time.Before(test.AddDate(0, 0, 30)) {
			buy[e.Customer] = true
		}
		if e.Time.Before(test.AddDate(0, 0, 60)) {
			buy60[e.Customer] = true
		}
	}
	positives, positives60 := 0, 0
	for c := range before {
		if buy[c] {
			positives++
		}
		if buy60[c] {
			positives60++
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Datasets []struct {
			Name         string         `json:"name"`
			TestCutoff   string         `json:"test_cutoff"`
			TrainCutoffs []string       `json:"train_cutoffs"`
			Customers    int            `json:"customers"`
			Positives    int            `json:"positives_30"`
			Long         map[string]int `json:"long_positives"`
			Error        string         `json:"error"`
			Methods      []map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Datasets) != 2 {
		t.Fatalf("got %d data sets, want 2: %s", len(got.Datasets), b)
	}
	d := got.Datasets[0]
	if d.Name != "synth" || d.TestCutoff != "2020-11-01" || !slices.Equal(d.TrainCutoffs, []string{"2020-07-01", "2020-09-01"}) || d.Error != "" {
		t.Errorf("data set 0: got %s %s %v %q", d.Name, d.TestCutoff, d.TrainCutoffs, d.Error)
	}
	if d.Customers != len(before) || d.Positives != positives {
		t.Errorf("split: got %d customers, %d positives; want %d, %d", d.Customers, d.Positives, len(before), positives)
	}
	if len(d.Long) != 1 || d.Long["60"] != positives60 {
		t.Errorf("long positives %v, want {60: %d}", d.Long, positives60)
	}
	keysOf := func(m map[string]json.RawMessage) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	wantKeys := [][]string{
		{"auc", "brier", "date", "ece", "kind", "level", "modal_day_share", "name", "own_day", "pr_auc", "seconds", "selection"}, // hazard
		{"auc", "kind", "name", "pr_auc", "seconds"}, // recency: no probabilities
		{"error", "kind", "name", "seconds"},         // unknown method: no metrics
	}
	wantNames := []string{`"hazard"`, `"recency"`, `"nosuch"`}
	if len(d.Methods) != len(wantKeys) {
		t.Fatalf("got %d methods, want %d: %s", len(d.Methods), len(wantKeys), b)
	}
	for i, m := range d.Methods {
		if k := keysOf(m); !slices.Equal(k, wantKeys[i]) {
			t.Errorf("method %d keys %v, want %v", i, k, wantKeys[i])
		}
		if string(m["name"]) != wantNames[i] {
			t.Errorf("method %d name %s, want %s", i, m["name"], wantNames[i])
		}
	}
	// The default model's choice: the inner split is the later training
	// cutoff as test, the earlier one (its window ends by then) as training.
	var sel Selection
	if err := json.Unmarshal(d.Methods[0]["selection"], &sel); err != nil || sel.InnerTest != "2020-09-01" ||
		!slices.Equal(sel.InnerTrain, []string{"2020-07-01"}) || sel.Base == nil || sel.Base.Kind != "linear" ||
		sel.Alternative.Kind != "mlp" || (sel.Chosen != "linear" && sel.Chosen != "mlp") || sel.Reason == "" {
		t.Errorf("hazard selection %s (%v)", d.Methods[0]["selection"], err)
	}
	var od OwnDay
	if err := json.Unmarshal(d.Methods[0]["own_day"], &od); err != nil || !slices.Contains(hazard.OwnDayWeights[:], od.Weight) ||
		!(od.TrainMAE > 0 && od.TrainMAE <= od.TrainMAE0) {
		t.Errorf("hazard own_day %s (%v): want a weight of the grid and a training error no worse than without", d.Methods[0]["own_day"], err)
	}
	var auc map[string]float64
	if err := json.Unmarshal(d.Methods[0]["auc"], &auc); err != nil || len(auc) != 3 || !(auc["7"] > 0.5) || !(auc["30"] > 0.5) || !(auc["60"] > 0.5) {
		t.Errorf("hazard auc %s: want keys 7, 30 and 60 above chance (%v)", d.Methods[0]["auc"], err)
	}
	var brier map[string]float64
	if err := json.Unmarshal(d.Methods[0]["brier"], &brier); err != nil || len(brier) != 2 || !(brier["60"] > 0 && brier["60"] < 1) {
		t.Errorf("hazard brier %s: want keys 30 and 60 (%v)", d.Methods[0]["brier"], err)
	}
	var ece map[string]float64
	if err := json.Unmarshal(d.Methods[0]["ece"], &ece); err != nil || len(ece) != 1 || !(ece["30"] >= 0 && ece["30"] < 1) {
		t.Errorf("hazard ece %s: want {\"30\": value in [0, 1)} (%v)", d.Methods[0]["ece"], err)
	}
	var date map[string]DateScore
	if err := json.Unmarshal(d.Methods[0]["date"], &date); err != nil || len(date) != 4 || date["median"].S2 == nil || !(*date["median"].S2 > 0 && *date["median"].S2 <= 1) {
		t.Errorf("hazard date %s: want four predictors with S2 in (0, 1] (%v)", d.Methods[0]["date"], err)
	}
	if !strings.Contains(string(d.Methods[2]["error"]), "unknown method") {
		t.Errorf("nosuch error %s, want unknown method", d.Methods[2]["error"])
	}
	if m := got.Datasets[1]; m.Error == "" || len(m.Methods) != 0 || m.Customers != 0 {
		t.Errorf("missing data set: got error %q, %d methods, %d customers; want the read error only", m.Error, len(m.Methods), m.Customers)
	}
	// The in-memory result keeps what the charts need.
	if h := res.Datasets[0].Methods[0]; len(h.Calibration) != 10 || len(h.Gain) != evaluate.GainPoints {
		t.Errorf("hazard: %d calibration bins, %d gain points; want 10, %d", len(h.Calibration), len(h.Gain), evaluate.GainPoints)
	}
}

func TestRunOptions(t *testing.T) {
	load := func(context.Context, Dataset) ([]model.Event, error) { return nil, nil }
	for _, o := range []Options{
		{Models: DefaultModels()},
		{Load: load},
		{Load: load, Models: []Model{{Name: "a"}, {Name: "a"}}},
		{Load: load, Baselines: []string{evaluate.MethodHazard}},
	} {
		if _, err := Run(context.Background(), Builtin(), o); err == nil {
			t.Errorf("options %+v: got no error", o)
		}
	}
}

// TestRunPrior: a DP model with a prior reads every data set once, starts
// each data set's training from the other data sets (no warning), and says
// so when there is no other data set; a prior for a non-private model is
// refused.
func TestRunPrior(t *testing.T) {
	evs := synthLog()
	test := time.Date(2020, 11, 1, 0, 0, 0, 0, time.UTC)
	train := []time.Time{time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 9, 1, 0, 0, 0, 0, time.UTC)}
	a := Dataset{Name: "a", Path: "a.csv", Format: FormatCDNOW, TestCutoff: test, TrainCutoffs: train}
	b := a
	b.Name, b.Path = "b", "b.csv"
	loads := map[string]int{}
	load := func(_ context.Context, d Dataset) ([]model.Event, error) {
		loads[d.Name]++
		return evs, nil
	}
	dp := &evaluate.DPOptions{Epsilon: 1, Delta: 1e-6, Clip: 20, Std: hazard.FixedStandardization}
	h := evaluate.DefaultHazardOptions()
	h.Epochs, h.MinSteps = 1, 20
	m := Model{Name: "dp-prior", Hazard: h, DP: dp, Prior: true}
	res, err := Run(context.Background(), []Dataset{a, b}, Options{Load: load, Models: []Model{m}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if loads["a"] != 1 || loads["b"] != 1 {
		t.Errorf("loads %v, want each data set once", loads)
	}
	for _, d := range res.Datasets {
		if d.Error != "" || len(d.Warnings) != 0 || len(d.Methods) != 1 || d.Methods[0].Error != "" {
			t.Errorf("%s: error %q, warnings %v, methods %+v", d.Name, d.Error, d.Warnings, d.Methods)
		}
	}
	res, err = Run(context.Background(), []Dataset{a}, Options{Load: load, Models: []Model{m}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if w := res.Datasets[0].Warnings; len(w) != 1 || !strings.Contains(w[0], "no other data set") {
		t.Errorf("one data set: warnings %v, want that no prior was possible", w)
	}
	if _, err := Run(context.Background(), []Dataset{a, b}, Options{Load: load, Models: []Model{{Name: "np", Hazard: h, Prior: true}}}); err == nil {
		t.Error("a prior for a non-private model: no error")
	}
}
