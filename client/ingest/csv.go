package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// csvParser reads a generic delimited file described by a Mapping.
type csvParser struct {
	m      *Mapping
	sp     splitter
	loc    *time.Location
	kinds  map[string]model.Kind
	ignore map[string]bool
	ncols  int // expected fields per row; 0 until known
	need   int // fields a row must have to reach every mapped column
	cust   int // 0-based indices; -1 when absent
	tm     int
	kind   int
	amount int
	qty    int
	item   int
	cat    int
	tod    int // time of day
	cur    int // currency
	cancel int
	ord    int // order id
	// orders maps each order id seen (Mapping.Order) to its customer.
	orders map[string]string

	// when holds a date and a time of day joined; dec a line transcoded to
	// UTF-8; cust a normalized customer id. All are reused between rows.
	when, dec, custBuf, tagBuf []byte
	// amt is an amount rewritten without its decorations (amountfmt.go).
	amt []byte
	// table transcodes a single-byte encoding; nil for UTF-8.
	table *[256]rune
	// lineUTF8: the line being parsed is valid UTF-8 as a whole (set by
	// decodeLine); otherwise each field read is checked.
	lineUTF8 bool

	customers, items, categories *interner

	// zoneByName: the layout names the zone by abbreviation only (checkZone).
	zoneByName bool
	// numbers marks, by field position, the fields of a JSON message that
	// were JSON numbers: their grammar has a decimal point and no grouping,
	// whatever marks the mapping gives its strings. nil for CSV.
	numbers []bool
	// utf16: the file was UTF-16 text, which Excel's "Unicode Text" writes
	// tab-separated (a hint when the header reads as one column).
	utf16 bool
	// timed marks, by field position, the cells a workbook or Parquet file
	// types as a date or time, whose value is in times; nil for text.
	timed []bool
	times []time.Time
}

func newCSVParser(m *Mapping, loc *time.Location) *csvParser {
	if m.TimeZone != nil {
		loc = m.TimeZone
	}
	d := m.Delimiter
	if d == 0 {
		d = ','
	}
	p := &csvParser{m: m, sp: splitter{delim: d}, loc: loc,
		customers: newInterner(1 << 14), items: newInterner(1 << 12), categories: newInterner(1 << 10)}
	p.kinds = m.KindValues
	p.table = encodingTable(m.Encoding)
	p.zoneByName = zoneByName(m.TimeLayout)
	if len(m.IgnoreKinds) > 0 {
		p.ignore = make(map[string]bool, len(m.IgnoreKinds))
		for _, v := range m.IgnoreKinds {
			p.ignore[v] = true
		}
	}
	if !m.Header {
		p.resolve(nil)
	}
	return p
}

// resolve turns the mapping's columns into 0-based indices; header is nil for
// a file without one. It returns the first named column the header lacks.
func (p *csvParser) resolve(header [][]byte) (missing string) {
	idx := func(c Column) int {
		if c.IsZero() {
			return -1
		}
		if c.Index > 0 {
			return c.Index - 1
		}
		for i, h := range header {
			if string(bytes.TrimSpace(h)) == c.Name {
				return i
			}
		}
		if missing == "" {
			missing = c.Name
		}
		return -1
	}
	p.cust, p.tm, p.kind = idx(p.m.Customer), idx(p.m.Time), idx(p.m.Kind)
	p.amount, p.qty, p.item, p.cat = idx(p.m.Amount), idx(p.m.Quantity), idx(p.m.Item), idx(p.m.Category)
	p.tod, p.cur, p.cancel, p.ord = idx(p.m.TimeOfDay), idx(p.m.Currency), idx(p.m.Cancelled), idx(p.m.Order)
	p.need = 1 + max(p.cust, p.tm, p.kind, p.amount, p.qty, p.item, p.cat, p.tod, p.cur, p.cancel, p.ord)
	return missing
}

func (p *csvParser) header() bool                    { return p.m.Header }
func (p *csvParser) column(line []byte, off int) int { return p.sp.column(line, off) }

func (p *csvParser) parseHeader(line []byte) *RowError {
	f, col, err := p.sp.split(line)
	if err != nil {
		return &RowError{Column: col, Reason: ReasonBadQuote, Err: err}
	}
	if missing := p.resolve(f); missing != "" {
		hint := headerHint(line, f, missing, p.m.Delimiter)
		if p.utf16 && len(f) == 1 && p.m.Delimiter != '\t' {
			hint += " (the file is UTF-16 text, as Excel's \"Unicode Text\" saves it, which is tab-separated: delimiter: \"\\t\")"
		}
		return &RowError{Column: 0, Reason: ReasonColumnCount, Err: fmt.Errorf("header has no column %q%s", missing, hint)}
	}
	if len(f) < p.need {
		return &RowError{Column: len(f) + 1, Reason: ReasonColumnCount, Err: fmt.Errorf("header has %d columns, the mapping uses column %d", len(f), p.need)}
	}
	p.ncols = len(f)
	return nil
}

func (p *csvParser) parse(line []byte) (model.Event, string, *RowError) {
	f, col, err := p.sp.split(line)
	if err != nil {
		return model.Event{}, "", &RowError{Column: col, Reason: ReasonBadQuote, Err: err}
	}
	return p.parseFields(f)
}

// parseFields turns the split fields of one row into an event.
func (p *csvParser) parseFields(f [][]byte) (model.Event, string, *RowError) {
	if p.ncols == 0 && len(f) >= p.need {
		p.ncols = len(f) // no header: the first good row fixes the width
	}
	if len(f) != p.ncols || len(f) < p.need {
		want := max(p.ncols, p.need)
		return model.Event{}, "", &RowError{Column: min(len(f), want) + 1, Reason: ReasonColumnCount, Err: fmt.Errorf("%d columns, want %d", len(f), want)}
	}
	if p.kind >= 0 && p.ignore[string(f[p.kind])] {
		// Not an event: the rest of the row does not matter.
		return model.Event{}, ReasonIgnoredKind, nil
	}
	if p.cancel >= 0 && isCancelled(f[p.cancel]) {
		return model.Event{}, ReasonCancellation, nil
	}
	cust, rerr := p.customer(f[p.cust])
	if rerr != nil {
		return model.Event{}, "", rerr
	}
	if cust == nil {
		return model.Event{}, ReasonMissingCustomer, nil
	}
	t, rerr := p.time(f)
	if rerr != nil {
		return model.Event{}, "", rerr
	}
	k := p.m.ConstKind
	if p.kind >= 0 {
		var ok bool
		if p.kinds != nil {
			k, ok = p.kinds[string(f[p.kind])]
		} else {
			k, ok = canonicalKind(f[p.kind])
		}
		if !ok {
			return model.Event{}, "", &RowError{Column: p.kind + 1, Reason: ReasonUnknownKind, Value: string(f[p.kind]),
				Err: fmt.Errorf("kind %q is not mapped (add it under kind values, or under kind ignore if it is not an event)", f[p.kind])}
		}
	}
	ev := model.Event{Customer: p.customers.get(cust), Time: t, Kind: k}
	if p.amount >= 0 && len(f[p.amount]) > 0 {
		amt, reason, err := p.parseAmount(f[p.amount], p.amount)
		col := p.amount + 1
		if err == nil && p.qty >= 0 {
			col = p.qty + 1
			amt, reason, err = p.scaleByQuantity(amt, f[p.qty], p.qty)
		}
		if reason == ReasonNegativeAmount && p.m.IgnoreNegative {
			return model.Event{}, ReasonIgnoredNegative, nil
		}
		if err == nil && p.cur >= 0 {
			col = p.cur + 1
			amt, reason, err = p.convert(amt, f[p.cur])
		}
		if err == nil && p.m.AmountUnit != "" {
			amt = p.inUnits(amt, f)
		}
		if err != nil {
			return model.Event{}, "", &RowError{Column: col, Reason: reason, Err: err}
		}
		ev.Amount, ev.HasAmount = amt, true
	}
	if p.item >= 0 {
		if rerr := p.checkUTF8(f, p.item); rerr != nil {
			return model.Event{}, "", rerr
		}
		ev.Item = p.items.get(f[p.item])
	}
	if p.cat >= 0 {
		if rerr := p.checkUTF8(f, p.cat); rerr != nil {
			return model.Event{}, "", rerr
		}
		ev.Category = p.categories.get(f[p.cat])
	}
	if p.ord >= 0 {
		return p.orderLine(ev, f)
	}
	return ev, "", nil
}

// orderLine decides whether ev, read from a good line f, is its order's
// purchase (the order's first good line) or a further line of an order
// already read.
func (p *csvParser) orderLine(ev model.Event, f [][]byte) (model.Event, string, *RowError) {
	id := bytes.TrimSpace(f[p.ord])
	if len(id) == 0 {
		return ev, "", nil
	}
	if !p.lineUTF8 && invalidUTF8(id) >= 0 {
		return model.Event{}, "", p.notUTF8(p.ord+1, id, invalidUTF8(id))
	}
	cust, seen := p.orders[string(id)]
	switch {
	case !seen:
		if p.orders == nil {
			p.orders = map[string]string{}
		}
		p.orders[string(id)] = ev.Customer
		return ev, "", nil
	case cust != ev.Customer:
		return model.Event{}, "", &RowError{Column: p.ord + 1, Reason: ReasonOrderCustomer,
			Err: fmt.Errorf("order %q has a line of customer %q, and its first line is customer %q", id, ev.Customer, cust)}
	}
	return model.Event{}, ReasonOrderLine, nil
}

// customer returns the customer id of field b, normalized by the mapping's
// rules; nil, with no error, when it is empty and the mapping ignores rows
// without a customer.
func (p *csvParser) customer(b []byte) ([]byte, *RowError) {
	col := p.cust + 1
	if !p.lineUTF8 {
		if i := invalidUTF8(b); i >= 0 {
			return nil, p.notUTF8(col, b, i)
		}
	}
	m := p.m
	if m.TrimCustomer {
		b = bytes.TrimSpace(b)
	} else if len(b) > 0 && (isBlank(b[0]) || isBlank(b[len(b)-1])) {
		return nil, &RowError{Column: col, Reason: ReasonBadCustomer,
			Err: fmt.Errorf("customer %q has blanks around it, which would make it a customer apart from %q (set customer_normalize: [trim] in the mapping)", b, bytes.TrimSpace(b))}
	}
	if len(b) == 0 || isMissingMarker(b) {
		what := "empty"
		if len(b) > 0 {
			what = fmt.Sprintf("%q, the missing-value marker pandas, R or a spreadsheet writes", b)
		}
		return nil, p.missingCustomer(what)
	}
	if n := floatInteger(b); n > 0 {
		if !m.IntegerCustomer {
			return nil, &RowError{Column: col, Reason: ReasonBadCustomer,
				Err: fmt.Errorf("customer %q is an integer written as a float (as pandas writes an id column with gaps), which would make it a customer apart from %q (set customer_normalize: [integer] in the mapping)", b, b[:n])}
		}
		b = b[:n]
	}
	if m.LowerCustomer {
		p.custBuf = lower(p.custBuf[:0], b)
		b = p.custBuf
	}
	if m.PlusTagCustomer {
		p.tagBuf = dropPlusTag(p.tagBuf[:0], b)
		b = p.tagBuf
	}
	if len(m.MissingCustomerValues) > 0 && slices.ContainsFunc(m.MissingCustomerValues, func(v string) bool { return bytes.EqualFold(b, []byte(v)) }) {
		return nil, p.missingCustomer(fmt.Sprintf("%q, which missing_customer_values in the mapping lists", b))
	}
	return b, nil
}

// missingCustomer is the outcome of a row without a customer, described by
// what: excluded under missing_customer: ignore (a nil error and a nil id
// from customer), a bad row otherwise.
func (p *csvParser) missingCustomer(what string) *RowError {
	if p.m.IgnoreMissingCustomer {
		return nil
	}
	return &RowError{Column: p.cust + 1, Reason: ReasonMissingCustomer,
		Err: fmt.Errorf("the customer is %s (rows without a customer, such as guest checkouts, are dropped with missing_customer: ignore in the mapping)", what)}
}

// dropPlusTag appends to dst the e-mail address b without the "+tag" of its
// local part ("anna+shop@example.com" is "anna@example.com"), or b as it is
// when it is not such an address.
func dropPlusTag(dst, b []byte) []byte {
	at := bytes.LastIndexByte(b, '@')
	plus := bytes.IndexByte(b, '+')
	if at <= 0 || plus <= 0 || plus > at {
		return append(dst, b...)
	}
	return append(append(dst, b[:plus]...), b[at:]...)
}

// zoneByName reports whether a Go time layout names the zone by its
// abbreviation (MST) and gives no numeric offset (-0700, Z07:00, …).
func zoneByName(layout string) bool {
	return strings.Contains(layout, "MST") && !strings.Contains(layout, "-07") && !strings.Contains(layout, "Z07")
}

// checkZone refuses a time parsed by abbreviation that its location does not
// use. time.Parse reads such an abbreviation ("PST" in a UTC file, "CET" in
// New York) as offset 0 in a made-up location, and "GMT+3" at an offset of
// its own: hours off, silently. UTC and GMT are offset 0 everywhere; the
// location's own abbreviations (EST and EDT in New York) carry its offsets.
func checkZone(t time.Time, loc *time.Location) error {
	name, off := t.Zone()
	if t.Location() == loc || (name == "UTC" || name == "GMT") && off == 0 {
		return nil
	}
	return fmt.Errorf("zone abbreviation %q is not one of %s's (Go would read it at offset 0): put a numeric offset (-0700) in the time layout, or name the zone under time zone", name, loc)
}

// parseAmount reads the amount column in the mapping's decimal and
// thousands convention.
func (p *csvParser) parseAmount(b []byte, col int) (float64, string, error) {
	shown := b
	if p.m.decorated() && (col >= len(p.numbers) || !p.numbers[col]) {
		var ok bool
		if b, ok = p.undecorate(b); !ok {
			return 0, ReasonBadAmount, fmt.Errorf("amount %q is not a number written as the mapping says (%s)%s", shown, p.decorationsName(), p.symbolHint(shown))
		}
	}
	pt, ok := p.plain(b, col)
	if !ok {
		return 0, ReasonBadAmount, fmt.Errorf("amount %q is not a number with %s%s", shown, p.marksName(), p.amountHint(shown, b))
	}
	v, reason, err := parseAmountShown(pt, shown)
	switch {
	case reason == ReasonBadAmount:
		err = fmt.Errorf("%w%s", err, p.amountHint(shown, b))
	case reason == ReasonNegativeAmount && !p.m.IgnoreNegative:
		err = fmt.Errorf("%w (rows of returns or refunds are dropped with negative_amount: ignore in the mapping)", err)
	}
	return v, reason, err
}

// scaleByQuantity multiplies a unit price by the row's quantity, read with
// the amount's marks. A negative quantity (a return) is a negative amount,
// with the reason and hint of one.
func (p *csvParser) scaleByQuantity(price float64, b []byte, col int) (float64, string, error) {
	qb, ok := p.plain(b, col)
	if !ok {
		return 0, ReasonBadAmount, fmt.Errorf("quantity %q is not a number with %s%s", b, p.marksName(), p.hint(b))
	}
	q, err := strconv.ParseFloat(string(qb), 64)
	if err != nil || math.IsNaN(q) || math.IsInf(q, 0) {
		return 0, ReasonBadAmount, fmt.Errorf("quantity %q is not a finite number%s", b, p.hint(b))
	}
	if q < 0 {
		return 0, ReasonNegativeAmount, fmt.Errorf("quantity %q is negative (rows of returns or refunds are dropped with negative_amount: ignore in the mapping)", b)
	}
	if v := price * q; v <= model.MaxAmount {
		return v, "", nil
	}
	return 0, ReasonBadAmount, fmt.Errorf("amount %g × quantity %q is above the maximum %g", price, b, float64(model.MaxAmount))
}

// marks returns the mapping's decimal mark and thousands separator (0 for
// none). A decimal comma without a thousands key keeps its dot between
// thousands, as before the key existed.
func (p *csvParser) marks() (decimal, thousands byte) {
	decimal, thousands = '.', p.m.Thousands
	if p.m.Decimal == ',' {
		decimal = ','
		if thousands == 0 {
			thousands = '.'
		}
	}
	return decimal, thousands
}

// plain rewrites field col (0-based), b, from the mapping's marks to the
// decimal-point form parseAmount reads, or reports that it is not in those
// marks. With the default decimal point a field without the thousands
// separator is left to parseAmount as it is (so "1e3" still reads), and so
// is a JSON number.
func (p *csvParser) plain(b []byte, col int) ([]byte, bool) {
	decimal, thousands := p.marks()
	if thousands == ' ' && bytes.ContainsAny(b, "\u00a0\u202f") {
		// French and Nordic locales group digits by a no-break space.
		b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\u00a0"), []byte(" ")), []byte("\u202f"), []byte(" "))
	}
	if decimal == '.' && (thousands == 0 || bytes.IndexByte(b, thousands) < 0) || col >= 0 && col < len(p.numbers) && p.numbers[col] {
		return b, true
	}
	return grouped(b, thousands, decimal)
}

// marksName describes the mapping's marks for an error about a number not
// written in them.
func (p *csvParser) marksName() string {
	decimal, thousands := p.marks()
	s := quoteMark(thousands) + " between groups of three digits"
	if decimal == ',' {
		s = "a decimal comma and " + s
	}
	return s
}

// thousandsMarks are the separators a mapping's thousands key may name.
var thousandsMarks = []byte{',', '.', ' ', '\''}

// hint names the mapping key that would read b, an amount the mapping does
// not, or is empty when no single key would: a hint that does not help is
// worse than none.
func (p *csvParser) hint(b []byte) string {
	decimal, thousands := p.marks()
	var hints []string
	if decimal != ',' && p.m.Thousands != ',' && bytes.IndexByte(b, ',') >= 0 {
		withComma := p.m.Thousands
		if withComma == 0 {
			withComma = '.'
		}
		if _, ok := grouped(b, withComma, ','); ok {
			hints = append(hints, `for amounts with a decimal comma set decimal: ","`)
		}
	}
	for _, c := range thousandsMarks {
		if c == decimal || c == thousands || bytes.IndexByte(b, c) < 0 {
			continue
		}
		if _, ok := grouped(b, c, decimal); ok {
			hints = append(hints, fmt.Sprintf("for amounts with %s between groups of three digits set thousands: %[1]s", quoteMark(c)))
		}
	}
	if len(hints) == 0 {
		return ""
	}
	return " (" + strings.Join(hints, "; ") + " in the mapping)"
}

// quoteMark quotes a separator in double quotes, as a mapping writes it.
func quoteMark(c byte) string { return strconv.Quote(string(rune(c))) }

// grouped rewrites an amount with the decimal mark decimal and optional
// thousands separators ("-1,234.5" for ',' and '.') to the decimal-point
// form parseAmount reads. The groups are strict: a first group of one to
// three digits and then groups of exactly three, or one ungrouped run of
// digits; any other shape is refused, so that "1,23.5" is an error rather
// than 123.5 and a dot used as a decimal point under a decimal comma ("12.5")
// is an error rather than 125.
func grouped(b []byte, thousands, decimal byte) ([]byte, bool) {
	out := make([]byte, 0, len(b))
	i := 0
	if len(b) > 0 && b[0] == '-' {
		out = append(out, '-')
		i = 1
	}
	intPart, frac, hasFrac := b[i:], []byte(nil), false
	if c := bytes.IndexByte(intPart, decimal); c >= 0 {
		intPart, frac, hasFrac = intPart[:c], intPart[c+1:], true
	}
	groups := bytes.Split(intPart, []byte{thousands})
	for g, grp := range groups {
		if !allDigits(grp) || (len(groups) > 1 && (len(grp) > 3 || (g > 0 && len(grp) != 3))) {
			return nil, false
		}
		out = append(out, grp...)
	}
	if hasFrac {
		if !allDigits(frac) {
			return nil, false
		}
		out = append(out, '.')
		out = append(out, frac...)
	}
	return out, true
}

// allDigits reports whether b is a non-empty run of ASCII digits.
func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// canonicalKind maps the canonical kind names without a map lookup.
func canonicalKind(b []byte) (model.Kind, bool) {
	switch string(b) {
	case "view":
		return model.View, true
	case "cart":
		return model.Cart, true
	case "favorite":
		return model.Favorite, true
	case "purchase":
		return model.Purchase, true
	}
	return 0, false
}

// time reads the row's time: the time column, or the time column and the
// time of day joined by a space.
func (p *csvParser) time(f [][]byte) (time.Time, *RowError) {
	if p.tm < len(p.timed) && p.timed[p.tm] {
		return p.typedTime(f)
	}
	tb, col := f[p.tm], p.tm+1
	if p.tod >= 0 {
		if len(f[p.tod]) == 0 {
			return time.Time{}, &RowError{Column: p.tod + 1, Reason: ReasonBadTime, Err: errors.New("the time of day is empty")}
		}
		p.when = append(append(append(p.when[:0], tb...), ' '), f[p.tod]...)
		tb = p.when
	}
	var t time.Time
	var err error
	switch p.m.TimeLayout {
	case LayoutUnix:
		t, err = parseUnix(tb, 1)
	case LayoutUnixMs:
		t, err = parseUnix(tb, 1000)
	case LayoutExcel:
		t, err = parseExcel(tb, p.m.Decimal == ',', p.loc)
	case LayoutDays:
		t, err = parseDayNumber(tb, p.m.Decimal == ',', p.m.TimeEpoch, p.loc)
	case "2006-01-02 15:04:05":
		t, err = parseDateTime(tb, p.loc)
	default:
		t, err = time.ParseInLocation(p.m.TimeLayout, string(tb), p.loc)
		if err == nil && p.zoneByName {
			err = checkZone(t, p.loc)
		}
		t = t.UTC()
	}
	if err != nil {
		switch p.m.TimeLayout {
		case LayoutUnix, LayoutUnixMs, LayoutExcel, LayoutDays, "2006-01-02 15:04:05":
			// time.Parse names the layout itself; the fast paths do not.
			err = fmt.Errorf("%w (the mapping's time layout is %q)", err, p.m.TimeLayout)
		}
		return time.Time{}, &RowError{Column: col, Reason: ReasonBadTime, Err: err}
	}
	return t, nil
}

// typedTime is the time of a row whose time cell a workbook or Parquet file
// types as a date or time: the cell's, or its date at the time of day of
// the time_of_day field ("15:04:05" or "15:04").
func (p *csvParser) typedTime(f [][]byte) (time.Time, *RowError) {
	t := p.times[p.tm]
	if p.tod >= 0 {
		b := f[p.tod]
		clock, err := time.Parse("15:04:05", string(b))
		if err != nil {
			if clock, err = time.Parse("15:04", string(b)); err != nil {
				return time.Time{}, &RowError{Column: p.tod + 1, Reason: ReasonBadTime,
					Err: fmt.Errorf("time of day %q is not a time of day like 15:04:05 (the date is a date cell)", b)}
			}
		}
		lt := t.In(p.loc)
		t = time.Date(lt.Year(), lt.Month(), lt.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, p.loc)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, &RowError{Column: p.tm + 1, Reason: ReasonBadTime, Err: fmt.Errorf("time %s is outside the years 1–9999", t.UTC().Format(time.RFC3339))}
	}
	return t.UTC(), nil
}

// keyAt names the mapping key of field i (0-based), for messages about a
// workbook's cell or a Parquet column: "amount", or "" for a field the
// mapping does not read.
func (p *csvParser) keyAt(i int) string {
	for _, k := range []struct {
		what string
		idx  int
	}{{"customer", p.cust}, {"time", p.tm}, {"time_of_day", p.tod}, {"kind", p.kind}, {"amount", p.amount}, {"quantity", p.qty},
		{"currency", p.cur}, {"item", p.item}, {"category", p.cat}, {"cancelled", p.cancel}, {"order", p.ord}} {
		if k.idx == i {
			return k.what
		}
	}
	return ""
}

// convert turns an amount in the currency of field b into the mapping's
// one currency.
func (p *csvParser) convert(amt float64, b []byte) (float64, string, error) {
	rate, ok := p.m.CurrencyRates[string(b)]
	if !ok {
		return 0, ReasonUnknownCurrency, fmt.Errorf("currency %q has no rate under currency rates in the mapping (amounts in different currencies cannot be added)", b)
	}
	v := amt * rate
	if v > model.MaxAmount {
		return 0, ReasonBadAmount, fmt.Errorf("amount %g %s is above the maximum %g", amt, b, float64(model.MaxAmount))
	}
	return v, "", nil
}

// checkUTF8 checks field i (0-based), whose text becomes part of an event.
func (p *csvParser) checkUTF8(f [][]byte, i int) *RowError {
	if p.lineUTF8 {
		return nil
	}
	if j := invalidUTF8(f[i]); j >= 0 {
		return p.notUTF8(i+1, f[i], j)
	}
	return nil
}

// notUTF8 is the error of field col (1-based), b, whose byte j is not UTF-8.
func (p *csvParser) notUTF8(col int, b []byte, j int) *RowError {
	hint := ""
	if p.table == nil {
		hint = " (a file from Windows or Excel is usually windows-1252: set encoding: windows-1252 in the mapping, or latin-1)"
	}
	return &RowError{Column: col, Reason: ReasonNotUTF8, Err: fmt.Errorf("invalid byte 0x%02x at byte %d of the field%s", b[j], j+1, hint)}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// floatInteger returns the length of the integer part of b when b is an
// integer written as a float ("17850.0", "17850.00"), or 0.
func floatInteger(b []byte) int {
	dot := bytes.IndexByte(b, '.')
	if dot <= 0 || dot == len(b)-1 || !allDigits(b[:dot]) {
		return 0
	}
	for _, c := range b[dot+1:] {
		if c != '0' {
			return 0
		}
	}
	return dot
}

// lower appends b lowercased to dst.
func lower(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 0x80 {
			return append(dst[:0], bytes.ToLower(b)...)
		}
	}
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Excel's 1900 date system: serial 1 is 1900-01-01 and serial 60 the
// 29 February 1900 that never was, so from serial 61 (1900-03-01) on a
// serial counts days from 1899-12-30. 2958466 would be 10000-01-01.
const (
	excelFirst = 61
	excelEnd   = 2958466
)

// excel1904Offset is the serial, in the 1900 system, of 1904-01-01: day 0
// of the 1904 date system (a workbook from Excel for Mac before 2011).
const excel1904Offset = 1462

// parseExcel reads an Excel serial date (days since 1899-12-30, the fraction
// the time of day, to the second) as a wall-clock time in loc. comma
// accepts a decimal comma, as a European Excel writes it.
func parseExcel(b []byte, comma bool, loc *time.Location) (time.Time, error) {
	v, ok := dayCount(b, comma)
	if !ok {
		return time.Time{}, fmt.Errorf("time %q is not an Excel serial date (days since 1899-12-30, like 40513.35)", b)
	}
	if v < excelFirst || v >= excelEnd {
		return time.Time{}, fmt.Errorf("serial date %q is outside the Excel range %d (1900-03-01) .. %d (9999-12-31)", b, excelFirst, excelEnd-1)
	}
	return serialTime(v, loc), nil
}

// serialTime is the wall-clock time in loc of a serial v ≥ 61 of the 1900
// date system: whole days since 1899-12-30, the fraction the time of day,
// rounded to the second.
func serialTime(v float64, loc *time.Location) time.Time {
	days := math.Floor(v)
	secs := math.Round((v - days) * 86400)
	return time.Date(1899, 12, 30+int(days), 0, 0, int(secs), 0, loc).UTC()
}

// cellSerialTime reads the serial number v of a workbook's date cell, in
// the 1904 date system when date1904 is set (day 0 is 1904-01-01), in the
// 1900 one otherwise, where Excel counts 29 February 1900 as serial 60, so
// that serials 1 to 59 (1900-01-01 .. 1900-02-28) are one day off the
// count from 1899-12-30 and serial 60 is no day at all.
func cellSerialTime(v float64, date1904 bool, loc *time.Location) (time.Time, error) {
	if math.IsNaN(v) {
		return time.Time{}, errors.New("serial date NaN is not a number")
	}
	if date1904 {
		if v < 0 || v+excel1904Offset >= excelEnd {
			return time.Time{}, fmt.Errorf("serial date %v is outside the 1904 date system's range 0 (1904-01-01) .. %d (9999-12-31)", v, excelEnd-1-excel1904Offset)
		}
		return serialTime(v+excel1904Offset, loc), nil
	}
	switch {
	case v < 1 || v >= excelEnd:
		return time.Time{}, fmt.Errorf("serial date %v is outside the Excel range 1 (1900-01-01) .. %d (9999-12-31)", v, excelEnd-1)
	case v >= 60 && v < excelFirst:
		return time.Time{}, fmt.Errorf("serial date %v is 29 February 1900, a day Excel counts and the calendar does not have", v)
	case v < 60:
		return serialTime(v+1, loc), nil
	}
	return serialTime(v, loc), nil
}

// dayCount reads a plain count of days, up to seven digits and an optional
// fraction after a dot (a comma under comma): the form of Excel serials and
// day numbers. No sign, exponent or blank.
func dayCount(b []byte, comma bool) (float64, bool) {
	s := b
	if i := bytes.IndexByte(b, ','); comma && i >= 0 {
		s = append([]byte(nil), b...)
		s[i] = '.'
	}
	whole, frac, _ := bytes.Cut(s, []byte{'.'})
	if !allDigits(whole) || len(frac) > 0 && !allDigits(frac) || len(whole) > 7 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(s), 64)
	return v, err == nil
}

// maxDayNumber bounds a LayoutDays value (about 8,200 years of days) before
// any date arithmetic; the date must also fall before the year 10000.
const maxDayNumber = 3_000_000

// parseDayNumber reads a day number (LayoutDays): whole days since the
// epoch's midnight in loc, a fraction the time of day ("711.5" is noon of
// day 711); the decimal mark is a comma under decimal: ",".
func parseDayNumber(b []byte, comma bool, epoch time.Time, loc *time.Location) (time.Time, error) {
	v, ok := dayCount(b, comma)
	if !ok {
		return time.Time{}, fmt.Errorf("time %q is not a day number (whole days since the epoch %s, like 711 or 711.5)", b, epoch.Format(time.DateOnly))
	}
	if v >= maxDayNumber {
		return time.Time{}, fmt.Errorf("day number %q is not below %d", b, maxDayNumber)
	}
	days := math.Floor(v)
	secs := math.Round((v - days) * 86400)
	t := time.Date(epoch.Year(), epoch.Month(), epoch.Day()+int(days), 0, 0, int(secs), 0, loc).UTC()
	if t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("day number %q from the epoch %s is after the year 9999", b, epoch.Format(time.DateOnly))
	}
	return t, nil
}

// endsInQuote reports whether line, which starts inside a quoted field when
// in is true, ends inside one: the record goes on on the next line. It
// follows split's rules: a quote opens a field only at the field's start,
// and "" inside a quoted field is a quote.
func (s *splitter) endsInQuote(line []byte, in bool) bool {
	if !in && bytes.IndexByte(line, '"') < 0 {
		return false
	}
	start := true
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in && c == '"' && i+1 < len(line) && line[i+1] == '"':
			i++
		case in && c == '"':
			in, start = false, false
		case in:
		case c == s.delim:
			start = true
		case c == '"' && start:
			in, start = true, false
		default:
			start = false
		}
	}
	return in
}

func (p *csvParser) endsInQuote(line []byte, in bool) bool { return p.sp.endsInQuote(line, in) }

// missingMarkers are the cell values that mean "no value" in the exports of
// pandas (NaN, <NA>, None), R (NA), SQL clients (NULL) and spreadsheets
// (#N/A). As a customer id each would merge every guest row into one
// customer with thousands of purchases.
var missingMarkers = []string{"na", "n/a", "#n/a", "nan", "<na>", "null", "none", "nil"}

// isMissingMarker reports whether b is one of missingMarkers, in any case.
func isMissingMarker(b []byte) bool {
	// Every row's customer id passes here: most ids are ruled out by their
	// length or first byte before any comparison.
	if len(b) < 2 || len(b) > 4 || !strings.ContainsRune("nN#<", rune(b[0])) {
		return false
	}
	for _, m := range missingMarkers {
		if bytes.EqualFold(b, []byte(m)) {
			return true
		}
	}
	return false
}

// headerHint says why a mapped column is not in header line (split into
// fields f with delimiter delim): the header read as one column although it
// holds another usual delimiter, or a column whose name differs from the
// mapping's only in case or blanks; otherwise the columns it has.
func headerHint(line []byte, f [][]byte, missing string, delim byte) string {
	if delim == 0 {
		delim = ','
	}
	if len(f) == 1 {
		for _, d := range []byte{';', '\t', '|', ','} {
			if d != delim && bytes.IndexByte(line, d) >= 0 {
				what, yaml := fmt.Sprintf("%q", string(d)), string(d)
				if d == '\t' {
					what, yaml = "tabs", `\t`
				}
				return fmt.Sprintf(`: the header read as one column, and it holds %s: set delimiter: "%s" in the mapping`, what, yaml)
			}
		}
	}
	names := make([]string, len(f))
	for i, h := range f {
		names[i] = string(bytes.TrimSpace(h))
		if strings.EqualFold(strings.Join(strings.Fields(names[i]), " "), strings.Join(strings.Fields(missing), " ")) {
			return fmt.Sprintf(": column %d is %q, which differs only in case or blanks: write it in the mapping as the header does", i+1, names[i])
		}
	}
	if len(names) > 20 {
		names = append(names[:20], "…")
	}
	return fmt.Sprintf(" (its columns: %s)", strings.Join(names, ", "))
}

// isCancelled reads a cancelled column's field: a time or any other value
// marks a cancelled order, but empty and the false of a boolean column
// (false, f, no, n, 0 in any case: pandas, PostgreSQL, MySQL) do not; read
// as any value, a "refunded" column of true and false would cancel every
// order.
func isCancelled(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return false
	}
	if len(b) > 5 {
		return true
	}
	for _, v := range []string{"false", "f", "no", "n", "0"} {
		if bytes.EqualFold(b, []byte(v)) {
			return false
		}
	}
	return true
}
