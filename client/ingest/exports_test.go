package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// Round 2 of the exports a new user brings (docs/benchmarks.md, "More exports
// a new user brings (round 2)"). Each test reads a few rows in the shape a
// shop system writes, through a mapping as a user writes it, and checks the
// events against values worked by hand.

func mustMapping(t *testing.T, yaml string) *Mapping {
	t.Helper()
	m, err := ParseMapping(strings.NewReader(yaml), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func customers(evs []model.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Customer
	}
	return out
}

func wantRowError(t *testing.T, err error, line, col int, reason, mentions string) {
	t.Helper()
	var re *RowError
	if !errors.As(err, &re) || re.Line != line || re.Column != col || re.Reason != reason || !strings.Contains(err.Error(), mentions) {
		t.Fatalf("got %v, want %s at line %d, column %d mentioning %q", err, reason, line, col, mentions)
	}
}

const retail2Mapping = "header: true\ncustomer: Customer ID\ntime: {column: InvoiceDate, layout: \"1/2/2006 15:04\"}\nkind: {constant: purchase}\n"

// TestMissingCustomerIgnore: Online Retail II has no customer on a quarter of
// its lines (guest checkouts). missing_customer: ignore makes them excluded
// rows; without it each is a bad row whose message names the key.
func TestMissingCustomerIgnore(t *testing.T) {
	const in = "Invoice,InvoiceDate,Customer ID\n1,12/1/2010 8:26,17850\n2,12/1/2010 9:01,\n3,12/10/2010 14:05,13047\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping+"missing_customer: ignore\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := customers(evs); len(got) != 2 || got[0] != "17850" || got[1] != "13047" {
		t.Fatalf("got customers %v, want [17850 13047]", got)
	}
	// US dates without zero padding: 12/10/2010 14:05 is 10 December.
	if want := time.Date(2010, 12, 10, 14, 5, 0, 0, time.UTC); !evs[1].Time.Equal(want) {
		t.Errorf("got %v, want %v", evs[1].Time, want)
	}
	if rep.Skipped[ReasonMissingCustomer] != 1 || rep.Invalid != 0 {
		t.Errorf("skipped %v, invalid %d; want one excluded row without a customer", rep.Skipped, rep.Invalid)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping)})
	wantRowError(t, err, 3, 3, ReasonMissingCustomer, "missing_customer: ignore")
	if _, err := ParseMapping(strings.NewReader(retail2Mapping+"missing_customer: skip\n"), "m.yaml"); err == nil || !strings.Contains(err.Error(), `missing_customer must be "error" or "ignore"`) {
		t.Errorf("got %v, want the allowed values named", err)
	}
}

// TestMissingCustomerMarkers: R writes a missing id as NA (Online Retail's
// own CSV does), pandas as NaN or <NA>, SQL clients as NULL, spreadsheets as
// #N/A. Read as ids, every guest row became one customer "NA" with
// thousands of purchases, silently (0 invalid rows). They are missing
// customers: a bad row naming the key, or dropped with missing_customer.
func TestMissingCustomerMarkers(t *testing.T) {
	const in = "Invoice,InvoiceDate,Customer ID\n1,12/1/2010 8:26,17850\n2,12/1/2010 9:01,NA\n3,12/2/2010 9:01,NaN\n" +
		"4,12/3/2010 9:01,<NA>\n5,12/4/2010 9:01,null\n6,12/5/2010 9:01,#N/A\n7,12/6/2010 9:01,None\n8,12/7/2010 9:01,n/a\n" +
		"9,12/8/2010 9:01,NAN1\n10,12/9/2010 9:01,13047\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping+"missing_customer: ignore\n")})
	if err != nil {
		t.Fatal(err)
	}
	// "NAN1" is an id, not a marker.
	if got, want := strings.Join(customers(evs), " "), "17850 NAN1 13047"; got != want {
		t.Errorf("customers %q, want %q", got, want)
	}
	if rep.Skipped[ReasonMissingCustomer] != 7 || rep.Invalid != 0 {
		t.Errorf("skipped %v, invalid %d; want the 7 markers excluded as rows without a customer", rep.Skipped, rep.Invalid)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping)})
	wantRowError(t, err, 3, 3, ReasonMissingCustomer, `"NA", the missing-value marker`)
}

// TestCustomerNormalize: pandas writes an integer id column with gaps as
// floats ("17850.0") and a second export writes the same id as "17850"; a
// Shopify export writes e-mails in mixed case with trailing spaces. Without
// a rule each is a second customer, silently; customer_normalize names the
// rule, and without it the shapes that cannot be meant are bad rows that name
// the key.
func TestCustomerNormalize(t *testing.T) {
	const in = "Invoice,InvoiceDate,Customer ID\n1,12/1/2010 8:26,17850.0\n2,12/2/2010 9:01,17850\n3,12/3/2010 9:01,013047.00\n4,12/4/2010 9:01,A17.0\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping+"customer_normalize: [integer]\n")})
	if err != nil {
		t.Fatal(err)
	}
	// Leading zeros are part of an id ("013047" stays); "A17.0" is not a number.
	if got, want := strings.Join(customers(evs), " "), "17850 17850 013047 A17.0"; got != want {
		t.Errorf("integer: got %q, want %q", got, want)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, retail2Mapping)})
	wantRowError(t, err, 2, 3, ReasonBadCustomer, "customer_normalize: [integer]")

	const shop = "Email,Paid at\nAnna@Example.com ,2023-01-05\n anna@example.com,2023-02-05\nANNA@EXAMPLE.COM,2023-03-05\nbob@example.com,2023-03-06\n"
	const shopMapping = "header: true\ncustomer: Email\ntime: {column: Paid at, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"
	evs, _, err = readString(t, shop, Options{Format: CSV, Mapping: mustMapping(t, shopMapping+"customer_normalize: [trim, lower]\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(customers(evs), " "), "anna@example.com anna@example.com anna@example.com bob@example.com"; got != want {
		t.Errorf("trim, lower: got %q, want %q", got, want)
	}
	_, _, err = readString(t, shop, Options{Format: CSV, Mapping: mustMapping(t, shopMapping)})
	wantRowError(t, err, 2, 1, ReasonBadCustomer, "customer_normalize: [trim]")
	// A customer that is only blanks is a missing one once trimmed.
	_, _, err = readString(t, "Email,Paid at\n  ,2023-01-05\n", Options{Format: CSV, Mapping: mustMapping(t, shopMapping+"customer_normalize: [trim]\n")})
	wantRowError(t, err, 2, 1, ReasonMissingCustomer, "missing_customer")
	for _, bad := range []string{"customer_normalize: [upper]\n", "customer_normalize: trim\n", "customer_normalize: [trim, trim]\n"} {
		if _, err := ParseMapping(strings.NewReader(shopMapping+bad), "m.yaml"); err == nil || !strings.Contains(err.Error(), "customer_normalize") {
			t.Errorf("%q: got %v, want customer_normalize refused", bad, err)
		}
	}
}

// TestEncodingWindows1252: a shop system on Windows writes Windows-1252.
// The bytes are worked from the code page: 0x80 is "€", 0x8A "Š", 0xE9 "é",
// 0xFC "ü". Without the key the message names it.
func TestEncodingWindows1252(t *testing.T) {
	const mapping = "header: true\ndelimiter: \";\"\ncustomer: Kunde\ntime: {column: Datum, layout: \"02.01.2006\"}\nkind: {constant: purchase}\ncategory: Gruppe\n"
	in := "Kunde;Name;Datum;Gruppe\r\nK1;Ren\xe9e;01.01.2023;B\xfccher\r\nK2;\x8aarka;02.01.2023;Karte 10 \x80\r\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping+"encoding: windows-1252\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Category != "Bücher" || evs[1].Category != "Karte 10 €" {
		t.Fatalf("got %+v, want categories Bücher and Karte 10 €", evs)
	}
	evs, _, err = readString(t, "Kunde;Datum;Gruppe\nK\xe9;01.01.2023;x\n", Options{Format: CSV, Mapping: mustMapping(t, mapping+"encoding: latin-1\n")})
	if err != nil || len(evs) != 1 || evs[0].Customer != "Ké" {
		t.Fatalf("latin-1: got %+v, %v; want customer Ké", evs, err)
	}
	// Without the key: bytes in a column the mapping does not read do not
	// matter (the name, line 2); a mapped one is a bad row naming the key.
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	wantRowError(t, err, 2, 4, ReasonNotUTF8, "encoding: windows-1252")
	evs, _, err = readString(t, "Kunde;Name;Datum;Gruppe\nK1;Ren\xe9e;01.01.2023;B\n", Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	if err != nil || len(evs) != 1 {
		t.Errorf("an unmapped non-UTF-8 column: got %d events, %v; want the row read", len(evs), err)
	}
	if _, err := ParseMapping(strings.NewReader(mapping+"encoding: ebcdic\n"), "m.yaml"); err == nil || !strings.Contains(err.Error(), "encoding") {
		t.Errorf("got %v, want an unknown encoding refused", err)
	}
}

// TestQuotedLineBreaks: RFC 4180 allows a line break inside a quoted field
// (a product description, a gift note); the record goes on on the next line.
// Errors name the line where the record starts; a quote never closed is one
// bad row per line it swallowed.
func TestQuotedLineBreaks(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\nitem: note\n"
	in := "c,note,t\r\na,\"two\r\nlines, and \"\"quotes\"\"\",2024-01-01\r\nb,plain,2024-01-02\r\nc,x,2024-13-01\r\n"
	var evs []model.Event
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Item != "two\nlines, and \"quotes\"" || evs[1].Customer != "b" || rep.Rows != 3 {
		t.Fatalf("got %+v, rows %d; want the two-line note read and 3 rows", evs, rep.Rows)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 5 {
		t.Errorf("got errors %v, want the bad date on line 5", rep.Errors)
	}
	evs, rep, err = readString(t, "c,note,t\na,\"never closed,2024-01-01\nb,x,2024-01-02\nc,x,2024-01-03\n", Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip})
	if err != nil || len(evs) != 0 || rep.Invalid != 3 || rep.Rows != 3 || len(rep.Errors) != 1 || rep.Errors[0].Line != 2 || rep.Errors[0].Reason != ReasonBadQuote {
		t.Fatalf("got %d events, %d of %d rows invalid, errors %v, %v; want 3 bad rows from line 2", len(evs), rep.Invalid, rep.Rows, rep.Errors, err)
	}
}

// TestStrayQuoteSpan: a stray quote at the start of a field (a writer that
// does not quote) opens a "record" that a second stray quote, lines later,
// closes. The joined lines do not split into the mapped columns; each line
// of them is a bad row, so that the bound on bad rows sees all 4 rows lost,
// and the error says which lines the record ran over.
func TestStrayQuoteSpan(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\nitem: note\n"
	in := "c,note,t\na,\"12 inch,2024-01-01\nb,x,2024-01-02\nc,x,2024-01-03\nd,5\" vinyl,2024-01-04\ne,x,2024-01-05\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Customer != "e" || rep.Rows != 5 || rep.Invalid != 4 {
		t.Fatalf("got %d events, %d of %d rows invalid; want only e read and 4 of 5 rows bad", len(evs), rep.Invalid, rep.Rows)
	}
	if e := rep.Errors[0]; e.Line != 2 || !strings.Contains(e.Error(), "lines 2-5") {
		t.Errorf("got %v, want the error on line 2 naming lines 2-5", e)
	}
}

// TestRepeatedHeader: monthly exports concatenated repeat their header line;
// it is not a row of data.
func TestRepeatedHeader(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"
	in := "\xef\xbb\xbfc,t\r\na,2024-01-01\r\nc,t\r\nb,2024-02-01\nc,t\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	if err != nil || len(evs) != 2 || rep.Skipped[ReasonRepeatedHeader] != 2 || rep.Invalid != 0 {
		t.Fatalf("got %d events, skipped %v, %v; want 2 events and 2 repeated headers", len(evs), rep.Skipped, err)
	}
}

// TestCancelledColumn: Shopify marks a cancelled order by a time in
// "Cancelled at", whatever its financial status; a non-empty value excludes
// the row.
func TestCancelledColumn(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\ncancelled: Cancelled at\n"
	in := "c,t,Cancelled at\na,2024-01-01,\nb,2024-01-02,2024-01-02 10:00:00 +0100\nc,2024-01-03, \n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(customers(evs), " "); got != "a c" || rep.Skipped[ReasonCancellation] != 1 {
		t.Fatalf("got %q, skipped %v; want a and c, one cancellation", got, rep.Skipped)
	}
}

// TestCurrencyRates: an export in several currencies. Amounts are converted
// by the mapping's rates (1200 JPY × 0.00625 = 7.5, 10 USD × 0.925 = 9.25);
// a currency without a rate is a bad row naming it and the key, never summed
// as if it were the others.
func TestCurrencyRates(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: total\ncurrency: {column: cur, rates: {EUR: 1, USD: 0.925, JPY: 0.00625}}\n"
	in := "c,t,total,cur\na,2024-01-01,12.50,EUR\nb,2024-01-02,1200,JPY\nc,2024-01-03,10,USD\nd,2024-01-04,5,GBP\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{12.5, 7.5, 9.25}
	if len(evs) != len(want) {
		t.Fatalf("got %+v, want %d events", evs, len(want))
	}
	for i, ev := range evs {
		if d := ev.Amount - want[i]; d > 1e-12 || d < -1e-12 {
			t.Errorf("event %d: amount %v, want %v", i, ev.Amount, want[i])
		}
	}
	if rep.Invalid != 1 || rep.Errors[0].Reason != ReasonUnknownCurrency || rep.Errors[0].Column != 4 || !strings.Contains(rep.Errors[0].Error(), `"GBP"`) ||
		!strings.Contains(rep.Errors[0].Error(), "currency rates") {
		t.Errorf("got %v, want GBP a bad row naming the rates", rep.Errors)
	}
	for _, bad := range []string{
		"currency: cur\n", "currency: {column: cur}\n", "currency: {column: cur, rates: {EUR: 0}}\n", "currency: {column: cur, rates: {EUR: x}}\n",
	} {
		if _, err := ParseMapping(strings.NewReader(strings.Replace(mapping, "currency: {column: cur, rates: {EUR: 1, USD: 0.925, JPY: 0.00625}}\n", bad, 1)), "m.yaml"); err == nil ||
			!strings.Contains(err.Error(), "currency") {
			t.Errorf("%q: got %v, want it refused", bad, err)
		}
	}
}

// TestExcelLayout: a sheet saved without date formatting writes days since
// 1899-12-30 (Excel's 1900 date system, whose day 60 is the 29 February 1900
// that never was). 40513 is 2010-12-01; 0.35 of a day is 08:24:00; 61 is
// 1900-03-01, the first day the count is right.
func TestExcelLayout(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: excel, zone: Europe/London}\nkind: {constant: purchase}\n"
	in := "c,t\na,40513.35\nb,61\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2010, 12, 1, 8, 24, 0, 0, time.UTC); len(evs) != 2 || !evs[0].Time.Equal(want) {
		t.Fatalf("got %+v, want %v first", evs, want)
	}
	if want := time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC); !evs[1].Time.Equal(want) {
		t.Errorf("got %v, want %v", evs[1].Time, want)
	}
	// London is at +01:00 in summer: serial 40725 (2011-07-01) at local midnight is 23:00 UTC the day before.
	evs, _, err = readString(t, "c,t\na,40725\n", Options{Format: CSV, Mapping: mustMapping(t, mapping)})
	if err != nil || !evs[0].Time.Equal(time.Date(2011, 6, 30, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("got %+v, %v; want 2011-06-30 23:00 UTC", evs, err)
	}
	for _, bad := range []string{"60", "2958466", "1e3", "abc", "-5", "NaN"} {
		_, _, err = readString(t, "c,t\na,"+bad+"\n", Options{Format: CSV, Mapping: mustMapping(t, mapping)})
		wantRowError(t, err, 2, 2, ReasonBadTime, "Excel")
	}
}

// TestTimeOfDayColumn: date and time of day in two columns are read as the
// two fields joined by a space, with the mapping's one layout.
func TestTimeOfDayColumn(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: date, time_of_day: time, layout: \"2006-01-02 15:04:05\", zone: Europe/Berlin}\nkind: {constant: purchase}\n"
	in := "c,date,time\na,2024-01-05,14:03:22\nb,2024-07-05,00:30:00\nc,2024-07-05,\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	// Berlin is UTC+1 in January, UTC+2 in July.
	want := []time.Time{time.Date(2024, 1, 5, 13, 3, 22, 0, time.UTC), time.Date(2024, 7, 4, 22, 30, 0, 0, time.UTC)}
	if len(evs) != 2 || !evs[0].Time.Equal(want[0]) || !evs[1].Time.Equal(want[1]) {
		t.Fatalf("got %+v, want times %v", evs, want)
	}
	if rep.Invalid != 1 || rep.Errors[0].Column != 3 || rep.Errors[0].Reason != ReasonBadTime {
		t.Errorf("got %v, want the empty time of day a bad time in column 3", rep.Errors)
	}
	if _, err := ParseMapping(strings.NewReader(strings.Replace(mapping, `"2006-01-02 15:04:05"`, "unix", 1)), "m.yaml"); err == nil || !strings.Contains(err.Error(), "time_of_day") {
		t.Errorf("got %v, want time_of_day refused with a unix layout", err)
	}
}

// TestHeaderHint: a mapped column missing from the header said only that
// ("header has no column "Kunde""), whether the file was read with the wrong
// delimiter, the name differed in case, or the column was not there at all.
func TestHeaderHint(t *testing.T) {
	const mapping = "header: true\ncustomer: Customer ID\ntime: {column: Date, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"
	for _, tc := range []struct{ name, in, want string }{
		{"semicolons", "Customer ID;Date\n1;2020-01-01\n", `holds ";": set delimiter: ";"`},
		{"tabs", "Customer ID\tDate\n1\t2020-01-01\n", `holds tabs: set delimiter: "\t"`},
		{"case", "customer  id,Date\n1,2020-01-01\n", `column 1 is "customer  id", which differs only in case or blanks`},
		{"absent", "Client,Date\n1,2020-01-01\n", `(its columns: Client, Date)`},
	} {
		_, _, err := readString(t, tc.in, Options{Format: CSV, Mapping: mustMapping(t, mapping)})
		if err == nil || !strings.Contains(err.Error(), `header has no column "Customer ID"`) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want the missing column and %q", tc.name, err, tc.want)
		}
	}
}
