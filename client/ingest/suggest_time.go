package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timeLayout is a candidate time layout; order is "mdy" or "dmy" for a
// numeric date whose twin reads the month and the day the other way round.
type timeLayout struct {
	layout string
	order  string
}

// candidateLayouts lists the layouts the suggester tries: the first that
// reads every sampled value is suggested. Of two layouts the reader reads
// the same ("2006-01-02 15:04" and "2006-01-02 15:04:05" share a fast
// path that takes both), the one written as the values are comes first.
func candidateLayouts() []timeLayout {
	ls := []timeLayout{
		{layout: "2006-01-02T15:04:05Z07:00"}, {layout: "2006-01-02T15:04Z07:00"}, {layout: "2006-01-02T15:04"}, {layout: "2006-01-02T15:04:05"},
		{layout: "2006-01-02 15:04:05Z07:00"}, {layout: "2006-01-02 15:04:05 -0700"}, {layout: "2006-01-02 15:04:05 -07:00"},
		{layout: "2006-01-02 15:04:05 MST"}, {layout: "2006-01-02"}, {layout: "2006-01-02 15:04"}, {layout: "2006-01-02 15:04:05"},
		{layout: "2006/01/02 15:04:05"}, {layout: "2006/01/02 15:04"}, {layout: "2006/01/02"}, {layout: "20060102"},
		{layout: time.RFC1123Z}, {layout: "Mon, 2 Jan 2006 15:04:05 -0700"}, {layout: time.RFC1123},
		{layout: "Jan 2, 2006 3:04:05 PM"}, {layout: "Jan 2, 2006 3:04 PM"}, {layout: "Jan 2, 2006 15:04:05"}, {layout: "Jan 2, 2006"},
		{layout: "January 2, 2006"}, {layout: "02-Jan-2006 15:04:05"}, {layout: "02-Jan-2006"}, {layout: "2-Jan-06"},
		{layout: "02 Jan 2006 15:04:05"}, {layout: "02 Jan 2006 15:04"}, {layout: "02 Jan 2006"}, {layout: "2 Jan 2006"}, {layout: "2 January 2006"},
	}
	for _, sep := range []string{"/", ".", "-"} {
		for _, year := range []string{"2006", "06"} {
			for _, clock := range []string{" 15:04:05", " 15:04", " 3:04:05 PM", " 3:04 PM", ""} {
				ls = append(ls,
					timeLayout{"01" + sep + "02" + sep + year + clock, "mdy"}, timeLayout{"02" + sep + "01" + sep + year + clock, "dmy"},
					timeLayout{"1" + sep + "2" + sep + year + clock, "mdy"}, timeLayout{"2" + sep + "1" + sep + year + clock, "dmy"})
			}
		}
	}
	return ls
}

// clockLayouts are the layouts of a column holding only the time of day.
var clockLayouts = []string{"15:04:05", "15:04", "3:04:05 PM", "3:04 PM"}

// timeFit is a layout that reads every sampled value of a column.
type timeFit struct {
	col        int
	layout     string
	order      string // "mdy", "dmy" or ""
	ambiguous  bool   // the other order reads every value too
	twin       string // the layout with month and day swapped
	resolvedBy string // a value that only this order reads
	resolvedAt int    // its line, when past the sample; 0 in it
	epoch      time.Time
	tod        int // time-of-day column, or -1
	todLayout  string
	n          int
	fitResult
}

// timeProbe reads values through the reader's own time parsing (csvParser.time)
// for one candidate layout: what the suggester accepts, the reader does.
type timeProbe struct {
	p *csvParser
}

func newTimeProbe(layout string, epoch time.Time, tod bool) *timeProbe {
	m := &Mapping{TimeLayout: layout, TimeEpoch: epoch}
	// The fields time reads, set by hand: newCSVParser's interners cost
	// more than a probe of a few values.
	p := &csvParser{m: m, loc: time.UTC, tm: 0, tod: -1, zoneByName: zoneByName(layout)}
	if tod {
		p.tod = 1
	}
	return &timeProbe{p: p}
}

// read parses v (and the time of day tod when the probe has one).
func (t *timeProbe) read(v, tod string) (time.Time, bool) {
	f := [][]byte{[]byte(v)}
	if t.p.tod >= 0 {
		f = append(f, []byte(tod))
	}
	tm, err := t.p.time(f)
	if err != nil {
		return time.Time{}, false
	}
	return tm, plausibleTime(tm)
}

// plausibleTime bounds the times of an order export: a layout that reads
// an id or an amount as a date gives years far away.
func plausibleTime(t time.Time) bool { return t.Year() >= 1970 && t.Year() <= 2100 }

// fitResult is what a probe read of a column's values.
type fitResult struct {
	first, last time.Time
	read, bad   int
	badExample  string
}

// fitAll reads vals (the time of day from tods when given) and reports
// whether at most 1% of them fail, as kairos eval's default bound on bad
// rows allows: a damaged row must not hide the layout of the rest.
func (t *timeProbe) fitAll(vals, tods []string) (r fitResult, ok bool) {
	allowed := len(vals) / 100
	for i, v := range vals {
		tod := ""
		if tods != nil {
			tod = tods[i]
		}
		tm, ok := t.read(v, tod)
		if !ok {
			if r.bad++; r.bad > allowed {
				return r, false
			}
			if r.badExample == "" {
				r.badExample = v
			}
			continue
		}
		r.read++
		if r.first.IsZero() || tm.Before(r.first) {
			r.first = tm
		}
		if tm.After(r.last) {
			r.last = tm
		}
	}
	return r, r.read > 0
}

// numericLayout returns the special layout a column of plain numbers may
// hold (unix, unix_ms, excel or days) from the values' form and range, or "".
func numericLayout(vals []string, name nameInfo) string {
	minV, maxV, integer, digits := 0.0, 0.0, true, 0
	for i, v := range vals {
		if !dayCountForm(v) {
			return ""
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return ""
		}
		if strings.Contains(v, ".") {
			integer = false
		}
		if i == 0 || f < minV {
			minV = f
		}
		if i == 0 || f > maxV {
			maxV = f
		}
		digits = max(digits, len(v))
	}
	// Unnamed, seconds since the epoch must fall in 2000 .. 2040 to be
	// told from other numbers; named a time, in 1980 .. 2100.
	lo, hi := 946684800.0, 2208988800.0
	if name.timeName {
		lo, hi = 315532800, 4102444800
	}
	switch {
	case len(vals) == 0:
		return ""
	case integer && minV >= lo && maxV < hi && digits <= 10:
		return LayoutUnix
	case integer && minV >= lo*1000 && maxV < hi*1000 && digits <= 13:
		return LayoutUnixMs
	case !name.timeName:
		// Any other number column could be an id or an amount: only a name
		// that says time makes it one.
		return ""
	case minV >= 25569 && maxV < 62091:
		return LayoutExcel // 1970 .. 2069
	case name.dayName && minV >= 0 && maxV < 100000:
		return LayoutDays
	}
	return ""
}

// dayCountForm: digits and at most one dot.
func dayCountForm(v string) bool {
	whole, frac, _ := strings.Cut(v, ".")
	return allDigits([]byte(whole)) && (frac == "" && !strings.HasSuffix(v, ".") || allDigits([]byte(frac)))
}

// dayEpoch is the epoch suggested for a day-number column whose real first
// date the file does not say.
var dayEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fitTime finds the layout that reads every non-empty sampled value of
// column c, or ok false.
func (s *sample) fitTime(c int, name nameInfo) (timeFit, bool) {
	vals, _ := s.nonEmpty(c)
	if len(vals) == 0 {
		return timeFit{}, false
	}
	fit := timeFit{col: c, tod: -1, n: len(vals)}
	if l := numericLayout(vals, name); l != "" {
		var epoch time.Time
		if l == LayoutDays {
			epoch = dayEpoch
		}
		r, ok := newTimeProbe(l, epoch, false).fitAll(vals, nil)
		if !ok {
			return timeFit{}, false
		}
		fit.layout, fit.epoch, fit.fitResult = l, epoch, r
		return fit, true
	}
	if allNumbers(vals) && !name.timeName {
		return timeFit{}, false
	}
	layouts := candidateLayouts()
	for i, l := range layouts {
		r, ok := newTimeProbe(l.layout, time.Time{}, false).fitAll(vals, nil)
		if !ok {
			continue
		}
		fit.layout, fit.order, fit.fitResult = l.layout, l.order, r
		if l.order != "" {
			fit = orderEvidence(fit, vals, layouts, i)
		}
		return fit, true
	}
	return timeFit{}, false
}

// orderEvidence settles the day and month order of a fit with layouts[i]
// against its twin (the same layout with month and day swapped): a value
// that only one of them reads decides; when none does, the fit is
// ambiguous.
func orderEvidence(fit timeFit, vals []string, layouts []timeLayout, i int) timeFit {
	// candidateLayouts lists each month-first layout just before its
	// day-first twin.
	j := i + 1
	if layouts[i].order == "dmy" {
		j = i - 1
	}
	fit.twin = layouts[j].layout
	a, b := newTimeProbe(fit.layout, time.Time{}, false), newTimeProbe(fit.twin, time.Time{}, false)
	aOnly, bOnly := "", ""
	for _, v := range vals {
		_, okA := a.read(v, "")
		_, okB := b.read(v, "")
		switch {
		case okA && !okB && aOnly == "":
			aOnly = v
		case okB && !okA && bOnly == "":
			bOnly = v
		}
		if aOnly != "" && bOnly != "" {
			break
		}
	}
	switch {
	case aOnly != "" && bOnly == "":
		fit.resolvedBy = aOnly
	case bOnly != "" && aOnly == "":
		r, _ := b.fitAll(vals, nil)
		fit.layout, fit.twin, fit.order, fit.resolvedBy, fit.fitResult = fit.twin, fit.layout, layouts[j].order, bOnly, r
	default:
		// Neither order is contradicted, or both are: the sample cannot say.
		fit.ambiguous = true
	}
	return fit
}

// allNumbers reports whether every value is a plain number.
func allNumbers(vals []string) bool {
	for _, v := range vals {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return false
		}
	}
	return len(vals) > 0
}

// fitClock reports whether every non-empty value of column c is a time of
// day, and its layout.
func (s *sample) fitClock(c int) (string, bool) {
	vals, _ := s.nonEmpty(c)
	if len(vals) == 0 {
		return "", false
	}
	for _, l := range clockLayouts {
		ok := true
		for _, v := range vals {
			if _, err := time.Parse(l, v); err != nil {
				ok = false
				break
			}
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

// withClock joins a date-only fit with the time-of-day column tod, read
// through the reader with the two layouts joined by a space.
func (s *sample) withClock(fit timeFit, tod int, clock string) (timeFit, bool) {
	var dates, tods []string
	for _, r := range s.rows {
		if fit.col < len(r) && tod < len(r) && r[fit.col] != "" {
			dates, tods = append(dates, r[fit.col]), append(tods, r[tod])
		}
	}
	layout := fit.layout + " " + clock
	r, ok := newTimeProbe(layout, time.Time{}, true).fitAll(dates, tods)
	if !ok {
		return fit, false
	}
	fit.layout, fit.tod, fit.todLayout, fit.fitResult = layout, tod, clock, r
	return fit, true
}

// dateOnly reports whether a layout holds no time of day.
func dateOnly(layout string) bool {
	return !strings.Contains(layout, "15") && !strings.Contains(layout, "3:04") && layout != LayoutUnix && layout != LayoutUnixMs
}

// describeFit is the evidence for a time fit.
func (f timeFit) describe(name string) string {
	what := fmt.Sprintf("every sampled value (%s) parses with %q", groupDigits(int64(f.n)), f.layout)
	switch f.layout {
	case LayoutUnix:
		what = fmt.Sprintf("every sampled value (%s) is a whole number of seconds since 1970", groupDigits(int64(f.n)))
	case LayoutUnixMs:
		what = fmt.Sprintf("every sampled value (%s) is a whole number of milliseconds since 1970", groupDigits(int64(f.n)))
	case LayoutExcel:
		what = fmt.Sprintf("every sampled value (%s) is an Excel serial date", groupDigits(int64(f.n)))
	case LayoutDays:
		what = fmt.Sprintf("every sampled value (%s) is a day number", groupDigits(int64(f.n)))
	}
	if f.bad > 0 {
		what = strings.Replace(what, "every sampled value", fmt.Sprintf("%s of %s sampled values", groupDigits(int64(f.read)), groupDigits(int64(f.n))), 1) +
			fmt.Sprintf(" (%d do not, like %q: bad rows)", f.bad, f.badExample)
	}
	s := fmt.Sprintf("%s — %s, %s .. %s", name, what, f.first.Format(time.DateOnly), f.last.Format(time.DateOnly))
	switch {
	case f.order == "" || f.ambiguous:
	case f.order == "mdy":
		s += fmt.Sprintf(" (month first: %q%s has a day above 12 in the second place)", f.resolvedBy, f.where())
	default:
		s += fmt.Sprintf(" (day first: %q%s has a day above 12 in the first place)", f.resolvedBy, f.where())
	}
	return s
}

// where says where the resolving value is when it is past the sample.
func (f timeFit) where() string {
	if f.resolvedAt == 0 {
		return ""
	}
	return fmt.Sprintf(" on line %s, past the sample,", groupDigits(int64(f.resolvedAt)))
}

// maxSettleLines bounds the lines read past the sample to settle an
// ambiguous day and month order.
const maxSettleLines = 5_000_000

// settleOrder reads on past the sample, one line at a time and holding
// none, for a value of the time column that only one of the two orders
// reads. A sample from the first days of a month holds no day above 12.
func (s *sample) settleOrder(ctx context.Context, f timeFit) timeFit {
	if !f.ambiguous || !s.truncated || s.rest == nil {
		return f
	}
	a, b := newTimeProbe(f.layout, time.Time{}, false), newTimeProbe(f.twin, time.Time{}, false)
	sp := splitter{delim: s.delimiter}
	var rec []byte
	in := false
	line := s.restLine
	for n := 0; n < maxSettleLines; n++ {
		l, err := s.rest.ReadSlice('\n')
		if len(l) == 0 && err != nil {
			break
		}
		line++
		if n&4095 == 0 && ctx.Err() != nil {
			break
		}
		l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
		if s.encoding != EncodingUTF8 {
			l = transcode(nil, l, &windows1252Table)
		}
		if in {
			rec = append(append(rec, '\n'), l...)
		} else {
			rec = append(rec[:0], l...)
		}
		if !s.jsonLines {
			if in = sp.endsInQuote(l, in); in {
				continue
			}
		}
		v, ok := s.field(&sp, rec, f.col)
		if !ok {
			continue
		}
		_, okA := a.read(v, "")
		_, okB := b.read(v, "")
		switch {
		case okA && !okB:
			f.ambiguous, f.resolvedBy, f.resolvedAt = false, v, line
			return f
		case okB && !okA:
			f.layout, f.twin = f.twin, f.layout
			f.order = map[string]string{"mdy": "dmy", "dmy": "mdy"}[f.order]
			f.ambiguous, f.resolvedBy, f.resolvedAt = false, v, line
			return f
		}
	}
	return f
}

// field returns column c of one record past the sample.
func (s *sample) field(sp *splitter, rec []byte, c int) (string, bool) {
	if s.jsonLines {
		kv, ok := jsonObject(bytes.TrimSpace(rec))
		if !ok || c >= len(s.names) {
			return "", false
		}
		for _, p := range kv {
			if p.key == s.names[c] {
				return p.value, p.value != ""
			}
		}
		return "", false
	}
	f, _, err := sp.split(rec)
	if err != nil || c >= len(f) || len(f[c]) == 0 {
		return "", false
	}
	return string(f[c]), true
}
