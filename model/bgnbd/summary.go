package bgnbd

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrNoPurchases means a customer has no purchase in the calibration period.
var ErrNoPurchases = errors.New("no purchase in the calibration period")

const secondsPerDay = 24 * 60 * 60

// utcDay returns the number of whole UTC days from the Unix epoch to t's day.
func utcDay(t time.Time) int64 {
	s := t.Unix()
	d := s / secondsPerDay
	if s%secondsPerDay < 0 {
		d--
	}
	return d
}

// Summarize turns one customer's purchase times into a calibration summary, the
// way lifetimes' summary_data_from_transaction_data does with daily periods:
// purchases are reduced to distinct UTC calendar days, the last day counted is
// calibrationEnd's day (inclusive), x is the number of distinct purchase days
// after the first, t_x the time from the first purchase day to the last, and T
// the time from the first purchase day to calibrationEnd's day, both in unit
// (7·24h for weeks). The CDNOW reference summary is Summarize(…, 1997-09-30, week).
//
// For Kairos's cutoff convention (history strictly before τ) use SummarizeBefore.
// A customer whose first purchase falls on the end day gets T = 0, which Fit
// rejects; drop such customers or move the end.
func Summarize(purchases []time.Time, calibrationEnd time.Time, unit time.Duration) (Customer, error) {
	end := utcDay(calibrationEnd)
	return summarize(purchases, func(p time.Time) bool { return utcDay(p) <= end }, end, calibrationEnd, unit)
}

// SummarizeBefore summarises the purchases strictly before cutoff, Kairos's
// point-in-time convention for features at a cutoff τ, with ages measured to
// τ's UTC day: T = (day(τ) − first purchase day)/unit. For a cutoff at
// midnight this differs from Summarize(…, τ − 24h, …) only in T, which is one
// day longer. It is the summary behind the BG/NBD row of the CDNOW reference
// benchmark (AUC 0.8118, PR-AUC 0.3741 at cutoff 1998-03-01).
func SummarizeBefore(purchases []time.Time, cutoff time.Time, unit time.Duration) (Customer, error) {
	return summarize(purchases, func(p time.Time) bool { return p.Before(cutoff) }, utcDay(cutoff), cutoff, unit)
}

// summarize counts the distinct UTC days of the purchases that keep accepts and
// measures ages to the day end.
func summarize(purchases []time.Time, keep func(time.Time) bool, end int64, endTime time.Time, unit time.Duration) (Customer, error) {
	if unit <= 0 {
		return Customer{}, fmt.Errorf("summarize: unit %v, want > 0", unit)
	}
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	days := make(map[int64]struct{}, len(purchases))
	for _, p := range purchases {
		if !keep(p) {
			continue
		}
		d := utcDay(p)
		days[d] = struct{}{}
		first, last = min(first, d), max(last, d)
	}
	if len(days) == 0 {
		return Customer{}, fmt.Errorf("summarize: %w (%d purchases, end %s)", ErrNoPurchases, len(purchases), endTime.UTC().Format(time.RFC3339))
	}
	perUnit := float64(unit) / float64(24*time.Hour) // unit length in days
	return Customer{
		X:  float64(len(days) - 1),
		Tx: float64(last-first) / perUnit,
		T:  float64(end-first) / perUnit,
	}, nil
}

// ReadSummary parses a calibration summary in CSV with a header row naming the
// columns frequency (or x), recency (or t_x) and T, in any order and case; other
// columns (an ID) are ignored. Every row must be a valid Customer. Errors name
// the line and the column (1-based field number): "read summary: line 12,
// column 3 (recency): …".
func ReadSummary(r io.Reader) ([]Customer, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("read summary: empty input, want a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	col := map[string]int{"frequency": -1, "recency": -1, "T": -1}
	for i, h := range header {
		var name string
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "frequency", "x":
			name = "frequency"
		case "recency", "t_x":
			name = "recency"
		case "t":
			name = "T"
		default:
			continue
		}
		if col[name] >= 0 {
			return nil, fmt.Errorf("read summary: line 1, column %d: second %s column", i+1, name)
		}
		col[name] = i
	}
	for _, name := range [...]string{"frequency", "recency", "T"} {
		if col[name] < 0 {
			return nil, fmt.Errorf("read summary: line 1: header %q lacks a %s column", strings.Join(header, ","), name)
		}
	}

	var out []Customer
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError already names the line and column.
			return nil, fmt.Errorf("read summary: %w", err)
		}
		line, _ := cr.FieldPos(0)
		var v [3]float64
		for k, name := range [...]string{"frequency", "recency", "T"} {
			i := col[name]
			f, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
				err = errors.New("not a finite number")
			}
			if err != nil {
				return nil, fmt.Errorf("read summary: line %d, column %d (%s): %q: %w", line, i+1, name, rec[i], unwrapNum(err))
			}
			v[k] = f
		}
		c := Customer{X: v[0], Tx: v[1], T: v[2]}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("read summary: line %d: %w", line, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("read summary: header but no customers")
	}
	return out, nil
}

// unwrapNum drops strconv's repetition of the input from its error.
func unwrapNum(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}
