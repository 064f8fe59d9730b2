package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// shape decides the file-level keys: header, delimiter, encoding.
func (p *plan) shape() {
	s := p.s
	if s.jsonLines {
		return // keys are the header; JSON is UTF-8 and has no delimiter
	}
	if s.header {
		p.add(entry{why: []string{"header: " + s.headerWhy}, lines: []string{"header: true"}})
	} else {
		p.add(entry{why: []string{"header: " + s.headerWhy + "; columns are named by 1-based index"}, lines: []string{"header: false"}})
	}
	if s.delimiter != ',' {
		p.add(entry{why: []string{fmt.Sprintf("delimiter: %s %s", quoteMark(s.delimiter), s.delimFit)}, lines: []string{"delimiter: " + quoteMark(s.delimiter)}})
	}
	if s.encoding != EncodingUTF8 {
		p.add(entry{why: []string{"encoding: the file is not valid UTF-8; Windows-1252 (what Excel and shop systems on Windows write) reads every byte"},
			lines: []string{"encoding: " + s.encoding}})
	}
}

// decideTime finds the order time column and its layout.
func (p *plan) decideTime(ctx context.Context) {
	var fits []timeFit
	for c := range p.ncols {
		in := p.info[c]
		if in.relative || in.cancelled {
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

// decideAmount finds the amount column (or a unit price and a quantity)
// and its format.
func (p *plan) decideAmount() {
	if !p.s.header {
		return // without names, a number column could be anything
	}
	type cand struct {
		col int
		fit amountFit
	}
	var cands []cand
	var several []string
	for c := range p.ncols {
		if p.used[c] != "" || p.info[c].amount == 0 {
			continue
		}
		f, ok := p.s.fitAmount(c)
		if len(f.currencies) > 0 && p.info[c].amount >= 2 {
			several = append(several, fmt.Sprintf("%s (%s)", p.info[c].label, strings.Join(f.currencies, ", ")))
		}
		if ok {
			cands = append(cands, cand{c, f})
		}
	}
	if len(cands) == 0 {
		for c := range p.ncols {
			if p.used[c] == "" && p.info[c].amount >= 2 && len(several) == 0 {
				vals, _ := p.s.nonEmpty(c)
				if len(vals) > 0 {
					p.add(entry{why: []string{"amount: left out"}, check: fmt.Sprintf("%s is named like an amount, but its values do not all read as numbers in any format tried (like %q)", p.info[c].label, vals[0])})
					return
				}
			}
		}
		if len(several) > 0 {
			p.add(entry{why: []string{"amount: left out"}, check: fmt.Sprintf("amounts in several currencies: %s; a currency column with rates is needed (currency: {column, rates})", strings.Join(several, "; "))})
		}
		return
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return p.info[b.col].amount - p.info[a.col].amount })
	best := cands[0]
	in := p.info[best.col]
	var check string
	if len(cands) > 1 && p.info[cands[1].col].amount == in.amount && !p.s.sameValues(best.col, cands[1].col) {
		check = fmt.Sprintf("two amount columns with equally likely names: %s and %s; guessed the first", in.label, p.info[cands[1].col].label)
	}
	if best.fit.ambiguous != "" {
		check = best.fit.ambiguous + "; guessed " + marksLabel(best.fit.decimal, best.fit.thousands)
	}
	p.amount, p.amountFit = best.col, best.fit
	p.used[best.col] = "amount"
	why := []string{fmt.Sprintf("amount: %s — every sampled value (%s) reads as a number: %s", in.label, groupDigits(int64(best.fit.n)), best.fit.describe())}
	lines := []string{"amount: " + p.ref(best.col)}
	neg := best.fit.negatives
	if in.price {
		for c := range p.ncols {
			if p.used[c] != "" || !p.info[c].qty {
				continue
			}
			if qn, ok := p.s.fitQuantity(c, best.fit); ok {
				p.qty = c
				p.used[c] = "quantity"
				neg += qn
				why = append(why, fmt.Sprintf("quantity: %s — %s is a unit price: times the quantity it is each line's amount", p.info[c].label, in.label))
				lines = append(lines, "quantity: "+p.ref(c))
				break
			}
		}
	}
	lines = append(lines, p.amountFormatLines(best.fit)...)
	if neg > 0 {
		why = append(why, fmt.Sprintf("negative_amount: %d sampled rows have a negative amount or quantity (returns, refunds): they are dropped and counted", neg))
		lines = append(lines, "negative_amount: ignore")
	}
	p.add(entry{why: why, check: check, lines: lines})
}

// amountFormatLines are the keys of an amount format.
func (p *plan) amountFormatLines(f amountFit) []string {
	var lines []string
	if f.decimal == ',' {
		lines = append(lines, `decimal: ","`)
	}
	if f.thousands != 0 {
		lines = append(lines, "thousands: "+quoteMark(f.thousands))
	}
	switch len(f.symbols) {
	case 0:
	case 1:
		lines = append(lines, "currency_symbol: "+yamlString(f.symbols[0]))
	default:
		q := make([]string, len(f.symbols))
		for i, s := range f.symbols {
			q[i] = yamlString(s)
		}
		lines = append(lines, "currency_symbol: ["+strings.Join(q, ", ")+"]")
	}
	if f.accounting {
		lines = append(lines, "accounting_negatives: true")
	}
	return lines
}

// sameValues reports whether columns a and b hold the same text in every
// sampled row.
func (s *sample) sameValues(a, b int) bool {
	for _, r := range s.rows {
		if a < len(r) && b < len(r) && r[a] != r[b] {
			return false
		}
	}
	return true
}
