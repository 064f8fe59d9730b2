package evaluate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func days(ss ...string) []time.Time {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = day(s)
	}
	return out
}

// TestDefaultProtocol checks hand-worked cases of the rule (30-day horizon):
// test = day after the last event − 30 days; training cutoffs 30 days apart
// back from test − 30, at most six, none before first day + 30.
func TestDefaultProtocol(t *testing.T) {
	tests := []struct {
		name        string
		first, last time.Time
		test        time.Time
		train       []time.Time
	}{
		// Grocery: last purchase 2007-12-30 → 2007-12-31 − 30 d = 2007-12-01
		// (the suite's test cutoff); then 11-01, 10-02 (October has 31 days),
		// 09-02, 08-03, 07-04, 06-04: six, the cap.
		{"grocery", day("2006-01-01"), day("2007-12-30"), day("2007-12-01"),
			days("2007-06-04", "2007-07-04", "2007-08-03", "2007-09-02", "2007-10-02", "2007-11-01")},
		// Online Retail: last invoice 2011-12-09 12:50 → 2011-12-10 − 30 d = 2011-11-10.
		{"online retail", time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC), time.Date(2011, 12, 9, 12, 50, 0, 0, time.UTC), day("2011-11-10"),
			days("2011-05-14", "2011-06-13", "2011-07-13", "2011-08-12", "2011-09-11", "2011-10-11")},
		// Exactly 90 days (2020-01-01 .. 2020-03-30, February of a leap year):
		// test 2020-03-31 − 30 = 03-01, one training cutoff 01-31 = first + 30.
		{"90 days", day("2020-01-01"), time.Date(2020, 3, 30, 23, 59, 59, 0, time.UTC), day("2020-03-01"), days("2020-01-31")},
		// 150 days: last 2020-05-29 → test 2020-05-30 − 30 d = 04-30; training
		// 03-31, 03-01 and 01-31 (= 04-30 − 90 d = first + 30, the earliest allowed).
		{"150 days", day("2020-01-01"), day("2020-05-29"), day("2020-04-30"), days("2020-01-31", "2020-03-01", "2020-03-31")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DefaultProtocol(tc.first, tc.last, 30)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Test.Equal(tc.test) {
				t.Errorf("test cutoff: got %s, want %s", got.Test.Format(time.DateOnly), tc.test.Format(time.DateOnly))
			}
			if len(got.Train) != len(tc.train) {
				t.Fatalf("training cutoffs: got %v, want %v", got.Train, tc.train)
			}
			for i := range got.Train {
				if !got.Train[i].Equal(tc.train[i]) {
					t.Errorf("training cutoff %d: got %s, want %s", i, got.Train[i].Format(time.DateOnly), tc.train[i].Format(time.DateOnly))
				}
				if end := got.Train[i].AddDate(0, 0, 30); end.After(got.Test) {
					t.Errorf("training cutoff %s: label window ends %s, after the test cutoff", got.Train[i].Format(time.DateOnly), end.Format(time.DateOnly))
				}
			}
		})
	}
}

func TestDefaultProtocolShortLog(t *testing.T) {
	// 89 days: one short of 3 × 30.
	_, err := DefaultProtocol(day("2020-01-01"), day("2020-03-29"), 30)
	if !errors.Is(err, ErrShortLog) {
		t.Fatalf("got %v, want ErrShortLog", err)
	}
	for _, want := range []string{"span 89 days (2020-01-01 .. 2020-03-29)", "at least 90"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// A test cutoff given by hand that leaves no training cutoff.
	_, err = DefaultTrainCutoffs(day("2020-01-01"), day("2020-02-15"), 30)
	if !errors.Is(err, ErrShortLog) || !strings.Contains(err.Error(), "must be at least 2020-03-01") {
		t.Errorf("got %v, want ErrShortLog naming 2020-03-01", err)
	}
	if _, err := DefaultProtocol(day("2020-03-01"), day("2020-01-01"), 30); err == nil {
		t.Error("last before first: got nil error")
	}
	if _, err := DefaultProtocol(day("2020-01-01"), day("2021-01-01"), 0); err == nil {
		t.Error("horizon 0: got nil error")
	}
}

// FuzzDefaultProtocol checks the rule's promises for any span and horizon:
// the test window ends with the log's last day, training cutoffs ascend one
// horizon apart, each label window ends at or before the test cutoff, each
// cutoff has a horizon of history, at most MaxDefaultTrainCutoffs; or
// ErrShortLog exactly when the log spans fewer than three horizons.
func FuzzDefaultProtocol(f *testing.F) {
	f.Add(int64(1136073600), int64(1198972800), 30) // grocery
	f.Add(int64(1577836800), int64(1585526400), 30) // 90 days
	f.Add(int64(1577836800), int64(1577836800), 1)
	f.Fuzz(func(t *testing.T, a, b int64, h int) {
		const lim = 1 << 40 // about 35,000 years of seconds
		if a < -lim || a > lim || b < -lim || b > lim || h < 1 || h > 3650 {
			t.Skip()
		}
		first, last := time.Unix(min(a, b), 0).UTC(), time.Unix(max(a, b), 0).UTC()
		p, err := DefaultProtocol(first, last, h)
		span := int(utcMidnight(last).Sub(utcMidnight(first))/(24*time.Hour)) + 1
		if span < 3*h {
			if !errors.Is(err, ErrShortLog) {
				t.Fatalf("span %d, horizon %d: got %v, want ErrShortLog", span, h, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("span %d, horizon %d: %v", span, h, err)
		}
		if end := p.Test.AddDate(0, 0, h); !end.Equal(utcMidnight(last).AddDate(0, 0, 1)) {
			t.Fatalf("test window ends %s, want the day after %s", end, last)
		}
		if len(p.Train) == 0 || len(p.Train) > MaxDefaultTrainCutoffs {
			t.Fatalf("%d training cutoffs", len(p.Train))
		}
		for i, c := range p.Train {
			if c.AddDate(0, 0, h).After(p.Test) {
				t.Fatalf("training cutoff %s: window ends after the test cutoff %s", c, p.Test)
			}
			if c.Before(utcMidnight(first).AddDate(0, 0, h)) {
				t.Fatalf("training cutoff %s: less than %d days after the first event %s", c, h, first)
			}
			if i > 0 && !p.Train[i-1].AddDate(0, 0, h).Equal(c) {
				t.Fatalf("training cutoffs %s, %s: not %d days apart", p.Train[i-1], c, h)
			}
		}
	})
}

// TestDefaultProtocolFor: a 30-day model evaluated at 90 days, worked by
// hand. CDNOW (1997-01-01 .. 1998-06-30): the 90-day test window ends with
// 1998-06-30, so the test cutoff is 1998-04-02, and the training cutoffs step
// back 30 days from it. A log of 149 days is one day short of 2·30 + 90.
func TestDefaultProtocolFor(t *testing.T) {
	p, err := DefaultProtocolFor(day("1997-01-01"), day("1998-06-30"), 30, 90)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{day("1997-10-04"), day("1997-11-03"), day("1997-12-03"), day("1998-01-02"), day("1998-02-01"), day("1998-03-03")}
	if !p.Test.Equal(day("1998-04-02")) || !slices.EqualFunc(p.Train, want, time.Time.Equal) {
		t.Errorf("got test %s, train %v; want 1998-04-02, %v", p.Test.Format(time.DateOnly), p.Train, want)
	}
	if _, err := DefaultProtocolFor(day("2020-01-01"), day("2020-05-28"), 30, 90); !errors.Is(err, ErrShortLog) || !strings.Contains(err.Error(), "needs at least 150") {
		t.Errorf("149 days: got %v, want ErrShortLog needing 150", err)
	}
	p, err = DefaultProtocolFor(day("2020-01-01"), day("2020-05-29"), 30, 90)
	if err != nil || !p.Test.Equal(day("2020-03-01")) || len(p.Train) != 1 || !p.Train[0].Equal(day("2020-01-31")) {
		t.Errorf("150 days: got %+v, %v; want test 2020-03-01, train [2020-01-31]", p, err)
	}
	if _, err := DefaultProtocolFor(day("2020-01-01"), day("2021-01-01"), 30, 7); err == nil {
		t.Error("test horizon shorter than the label window: got nil error")
	}
}
