package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func readString(t *testing.T, in string, opts Options) ([]model.Event, Report, error) {
	t.Helper()
	var evs []model.Event
	rep, err := Read(context.Background(), strings.NewReader(in), "in.txt", opts, func(ev model.Event) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, rep, err
}

const cdnowHeader = " customer_id  date number_of_cds  dollar_value\r\n"
const retailHead = `"InvoiceNo","StockCode","Description","Quantity","InvoiceDate","UnitPrice","CustomerID","Country"` + "\n"

func testMapping() *Mapping {
	return &Mapping{Header: true, Delimiter: ',', Customer: Column{Name: "user"}, Time: Column{Name: "ts"}, TimeLayout: LayoutUnix,
		Kind: Column{Name: "kind"}, KindValues: map[string]model.Kind{"pv": model.View, "buy": model.Purchase}, Amount: Column{Name: "amount"}}
}

// TestBadRows gives one bad row per reason and format and checks the exact
// line, column and reason of the error under FailFast, and that Skip counts
// the row and goes on to the good row after it.
func TestBadRows(t *testing.T) {
	csvOpts := Options{Format: CSV, Mapping: testMapping()}
	const csvHead = "user,ts,kind,amount\n"
	tests := []struct {
		name         string
		opts         Options
		in           string // a bad row followed by one good row
		line, column int
		reason       string
	}{
		{"cdnow bad date", Options{Format: CDNOW}, cdnowHeader + " 00001 19970230  1   11.77\r\n 00002 19970112  1   12.00\r\n", 2, 2, ReasonBadTime},
		{"cdnow letters in date", Options{Format: CDNOW}, cdnowHeader + " 00001 1997O101  1   11.77\n 00002 19970112  1   12.00\n", 2, 2, ReasonBadTime},
		{"cdnow negative amount", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1   -11.77\n 00002 19970112  1   12.00\n", 2, 4, ReasonNegativeAmount},
		{"cdnow non-numeric amount", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1   1x.77\n 00002 19970112  1   12.00\n", 2, 4, ReasonBadAmount},
		{"cdnow NaN amount", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1   NaN\n 00002 19970112  1   12.00\n", 2, 4, ReasonBadAmount},
		{"cdnow amount above MaxAmount", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1   1000000000000.01\n 00002 19970112  1   12.00\n", 2, 4, ReasonBadAmount},
		{"cdnow amount 1e13", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1   1e13\n 00002 19970112  1   12.00\n", 2, 4, ReasonBadAmount},
		{"cdnow short row", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1\n 00002 19970112  1   12.00\n", 2, 4, ReasonColumnCount},
		{"cdnow long row", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1 3.0 9\n 00002 19970112  1   12.00\n", 2, 5, ReasonColumnCount},
		{"cdnow non-UTF-8", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  1  \xff1.0\n 00002 19970112  1   12.00\n", 2, 4, ReasonNotUTF8},
		{"cdnow bad cd count", Options{Format: CDNOW}, cdnowHeader + " 00001 19970101  one 1.0\n 00002 19970112  1   12.00\n", 2, 3, ReasonBadNumber},
		{"sample bad date", Options{Format: CDNOWSample}, " 00004 0001 19971301  2   29.33\n 00004 0001 19970118  2   29.73\n", 1, 3, ReasonBadTime},
		{"taobao unknown kind", Options{Format: Taobao}, "1,2,3,click,1511544070\n1,2,3,pv,1511544070\n", 1, 4, ReasonUnknownKind},
		{"taobao bad time", Options{Format: Taobao}, "1,2,3,pv,15115e4070\n1,2,3,pv,1511544070\n", 1, 5, ReasonBadTime},
		{"taobao missing customer", Options{Format: Taobao}, ",2,3,pv,1511544070\n1,2,3,pv,1511544070\n", 1, 1, ReasonMissingCustomer},
		{"taobao short", Options{Format: Taobao}, "1,2,3,pv\n1,2,3,pv,1511544070\n", 1, 5, ReasonColumnCount},
		{"taobao non-UTF-8", Options{Format: Taobao}, "1,2,\xc3\x28,pv,1511544070\n1,2,3,pv,1511544070\n", 1, 3, ReasonNotUTF8},
		{"taobao bad quote", Options{Format: Taobao}, "1,\"2,3,pv,1511544070\n1,2,3,pv,1511544070\n", 1, 2, ReasonBadQuote},
		{"retail bad date", Options{Format: OnlineRetail}, retailHead + `"1","A","x",2,"2011-02-29 10:00:00",1.5,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 5, ReasonBadTime},
		{"retail bad price", Options{Format: OnlineRetail}, retailHead + `"1","A","x",2,"2011-02-28 10:00:00",abc,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 6, ReasonBadAmount},
		{"retail price above MaxAmount", Options{Format: OnlineRetail}, retailHead + `"1","A","x",1,"2011-02-28 10:00:00",2e12,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 6, ReasonBadAmount},
		{"retail quantity times price above MaxAmount", Options{Format: OnlineRetail}, retailHead + `"1","A","x",3,"2011-02-28 10:00:00",400000000000,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 4, ReasonBadAmount},
		{"retail product overflows float64", Options{Format: OnlineRetail}, retailHead + `"1","A","x",999999999999999999,"2011-02-28 10:00:00",1e300,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 6, ReasonBadAmount},
		{"retail negative quantity", Options{Format: OnlineRetail}, retailHead + `"1","A","x",-2,"2011-02-28 10:00:00",1.5,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 4, ReasonNegativeAmount},
		{"retail unclosed quote", Options{Format: OnlineRetail}, retailHead + `"1","A","x",2,"2011-02-28 10:00:00",1.5,17850,"UK` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 8, ReasonBadQuote},
		{"retail text after quote", Options{Format: OnlineRetail}, retailHead + `"1","A","x"y,2,"2011-02-28 10:00:00",1.5,17850,"UK"` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 3, ReasonBadQuote},
		{"retail 9 columns", Options{Format: OnlineRetail}, retailHead + `"1","A","x",2,"2011-02-28 10:00:00",1.5,17850,"UK",1` + "\n" + `"2","A","x",2,"2011-03-01 10:00:00",1.5,17850,"UK"` + "\n", 2, 9, ReasonColumnCount},
		{"csv unknown kind", csvOpts, csvHead + "u1,100,fav,1\nu1,100,pv,1\n", 2, 3, ReasonUnknownKind},
		{"csv bad unix time", csvOpts, csvHead + "u1,1e5,pv,1\nu1,100,pv,1\n", 2, 2, ReasonBadTime},
		{"csv negative amount", csvOpts, csvHead + "u1,100,buy,-0.5\nu1,100,pv,1\n", 2, 4, ReasonNegativeAmount},
		{"csv non-numeric amount", csvOpts, csvHead + "u1,100,buy,1,5\nu1,100,pv,1\n", 2, 5, ReasonColumnCount},
		{"csv amount word", csvOpts, csvHead + "u1,100,buy,ten\nu1,100,pv,1\n", 2, 4, ReasonBadAmount},
		{"csv amount above MaxAmount", csvOpts, csvHead + "u1,100,buy,1e13\nu1,100,pv,1\n", 2, 4, ReasonBadAmount},
		{"csv amount 15 digits", csvOpts, csvHead + "u1,100,buy,999999999999999\nu1,100,pv,1\n", 2, 4, ReasonBadAmount},
		{"csv missing customer", csvOpts, csvHead + ",100,buy,1\nu1,100,pv,1\n", 2, 1, ReasonMissingCustomer},
		{"csv non-UTF-8 in quotes", csvOpts, csvHead + "\"u\xfe1\",100,buy,1\nu1,100,pv,1\n", 2, 1, ReasonNotUTF8},
		{"csv too long", csvOpts, csvHead + "u1,100,buy," + strings.Repeat("1", MaxLineBytes+1) + "\nu1,100,pv,1\n", 2, 0, ReasonLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readString(t, tt.in, tt.opts)
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("FailFast: got error %v, want a *RowError", err)
			}
			if re.File != "in.txt" || re.Line != tt.line || re.Column != tt.column || re.Reason != tt.reason {
				t.Errorf("FailFast: got %s line %d column %d reason %q, want in.txt line %d column %d reason %q (%v)",
					re.File, re.Line, re.Column, re.Reason, tt.line, tt.column, tt.reason, err)
			}
			opts := tt.opts
			opts.OnError = Skip
			evs, rep, err := readString(t, tt.in, opts)
			if err != nil {
				t.Fatalf("Skip: got error %v, want nil", err)
			}
			if len(evs) != 1 || rep.Events != 1 || rep.Rows != 2 {
				t.Errorf("Skip: got %d events (report %d) from %d rows, want 1 from 2", len(evs), rep.Events, rep.Rows)
			}
			if rep.Skipped[tt.reason] != 1 || rep.Invalid != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != tt.line {
				t.Errorf("Skip: got skipped %v, invalid %d, errors %v; want one %q at line %d", rep.Skipped, rep.Invalid, rep.Errors, tt.reason, tt.line)
			}
		})
	}
}

func TestRowErrorMessage(t *testing.T) {
	_, _, err := readString(t, "1,2,3,click,1511544070\n", Options{Format: Taobao})
	want := `read in.txt: line 1, column 4: unknown kind: behavior "click" (want pv, cart, fav or buy)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestBadHeaderIsFatal(t *testing.T) {
	for _, policy := range []ErrorPolicy{FailFast, Skip} {
		_, _, err := readString(t, "customer date cds\n 00001 19970101  1   11.77\n", Options{Format: CDNOW, OnError: policy})
		var re *RowError
		if !errors.As(err, &re) || re.Line != 1 || re.Column != 4 {
			t.Errorf("policy %d: got %v, want a row error at line 1 column 4", policy, err)
		}
		m := testMapping()
		_, _, err = readString(t, "user,time,kind,amount\nu,1,pv,1\n", Options{Format: CSV, Mapping: m, OnError: policy})
		if !errors.As(err, &re) || re.Line != 1 || !strings.Contains(err.Error(), `no column "ts"`) {
			t.Errorf("policy %d: got %v, want missing column ts at line 1", policy, err)
		}
	}
}

// TestParsedValues checks every field of hand-written rows against values
// worked out by hand.
func TestParsedValues(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	tests := []struct {
		name string
		in   string
		opts Options
		want []model.Event
	}{
		{"cdnow", "\ufeff" + cdnowHeader + " 00001 19970101  1   11.77\r\n\r\n 00002 19980630  2   0.00", Options{Format: CDNOW}, []model.Event{
			{Customer: "00001", Time: time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 11.77, HasAmount: true},
			{Customer: "00002", Time: time.Date(1998, 6, 30, 0, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 0, HasAmount: true},
		}},
		{"cdnow in Berlin", cdnowHeader + " 7 19970701 1 1\n", Options{Format: CDNOW, Location: berlin}, []model.Event{
			{Customer: "7", Time: time.Date(1997, 6, 30, 22, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 1, HasAmount: true},
		}},
		{"sample", " 00004 0001 19970118  2   29.73\n", Options{Format: CDNOWSample}, []model.Event{
			{Customer: "0001", Time: time.Date(1997, 1, 18, 0, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 29.73, HasAmount: true},
		}},
		{"taobao", "1,2268318,2520377,pv,1511544070\n9,5,6,fav,0\n9,5,6,cart,1\n9,5,6,buy,2", Options{Format: Taobao}, []model.Event{
			{Customer: "1", Time: time.Unix(1511544070, 0).UTC(), Kind: model.View, Item: "2268318", Category: "2520377"},
			{Customer: "9", Time: time.Unix(0, 0).UTC(), Kind: model.Favorite, Item: "5", Category: "6"},
			{Customer: "9", Time: time.Unix(1, 0).UTC(), Kind: model.Cart, Item: "5", Category: "6"},
			{Customer: "9", Time: time.Unix(2, 0).UTC(), Kind: model.Purchase, Item: "5", Category: "6"},
		}},
		{"retail", retailHead +
			`"536365","85123A","WHITE ""HANGING"", HEART",6,"2010-12-01 08:26:00",2.55,17850,"United Kingdom"` + "\r\n" +
			`"C536379","D","Discount",-1,"2010-12-01 09:41:00",27.5,14527,"United Kingdom"` + "\r\n" +
			`"536366","22633","HAND WARMER",6,"2010-12-01 08:28:00",1.85,NA,"United Kingdom"` + "\r\n" +
			`"536367","84879","BIRD",32,"2011-07-01 08:34:00",1.69,13047,"France"` + "\r\n",
			Options{Format: OnlineRetail, Location: berlin}, []model.Event{
				{Customer: "17850", Time: time.Date(2010, 12, 1, 7, 26, 0, 0, time.UTC), Kind: model.Purchase, Amount: times(6, 2.55), HasAmount: true, Item: "85123A"},
				{Customer: "13047", Time: time.Date(2011, 7, 1, 6, 34, 0, 0, time.UTC), Kind: model.Purchase, Amount: times(32, 1.69), HasAmount: true, Item: "84879"},
			}},
		{"csv by index, no header, tab, Berlin layout", "a\t2024-03-31 02:30\tpurchase\t\tsku\tcat\nb\t2024-01-02 00:00\tview\t3.5\t\t\n",
			Options{Format: CSV, Mapping: &Mapping{Delimiter: '\t', Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: "2006-01-02 15:04", TimeZone: berlin,
				Kind: Column{Index: 3}, Amount: Column{Index: 4}, Item: Column{Index: 5}, Category: Column{Index: 6}}}, []model.Event{
				// 02:30 on 2024-03-31 does not exist in Berlin (clocks jump 02:00 → 03:00); Go resolves it to 03:30 CEST = 01:30 UTC.
				{Customer: "a", Time: time.Date(2024, 3, 31, 1, 30, 0, 0, time.UTC), Kind: model.Purchase, Item: "sku", Category: "cat"},
				{Customer: "b", Time: time.Date(2024, 1, 1, 23, 0, 0, 0, time.UTC), Kind: model.View, Amount: 3.5, HasAmount: true},
			}},
		{"csv constant kind, unix_ms, quoted", "id;when;spent\n\"x;1\";1700000000123;\"7\"\n",
			Options{Format: CSV, Mapping: &Mapping{Header: true, Delimiter: ';', Customer: Column{Name: "id"}, Time: Column{Name: "when"}, TimeLayout: LayoutUnixMs,
				ConstKind: model.Purchase, Amount: Column{Name: "spent"}}}, []model.Event{
				{Customer: "x;1", Time: time.UnixMilli(1700000000123).UTC(), Kind: model.Purchase, Amount: 7, HasAmount: true},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rep, err := readString(t, tt.in, tt.opts)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if rep.Events != len(tt.want) {
				t.Errorf("got report events %d, want %d", rep.Events, len(tt.want))
			}
		})
	}
}

func TestRetailSkipsAreNotFatal(t *testing.T) {
	// The sample writes a guest checkout's customer "NA", the complete UCI
	// export leaves it empty (135,080 of its 541,909 lines).
	in := retailHead +
		`"C1","D","Discount",-1,"2010-12-01 09:41:00",27.5,14527,"UK"` + "\n" +
		`"2","A","x",-3,"2010-12-01 09:41:00",0,NA,"UK"` + "\n" +
		`"4","A","x",1,"2010-12-01 09:41:00",2.5,,"UK"` + "\n" +
		`"3","A","x",2,"2010-12-01 09:41:00",1,5,"UK"` + "\n"
	_, rep, err := readString(t, in, Options{Format: OnlineRetail})
	if err != nil {
		t.Fatalf("got %v, want nil under FailFast", err)
	}
	if rep.Events != 1 || rep.Skipped[ReasonCancellation] != 1 || rep.Skipped[ReasonMissingCustomer] != 2 || rep.Invalid != 0 {
		t.Errorf("got events %d, skipped %v, invalid %d; want 1, one cancellation and two missing customers, 0", rep.Events, rep.Skipped, rep.Invalid)
	}
}

func TestEmitErrorAndContext(t *testing.T) {
	stop := errors.New("stop")
	_, err := Read(context.Background(), strings.NewReader("1,2,3,pv,1\n1,2,3,pv,2\n"), "x", Options{Format: Taobao}, func(model.Event) error { return stop })
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("got %v, want the emit error wrapped with line 1", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := strings.Repeat("1,2,3,pv,1\n", 5000)
	rep, err := Read(ctx, strings.NewReader(in), "x", Options{Format: Taobao}, func(model.Event) error { return nil })
	if !errors.Is(err, context.Canceled) || rep.Events >= 5000 {
		t.Errorf("got %v after %d events, want context.Canceled before the end of 5000", err, rep.Events)
	}
}

func TestOptionsValidation(t *testing.T) {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown format", Options{Format: "xml"}, `unknown format "xml"`},
		{"csv without mapping", Options{Format: CSV}, "needs a mapping"},
		{"empty range", Options{Format: Taobao, ValidFrom: t0, ValidTo: t0}, "is empty"},
		{"bad policy", Options{Format: Taobao, OnError: 7}, "unknown error policy"},
		{"named column without header", Options{Format: CSV, Mapping: &Mapping{Customer: Column{Name: "c"}, Time: Column{Index: 2}, TimeLayout: "unix", ConstKind: model.View}}, "no header"},
	}
	for _, tt := range tests {
		_, _, err := readString(t, "", tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// times multiplies at run time: a constant expression like 6 * 2.55 would be
// evaluated exactly by the compiler and differ from the float64 product.
func times(q, p float64) float64 { return q * p }

func TestReportString(t *testing.T) {
	in := "1,2,3,pv,100\n1,2,3,pv,200\n1,2,3,xx,1511544070\n1,2,3,pv,1511544070\n"
	for range 11 {
		in += "1,2,3,pv,5\n"
	}
	_, rep, err := readString(t, in, Options{Format: Taobao, OnError: Skip, ValidFrom: time.Unix(1000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	want := `in.txt: 15 rows, 1 events (2017-11-24T17:21:10Z .. 2017-11-24T17:21:10Z), 13 out of range, 1 invalid
  skipped unknown kind:        1
  kind value "xx" is not mapped: 1 rows
  out of range: line 1 at 1970-01-01T00:01:40Z
  out of range: line 2 at 1970-01-01T00:03:20Z`
	got := rep.String()
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "\n  ... and 3 more out of range\n  read in.txt: line 3, column 4: unknown kind") {
		t.Errorf("got\n%s\nwant it to start with\n%s\nand mention 3 more rows out of range and the bad row", got, want)
	}
}

// TestLongLine reads a row longer than the scanner's buffer but within
// MaxLineBytes: it must come back whole, and line numbers must stay right.
func TestLongLine(t *testing.T) {
	item := strings.Repeat("x", 700<<10)
	in := "user,ts,kind,amount,item\nu1,1,pv,,a\nu2,2,pv,," + item + "\nu3,3,zz,,b\n"
	m := testMapping()
	m.Item = Column{Name: "item"}
	var evs []model.Event
	_, err := Read(context.Background(), strings.NewReader(in), "in.txt", Options{Format: CSV, Mapping: m}, func(ev model.Event) error {
		evs = append(evs, ev)
		return nil
	})
	var re *RowError
	if !errors.As(err, &re) || re.Line != 4 || re.Column != 3 {
		t.Errorf("got %v, want an unknown kind at line 4, column 3", err)
	}
	if len(evs) != 2 || evs[1].Item != item || evs[1].Customer != "u2" {
		t.Errorf("got %d events, want 2 with the long item intact", len(evs))
	}
}

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"11.77", 11.77, true}, {"0", 0, true}, {".5", 0.5, true}, {"1.", 1, true}, {"00012.50", 12.5, true},
		{"999999999999999", 999999999999999, true}, {"0.000000000000001", 1e-15, true},
		{"1234567890123456", 0, false}, {"0.0000000000000001", 0, false}, {"1e5", 0, false}, {"-3", 0, false},
		{"", 0, false}, {".", 0, false}, {"1.2.3", 0, false}, {"NaN", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDecimal([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseDecimal(%q): got %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestLineOfMaxBytes: a row of exactly MaxLineBytes bytes is accepted
// whatever its terminator ("\n", "\r\n" or none at the end of the file), and
// one byte more is a too-long row. Before, the terminator counted towards the
// limit, so the same row was refused when a newline followed it.
func TestLineOfMaxBytes(t *testing.T) {
	m := testMapping()
	m.Item = Column{Name: "item"}
	const head = "user,ts,kind,amount,item\n"
	prefix := "u2,2,pv,,"
	for _, tt := range []struct {
		name   string
		extra  int // bytes beyond MaxLineBytes
		term   string
		events int
	}{
		{"LF", 0, "\n", 2}, {"CRLF", 0, "\r\n", 2}, {"EOF", 0, "", 2},
		{"LF+1", 1, "\n", 1}, {"CRLF+1", 1, "\r\n", 1}, {"EOF+1", 1, "", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			item := strings.Repeat("x", MaxLineBytes+tt.extra-len(prefix))
			in := head + "u1,1,pv,,a\n" + prefix + item + tt.term
			var evs []model.Event
			rep, err := Read(context.Background(), strings.NewReader(in), "in.csv", Options{Format: CSV, Mapping: m, OnError: Skip}, func(ev model.Event) error {
				evs = append(evs, ev)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.events {
				t.Fatalf("got %d events (skipped %v), want %d", len(evs), rep.Skipped, tt.events)
			}
			if tt.events == 2 && evs[1].Item != item {
				t.Errorf("the long item came back with %d bytes, want %d", len(evs[1].Item), len(item))
			}
			if tt.events == 1 && rep.Skipped[ReasonLineTooLong] != 1 {
				t.Errorf("skipped %v, want one %q", rep.Skipped, ReasonLineTooLong)
			}
		})
	}
}

// TestZoneAbbreviation: with a time layout naming the zone by abbreviation
// (MST) and no numeric offset, Go's time.Parse reads an abbreviation the
// zone does not use as UTC (a "fabricated location" with offset 0): "10:00
// PST" in a UTC file came out as 10:00 UTC, eight hours early, without a
// word, and "GMT+3" as 10:00 UTC too. Such a row is now a bad time naming the
// abbreviation; UTC, GMT and the zone's own abbreviations (EST, EDT in New
// York) keep their exact offsets, and a layout with a numeric offset is read
// by the offset.
func TestZoneAbbreviation(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		layout string
		zone   *time.Location
		value  string
		want   time.Time // zero: a bad time
	}{
		{"2006-01-02 15:04:05 MST", nil, "2021-03-01 10:00:00 UTC", time.Date(2021, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"2006-01-02 15:04:05 MST", nil, "2021-03-01 10:00:00 GMT", time.Date(2021, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"2006-01-02 15:04:05 MST", nil, "2021-03-01 10:00:00 PST", time.Time{}},
		{"2006-01-02 15:04:05 MST", nil, "2021-03-01 10:00:00 GMT+3", time.Time{}},
		{"2006-01-02 15:04:05 MST", ny, "2021-03-01 10:00:00 EST", time.Date(2021, 3, 1, 15, 0, 0, 0, time.UTC)},
		{"2006-01-02 15:04:05 MST", ny, "2021-07-01 10:00:00 EDT", time.Date(2021, 7, 1, 14, 0, 0, 0, time.UTC)},
		{"2006-01-02 15:04:05 MST", ny, "2021-03-01 10:00:00 UTC", time.Date(2021, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"2006-01-02 15:04:05 MST", ny, "2021-03-01 10:00:00 CET", time.Time{}},
		{"2006-01-02 15:04:05 MST -0700", nil, "2021-03-01 10:00:00 PST -0800", time.Date(2021, 3, 1, 18, 0, 0, 0, time.UTC)},
		{"Jan _2 2006 15:04 MST", nil, "Mar  1 2021 10:00 PST", time.Time{}},
	} {
		m := &Mapping{Header: false, Delimiter: ',', Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: tt.layout,
			TimeZone: tt.zone, ConstKind: model.Purchase}
		var evs []model.Event
		rep, err := Read(context.Background(), strings.NewReader("u1,"+tt.value+"\n"), "in.csv", Options{Format: CSV, Mapping: m, OnError: Skip},
			func(ev model.Event) error { evs = append(evs, ev); return nil })
		if err != nil {
			t.Fatalf("%s in %v: %v", tt.value, tt.zone, err)
		}
		switch {
		case tt.want.IsZero():
			if len(evs) != 0 || rep.Skipped[ReasonBadTime] != 1 || !strings.Contains(rep.Errors[0].Error(), "abbreviation") {
				t.Errorf("%s in %v: got %v (skipped %v, errors %v), want a bad time naming the abbreviation", tt.value, tt.zone, evs, rep.Skipped, rep.Errors)
			}
		case len(evs) != 1 || !evs[0].Time.Equal(tt.want):
			t.Errorf("%s in %v: got %v (errors %v), want %s", tt.value, tt.zone, evs, rep.Errors, tt.want)
		}
	}
}

// TestUnixTimeRange: unix and unix_ms times must fall in years 0–9999, the
// times RFC 3339 and JSON can write. Before, unix_ms took any 18-digit value
// (9e17 ms is the year 28,521,000) and unix anything within ±2^40 s (to the
// year 36,812): one stray row moved `kairos client score`'s default cutoff
// (the day after the last event) tens of thousands of years ahead, and its
// time could not be encoded as JSON. Such a row is now a bad time.
func TestUnixTimeRange(t *testing.T) {
	for _, tt := range []struct {
		layout, value string
		want          time.Time // zero: a bad time
	}{
		{LayoutUnixMs, "900000000000000000", time.Time{}},
		{LayoutUnix, "1000000000000", time.Time{}},
		{LayoutUnix, "-62167219201", time.Time{}},
		{LayoutUnix, "253402300799", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{LayoutUnixMs, "253402300799999", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{LayoutUnix, "-62167219199", time.Date(0, 1, 1, 0, 0, 1, 0, time.UTC)},
		{LayoutUnixMs, "1733300000123", time.UnixMilli(1733300000123).UTC()},
	} {
		m := &Mapping{Header: false, Delimiter: ',', Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: tt.layout, ConstKind: model.Purchase}
		var evs []model.Event
		rep, err := Read(context.Background(), strings.NewReader("u1,"+tt.value+"\n"), "in.csv", Options{Format: CSV, Mapping: m, OnError: Skip},
			func(ev model.Event) error { evs = append(evs, ev); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if tt.want.IsZero() {
			if len(evs) != 0 || rep.Skipped[ReasonBadTime] != 1 {
				t.Errorf("%s %s: got %v, want a bad time", tt.layout, tt.value, evs)
			}
			continue
		}
		if len(evs) != 1 || !evs[0].Time.Equal(tt.want) {
			t.Errorf("%s %s: got %v (errors %v), want %s", tt.layout, tt.value, evs, rep.Errors, tt.want)
			continue
		}
		if _, err := json.Marshal(evs[0].Time); err != nil {
			t.Errorf("%s %s: %v", tt.layout, tt.value, err)
		}
	}
}
