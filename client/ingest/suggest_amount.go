package ingest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// amountFit is an amount format that reads every sampled value of a
// column through the reader's own amount parsing.
type amountFit struct {
	decimal, thousands byte // 0 for the defaults
	symbols            []string
	accounting         bool
	negatives          int
	n                  int
	// ambiguous names two formats that read the sample to different
	// numbers ("1,234": 1234 or 1.234).
	ambiguous string
	// currencies: symbols of more than one currency.
	currencies []string
}

// markSets are the decimal and thousands marks tried, the plainest first.
var markSets = [][2]byte{{0, 0}, {0, ','}, {0, '\''}, {0, ' '}, {',', 0}, {',', ' '}, {',', '\''}}

// amountProbe reads amounts through csvParser.parseAmount and, with a
// quantity, scaleByQuantity.
func amountProbe(decimal, thousands byte, symbols []string, accounting bool) *csvParser {
	m := &Mapping{Decimal: decimal, Thousands: thousands, CurrencySymbols: symbols, AccountingNegatives: accounting}
	// parseAmount and scaleByQuantity read only the mapping's amount keys.
	return &csvParser{m: m, loc: time.UTC, amount: 0, qty: -1, cur: -1}
}

// displayDecorations collects what the values of an amount column carry
// around their numbers: currency symbols and accounting negatives.
func displayDecorations(vals []string) (symbols []string, accounting bool) {
	for _, v := range vals {
		t := trimBlanks([]byte(v))
		if len(t) >= 2 && t[0] == '(' && t[len(t)-1] == ')' {
			accounting, t = true, trimBlanks(t[1:len(t)-1])
		} else if len(t) >= 2 && t[len(t)-1] == '-' && t[len(t)-2] >= '0' && t[len(t)-2] <= '9' {
			accounting, t = true, t[:len(t)-1]
		}
		if len(t) > 0 && (t[0] == '-' || t[0] == '+') {
			t = trimBlanks(t[1:])
		}
		if sym := currencySymbol(t); sym != "" && !slices.Contains(symbols, sym) {
			symbols = append(symbols, sym)
			if len(symbols) > 8 {
				break
			}
		}
	}
	// Longest first, as the reader tries them.
	slices.SortStableFunc(symbols, func(a, b string) int { return len(b) - len(a) })
	return symbols, accounting
}

// fitAmount finds the format that reads every non-empty sampled value of
// column c as a number, or ok false when none does.
func (s *sample) fitAmount(c int) (amountFit, bool) {
	vals, _ := s.nonEmpty(c)
	if len(vals) == 0 {
		return amountFit{}, false
	}
	symbols, accounting := displayDecorations(vals)
	fit := amountFit{n: len(vals), symbols: symbols, accounting: accounting}
	if len(symbols) > 0 && oneCurrency(symbols) != nil {
		// Amounts in several currencies are not one number each: the
		// reader needs a currency column and rates, which a symbol is not.
		fit.currencies = symbols
		return fit, false
	}
	var found [][]float64
	for _, ms := range markSets {
		p := amountProbe(ms[0], ms[1], symbols, accounting)
		got, neg, ok := readAmounts(p, vals)
		if !ok {
			continue
		}
		if len(found) == 0 {
			fit.decimal, fit.thousands, fit.negatives = ms[0], ms[1], neg
		}
		if len(found) > 0 && !slices.Equal(found[0], got) && fit.ambiguous == "" {
			fit.ambiguous = fmt.Sprintf("the amounts read as %s and as %s give different numbers (%s)", marksLabel(fit.decimal, fit.thousands), marksLabel(ms[0], ms[1]), firstDiff(vals, found[0], got))
		}
		found = append(found, got)
	}
	return fit, len(found) > 0
}

// readAmounts reads every value with p; negatives count, with their sign.
func readAmounts(p *csvParser, vals []string) ([]float64, int, bool) {
	out := make([]float64, len(vals))
	neg := 0
	for i, v := range vals {
		a, reason, err := p.parseAmount([]byte(v), 0)
		if err != nil && reason != ReasonNegativeAmount {
			return nil, 0, false
		}
		if reason == ReasonNegativeAmount {
			neg++
			a = -1 // the sign is what tells formats apart here
		}
		out[i] = a
	}
	return out, neg, true
}

// firstDiff names the first value two readings disagree on.
func firstDiff(vals []string, a, b []float64) string {
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("%q is %g or %g", vals[i], a[i], b[i])
		}
	}
	return ""
}

// marksLabel describes a decimal and thousands pair as a mapping sets it.
func marksLabel(decimal, thousands byte) string {
	d := "a decimal point"
	if decimal == ',' {
		d = "a decimal comma"
		if thousands == 0 {
			thousands = '.'
		}
	}
	if thousands == 0 {
		return d
	}
	return fmt.Sprintf("%s and %s between thousands", d, quoteMark(thousands))
}

// fitQuantity reports whether every non-empty value of column c reads as a
// quantity with the amount's marks, and how many are negative.
func (s *sample) fitQuantity(c int, a amountFit) (negatives int, ok bool) {
	vals, _ := s.nonEmpty(c)
	p := amountProbe(a.decimal, a.thousands, nil, false)
	for _, v := range vals {
		_, reason, err := p.scaleByQuantity(1, []byte(v), 0)
		switch {
		case reason == ReasonNegativeAmount:
			negatives++
		case err != nil:
			return 0, false
		}
	}
	return negatives, len(vals) > 0
}

// describeAmount is the evidence for an amount format.
func (a amountFit) describe() string {
	var parts []string
	if len(a.symbols) > 0 {
		q := make([]string, len(a.symbols))
		for i, s := range a.symbols {
			q[i] = fmt.Sprintf("%q", s)
		}
		parts = append(parts, "written with "+strings.Join(q, ", "))
	}
	if a.accounting {
		parts = append(parts, "negatives in parentheses or with a trailing minus")
	}
	parts = append(parts, marksLabel(a.decimal, a.thousands))
	return strings.Join(parts, ", ")
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
		why = append(why, fmt.Sprintf("negative_amount: a negative amount or quantity (returns, refunds) on %s: they are dropped and counted", plural(neg, "sampled row")))
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
