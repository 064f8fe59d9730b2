package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// suggestCases are small exports, each with the mapping a user would write
// for it by hand from docs/operations.md, and the CHECK the suggester must
// raise ("" for none).
var suggestCases = []struct {
	name, data, want, check string
}{
	{
		name: "online retail lines, US dates resolved by a day above 12, returns, guests",
		data: "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n" +
			"536365,85123A,6,12/1/2010 8:26,2.55,17850,United Kingdom\n" +
			"536366,71053,-2,12/13/2010 9:02,3.39,17850,United Kingdom\n" +
			"536367,84406B,8,12/13/2010 9:05,2.75,13047,France\n" +
			"536368,22752,2,12/14/2010 10:00,7.65,,United Kingdom\n" +
			"536369,21730,6,12/14/2010 11:00,4.25,13047,France\n",
		want: `customer: CustomerID
missing_customer: ignore
time: {column: InvoiceDate, layout: "1/2/2006 15:04"}
kind: {constant: purchase}
amount: UnitPrice
quantity: Quantity
negative_amount: ignore
`,
	},
	{
		name: "German semicolon export, decimal comma, day first",
		data: "Kundennummer;Bestelldatum;Betrag\nK1;01.02.2024;35,58\nK2;13.02.2024;1.016,32\nK1;14.03.2024;15,39\nK2;15.03.2024;9,99\n",
		want: `delimiter: ";"
decimal: ","
customer: Kundennummer
time: {column: Bestelldatum, layout: "02.01.2006"}
kind: {constant: purchase}
amount: Betrag
`,
	},
	{
		name: "day and month order no value resolves",
		data: "customer,date,total\na,01/02/2024,10.00\nb,03/04/2024,12.50\na,05/06/2024,8.00\nb,07/08/2024,1.00\n",
		want: `customer: customer
time: {column: date, layout: "01/02/2006"}
kind: {constant: purchase}
amount: total
`,
		check: "ambiguous",
	},
	{
		name: "an ambiguous order in a semicolon export is guessed day first, and said to be a guess",
		data: "cliente;fecha;importe\nc1;01/02/2024;10,5\nc2;03/04/2024;3,5\nc1;05/06/2024;4\n",
		want: `delimiter: ";"
decimal: ","
customer: cliente
time: {column: fecha, layout: "02/01/2006"}
kind: {constant: purchase}
amount: importe
`,
		check: "day first, as in a semicolon-separated",
	},
	{
		name: "tab-separated, ISO 8601 with offsets, a Spanish header",
		data: "cliente\tfecha\timporte\nc1\t2024-01-01T10:00:00+01:00\t5\nc2\t2024-01-02T11:30:00+01:00\t7.5\nc1\t2024-02-01T09:00:00+01:00\t3\n",
		want: `delimiter: "\t"
customer: cliente
time: {column: fecha, layout: "2006-01-02T15:04:05Z07:00"}
kind: {constant: purchase}
amount: importe
`,
	},
	{
		name: "JSON Lines, Unix milliseconds, amounts as strings",
		data: `{"buyer":"b1","ts":1700000000000,"amount":"12.5"}` + "\n" + `{"buyer":"b2","ts":1700000500000,"amount":"3"}` + "\n" +
			`{"buyer":"b1","ts":1700100000000,"amount":"7.25"}` + "\n",
		want: `customer: buyer
time: {column: ts, layout: unix_ms}
kind: {constant: purchase}
amount: amount
`,
	},
	{
		name: "no header: columns by index, the customer a guess",
		data: "100,1603476,2951233,buy,1511579908\n100,2971043,4869428,buy,1511617549\n101,2971043,4869428,buy,1511759458\n101,1046201,2951233,buy,1511767298\n",
		want: `header: false
customer: 1
time: {column: 5, layout: unix}
kind: {column: 4, values: {buy: purchase}}
`,
		check: "no header",
	},
	{
		name: "two candidate customer columns that name different customers",
		data: "customer_id,client_id,order_date\nc1,k1,2024-01-01\nc1,k2,2024-01-02\nc2,k1,2024-01-03\nc2,k2,2024-01-04\n",
		want: `customer: customer_id
time: {column: order_date, layout: "2006-01-02"}
kind: {constant: purchase}
`,
		check: "two candidate customer columns",
	},
	{
		name: "no parsable time column",
		data: "customer,date,total\na,yesterday,1\nb,today,2\na,last week,3\n",
		want: `customer: customer
time: {column: date, layout: "2006-01-02 15:04:05"}
kind: {constant: purchase}
amount: total
`,
		check: "no parsable time column",
	},
	{
		name: "Windows-1252 bytes, Excel serial dates",
		data: "Kunde;Name;Datum\n1;Ren\xe9e;45292\n2;J\xfcrgen;45293.5\n1;Ren\xe9e;45300\n",
		want: `delimiter: ";"
encoding: windows-1252
customer: Kunde
time: {column: Datum, layout: excel}
kind: {constant: purchase}
`,
	},
	{
		name: "Shopify-like: e-mails, a status with empty further lines, a cancelled column",
		data: "Name,Email,Financial Status,Paid at,Total,Lineitem name,Cancelled at\n" +
			"#1000,Anna@Example.com ,paid,2023-01-01 08:14:42 +0100,11.77,CD,\n" +
			"#1000,Anna@Example.com ,,,,Single,\n" +
			"#1001,bob@example.com,refunded,2023-01-12 16:55:18 +0100,12.00,CD,\n" +
			"#1002,anna@example.com,paid,2023-02-12 16:55:18 +0100,7.00,CD,2023-02-13 10:00:00 +0100\n" +
			"#1003,bob@example.com,pending,,9.00,CD,\n",
		want: `customer: Email
customer_normalize: [trim, lower]
time: {column: Paid at, layout: "2006-01-02 15:04:05 -0700"}
kind: {column: Financial Status, values: {paid: purchase}, ignore: ["", pending, refunded]}
amount: Total
cancelled: Cancelled at
`,
	},
	{
		name: "accounting report: pound signs, thousands commas, parentheses",
		data: "Date,No.,Customer,Amount\n01-Dec-2010,1,C1,\"£1,139.12\"\n02-Dec-2010,2,C1,(£22.20)\n03-Dec-2010,3,C2,£278.73\n14-Dec-2010,4,C2,£5.00\n",
		want: `customer: Customer
time: {column: Date, layout: "02-Jan-2006"}
kind: {constant: purchase}
amount: Amount
currency_symbol: "£"
thousands: ","
accounting_negatives: true
negative_amount: ignore
`,
	},
	{
		name: "line items repeating the order total",
		data: "Order ID,Order Date,Customer ID,Order Total,SKU\n1,2024-01-01 10:00,c1,30.00,a\n1,2024-01-01 10:00,c1,30.00,b\n2,2024-01-05 11:00,c2,5.00,a\n3,2024-02-01 12:00,c1,12.00,c\n3,2024-02-01 12:00,c1,12.00,d\n",
		want: `customer: Customer ID
time: {column: Order Date, layout: "2006-01-02 15:04"}
kind: {constant: purchase}
amount: Order Total
order: Order ID
`,
	},
	{
		name: "WooCommerce guests, date and time columns, UTF-8 BOM",
		data: "\xef\xbb\xbfOrder Number,Date,Time,Customer User ID,Order Status,Order Total\n" +
			"1000,2023-01-01,21:38:00,5,wc-completed,11.77\n1001,2023-01-12,18:29:00,0,wc-completed,12.00\n" +
			"1002,2023-01-13,09:32:00,5,wc-cancelled,77.00\n1003,2023-01-14,10:00:00,6,wc-processing,3.00\n1004,2023-01-15,10:00:00,6,wc-completed,4.00\n",
		want: `customer: Customer User ID
missing_customer_values: ["0"]
missing_customer: ignore
time: {column: Date, time_of_day: Time, layout: "2006-01-02 15:04:05"}
kind: {column: Order Status, values: {wc-completed: purchase, wc-processing: purchase}, ignore: [wc-cancelled]}
amount: Order Total
`,
	},
	{
		name: "a day number and a quoted field over two lines",
		data: "household_key,DAY,SALES_VALUE,note\nh1,1,2.50,\"gift\nwrap\"\nh2,15,1.00,\nh1,711,3.25,\n",
		want: `customer: household_key
time: {column: DAY, layout: days, epoch: 2000-01-01}
kind: {constant: purchase}
amount: SALES_VALUE
`,
		check: "day number",
	},
}

func TestSuggestCases(t *testing.T) {
	for _, tc := range suggestCases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ParseMapping(strings.NewReader(tc.want), "want")
			if err != nil {
				t.Fatalf("the hand-written mapping: %v", err)
			}
			for _, gz := range []bool{false, true} {
				in := []byte(tc.data)
				if gz {
					in = gzipped(t, in)
				}
				sg, err := Suggest(context.Background(), bytes.NewReader(in), "export", SuggestOptions{})
				if err != nil {
					t.Fatalf("gzip %v: %v", gz, err)
				}
				if !reflect.DeepEqual(sg.Mapping, want) {
					t.Errorf("gzip %v: got mapping\n%+v\nwant\n%+v\nfrom\n%s", gz, *sg.Mapping, *want, sg.YAML)
				}
				checks := strings.Join(sg.Checks, "\n")
				switch {
				case tc.check == "" && checks != "":
					t.Errorf("gzip %v: got checks %q, want none\n%s", gz, checks, sg.YAML)
				case tc.check != "" && !strings.Contains(checks, tc.check):
					t.Errorf("gzip %v: got checks %q, want one about %q", gz, checks, tc.check)
				}
				if n := strings.Count(string(sg.YAML), "# CHECK:"); n != len(sg.Checks) {
					t.Errorf("gzip %v: %d CHECK comments for %d checks", gz, n, len(sg.Checks))
				}
				if gz != strings.Contains(string(sg.YAML), "gzip-compressed") {
					t.Errorf("gzip %v: the head does not say so:\n%s", gz, sg.YAML)
				}
			}
		})
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSuggestSettlesOrderPastTheSample: a sample whose dates all have days
// up to 12 leaves the order open; a later line, read past the sample,
// settles it, and the evidence names that line.
func TestSuggestSettlesOrderPastTheSample(t *testing.T) {
	var b strings.Builder
	b.WriteString("customer,date\n")
	for i := range 6 {
		fmt.Fprintf(&b, "c%d,%d/%d/2024\n", i%2, 1+i, 2+i)
	}
	tests := []struct {
		last, layout, where string
	}{
		{"c1,3/25/2024\n", "1/2/2006", `(month first: "3/25/2024" on line 8, past the sample, has a day above 12 in the second place)`},
		{"c1,25/3/2024\n", "2/1/2006", `(day first: "25/3/2024" on line 8, past the sample, has a day above 12 in the first place)`},
	}
	for _, tc := range tests {
		in := b.String() + tc.last
		sg, err := Suggest(context.Background(), strings.NewReader(in), "export", SuggestOptions{MaxRows: 4})
		if err != nil {
			t.Fatal(err)
		}
		if sg.Mapping.TimeLayout != tc.layout || len(sg.Checks) > 0 || !strings.Contains(string(sg.YAML), tc.where) {
			t.Errorf("got layout %q, checks %q, want %q settled by %s:\n%s", sg.Mapping.TimeLayout, sg.Checks, tc.layout, tc.where, sg.YAML)
		}
		// Within the sample alone the order stays a guess.
		sg, err = Suggest(context.Background(), strings.NewReader(b.String()), "export", SuggestOptions{MaxRows: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(sg.Checks) != 1 || !strings.Contains(sg.Checks[0], "ambiguous") {
			t.Errorf("without the settling line: got checks %q, want the ambiguity", sg.Checks)
		}
	}
}
