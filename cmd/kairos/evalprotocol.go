package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
)

// parseEvalCutoffs parses --test-cutoff and --train-cutoffs; a flag not
// given leaves a zero time or a nil slice.
func parseEvalCutoffs(testFlag, trainFlag string) (time.Time, []time.Time, error) {
	var test time.Time
	if testFlag != "" {
		d, err := parseDate(testFlag)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("eval: --test-cutoff: %w", err)
		}
		test = d
	}
	var train []time.Time
	if trainFlag != "" {
		for _, s := range strings.Split(trainFlag, ",") {
			d, err := parseDate(strings.TrimSpace(s))
			if err != nil {
				return time.Time{}, nil, fmt.Errorf("eval: --train-cutoffs: %w", err)
			}
			train = append(train, d)
		}
	}
	return test, train, nil
}

// resolveEvalCutoffs fills in the cutoffs the flags left out: a known data
// set's fixed protocol, or, for --dataset csv (ds.test empty), the default
// protocol of evaluate.DefaultProtocolFor from the span of the events and
// the test horizon testDays (--horizon: 30, or 60 or 90 to leave room for the
// longer horizons' test windows), which it prints to stderr. Cutoffs of a
// data set with a time zone become the merchant's local midnights.
func resolveEvalCutoffs(stderr io.Writer, ds evalDataset, test time.Time, train []time.Time, events []model.Event, testDays int) (time.Time, []time.Time, error) {
	if ds.test == "" && (test.IsZero() || train == nil) {
		// Days are counted in the shop's calendar when it has a zone.
		first, last := evaluate.Span(events)
		first, last = evaluate.WallClock(first, ds.location), evaluate.WallClock(last, ds.location)
		var what []string
		switch {
		case test.IsZero() && train == nil:
			p, err := evaluate.DefaultProtocolFor(first, last, model.Horizon, testDays)
			if err != nil {
				return time.Time{}, nil, fmt.Errorf("eval: %w", err)
			}
			test, train = p.Test, p.Train
			what = []string{"test cutoff", "training cutoffs"}
		case test.IsZero():
			test = evaluate.DefaultTestCutoff(last, testDays)
			what = []string{"test cutoff"}
		default:
			var err error
			if train, err = evaluate.DefaultTrainCutoffs(first, test, model.Horizon); err != nil {
				return time.Time{}, nil, fmt.Errorf("eval: %w", err)
			}
			what = []string{"training cutoffs"}
		}
		days := make([]string, len(train))
		for i, c := range train {
			days[i] = c.Format(time.DateOnly)
		}
		fmt.Fprintf(stderr, "protocol: test cutoff %s, training cutoffs %s (%s by the default rule from the events' span %s .. %s, "+
			"the %d-day label window and the %d-day test horizon)\n",
			test.Format(time.DateOnly), strings.Join(days, ", "), strings.Join(what, " and "),
			first.UTC().Format(time.DateOnly), last.UTC().Format(time.DateOnly), model.Horizon, testDays)
	}
	if test.IsZero() {
		d, err := parseDate(ds.test)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("eval: data set test cutoff: %w", err)
		}
		test = d
	}
	if train == nil {
		train = ds.train(test)
	}
	// Cutoffs are local midnights of the merchant.
	p := evaluate.Protocol{Test: test, Train: train}.InZone(ds.location)
	return p.Test, p.Train, nil
}
