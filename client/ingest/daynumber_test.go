package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// TestDayNumberLayout: a day-number column (dunnhumby's DAY) with its epoch.
// Dates by hand: 2020 is a leap year, so day 366 is 2021-01-01 and day 711
// is 345 days later, 2021-12-12 (Python's date(2020,1,1)+timedelta(711)
// agrees); ".5" is noon; in Europe/Berlin day 0 begins at 2019-12-31 23:00
// UTC.
func TestDayNumberLayout(t *testing.T) {
	read := func(t *testing.T, mapping, file string) ([]model.Event, Report, error) {
		t.Helper()
		m, err := ParseMapping(strings.NewReader(mapping), "m.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var got []model.Event
		rep, err := Read(context.Background(), strings.NewReader(file), "f.csv", Options{Format: CSV, Mapping: m, OnError: Skip, MaxInvalidShare: 1},
			func(e model.Event) error { got = append(got, e); return nil })
		return got, rep, err
	}
	const base = "customer: household_key\nkind: {constant: purchase}\n"
	got, rep, err := read(t, base+"time: {column: DAY, layout: days, epoch: 2020-01-01}\n",
		"household_key,DAY\na,0\na,1\nb,366\nb,711\nc,711.5\nd,-3\nd,abc\nd,3000000\nd,\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2021-01-01T00:00:00Z", "2021-12-12T00:00:00Z", "2021-12-12T12:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if s := got[i].Time.UTC().Format(time.RFC3339); s != w {
			t.Errorf("event %d at %s, want %s", i, s, w)
		}
	}
	if rep.Invalid != 4 {
		t.Errorf("%d bad rows, want 4 (-3, abc, 3000000 and an empty day)", rep.Invalid)
	}

	got, _, err = read(t, base+"time: {column: DAY, layout: days, epoch: 2020-01-01, zone: Europe/Berlin}\n", "household_key,DAY\na,0\n")
	if err != nil || len(got) != 1 || got[0].Time.UTC().Format(time.RFC3339) != "2019-12-31T23:00:00Z" {
		t.Errorf("day 0 in Berlin: %+v, %v; want 2019-12-31T23:00:00Z", got, err)
	}
}

func TestDayNumberMappingErrors(t *testing.T) {
	const base = "customer: c\nkind: {constant: purchase}\n"
	for _, tc := range []struct{ name, time, want string }{
		{"no epoch", "time: {column: DAY, layout: days}\n", "line 3, column 29: layout days counts days from one date shared by every customer"},
		{"epoch with another layout", "time: {column: DAY, layout: unix, epoch: 2020-01-01}\n", "line 3, column 42: epoch is the date of day 0 of layout days"},
		{"epoch not a date", "time: {column: DAY, layout: days, epoch: 01.01.2020}\n", `line 3, column 42: epoch must be a date written 2006-01-02, not "01.01.2020"`},
		{"time of day", "time: {column: DAY, time_of_day: T, layout: days, epoch: 2020-01-01}\n", "time_of_day needs a date and time layout"},
	} {
		_, err := ParseMapping(strings.NewReader(base+tc.time), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	// A Mapping built in Go is held to the same pairing.
	m := &Mapping{Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: LayoutDays, ConstKind: model.Purchase}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "time epoch goes with layout days") {
		t.Errorf("days without an epoch: %v", err)
	}
}
