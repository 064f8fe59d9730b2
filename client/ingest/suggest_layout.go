package ingest

import (
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
// reads the sampled values (fitAll) is suggested. Of two layouts the reader reads
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

// allNumbers reports whether every value is a plain number.
func allNumbers(vals []string) bool {
	for _, v := range vals {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return false
		}
	}
	return len(vals) > 0
}

// dateOnly reports whether a layout holds no time of day.
func dateOnly(layout string) bool {
	return !strings.Contains(layout, "15") && !strings.Contains(layout, "3:04") && layout != LayoutUnix && layout != LayoutUnixMs
}
