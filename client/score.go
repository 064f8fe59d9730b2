package client

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
)

// ScoreOptions configure Score.
type ScoreOptions struct {
	// Model is the model to score with. Required.
	Model *hazard.Model
	// Cutoff is the moment the scores are for: features use events before it and
	// day 1 starts at it. Zero means DefaultCutoff of the events.
	Cutoff time.Time
	// Location is the merchant's time zone for features and dates (nil = UTC).
	Location *time.Location
	// IDs maps pseudonyms back to the merchant's raw ids (LoadEvents with
	// KeepIDs). A customer missing from it is written under its pseudonym.
	IDs map[string]string
}

// ScoreHeader is the header row Score writes: the customer; P(purchase
// within d days) for hazard.Horizons and hazard.LongHorizons (p_60d and p_90d
// extrapolated past the model's 30-day horizon); expected_days, the capped
// expectation E[min(T, 30)]; expected_day_if_buys, E[T | T ≤ 30]; and
// predicted_date, the date of the median first purchase day given one within
// 30 days (hazard.Prediction.MedianDay), the same day as the predict API's
// predicted_date.
func ScoreHeader() []string {
	h := []string{"customer"}
	for _, d := range hazard.Horizons {
		h = append(h, "p_"+strconv.Itoa(d)+"d")
	}
	for _, d := range hazard.LongHorizons {
		h = append(h, "p_"+strconv.Itoa(d)+"d")
	}
	return append(h, "expected_days", "expected_day_if_buys", "predicted_date")
}

// DefaultCutoff is the local midnight after the last event: scores for the day
// after the data ends.
func DefaultCutoff(events []model.Event, loc *time.Location) (time.Time, error) {
	if len(events) == 0 {
		return time.Time{}, errors.New("default cutoff: no events")
	}
	if loc == nil {
		loc = time.UTC
	}
	last := events[0].Time
	for _, e := range events[1:] {
		if e.Time.After(last) {
			last = e.Time
		}
	}
	l := last.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc).UTC(), nil
}

// Score writes a CSV to w with, for every customer who has an event before the
// cutoff, under the merchant's own id, the columns of ScoreHeader: P(purchase
// within 1, 3, 7, 14, 30, 60 and 90 days), the capped expected days, the
// expected day given a purchase within 30 days, and the predicted purchase
// date in the merchant's time zone. Rows are sorted by customer. It returns
// the number of customers written.
func Score(ctx context.Context, events []model.Event, opt ScoreOptions, w io.Writer) (int, error) {
	if opt.Model == nil {
		return 0, errors.New("score: nil model")
	}
	loc := opt.Location
	if loc == nil {
		loc = time.UTC
	}
	cutoff := opt.Cutoff
	if cutoff.IsZero() {
		var err error
		if cutoff, err = DefaultCutoff(events, loc); err != nil {
			return 0, fmt.Errorf("score: %w", err)
		}
	}
	rows, err := BuildRows(events, []time.Time{cutoff}, loc, opt.Model.Schema)
	if err != nil {
		return 0, fmt.Errorf("score: %w", err)
	}
	type line struct {
		id string
		p  hazard.Prediction
	}
	lines := make([]line, 0, len(rows))
	for i, r := range rows {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("score: %w", err)
			}
		}
		p, err := opt.Model.Predict(r.X)
		if err != nil {
			return 0, fmt.Errorf("score: customer %s: %w", r.Customer, err)
		}
		id := r.Customer
		if raw, ok := opt.IDs[id]; ok {
			id = raw
		}
		lines = append(lines, line{id, p})
	}
	slices.SortFunc(lines, func(a, b line) int { return compareIDs(a.id, b.id) })
	cw := csv.NewWriter(w)
	if err := cw.Write(ScoreHeader()); err != nil {
		return 0, fmt.Errorf("score: %w", err)
	}
	rec := make([]string, 0, len(ScoreHeader()))
	for _, l := range lines {
		rec = append(rec[:0], SpreadsheetSafe(l.id))
		for _, v := range append(l.p.Within[:], l.p.Beyond[:]...) {
			rec = append(rec, strconv.FormatFloat(v, 'f', 4, 64))
		}
		day := cutoff.Add(time.Duration(l.p.MedianDay-1) * model.Day).In(loc)
		rec = append(rec, strconv.FormatFloat(l.p.ExpectedDays, 'f', 2, 64), strconv.FormatFloat(l.p.ExpectedDayIfBuys, 'f', 2, 64),
			day.Format(time.DateOnly))
		if err := cw.Write(rec); err != nil {
			return 0, fmt.Errorf("score: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return 0, fmt.Errorf("score: %w", err)
	}
	return len(lines), nil
}

// PersonalizationCutoffs are the labelled cutoffs a merchant personalises on
// before scoring at cutoff: n local midnights spaced 60 days apart, the latest 60
// days before cutoff, so that every label window ([c, c+30 days)) ends before the
// scores' cutoff. Oldest first.
func PersonalizationCutoffs(cutoff time.Time, loc *time.Location, n int) []time.Time {
	if loc == nil {
		loc = time.UTC
	}
	l := cutoff.In(loc)
	out := make([]time.Time, n)
	for k := range n {
		out[n-1-k] = time.Date(l.Year(), l.Month(), l.Day()-60*(k+1), 0, 0, 0, 0, loc).UTC()
	}
	return out
}

// Personalize adapts the global model to the merchant's own customers for
// scoring at cutoff (train.Personalize) on its events at four
// PersonalizationCutoffs. The result stays with the merchant: it is trained
// without DP and never sent. A merchant with no customer before those cutoffs
// keeps the global model.
func Personalize(ctx context.Context, events []model.Event, global *hazard.Model, cutoff time.Time, loc *time.Location, opt train.PersonalizeOptions) (train.Personalization, error) {
	if global == nil {
		return train.Personalization{}, errors.New("personalize: nil model")
	}
	rows, err := BuildRows(events, PersonalizationCutoffs(cutoff, loc, 4), loc, global.Schema)
	if err != nil && !errors.Is(err, train.ErrNoCustomers) {
		return train.Personalization{}, fmt.Errorf("personalize: %w", err)
	}
	p, err := train.Personalize(ctx, global, rows, opt)
	if err != nil {
		return train.Personalization{}, err
	}
	return p, nil
}

// compareIDs orders numeric ids numerically and everything else as text, so
// that customer 10 follows customer 9.
func compareIDs(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA == nil && errB == nil:
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
		return 0
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// SpreadsheetSafe returns a customer id for a CSV cell that a spreadsheet
// will not run as a formula: an id starting with =, +, -, @, a tab or a
// carriage return (a raw id from the shop's export, say
// "=HYPERLINK(\"https://evil.example\",\"17\")") gets a leading
// apostrophe, as OWASP's CSV-injection advice says; a plain number such as
// "-17" is left as it is.
func SpreadsheetSafe(id string) string {
	if id == "" || !strings.ContainsRune("=+-@\t\r", rune(id[0])) {
		return id
	}
	if _, err := strconv.ParseFloat(id, 64); err == nil {
		return id
	}
	return "'" + id
}
