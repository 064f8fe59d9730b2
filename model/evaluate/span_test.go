package evaluate

import (
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// TestSpan: the earliest and latest times of a log in no order, read off by
// hand.
func TestSpan(t *testing.T) {
	at := func(d int) model.Event { return model.Event{Time: time.Date(2024, 3, d, 12, 0, 0, 0, time.UTC)} }
	first, last := Span([]model.Event{at(9), at(2), at(30), at(15)})
	if !first.Equal(at(2).Time) || !last.Equal(at(30).Time) {
		t.Errorf("got %v .. %v, want 2024-03-02 .. 2024-03-30", first, last)
	}
	if first, last := Span([]model.Event{at(5)}); !first.Equal(last) {
		t.Errorf("one event: got %v .. %v", first, last)
	}
}

// TestProtocolInZone: a date-only Berlin export's first and last days
// (01.01.2006 and 30.12.2007, read as Berlin midnights) count as those days,
// and the default cutoffs become Berlin midnights: the test cutoff
// 2007-12-31 − 30 days = 2007-12-01, i.e. 2007-11-30T23:00Z (CET, UTC+1), the
// last training cutoff 2007-11-01T00:00+01:00 = 2007-10-31T23:00Z.
func TestProtocolInZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	first := time.Date(2006, 1, 1, 0, 0, 0, 0, berlin)
	last := time.Date(2007, 12, 30, 0, 0, 0, 0, berlin)
	if got := WallClock(first, berlin); !got.Equal(time.Date(2006, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("wall clock %v, want 2006-01-01T00:00Z", got)
	}
	p, err := DefaultProtocol(WallClock(first, berlin), WallClock(last, berlin), 30)
	if err != nil {
		t.Fatal(err)
	}
	p = p.InZone(berlin)
	if want := time.Date(2007, 11, 30, 23, 0, 0, 0, time.UTC); !p.Test.Equal(want) {
		t.Errorf("test cutoff %v, want %v", p.Test, want)
	}
	if want := time.Date(2007, 10, 31, 23, 0, 0, 0, time.UTC); !p.Train[len(p.Train)-1].Equal(want) {
		t.Errorf("last training cutoff %v, want %v", p.Train[len(p.Train)-1], want)
	}
	// In UTC (nil) nothing moves.
	if q := p.InZone(nil); !q.Test.Equal(p.Test) || !WallClock(last, nil).Equal(last) {
		t.Error("a nil zone moved a cutoff or a time")
	}
}
