package evaluate

import (
	"errors"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// MaxDefaultTrainCutoffs is the number of training cutoffs DefaultProtocol
// places at most, as many as the suite's protocols use (four to six).
const MaxDefaultTrainCutoffs = 6

// ErrShortLog means a log spans too few days for the default protocol.
var ErrShortLog = errors.New("log too short for a time split")

// Protocol is a time split: a test cutoff and training cutoffs whose label
// windows end at or before it, all UTC midnights.
type Protocol struct {
	Test  time.Time
	Train []time.Time // ascending
}

// DefaultProtocol returns the time split for a log whose events run from
// first to last, with label windows of horizonDays days:
//
//   - the test cutoff is the day after the last event's UTC day minus the
//     horizon, so that the test label window [test, test + horizon) ends with
//     the last day of the log;
//   - training cutoffs step back from the test cutoff one horizon at a time,
//     starting one horizon before it, so that every training label window
//     ends at or before the test cutoff and no two of them overlap; at most
//     MaxDefaultTrainCutoffs of them, and none earlier than one horizon after
//     the first event's day, so that every cutoff has a horizon of history.
//
// The log must therefore cover at least 3·horizonDays calendar days, from
// the first event's day to the last's inclusive (history, one training
// label window, the test label window); a shorter one gets ErrShortLog with
// both numbers. For a 30-day horizon on the grocery log (2006-01-01 ..
// 2007-12-30) this gives test 2007-12-01, the suite's test cutoff, and
// training cutoffs 2007-06-04 .. 2007-11-01.
func DefaultProtocol(first, last time.Time, horizonDays int) (Protocol, error) {
	return DefaultProtocolFor(first, last, horizonDays, horizonDays)
}

// DefaultProtocolFor is DefaultProtocol for a model trained on labelDays-day
// labels and evaluated at a horizon of testDays days (testDays ≥ labelDays:
// 60 or 90 for the hazard model's extrapolated horizons): the test cutoff
// leaves a testDays-day test label window before the log ends, and the
// training cutoffs step back from it labelDays at a time as in
// DefaultTrainCutoffs. The log must cover 2·labelDays + testDays calendar
// days; a shorter one gets ErrShortLog with both numbers.
func DefaultProtocolFor(first, last time.Time, labelDays, testDays int) (Protocol, error) {
	if labelDays <= 0 || testDays < labelDays {
		return Protocol{}, fmt.Errorf("default protocol: label window %d days, test horizon %d days, want 0 < label ≤ test", labelDays, testDays)
	}
	if last.Before(first) {
		return Protocol{}, fmt.Errorf("default protocol: last event %s before first %s", last.UTC().Format(time.RFC3339), first.UTC().Format(time.RFC3339))
	}
	firstDay, lastDay := utcMidnight(first), utcMidnight(last)
	span := int(lastDay.Sub(firstDay)/model.Day) + 1
	if need := 2*labelDays + testDays; span < need {
		return Protocol{}, fmt.Errorf("default protocol: %w: events span %d days (%s .. %s), the default protocol needs at least %d "+
			"(%d days of history before the first training cutoff, a %d-day training label window and a %d-day test label window); "+
			"give the cutoffs explicitly",
			ErrShortLog, span, firstDay.Format(time.DateOnly), lastDay.Format(time.DateOnly), need, labelDays, labelDays, testDays)
	}
	test := DefaultTestCutoff(last, testDays)
	train, err := DefaultTrainCutoffs(first, test, labelDays)
	if err != nil {
		return Protocol{}, err
	}
	return Protocol{Test: test, Train: train}, nil
}

// DefaultTestCutoff returns the test cutoff of DefaultProtocol: the day after
// the last event's UTC day minus horizonDays days.
func DefaultTestCutoff(last time.Time, horizonDays int) time.Time {
	return utcMidnight(last).AddDate(0, 0, 1-horizonDays)
}

// DefaultTrainCutoffs returns the training cutoffs of DefaultProtocol for a
// given test cutoff: test − horizon, test − 2·horizon, … (at most
// MaxDefaultTrainCutoffs, none before the first event's day plus one
// horizon), ascending. It fails with ErrShortLog if not even one fits.
func DefaultTrainCutoffs(first, test time.Time, horizonDays int) ([]time.Time, error) {
	if horizonDays <= 0 {
		return nil, fmt.Errorf("default training cutoffs: horizon %d days, want > 0", horizonDays)
	}
	earliest := utcMidnight(first).AddDate(0, 0, horizonDays)
	var out []time.Time
	for k := 1; k <= MaxDefaultTrainCutoffs; k++ {
		c := test.AddDate(0, 0, -k*horizonDays)
		if c.Before(earliest) {
			break
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("default training cutoffs: %w: test cutoff %s leaves no training cutoff: the latest one, %s, "+
			"would have less than %d days of history after the first event (%s); the test cutoff must be at least %s",
			ErrShortLog, test.Format(time.DateOnly), test.AddDate(0, 0, -horizonDays).Format(time.DateOnly), horizonDays,
			utcMidnight(first).Format(time.DateOnly), earliest.AddDate(0, 0, horizonDays).Format(time.DateOnly))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// utcMidnight returns the start of t's UTC day.
func utcMidnight(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Span returns the earliest and latest event times of a non-empty log, in
// any order: the range DefaultProtocol splits.
func Span(events []model.Event) (first, last time.Time) {
	first, last = events[0].Time, events[0].Time
	for _, e := range events[1:] {
		if e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	return first, last
}

// InZone reads a protocol's cutoffs, dates at UTC midnight as DefaultProtocol
// and a suite file give them, as midnights of the shop's zone loc: the
// cutoff "2007-12-01" of a Berlin shop is 2007-11-30T23:00Z. A nil loc
// leaves them as they are.
func (p Protocol) InZone(loc *time.Location) Protocol {
	if loc == nil {
		return p
	}
	local := func(c time.Time) time.Time {
		return time.Date(c.Year(), c.Month(), c.Day(), 0, 0, 0, 0, loc).UTC()
	}
	out := Protocol{Test: local(p.Test), Train: make([]time.Time, len(p.Train))}
	for i, c := range p.Train {
		out.Train[i] = local(c)
	}
	return out
}

// WallClock returns t's wall clock in loc as a UTC time, so that the UTC-day
// arithmetic of DefaultProtocol counts the shop's calendar days; nil loc
// returns t.
func WallClock(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		return t
	}
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}
