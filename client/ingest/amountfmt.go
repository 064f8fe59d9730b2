package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file reads amounts as shop systems and spreadsheets display them: a
// currency symbol or code around the number ("$1,234.50", "1 234,50 €",
// "USD 12.00"), accounting negatives in parentheses ("(12.00)") or with a
// trailing minus ("12.00-"), and amounts in a currency's minor unit
// (Stripe's cents). Each is read only
// when the mapping declares it (currency_symbol, accounting_negatives,
// amount_unit): a symbol the mapping does not name stays a bad amount whose
// error names the key, so that nothing is stripped by guess.

// Amount units a mapping's amount_unit key names.
const (
	// AmountUnitCents: every amount is in hundredths of the currency unit.
	AmountUnitCents = "cents"
	// AmountUnitMinor: every amount is in its currency's minor unit
	// (ISO 4217): hundredths for most, units for JPY, thousandths for KWD.
	// It needs a currency column.
	AmountUnitMinor = "minor"
)

// minorExponents lists the ISO 4217 currencies whose minor unit is not a
// hundredth: 10^exponent minor units make one unit. Any other three-letter
// code has exponent 2.
var minorExponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// minorDivisor is the number of minor units in one unit of the ISO 4217
// currency code (in either case), or false when code is not three letters.
func minorDivisor(code string) (float64, bool) {
	if len(code) != 3 {
		return 0, false
	}
	var up [3]byte // Stripe writes codes in lower case ("usd")
	for i := range 3 {
		c := code[i] &^ 0x20
		if c < 'A' || c > 'Z' {
			return 0, false
		}
		up[i] = c
	}
	e, ok := minorExponents[string(up[:])]
	if !ok {
		e = 2
	}
	return pow10(e), true
}

// blankPrefix returns the length of the blank at the start of b: an ASCII
// space or tab, a no-break space (U+00A0) or a narrow no-break space
// (U+202F), which locales put between a number and its currency symbol.
func blankPrefix(b []byte) int {
	switch {
	case len(b) > 0 && isBlank(b[0]):
		return 1
	case bytes.HasPrefix(b, []byte("\u00a0")):
		return 2
	case bytes.HasPrefix(b, []byte("\u202f")):
		return 3
	}
	return 0
}

// blankSuffix is blankPrefix at the end of b.
func blankSuffix(b []byte) int {
	switch {
	case len(b) > 0 && isBlank(b[len(b)-1]):
		return 1
	case bytes.HasSuffix(b, []byte("\u00a0")):
		return 2
	case bytes.HasSuffix(b, []byte("\u202f")):
		return 3
	}
	return 0
}

func trimBlanks(b []byte) []byte {
	for n := blankPrefix(b); n > 0; n = blankPrefix(b) {
		b = b[n:]
	}
	for n := blankSuffix(b); n > 0; n = blankSuffix(b) {
		b = b[:len(b)-n]
	}
	return b
}

// displayed takes the display decorations the mapping declares off an
// amount field: the parentheses of an accounting negative, a sign, and one
// currency symbol before or after the number with optional blanks between.
// Under accounting, a trailing minus ("12.00-", as SAP writes it) is a
// negative, and a dash alone ("-", "$ -") is zero, as Excel's accounting
// format shows it.
// It returns the bare number and whether the amount is negative; ok is
// false when the field's decorations are not the declared ones (two signs,
// a parenthesis without accounting_negatives, a symbol in the middle).
func displayed(b []byte, symbols []string, accounting bool) (num []byte, neg, ok bool) {
	b = trimBlanks(b)
	parens := accounting && len(b) >= 2 && b[0] == '(' && b[len(b)-1] == ')'
	if parens {
		neg, b = true, trimBlanks(b[1:len(b)-1])
	}
	if accounting && !parens && len(b) >= 2 && b[len(b)-1] == '-' {
		neg, b = true, trimBlanks(b[:len(b)-1]) // SAP's trailing minus: "1.234,50-"
	}
	sign := func() bool { // a sign before or after the symbol, once
		if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
			if neg {
				return false // "(-12.00)" or "--12"
			}
			neg, b = b[0] == '-', b[1:]
			for n := blankPrefix(b); n > 0; n = blankPrefix(b) {
				b = b[n:] // "- $1"
			}
		}
		return true
	}
	if !sign() {
		return nil, false, false
	}
	for _, s := range symbols {
		switch {
		case bytes.HasPrefix(b, []byte(s)):
			b = b[len(s):]
			for n := blankPrefix(b); n > 0; n = blankPrefix(b) {
				b = b[n:]
			}
			if !sign() {
				return nil, false, false
			}
		case bytes.HasSuffix(b, []byte(s)):
			b = b[:len(b)-len(s)]
			for n := blankSuffix(b); n > 0; n = blankSuffix(b) {
				b = b[:len(b)-n]
			}
		default:
			continue
		}
		break
	}
	if len(b) == 0 && accounting && neg && !parens {
		return []byte("0"), false, true // the accounting format's zero: "-", "$ -"
	}
	if len(b) == 0 || b[0] < '0' && b[0] != '.' && b[0] != ',' || b[0] > '9' {
		return nil, false, false
	}
	return b, neg, true
}

// decorated reports whether the mapping declares any display decoration of
// amounts.
func (m *Mapping) decorated() bool { return len(m.CurrencySymbols) > 0 || m.AccountingNegatives }

// undecorate applies displayed with the mapping's keys to amount field b,
// returning the number in the form plain reads ("-" and the bare number
// for a negative one) in the parser's scratch.
func (p *csvParser) undecorate(b []byte) ([]byte, bool) {
	num, neg, ok := displayed(b, p.m.CurrencySymbols, p.m.AccountingNegatives)
	if !ok {
		return nil, false
	}
	if !neg {
		return num, true
	}
	p.amt = append(append(p.amt[:0], '-'), num...)
	return p.amt, true
}

// symbolHint names the keys that would read b, an amount written with a
// currency symbol or code or in parentheses that the mapping does not
// declare, or is "" when they would not read it either: a hint that does
// not help is worse than none.
func (p *csvParser) symbolHint(b []byte) string {
	var hints []string
	symbols, accounting := p.m.CurrencySymbols, p.m.AccountingNegatives
	t := trimBlanks(b)
	switch {
	case accounting:
	case len(t) >= 2 && t[0] == '(' && t[len(t)-1] == ')':
		accounting = true
		hints = append(hints, "for accounting negatives in parentheses set accounting_negatives: true")
		t = trimBlanks(t[1 : len(t)-1])
	case len(t) >= 2 && t[len(t)-1] == '-' && t[len(t)-2] >= '0' && t[len(t)-2] <= '9':
		accounting = true
		hints = append(hints, `for negatives with a trailing minus ("12.00-") set accounting_negatives: true`)
		t = t[:len(t)-1]
	}
	if sym := currencySymbol(t); sym != "" && !slices.Contains(symbols, sym) {
		symbols = append(slices.Clip(symbols), sym)
		hints = append(hints, fmt.Sprintf("for amounts written with a currency symbol or code set currency_symbol: %q", sym))
	}
	if len(hints) == 0 {
		return ""
	}
	num, _, ok := displayed(b, symbols, accounting)
	if !ok {
		return ""
	}
	if !p.reads(num) {
		h := p.hint(num)
		if h == "" {
			return ""
		}
		hints = append(hints, strings.TrimSuffix(strings.TrimPrefix(h, " ("), " in the mapping)"))
	}
	return " (" + strings.Join(hints, "; ") + " in the mapping)"
}

// maxSymbolRunes bounds what symbolHint takes for a currency symbol or code
// ("US$", "CHF", "EUR"): a longer word next to a number is not one.
const maxSymbolRunes = 4

// currencySymbol returns the run of characters before or after the number
// in b that is neither a digit, a mark, a sign nor a blank (like "$", "€",
// "USD", "kr"), or "".
func currencySymbol(b []byte) string {
	isPart := func(r rune) bool {
		return r >= '0' && r <= '9' || r == '.' || r == ',' || r == '\'' || r == '-' || r == '+' || r == '(' || r == ')' ||
			r == ' ' || r == '\t' || r == '\u00a0' || r == '\u202f'
	}
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if isPart(r) {
			break
		}
		i += n
	}
	if i > 0 && i < len(b) && utf8.RuneCount(b[:i]) <= maxSymbolRunes {
		return string(b[:i])
	}
	j := len(b)
	for j > 0 {
		r, n := utf8.DecodeLastRune(b[:j])
		if isPart(r) {
			break
		}
		j -= n
	}
	if j < len(b) && j > 0 && utf8.RuneCount(b[j:]) <= maxSymbolRunes {
		return string(b[j:])
	}
	return ""
}

// amountHint is the hint for a bad amount field shown, whose number without
// the declared decorations is b: the keys for an undeclared symbol or
// parentheses, else the marks that would read it.
func (p *csvParser) amountHint(shown, b []byte) string {
	if h := p.symbolHint(shown); h != "" {
		return h
	}
	return p.hint(b)
}

// decorationsName describes the decorations the mapping declares, for the
// error of an amount that does not have them in the declared places.
func (p *csvParser) decorationsName() string {
	var parts []string
	if len(p.m.CurrencySymbols) > 0 {
		q := make([]string, len(p.m.CurrencySymbols))
		for i, s := range p.m.CurrencySymbols {
			q[i] = fmt.Sprintf("%q", s)
		}
		parts = append(parts, "currency_symbol "+strings.Join(q, " or ")+" before or after the number")
	}
	if p.m.AccountingNegatives {
		parts = append(parts, "negatives in parentheses")
	}
	return strings.Join(parts, ", ")
}

// amountFormat reads currency_symbol, accounting_negatives and amount_unit.
func (raw *rawMapping) amountFormat(m *Mapping) error {
	if n := raw.CurrencySymbol; n != nil {
		const want = `currency_symbol must be a currency symbol or code as the amounts write it, or a list of them, like currency_symbol: "$" or currency_symbol: ["€", EUR]`
		items := []*yaml.Node{n}
		if n.Kind == yaml.SequenceNode {
			items = n.Content
		}
		for _, e := range items {
			e = deref(e)
			if e.Kind != yaml.ScalarNode {
				return nodeErr(e, "%s; got %s", want, describe(e))
			}
			if err := checkSymbol(e.Value); err != nil {
				return nodeErr(e, "%v", err)
			}
			if slices.Contains(m.CurrencySymbols, e.Value) {
				return nodeErr(e, "currency_symbol %q is given twice", e.Value)
			}
			m.CurrencySymbols = append(m.CurrencySymbols, e.Value)
		}
		if len(m.CurrencySymbols) == 0 {
			return nodeErr(n, "%s; got an empty list", want)
		}
		if err := oneCurrency(m.CurrencySymbols); err != nil {
			return nodeErr(n, "%v", err)
		}
		// "US$" before "$", so that the longer one is taken whole.
		slices.SortStableFunc(m.CurrencySymbols, func(a, b string) int { return len(b) - len(a) })
	}
	if n := raw.AccountingNegatives; n != nil {
		if n.ShortTag() != "!!bool" {
			return nodeErr(n, "accounting_negatives must be true or false (true reads \"(12.00)\" and \"12.00-\" as -12.00), not %s", describe(n))
		}
		m.AccountingNegatives = n.Value == "true"
	}
	if n := raw.AmountUnit; n != nil {
		v, _ := scalar(n, "amount_unit")
		if v != AmountUnitCents && v != AmountUnitMinor {
			return nodeErr(n, "amount_unit must be cents (amounts in hundredths, like Stripe's 1250 for 12.50) or minor (in the minor unit of each row's currency: hundredths, or units for JPY), not %s", describe(n))
		}
		m.AmountUnit = v
		if v == AmountUnitMinor && raw.Currency == nil {
			return nodeErr(n, "amount_unit: minor needs a currency column, whose code says each row's minor unit; for one currency in hundredths write amount_unit: cents")
		}
		if v == AmountUnitMinor {
			for code := range m.CurrencyRates {
				if _, ok := minorDivisor(code); !ok {
					return nodeErr(n, "amount_unit: minor needs ISO 4217 codes under currency rates (like USD, JPY), to know each one's minor unit; %q is not one", code)
				}
			}
		}
	}
	if (m.decorated() || m.AmountUnit != "") && raw.Amount == nil {
		n := raw.CurrencySymbol
		if n == nil {
			n = raw.AccountingNegatives
		}
		if n == nil {
			n = raw.AmountUnit
		}
		return nodeErr(n, "currency_symbol, accounting_negatives and amount_unit describe the amount column, and there is none")
	}
	return nil
}

// checkSymbol checks a currency symbol or code a mapping declares: it must
// not be part of how numbers are written, or stripping it would change them.
func checkSymbol(s string) error {
	if s == "" || utf8.RuneCountInString(s) > 8 || !utf8.ValidString(s) {
		return fmt.Errorf("currency_symbol %q must be a currency symbol or code of 1 to 8 characters, like \"$\", \"€\" or \"USD\"", s)
	}
	if i := strings.IndexAny(s, "0123456789.,'+-() \t\u00a0\u202f"); i >= 0 {
		return fmt.Errorf("currency_symbol %q holds %q, which is part of how numbers are written", s, s[i:i+1])
	}
	return nil
}

// symbolCurrencies lists the ISO 4217 currencies a common currency symbol
// may stand for; a three-letter code in capitals stands for itself, and a
// symbol not listed for any currency.
var symbolCurrencies = map[string][]string{
	"$": {"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD", "ARS", "CLP", "COP"}, "US$": {"USD"}, "C$": {"CAD"},
	"CA$": {"CAD"}, "A$": {"AUD"}, "AU$": {"AUD"}, "NZ$": {"NZD"}, "HK$": {"HKD"}, "S$": {"SGD"}, "R$": {"BRL"},
	"€": {"EUR"}, "£": {"GBP", "EGP"}, "¥": {"JPY", "CNY"}, "￥": {"JPY", "CNY"}, "₹": {"INR"}, "₩": {"KRW"},
	"₽": {"RUB"}, "₺": {"TRY"}, "₪": {"ILS"}, "₫": {"VND"}, "฿": {"THB"}, "₱": {"PHP"}, "zł": {"PLN"},
	"Kč": {"CZK"}, "Ft": {"HUF"}, "kr": {"SEK", "NOK", "DKK", "ISK"}, "CHF": {"CHF"},
}

// currenciesOf is what symbolCurrencies says of s, or nil when nothing.
func currenciesOf(s string) []string {
	if c, ok := symbolCurrencies[s]; ok {
		return c
	}
	if len(s) == 3 && strings.ToUpper(s) == s && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[2] >= 'A' {
		return []string{s}
	}
	return nil
}

// oneCurrency refuses currency symbols that cannot be one currency ("$"
// and "€", "USD" and "EUR"): the key only takes a symbol off, so amounts in
// both would be added as one currency. Several currencies need the currency
// key with rates.
func oneCurrency(symbols []string) error {
	for i, a := range symbols {
		for _, b := range symbols[i+1:] {
			ca, cb := currenciesOf(a), currenciesOf(b)
			if ca != nil && cb != nil && !slices.ContainsFunc(ca, func(c string) bool { return slices.Contains(cb, c) }) {
				return fmt.Errorf("currency_symbol lists %q and %q, which are different currencies: the symbol is only taken off, so amounts in both would be added as one; "+
					"list the spellings of one currency, and for several give a currency column with rates (currency: {column: …, rates: {…}})", a, b)
			}
		}
	}
	return nil
}

// validateAmountFormat checks the amount-format fields of a Mapping built
// in code.
func (m *Mapping) validateAmountFormat() error {
	for _, s := range m.CurrencySymbols {
		if err := checkSymbol(s); err != nil {
			return err
		}
	}
	if err := oneCurrency(m.CurrencySymbols); err != nil {
		return err
	}
	if (m.decorated() || m.AmountUnit != "") && m.Amount.IsZero() {
		return errors.New("currency_symbol, accounting_negatives and amount_unit need an amount column")
	}
	switch m.AmountUnit {
	case "", AmountUnitCents:
	case AmountUnitMinor:
		if m.Currency.IsZero() {
			return errors.New("amount_unit: minor needs a currency column")
		}
		for code := range m.CurrencyRates {
			if _, ok := minorDivisor(code); !ok {
				return fmt.Errorf("amount_unit: minor needs ISO 4217 codes under currency rates; %q is not one", code)
			}
		}
	default:
		return fmt.Errorf("amount_unit %q must be cents or minor", m.AmountUnit)
	}
	return nil
}

// inUnits converts amt, read from row f in the mapping's amount_unit, into
// currency units. Under minor the row's currency has a rate, so convert has
// checked that it is an ISO 4217 code.
func (p *csvParser) inUnits(amt float64, f [][]byte) float64 {
	if p.m.AmountUnit == AmountUnitMinor && p.cur >= 0 {
		if d, ok := minorDivisor(string(f[p.cur])); ok {
			return amt / d
		}
	}
	return amt / 100
}

// reads reports whether the number num, without decorations, reads as an
// amount in the mapping's marks.
func (p *csvParser) reads(num []byte) bool {
	pt, ok := p.plain(num, -1)
	if !ok {
		return false
	}
	_, reason, _ := parseAmountShown(pt, pt)
	return reason != ReasonBadAmount
}
