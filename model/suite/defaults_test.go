package suite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
)

// TestParseSuiteFileDefaultCutoffs: a user's data set may leave its cutoffs
// out (the default rule applies once its events are read), or give only the
// test cutoff; training cutoffs without a test cutoff are refused.
func TestParseSuiteFileDefaultCutoffs(t *testing.T) {
	src := "builtin: false\ndatasets:\n  - {name: shop, path: a.csv, format: csv, mapping: a.yaml}\n" +
		"  - {name: shop2, path: b.csv, format: grocery, test_cutoff: 2024-06-01}\n"
	got, err := Parse(strings.NewReader(src), "/s/s.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].TestCutoff.IsZero() || got[0].TrainCutoffs != nil ||
		!got[1].TestCutoff.Equal(day("2024-06-01")) || got[1].TrainCutoffs != nil {
		t.Fatalf("got %+v, want both without training cutoffs, the second with test cutoff 2024-06-01", got)
	}
	_, err = Parse(strings.NewReader("datasets:\n  - {name: shop, path: a.csv, format: grocery, train_cutoffs: [2024-01-01]}\n"), "s.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "training cutoffs without a test cutoff") {
		t.Errorf("got %v, want the refusal of training cutoffs without a test cutoff", err)
	}
}

// TestWithDefaultCutoffs works the default rule by hand on a log of
// 2024-01-01 10:00 .. 2024-06-30 18:00 (UTC): test cutoff = 2024-07-01 − 30
// days = 2024-06-01; training cutoffs 30, 60, 90, 120 days before it
// (2024-05-02, 04-02, 03-03, 02-02; 2024 is a leap year), the next one
// (01-03) falling before first day + 30 = 01-31.
func TestWithDefaultCutoffs(t *testing.T) {
	evs := []model.Event{
		{Customer: "a", Time: time.Date(2024, 6, 30, 18, 0, 0, 0, time.UTC), Kind: model.Purchase},
		{Customer: "b", Time: time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC), Kind: model.Purchase},
		{Customer: "a", Time: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Kind: model.Purchase},
	}
	d := Dataset{Name: "shop", Path: "a.csv", Format: FormatCSV, Mapping: "a.yaml"}
	got, chosen, err := d.WithDefaultCutoffs(evs)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{day("2024-02-02"), day("2024-03-03"), day("2024-04-02"), day("2024-05-02")}
	if !got.TestCutoff.Equal(day("2024-06-01")) || !slices.EqualFunc(got.TrainCutoffs, want, time.Time.Equal) {
		t.Errorf("got test %v, train %v; want 2024-06-01, %v", got.TestCutoff, got.TrainCutoffs, want)
	}
	if chosen != "test cutoff and training cutoffs by the default rule from the events' span 2024-01-01 .. 2024-06-30" {
		t.Errorf("chosen %q", chosen)
	}
	// A test cutoff given: only the training cutoffs are chosen, back from it.
	d.TestCutoff = day("2024-05-01")
	got, _, err = d.WithDefaultCutoffs(evs)
	want = []time.Time{day("2024-02-01"), day("2024-03-02"), day("2024-04-01")}
	if err != nil || !got.TestCutoff.Equal(day("2024-05-01")) || !slices.EqualFunc(got.TrainCutoffs, want, time.Time.Equal) {
		t.Errorf("got %v %v, %v; want 2024-05-01, %v", got.TestCutoff, got.TrainCutoffs, err, want)
	}
	// A log of 10 days is too short, and the error says how long it must be.
	d.TestCutoff = time.Time{}
	_, _, err = d.WithDefaultCutoffs(evs[:1:1])
	if !errors.Is(err, evaluate.ErrShortLog) || !strings.Contains(err.Error(), "needs at least 90") {
		t.Errorf("got %v, want ErrShortLog saying 90 days", err)
	}
}

// TestRunDefaultCutoffs: a data set without cutoffs is evaluated on the
// default rule's cutoffs, reported in the result with a note saying so.
func TestRunDefaultCutoffs(t *testing.T) {
	evs := synthLog() // 2020-01-01 .. at most 2020-12-31
	byTime := func(a, b model.Event) int { return a.Time.Compare(b.Time) }
	first, last := slices.MinFunc(evs, byTime).Time, slices.MaxFunc(evs, byTime).Time
	p, err := evaluate.DefaultProtocol(first, last, model.Horizon)
	if err != nil {
		t.Fatal(err)
	}
	load := func(context.Context, Dataset) ([]model.Event, error) { return evs, nil }
	d := Dataset{Name: "shop", Path: "a.csv", Format: FormatCSV, Mapping: "a.yaml"}
	res, err := Run(context.Background(), []Dataset{d}, Options{Load: load, Baselines: []string{evaluate.MethodRecency}})
	if err != nil {
		t.Fatal(err)
	}
	dr := res.Datasets[0]
	if dr.Error != "" {
		t.Fatal(dr.Error)
	}
	if dr.TestCutoff != p.Test.Format(time.DateOnly) || len(dr.TrainCutoffs) != len(p.Train) ||
		dr.TrainCutoffs[0] != p.Train[0].Format(time.DateOnly) {
		t.Errorf("got cutoffs %s %v, want %v %v", dr.TestCutoff, dr.TrainCutoffs, p.Test, p.Train)
	}
	if !slices.ContainsFunc(dr.Warnings, func(w string) bool {
		return strings.HasPrefix(w, "protocol: test cutoff and training cutoffs by the default rule")
	}) {
		t.Errorf("warnings %q do not say the cutoffs were chosen", dr.Warnings)
	}
}

// TestRunZoneCalendar: a Berlin shop's data set without cutoffs is split on
// Berlin days. Its purchases are Berlin midnights of 2024-01-01 .. 2024-06-30,
// so the cutoffs are the dates of TestWithDefaultCutoffs, reported as those
// dates, and placed at Berlin midnights: customer "late" buys at Berlin
// midnight of 2024-06-01 (2024-05-31T22:00Z), which is in the test label
// window, not in its history ("b" buys on 05-15 so that the last training
// window has a buyer for the threshold evaluate picks there). Counted by hand: 3 test customers ("a", "b",
// "late"; "new" first buys on 06-10), 2 buyers ("late" on 06-01, "a" on
// 06-30).
func TestRunZoneCalendar(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	at := func(c string, m time.Month, d int) model.Event {
		return model.Event{Customer: c, Time: time.Date(2024, m, d, 0, 0, 0, 0, berlin).UTC(), Kind: model.Purchase}
	}
	evs := []model.Event{at("a", 1, 1), at("a", 3, 1), at("a", 6, 30), at("b", 2, 10), at("b", 5, 15), at("late", 4, 20), at("late", 6, 1), at("new", 6, 10)}
	load := func(context.Context, Dataset) ([]model.Event, error) { return evs, nil }
	d := Dataset{Name: "shop", Path: "a.csv", Format: FormatCSV, Mapping: "a.yaml", Location: berlin}
	res, err := Run(context.Background(), []Dataset{d}, Options{Load: load, Baselines: []string{evaluate.MethodRecency}})
	if err != nil {
		t.Fatal(err)
	}
	dr := res.Datasets[0]
	if dr.Error != "" {
		t.Fatal(dr.Error)
	}
	if want := []string{"2024-02-02", "2024-03-03", "2024-04-02", "2024-05-02"}; dr.TestCutoff != "2024-06-01" || !slices.Equal(dr.TrainCutoffs, want) {
		t.Errorf("cutoffs %s %v, want 2024-06-01 %v", dr.TestCutoff, dr.TrainCutoffs, want)
	}
	if dr.Customers != 3 || dr.Positives != 2 {
		t.Errorf("%d test customers, %d buyers; want 3 and 2", dr.Customers, dr.Positives)
	}
	if !slices.ContainsFunc(dr.Warnings, func(w string) bool { return strings.HasSuffix(w, "span 2024-01-01 .. 2024-06-30") }) {
		t.Errorf("warnings %q do not give the span in Berlin days", dr.Warnings)
	}
}

// TestRunWarnsOfPlaceholder: a user's data set in which "0" holds 3,000 of
// the 3,200 purchases (93.75%; 3,000 / 2 = 1,500× the others' mean) carries
// evaluate's concentration warning in the suite's result, as kairos eval
// prints it for one data set.
func TestRunWarnsOfPlaceholder(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []model.Event
	for i := range 100 {
		c := fmt.Sprintf("c%03d", i)
		evs = append(evs, model.Event{Customer: c, Time: t0.Add(time.Duration(i) * 24 * time.Hour / 10), Kind: model.Purchase},
			model.Event{Customer: c, Time: t0.Add(time.Duration(60+i*3) * 24 * time.Hour), Kind: model.Purchase})
	}
	for i := range 3000 {
		evs = append(evs, model.Event{Customer: "0", Time: t0.Add(time.Duration(i) * 90 * time.Minute), Kind: model.Purchase})
	}
	load := func(context.Context, Dataset) ([]model.Event, error) { return evs, nil }
	d := Dataset{Name: "shop", Path: "a.csv", Format: FormatCSV, Mapping: "a.yaml"}
	res, err := Run(context.Background(), []Dataset{d}, Options{Load: load, Baselines: []string{evaluate.MethodRecency}})
	if err != nil {
		t.Fatal(err)
	}
	dr := res.Datasets[0]
	if dr.Error != "" {
		t.Fatal(dr.Error)
	}
	want := `customer "0" holds 3000 of the 3200 purchases (93.8%)`
	if !slices.ContainsFunc(dr.Warnings, func(w string) bool { return strings.HasPrefix(w, want) }) {
		t.Errorf("warnings %q: want one beginning %q", dr.Warnings, want)
	}
}
