package ingest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// timeFit is a layout that reads the sampled values of a column (all but
// at most 1%: fitAll).
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

// fitTime finds the layout that reads the non-empty sampled values of
// column c (all but at most 1%), or ok false.
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

// decideTime finds the order time column and its layout.
func (p *plan) decideTime(ctx context.Context) {
	var fits []timeFit
	for c := range p.ncols {
		in := p.info[c]
		if in.relative || in.partial || in.cancelled {
			continue
		}
		if f, ok := p.s.fitTime(c, in); ok {
			fits = append(fits, f)
		}
	}
	if len(fits) == 0 {
		p.guessTime()
		return
	}
	_, total := p.s.nonEmpty(0)
	score := func(f timeFit) float64 {
		return float64(p.info[f.col].timeScore)*10 + float64(f.n)/float64(max(total, 1))
	}
	slices.SortStableFunc(fits, func(a, b timeFit) int {
		switch sa, sb := score(a), score(b); {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	f := p.s.settleOrder(ctx, fits[0])
	in := p.info[f.col]
	var check string
	switch {
	case len(fits) > 1 && in.timeScore == p.info[fits[1].col].timeScore && fits[1].n*2 >= total:
		check = fmt.Sprintf("two columns hold times with equally likely names: %s and %s; guessed the first", in.label, p.info[fits[1].col].label)
	case p.s.header && in.timeScore == 0:
		check = fmt.Sprintf("no column is named like an order time; %s is the first whose values parse as times", in.label)
	case f.ambiguous:
		var why string
		f, why = p.guessOrder(f)
		check = fmt.Sprintf("the day and month order of %s is ambiguous: no sampled value has a number above 12 in either place; guessed %q (%s)", in.label, f.layout, why)
	case f.layout == LayoutDays:
		check = fmt.Sprintf("%s looks like a day number shared by every customer; its day 0 is unknown, so epoch %s is a placeholder (any date keeps gaps and recency; weekdays shift). A count of days since each customer's previous order is not a day number (docs/operations.md, \"Logs with relative days only\")",
			in.label, dayEpoch.Format(time.DateOnly))
	}
	if dateOnly(f.layout) && f.layout != LayoutExcel && f.layout != LayoutDays {
		for c := range p.ncols {
			if c == f.col || !p.info[c].timeName && p.s.header {
				continue
			}
			if clock, ok := p.s.fitClock(c); ok {
				if g, ok := p.s.withClock(f, c, clock); ok {
					f = g
					break
				}
			}
		}
	}
	p.time = f
	p.used[f.col] = "time"
	why := []string{"time: " + f.describe(in.label)}
	lines := []string{"time:", "  column: " + p.ref(f.col)}
	if f.tod >= 0 {
		p.used[f.tod] = "time"
		why = append(why, fmt.Sprintf("time_of_day: %s holds the time of day (%q); the two are joined by a space", p.info[f.tod].label, f.todLayout))
		lines = append(lines, "  time_of_day: "+p.ref(f.tod))
	}
	lines = append(lines, "  layout: "+yamlString(f.layout))
	if f.layout == LayoutDays {
		lines = append(lines, "  epoch: "+dayEpoch.Format(time.DateOnly))
	}
	if !hasOffset(f.layout) {
		why = append(why, "the times carry no zone offset: they are read in UTC unless you add zone: (the shop's zone, like Europe/Berlin) under time")
	}
	p.add(entry{why: why, check: check, lines: lines})
}

// guessOrder picks the more likely order of an ambiguous date: day first in
// a file that is European by its delimiter, its date separator or its
// header's language, month first otherwise (US exports).
func (p *plan) guessOrder(f timeFit) (timeFit, string) {
	words := words(p.info[f.col].label)
	european := ""
	switch {
	case p.s.delimiter == ';':
		european = "day first, as in a semicolon-separated, European export"
	case strings.Contains(f.layout, "."):
		european = "day first, as dotted dates are written"
	case is(words, "datum", "fecha", "data", "date de", "fecha de", "bestelldatum") || has(words, "datum", "fecha"):
		european = "day first, as the header's language writes dates"
	}
	if want := map[bool]string{true: "dmy", false: "mdy"}[european != ""]; f.order != want {
		f.layout, f.twin, f.order = f.twin, f.layout, want
		vals, _ := p.s.nonEmpty(f.col)
		f.fitResult, _ = newTimeProbe(f.layout, time.Time{}, false).fitAll(vals, nil)
	}
	if european == "" {
		return f, "month first, as US exports write dates"
	}
	return f, european
}

// hasOffset reports whether a layout's times carry their own offset.
func hasOffset(layout string) bool {
	return layout == LayoutUnix || layout == LayoutUnixMs || strings.Contains(layout, "-07") || strings.Contains(layout, "Z07")
}

// guessTime writes the best guess when no column parses as times.
func (p *plan) guessTime() {
	c, why := 0, "no column's values all parse as times in any layout tried"
	for i, in := range p.info {
		if in.timeName {
			c = i
			break
		}
	}
	for _, in := range p.info {
		if in.relative {
			why += fmt.Sprintf("; %s counts days since a previous order, which holds no date (docs/operations.md, \"Logs with relative days only\")", in.label)
			break
		}
	}
	vals, _ := p.s.nonEmpty(c)
	example := ""
	if len(vals) > 0 {
		example = fmt.Sprintf(" (a value: %q)", vals[0])
	}
	p.used[c] = "time"
	p.add(entry{why: []string{"time: " + why},
		check: fmt.Sprintf("no parsable time column: guessed %s%s with a placeholder layout; write its Go layout", p.info[c].label, example),
		lines: []string{"time:", "  column: " + p.ref(c), "  layout: " + yamlString(time.DateTime)}})
}
