package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/kairos-fl/kairos/model"
)

// checkRead reads in under Skip and checks the invariants every reader keeps
// on any input: no panic, counts add up, and every event is well-formed.
func checkRead(t *testing.T, in []byte, opts Options) {
	t.Helper()
	opts.OnError = Skip
	n := 0
	rep, err := Read(context.Background(), bytes.NewReader(in), "fuzz", opts, func(ev model.Event) error {
		n++
		if ev.Customer == "" {
			t.Fatalf("event %d has no customer", n)
		}
		if !utf8.ValidString(ev.Customer) || !utf8.ValidString(ev.Item) || !utf8.ValidString(ev.Category) {
			t.Fatalf("event %d has a string that is not UTF-8: %+v", n, ev)
		}
		if ev.Kind < model.View || ev.Kind > model.Purchase {
			t.Fatalf("event %d has kind %v", n, ev.Kind)
		}
		if ev.Time.Location() != time.UTC {
			t.Fatalf("event %d time %v is not UTC", n, ev.Time)
		}
		if ev.HasAmount && (ev.Amount < 0 || ev.Amount > model.MaxAmount || math.IsNaN(ev.Amount) || math.IsInf(ev.Amount, 0)) {
			t.Fatalf("event %d has amount %v", n, ev.Amount)
		}
		return nil
	})
	var re *RowError
	// Only a bad header, or a file refused whole before its first row as
	// not a text export (a binary file, one JSON array) or as a damaged
	// workbook, Parquet file or zip archive, may stop a Skip read.
	fileRefused := (errors.Is(err, ErrNotText) || containerOf(in) != notContainer) && rep.Rows == 0
	if err != nil && !fileRefused && (!errors.As(err, &re) || rep.Rows != 0) {
		t.Fatalf("got error %v under Skip", err)
	}
	if err != nil {
		return
	}
	skipped := 0
	for _, c := range rep.Skipped {
		skipped += c
	}
	if rep.Events != n || rep.Rows != rep.Events+skipped+rep.OutOfRange {
		t.Fatalf("got rows %d, events %d (emitted %d), skipped %d, out of range %d: counts do not add up", rep.Rows, rep.Events, n, skipped, rep.OutOfRange)
	}
	// A bound on bad rows fails the read exactly when the share is exceeded.
	bounded := opts
	bounded.MaxInvalidShare = 0.5
	rep3, err := Read(context.Background(), bytes.NewReader(in), "fuzz", bounded, func(model.Event) error { return nil })
	var tm *TooManyInvalidError
	if over := 2*rep.Invalid > rep.Rows; over != errors.As(err, &tm) || (!over && err != nil) || rep3.Invalid != rep.Invalid {
		t.Fatalf("MaxInvalidShare 0.5 with %d of %d rows bad: got %v", rep.Invalid, rep.Rows, err)
	}
	// FailFast must agree with Skip up to the first bad row.
	opts.OnError = FailFast
	rep2, err := Read(context.Background(), bytes.NewReader(in), "fuzz", opts, func(model.Event) error { return nil })
	if rep.Invalid == 0 && (err != nil || rep2.Events != rep.Events) {
		t.Fatalf("FailFast got %v with %d events; Skip found no bad row and %d events", err, rep2.Events, rep.Events)
	}
	if rep.Invalid > 0 && !errors.As(err, &re) {
		t.Fatalf("FailFast got %v; Skip found %d bad rows", err, rep.Invalid)
	}
}

func FuzzReadCDNOW(f *testing.F) {
	f.Add([]byte(cdnowHeader + " 00001 19970101  1   11.77\r\n 00002 19970112  1   12.00\r\n"))
	f.Add([]byte(cdnowHeader + " 00001 19970230  1   -1\n\n 0 99999999 x 1e400\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, Options{Format: CDNOW})
		checkRead(t, in, Options{Format: CDNOWSample})
	})
}

func FuzzReadTaobao(f *testing.F) {
	f.Add([]byte("1,2268318,2520377,pv,1511544070\n1,2,3,buy,1505117799\n"))
	f.Add([]byte("1,2,3,click,-5\n\"1\",2,3,fav,99999999999999999999\n,,,,\n"))
	from, to := TaobaoRange()
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, Options{Format: Taobao, ValidFrom: from, ValidTo: to})
	})
}

func FuzzReadOnlineRetail(f *testing.F) {
	f.Add([]byte(retailHead + `"536365","85123A","WHITE ""HANGING"", HEART",6,"2010-12-01 08:26:00",2.55,17850,"United Kingdom"` + "\r\n"))
	f.Add([]byte(retailHead + `"C1","D","x",-1,"2010-12-01 09:41",27.5,NA,"UK"` + "\n\"2\",\"A\n"))
	f.Add([]byte(retailHead + `"2","D","x",999999999999999999,"2010-12-01 09:41",1e300,1,"UK"` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, Options{Format: OnlineRetail})
	})
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("user,ts,kind,amount\nu1,100,pv,1\nu2,-100,buy,\n"), "2006-01-02")
	f.Add([]byte("user,ts,kind,amount\n\"u,1\",1,buy,1e3\n"), "unix")
	f.Add([]byte("user,ts,kind,amount\nu1,1,buy,1e13\nu1,2,buy,999999999999999\n"), "unix")
	f.Add([]byte("PK\x03\x04user,ts"), "unix")
	f.Add([]byte("PAR1\x15\x04"), "unix")
	f.Fuzz(func(t *testing.T, in []byte, layout string) {
		m := testMapping()
		if layout != "" {
			m.TimeLayout = layout
		}
		checkRead(t, in, Options{Format: CSV, Mapping: m})
		// The same file with grouped amounts, in both decimal marks.
		us := *m
		us.Thousands = ','
		checkRead(t, in, Options{Format: CSV, Mapping: &us})
		fr := *m
		fr.Thousands, fr.Decimal = ' ', ','
		checkRead(t, in, Options{Format: CSV, Mapping: &fr})
	})
}

// FuzzSplit compares the hand-written splitter with encoding/csv on single
// lines: whenever encoding/csv accepts a line, the fields must match.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{`a,b,c`, `"a,b",c`, `"x""y",,`, `,`, `"",""`, `a,"b`, `a"b,c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if line == "" || strings.ContainsAny(line, "\r\n") {
			return
		}
		r := csv.NewReader(strings.NewReader(line))
		r.FieldsPerRecord = -1
		want, err := r.Read()
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		sp := splitter{delim: ','}
		got, col, serr := sp.split([]byte(line))
		if serr != nil {
			t.Fatalf("split(%q): column %d: %v; encoding/csv gave %q", line, col, serr, want)
		}
		if len(got) != len(want) {
			t.Fatalf("split(%q): got %d fields %q, want %d %q", line, len(got), got, len(want), want)
		}
		for i := range want {
			if string(got[i]) != want[i] {
				t.Fatalf("split(%q): field %d got %q, want %q", line, i+1, got[i], want[i])
			}
		}
	})
}

func FuzzParseMapping(f *testing.F) {
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view}\n")
	f.Add("customer: 1\ntime: {column: 2, layout: days, epoch: 2020-01-01}\nkind: {constant: purchase}\n")
	f.Add("header: true\ncustomer: user\ntime:\n  column: ts\n  layout: unix_ms\n  zone: UTC\nkind:\n  column: k\n  values: {a: view, b: cart}\namount: 4\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: purchase\n")
	f.Add("customer: &c 1\ntime: {column: *c, layout: unix}\nkind: {column: 3, values: {b: purchase}, ignore: [v, *c]}\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view}\ndecimal: \",\"\nthousands: \"'\"\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view}\nthousands: .\n")
	f.Add("header: true\nencoding: cp1252\ncustomer: c\ncustomer_normalize: [trim, integer, lower]\nmissing_customer: ignore\n" +
		"time: {column: d, time_of_day: h, layout: \"2006-01-02 15:04\"}\nkind: {constant: purchase}\namount: a\n" +
		"currency: {column: cur, rates: {EUR: 1, JPY: 0.00625}}\ncancelled: x\n")
	f.Add("customer: 1\ntime: {column: 2, layout: excel}\nkind: {constant: purchase}\namount: 3\ncurrency: {column: 4, rates: {}}\n")
	f.Add("customer: 1\ncustomer_normalize: [lower, plus_tag]\nmissing_customer_values: [\"0\", Guest]\ntime: {column: 2, layout: unix}\n" +
		"kind: {constant: purchase}\namount: 3\ncurrency_symbol: [$, US$]\naccounting_negatives: true\namount_unit: minor\n" +
		"currency: {column: 4, rates: {usd: 1, JPY: 0.0067}}\norder: 5\n")
	f.Add("customer: 1\ntime: {column: 2, layout: days}\nkind: {constant: purchase}\namount: 3\ncurrency_symbol: \"€\"\namount_unit: cents\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMapping(strings.NewReader(in), "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse mapping fuzz.yaml: ") {
				t.Fatalf("error %q lacks the operation prefix", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed mapping does not validate: %v", err)
		}
		d := m.Decimal
		if d == 0 {
			d = '.'
		}
		if m.Thousands == d {
			t.Fatalf("thousands %q is the decimal mark", m.Thousands)
		}
	})
}

// FuzzGrouped checks the grouped-amount reader against a regular expression
// of the same rule (an optional minus, one run of digits or a first group of
// 1-3 digits and groups of exactly three, an optional decimal part) and
// strconv: it accepts exactly what the expression matches, and reads the
// value strconv reads once the separators are dropped.
func FuzzGrouped(f *testing.F) {
	for _, s := range []string{"1,234.50", "1,23.5", "-12,345,678", "1234", ",123", "1,234.", "0,000.1", "1'234'567,05", "1 234 567,5"} {
		f.Add(s, byte(0))
	}
	type marks struct{ thousands, decimal byte }
	all := []marks{{',', '.'}, {'\'', '.'}, {' ', '.'}, {'.', ','}, {' ', ','}, {'\'', ','}}
	res := make([]*regexp.Regexp, len(all))
	for i, mk := range all {
		th, dec := regexp.QuoteMeta(string(rune(mk.thousands))), regexp.QuoteMeta(string(rune(mk.decimal)))
		res[i] = regexp.MustCompile(`^-?([0-9]+|[0-9]{1,3}(` + th + `[0-9]{3})+)(` + dec + `[0-9]+)?$`)
	}
	f.Fuzz(func(t *testing.T, s string, which byte) {
		mk, re := all[int(which)%len(all)], res[int(which)%len(all)]
		got, ok := grouped([]byte(s), mk.thousands, mk.decimal)
		if ok != re.MatchString(s) {
			t.Fatalf("grouped(%q, %q, %q) accepts %v, the rule says %v", s, mk.thousands, mk.decimal, ok, !ok)
		}
		if !ok {
			return
		}
		plain := strings.ReplaceAll(strings.ReplaceAll(s, string(rune(mk.thousands)), ""), string(rune(mk.decimal)), ".")
		// A value beyond float64 reads as ±Inf with a range error both ways
		// (the reader refuses amounts above model.MaxAmount afterwards).
		want, err := strconv.ParseFloat(plain, 64)
		g, gerr := strconv.ParseFloat(string(got), 64)
		readable := func(err error) bool { return err == nil || errors.Is(err, strconv.ErrRange) }
		if !readable(err) || !readable(gerr) || math.Float64bits(g) != math.Float64bits(want) {
			t.Fatalf("grouped(%q) = %q (%v, %v); strconv of %q gives %v, %v", s, got, g, gerr, plain, want, err)
		}
	})
}

// FuzzParseDecimal checks the fast decimal path against strconv.ParseFloat:
// whenever it accepts an input, both must give the same float64 bits.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"11.77", "0", "0.1", ".5", "1.", "999999999999999", "0.000000000000001", "123456789.123456", "00012.50", "1e5", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDecimal([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("parseDecimal(%q) = %v, but strconv rejects it: %v", s, got, err)
		}
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseDecimal(%q) = %v, strconv gives %v", s, got, want)
		}
	})
}

// round2Mapping uses every round-2 key at once.
func round2Mapping() *Mapping {
	m := testMapping()
	m.TrimCustomer, m.IntegerCustomer, m.LowerCustomer, m.IgnoreMissingCustomer = true, true, true, true
	m.Cancelled = Column{Name: "cancelled"}
	m.Currency, m.CurrencyRates = Column{Name: "cur"}, map[string]float64{"EUR": 1, "JPY": 0.00625}
	m.Encoding = EncodingWindows1252
	return m
}

// FuzzReadCSVRound2 reads any input through a mapping with every round-2
// key (and, in a second read, the Excel layout and a time-of-day column)
// and checks the invariants every reader keeps (checkRead).
func FuzzReadCSVRound2(f *testing.F) {
	const head = "user,ts,kind,amount,cur,cancelled\n"
	f.Add([]byte(head + " A@B.com ,100,buy,1,EUR,\n17850.0,200,buy,1200,JPY,\n,300,buy,1,EUR,\nu,400,buy,1,EUR,2024\n"))
	f.Add([]byte(head + "\"x\ny\",100,buy,1,EUR,\nu,1,buy,\"1\n\",GBP,\nuser,ts,kind,amount,cur,cancelled\n\x80\xe9,1,buy,1,EUR,\n"))
	f.Add([]byte(head + "u,\"never closed,1,buy,1,EUR,\nv,1,buy,1,EUR,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := round2Mapping()
		checkRead(t, in, Options{Format: CSV, Mapping: m})
		utf := *m
		utf.Encoding, utf.TrimCustomer, utf.IntegerCustomer, utf.IgnoreMissingCustomer = "", false, false, false
		checkRead(t, in, Options{Format: CSV, Mapping: &utf})
		ex := *m
		ex.TimeLayout = LayoutExcel
		checkRead(t, in, Options{Format: CSV, Mapping: &ex})
		tod := *m
		tod.TimeLayout, tod.TimeOfDay = "2006-01-02 15:04:05", Column{Name: "cancelled"}
		tod.Cancelled = Column{}
		checkRead(t, in, Options{Format: CSV, Mapping: &tod})
	})
}

// FuzzRecords compares the reader's records (lines joined while a quoted
// field is open, then split) with encoding/csv on whole files: whenever
// encoding/csv reads a file, the records and their fields must match.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{"a,b\r\nc,\"d\r\ne\"\r\n", "\"x\n\n\"\"y\"\"\",z\n1,2\n", "a\n\nb\n", "\"\",\"\n\"\n", "a,\"b\nc\"\"\",d\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := csv.NewReader(strings.NewReader(in))
		r.FieldsPerRecord = -1
		want, err := r.ReadAll()
		if err != nil {
			return
		}
		p := newCSVParser(&Mapping{Customer: Column{Index: 1}, Time: Column{Index: 1}, TimeLayout: LayoutUnix, ConstKind: 4}, time.UTC)
		sc := newLineScanner(strings.NewReader(in))
		var got [][]string
		for {
			rec, _, spanned, tooLong, err := sc.nextRecord(p)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || tooLong || spanned < 0 {
				t.Fatalf("%q: record %d: %v, too long %v, spanned %d; encoding/csv read %q", in, len(got)+1, err, tooLong, spanned, want)
			}
			if len(rec) == 0 {
				continue // the reader skips blank lines, as encoding/csv does
			}
			fields, col, serr := p.sp.split(rec)
			if serr != nil {
				t.Fatalf("%q: record %q: column %d: %v; encoding/csv read %q", in, rec, col, serr, want)
			}
			row := make([]string, len(fields))
			for i, fl := range fields {
				row[i] = string(fl)
			}
			got = append(got, row)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: got %d records %q, want %d %q", in, len(got), got, len(want), want)
		}
		for i := range want {
			if strings.Join(got[i], "\x00") != strings.Join(want[i], "\x00") {
				t.Fatalf("%q: record %d: got %q, want %q", in, i+1, got[i], want[i])
			}
		}
	})
}

// FuzzParseExcel checks the Excel serial reader against a second method,
// Unix seconds from the serial of 1970-01-01 (25569): the two agree to the
// second wherever it accepts, and it accepts exactly the plain decimals
// (at most 7 integer digits) in [61, 2958466).
func FuzzParseExcel(f *testing.F) {
	for _, s := range []string{"40513.35", "61", "60", "2958465.99999", "38718", "1e3", "-1", "40513,5", "0061.5", "40513."} {
		f.Add(s)
	}
	plain := regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]*)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseExcel([]byte(s), false, time.UTC)
		v, perr := strconv.ParseFloat(s, 64)
		if accept := plain.MatchString(s) && perr == nil && v >= excelFirst && v < excelEnd; accept != (err == nil) {
			t.Fatalf("parseExcel(%q): error %v; a plain decimal in range: %v", s, err, accept)
		}
		if err != nil {
			return
		}
		want := time.Unix(int64(math.Round((v-25569)*86400)), 0).UTC()
		if d := got.Sub(want); d < -time.Second || d > time.Second {
			t.Fatalf("parseExcel(%q) = %v, want %v", s, got, want)
		}
	})
}

// FuzzParseDayNumber checks parseDayNumber against Unix arithmetic: day n
// of the epoch 2020-01-01 (Unix day 18,262) in UTC is Unix second
// (18262 + n)·86400, for every plain decimal below maxDayNumber whose day
// is before the year 10000, and anything else is refused.
func FuzzParseDayNumber(f *testing.F) {
	for _, s := range []string{"0", "1", "711", "711.5", "2999999.99", "3000000", "-1", "1e3", "711,5", ".5", "711.", ""} {
		f.Add(s)
	}
	plain := regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]*)?$`)
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDayNumber([]byte(s), false, epoch, time.UTC)
		v, perr := strconv.ParseFloat(s, 64)
		// 253,402,300,800 is 10000-01-01 in Unix seconds: later dates are refused.
		inRange := v < maxDayNumber && (18262+math.Floor(v))*86400 < 253402300800
		if accept := plain.MatchString(s) && perr == nil && inRange; accept != (err == nil) {
			t.Fatalf("parseDayNumber(%q): error %v; a plain decimal in range: %v", s, err, accept)
		}
		if err != nil {
			return
		}
		want := time.Unix(int64(math.Round((18262+v)*86400)), 0).UTC()
		if d := got.Sub(want); d < -time.Second || d > time.Second {
			t.Fatalf("parseDayNumber(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestTranscodeTables compares the Windows-1252 and Latin-1 tables with
// golang.org/x/text's code pages, byte by byte.
func TestTranscodeTables(t *testing.T) {
	for _, c := range []struct {
		enc string
		cm  *charmap.Charmap
	}{{EncodingWindows1252, charmap.Windows1252}, {EncodingLatin1, charmap.ISO8859_1}} {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		want, err := c.cm.NewDecoder().Bytes(all)
		if err != nil {
			t.Fatal(err)
		}
		got := transcode(nil, all, encodingTable(c.enc))
		gr, wr := []rune(string(got)), []rune(string(want))
		for i := range gr {
			if gr[i] != wr[i] && wr[i] != '\ufffd' {
				t.Errorf("%s byte 0x%02x: got %U, want %U", c.enc, i, gr[i], wr[i])
			}
		}
		if len(gr) != 256 || !bytes.Equal(got[:128], all[:128]) {
			t.Errorf("%s: got %d runes, ASCII changed", c.enc, len(gr))
		}
	}
}

// round3Mapping uses every round-3 key at once.
func round3Mapping() *Mapping {
	m := round2Mapping()
	m.Encoding = ""
	m.Thousands = ','
	m.CurrencySymbols = []string{"US$", "USD", "$"}
	m.AccountingNegatives = true
	m.IgnoreNegative = true
	m.AmountUnit = AmountUnitMinor
	m.MissingCustomerValues = []string{"0", "guest"}
	m.PlusTagCustomer = true
	return m
}

// FuzzReadCSVRound3 reads any input, CSV or JSON Lines, through a mapping
// with every round-3 key and checks the invariants every reader keeps
// (checkRead).
func FuzzReadCSVRound3(f *testing.F) {
	const head = "user,ts,kind,amount,cur,cancelled\n"
	f.Add([]byte(head + "a+b@c.com,100,buy,\"$1,234.50\",EUR,false\n0,200,buy,(12.00),JPY,\nGuest,300,buy,\"1 234,50 €\",EUR,true\n"))
	f.Add([]byte(head + "u,100,buy,\"- US$ 5\",EUR,0\nv,1,buy,\"(-$1)\",JPY,f\nw,1,buy,$$1,EUR,\n"))
	f.Add([]byte("\ufeff{\"user\":17850.0,\"ts\":100,\"kind\":\"buy\",\"amount\":\"$1,234.50\",\"cur\":\"EUR\"}\n\n{\"user\":null}\n[1]\n{\"user\":\"a\",\"amount\":{}}\n"))
	f.Add([]byte("{\"user\":\"x\",\"ts\":\"1\",\"kind\":\"buy\",\"amount\":1e3,\"cur\":\"JPY\",\"cancelled\":false}\n{\"user\":\"\\u0000\",\"ts\":1}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := round3Mapping()
		checkRead(t, in, Options{Format: CSV, Mapping: m})
		cents := *m
		cents.AmountUnit, cents.Decimal, cents.Thousands = AmountUnitCents, ',', ' '
		cents.Order = Column{Name: "cur"} // lines grouped by any column
		checkRead(t, in, Options{Format: CSV, Mapping: &cents})
	})
}

// FuzzAmountDisplay writes an amount as shops display it — grouped or not,
// a symbol before or after with or without a blank, a negative by a sign
// before or after the symbol, in parentheses or by a trailing minus — and
// checks that the
// reader gets back the value strconv reads from the plain number, and its
// sign.
func FuzzAmountDisplay(f *testing.F) {
	f.Add(int64(123450), uint8(0), uint8(0))
	f.Add(int64(-1250), uint8(1), uint8(7))
	f.Add(int64(99999999999), uint8(2), uint8(13))
	// The parser alone: symbols of several currencies (which a mapping
	// refuses) to cover multi-byte and letter symbols in one target.
	symbols := []string{"$", "US$", "€", "USD", "kr"}
	blanks := []string{"", " ", "\u00a0", "\u202f"}
	m := &Mapping{Thousands: ',', CurrencySymbols: []string{"US$", "USD", "$", "€", "kr"}, AccountingNegatives: true, Amount: Column{Index: 1}}
	f.Fuzz(func(t *testing.T, cents int64, sym, style uint8) {
		if cents < -1e14 || cents > 1e14 {
			return
		}
		abs := cents
		if abs < 0 {
			abs = -abs
		}
		plain := fmt.Sprintf("%d.%02d", abs/100, abs%100)
		num := plain
		if style&1 != 0 { // grouped by ","
			num = groupThousands(plain)
		}
		s, blank := symbols[int(sym)%len(symbols)], blanks[int(style>>1)%len(blanks)]
		after := style&8 != 0
		body := s + blank + num
		if after {
			body = num + blank + s
		}
		field := body
		if cents < 0 {
			switch {
			case style&16 != 0:
				field = "(" + body + ")"
			case style&32 != 0 && !after:
				field = s + blank + "-" + num
			case style&64 != 0:
				field = body + "-" // SAP's trailing minus
			default:
				field = "-" + body
			}
		}
		p := newCSVParser(m, time.UTC)
		v, reason, err := p.parseAmount([]byte(field), 0)
		want, _ := strconv.ParseFloat(plain, 64)
		switch {
		case cents < 0 && reason != ReasonNegativeAmount:
			t.Fatalf("%q: got %v, %q, %v; want a negative amount", field, v, reason, err)
		case cents >= 0 && (err != nil || v != want):
			t.Fatalf("%q: got %v, %v; want %v", field, v, err, want)
		}
	})
}

// groupThousands puts "," between the groups of three digits of the integer
// part of a plain decimal.
func groupThousands(plain string) string {
	intPart, frac, _ := strings.Cut(plain, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + "." + frac
}
