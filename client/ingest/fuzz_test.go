package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
	if err != nil && (!errors.As(err, &re) || rep.Rows != 0) { // only a bad header may stop a Skip read
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
	f.Add("header: true\ncustomer: user\ntime:\n  column: ts\n  layout: unix_ms\n  zone: UTC\nkind:\n  column: k\n  values: {a: view, b: cart}\namount: 4\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: purchase\n")
	f.Add("customer: &c 1\ntime: {column: *c, layout: unix}\nkind: {column: 3, values: {b: purchase}, ignore: [v, *c]}\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view}\ndecimal: \",\"\nthousands: \"'\"\n")
	f.Add("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view}\nthousands: .\n")
	f.Add("header: true\nencoding: cp1252\ncustomer: c\ncustomer_normalize: [trim, integer, lower]\nmissing_customer: ignore\n" +
		"time: {column: d, time_of_day: h, layout: \"2006-01-02 15:04\"}\nkind: {constant: purchase}\namount: a\n" +
		"currency: {column: cur, rates: {EUR: 1, JPY: 0.00625}}\ncancelled: x\n")
	f.Add("customer: 1\ntime: {column: 2, layout: excel}\nkind: {constant: purchase}\namount: 3\ncurrency: {column: 4, rates: {}}\n")
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
		want, err := strconv.ParseFloat(plain, 64)
		g, gerr := strconv.ParseFloat(string(got), 64)
		if err != nil || gerr != nil || math.Float64bits(g) != math.Float64bits(want) {
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
