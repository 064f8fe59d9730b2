package ingest

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Round 3 of the exports a new user brings (docs/benchmarks.md, "Exports a
// new user brings (round 3)"): amounts as shop systems display them, amounts
// in minor units, guest markers, plus-tagged e-mails and boolean
// cancellation columns. Expected values are worked by hand from the rows.

const amountHead = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: a\n"

// amountsOf reads rows "c,t,a" (the amount field as given, quoted) and
// returns the amounts of the events and the report.
func amountsOf(t *testing.T, mapping string, fields ...string) ([]float64, Report, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("c,t,a\n")
	for _, f := range fields {
		b.WriteString("x,2024-01-02,\"" + f + "\"\n")
	}
	evs, rep, err := readString(t, b.String(), Options{Format: CSV, Mapping: mustMapping(t, mapping), OnError: Skip, MaxInvalidShare: 1})
	out := make([]float64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Amount
	}
	return out, rep, err
}

func sameAmounts(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
			return false
		}
	}
	return true
}

// TestCurrencySymbol: a Magento or Square export writes "$1,234.50", a bank
// "USD 12.00", a refund "-$5.25", "$-5.25" or "($12.00)". Each declared
// symbol is taken off before or after the number; another symbol, or one in
// the middle, is a bad amount.
func TestCurrencySymbol(t *testing.T) {
	mapping := amountHead + "thousands: \",\"\ncurrency_symbol: [\"$\", US$, USD]\naccounting_negatives: true\nnegative_amount: ignore\n"
	got, rep, err := amountsOf(t, mapping,
		"$1,234.50", "USD 12.00", "US$7", "12.00 USD", " $ 3.5 ", "$ -", " - ", // read: 1234.5, 12, 7, 12, 3.5, and Excel's accounting zeros
		"-$5.25", "$-5.25", "($12.00)", "(12.00)", "- $1", "1,234.50-", "$12.00-", // negative: excluded
		"€3.00", "$1,23.5", "1$2", "$$1", "(-12.00)", "USD", "(-)", "-12.00-", "") // bad (the empty one is no amount: an event without one)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1234.5, 12, 7, 12, 3.5, 0, 0, 0}; !sameAmounts(got, want) {
		t.Errorf("got amounts %v, want %v", got, want)
	}
	if rep.Skipped[ReasonIgnoredNegative] != 7 || rep.Invalid != 8 {
		t.Errorf("got %d negative excluded, %d invalid (%v); want 7 and 8", rep.Skipped[ReasonIgnoredNegative], rep.Invalid, rep.Errors)
	}
}

// TestCurrencySymbolEuropean: "1 234,50 €" and "€ 12,50", with a no-break
// space (U+00A0, or the narrow U+202F that ICU's French locale writes)
// before the symbol and between the groups of digits.
func TestCurrencySymbolEuropean(t *testing.T) {
	mapping := amountHead + "decimal: \",\"\nthousands: \" \"\ncurrency_symbol: €\n"
	got, rep, err := amountsOf(t, mapping, "1 234,50 €", "12,50\u00a0€", "€ 12,50", "1\u202f234,50\u202f€", "€12", "1.234,50 €")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1234.5, 12.5, 12.5, 1234.5, 12}; !sameAmounts(got, want) {
		t.Errorf("got amounts %v, want %v", got, want)
	}
	if rep.Invalid != 1 { // a dot is no mark of this mapping's
		t.Errorf("got %d invalid, want 1", rep.Invalid)
	}
}

// TestAmountHints: without the keys, an amount with a symbol or in
// parentheses is a bad row whose error names the key that reads it, and
// the thousands key when that is needed too; none when nothing would.
func TestAmountHints(t *testing.T) {
	for _, c := range []struct {
		mapping, field string
		mentions       []string
	}{
		{amountHead + "thousands: \",\"\n", "$1,234.50", []string{`currency_symbol: "$"`}},
		{amountHead, "$1,234.50", []string{`currency_symbol: "$"`, `thousands: ","`}},
		{amountHead, "12,50 €", []string{`currency_symbol: "€"`, `decimal: ","`}},
		{amountHead, "(12.00)", []string{"accounting_negatives: true"}},
		{amountHead, "(USD 12.00)", []string{"accounting_negatives: true", `currency_symbol: "USD"`}},
		{amountHead + "decimal: \",\"\n", "1.234,50-", []string{`trailing minus ("12.00-") set accounting_negatives: true`}},
		{amountHead + "currency_symbol: $\n", "€3", []string{`currency_symbol "$"`, `currency_symbol: "€"`}},
	} {
		_, _, err := readString(t, "c,t,a\nx,2024-01-02,\""+c.field+"\"\n", Options{Format: CSV, Mapping: mustMapping(t, c.mapping)})
		for _, m := range c.mentions {
			if err == nil || !strings.Contains(err.Error(), m) {
				t.Errorf("%q: got %v, want it to mention %s", c.field, err, m)
			}
		}
	}
	for _, field := range []string{"abc", "12 apples", "1$2"} {
		_, _, err := readString(t, "c,t,a\nx,2024-01-02,\""+field+"\"\n", Options{Format: CSV, Mapping: mustMapping(t, amountHead)})
		if err == nil || strings.Contains(err.Error(), "currency_symbol") || strings.Contains(err.Error(), "accounting") {
			t.Errorf("%q: got %v, want a bad amount without a hint", field, err)
		}
	}
}

// TestAmountUnit: Stripe's charges carry amount in the currency's minor unit
// (1250 is 12.50 USD; 500 is 500 JPY; 1250 is 1.250 KWD). cents divides
// every amount by 100 (after quantity); minor by each row's currency, before
// its rate applies.
func TestAmountUnit(t *testing.T) {
	got, _, err := amountsOf(t, amountHead+"amount_unit: cents\n", "1250", "1999", "5")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{12.5, 19.99, 0.05}; !sameAmounts(got, want) {
		t.Errorf("cents: got %v, want %v", got, want)
	}
	const minor = "header: true\ncustomer: c\ntime: {column: t, layout: unix}\nkind: {constant: purchase}\namount: a\nquantity: q\n" +
		"currency: {column: cur, rates: {USD: 0.9, JPY: 0.00625, KWD: 3, usd: 0.9}}\namount_unit: minor\n"
	in := "c,t,a,q,cur\ncus_1,1700000000,1250,1,USD\ncus_1,1700000001,500,2,JPY\ncus_2,1700000002,1250,1,KWD\ncus_2,1700000003,1250,1,usd\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, minor)})
	if err != nil {
		t.Fatal(err)
	}
	// 12.50 USD × 0.9; 2 × 500 JPY × 0.00625; 1.250 KWD × 3; Stripe's
	// lower-case code.
	want := []float64{11.25, 6.25, 3.75, 11.25}
	if len(evs) != len(want) {
		t.Fatalf("got %d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if math.Abs(ev.Amount-want[i]) > 1e-9 {
			t.Errorf("row %d: got %v, want %v", i+1, ev.Amount, want[i])
		}
	}
}

// TestMissingCustomerValues: WooCommerce writes customer 0 for a guest
// order, other systems "Guest"; read as ids, all guests would be one
// customer with thousands of orders.
func TestMissingCustomerValues(t *testing.T) {
	const m = "header: true\ncustomer: c\ncustomer_normalize: [integer]\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n" +
		"missing_customer_values: [\"0\", Guest]\n"
	const in = "c,t\n17,2024-01-02\n0,2024-01-02\nguest,2024-01-03\n0.0,2024-01-03\n170,2024-01-04\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m+"missing_customer: ignore\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := customers(evs); strings.Join(got, " ") != "17 170" || rep.Skipped[ReasonMissingCustomer] != 3 {
		t.Fatalf("got %v, skipped %v; want [17 170] and 3 missing customers", got, rep.Skipped)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m)})
	wantRowError(t, err, 3, 1, ReasonMissingCustomer, "missing_customer: ignore")
}

// TestPlusTag: anna+shop@example.com and Anna@Example.com are one mailbox.
func TestPlusTag(t *testing.T) {
	const m = "header: true\ncustomer: c\ncustomer_normalize: [trim, lower, plus_tag]\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"
	const in = "c,t\nAnna+Shop@Example.com ,2024-01-02\nanna@example.com,2024-01-03\n+x@y.com,2024-01-03\na+b,2024-01-04\nb@c+d,2024-01-04\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(customers(evs), " "), "anna@example.com anna@example.com +x@y.com a+b b@c+d"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCancelledBoolean: Stripe's refunded column and a pandas export's
// cancelled column hold true and false; false (and f, no, n, 0) is no
// cancellation.
func TestCancelledBoolean(t *testing.T) {
	const m = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\ncancelled: refunded\n"
	const in = "c,t,refunded\na,2024-01-02,false\nb,2024-01-02,true\nc,2024-01-02,False\nd,2024-01-02,TRUE\ne,2024-01-02,0\nf,2024-01-02,1\ng,2024-01-02,\nh,2024-01-02,f\ni,2024-01-02,2024-01-05\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(customers(evs), ""); got != "acegh" {
		t.Errorf("got customers %q, want acegh", got)
	}
	if rep.Skipped[ReasonCancellation] != 4 {
		t.Errorf("got %d cancellations, want 4 (b, d, f, i)", rep.Skipped[ReasonCancellation])
	}
}

// TestAmountFormatMappingErrors: each new key's mistakes name the key and
// its line.
func TestAmountFormatMappingErrors(t *testing.T) {
	// Spellings of one currency are one currency ("$" may be US dollars).
	for _, ok := range []string{"[$, US$, USD]", "[€, EUR, eur]", "[kr, SEK]", "[£, GBP]", "[¥, JPY]"} {
		if _, err := ParseMapping(strings.NewReader(amountHead+"currency_symbol: "+ok+"\n"), "m.yaml"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{amountHead + "currency_symbol: \"1\"\n", `line 6, column 18: currency_symbol "1" holds "1"`},
		{amountHead + "currency_symbol: [$, {a: b}]\n", "line 6, column 22: currency_symbol must be"},
		{amountHead + "currency_symbol: []\n", "line 6, column 18: currency_symbol must be"},
		{amountHead + "currency_symbol: [$, $]\n", `line 6, column 22: currency_symbol "$" is given twice`},
		{amountHead + "currency_symbol: [$, €]\n", `line 6, column 18: currency_symbol lists "$" and "€", which are different currencies`},
		{amountHead + "currency_symbol: [USD, EUR]\n", `currency_symbol lists "USD" and "EUR", which are different currencies`},
		{amountHead + "currency_symbol: [US$, CAD]\n", `currency_symbol lists "US$" and "CAD"`},
		{amountHead + "accounting_negatives: yes\n", "line 6, column 23: accounting_negatives must be true or false"},
		{amountHead + "amount_unit: dollars\n", "line 6, column 14: amount_unit must be cents"},
		{amountHead + "amount_unit: minor\n", "line 6, column 14: amount_unit: minor needs a currency column"},
		{amountHead + "currency: {column: cur, rates: {$: 1}}\namount_unit: minor\n", `line 7, column 14: amount_unit: minor needs ISO 4217 codes under currency rates (like USD, JPY), to know each one's minor unit; "$" is not one`},
		{strings.Replace(amountHead, "amount: a\n", "", 1) + "amount_unit: cents\n", "line 5, column 14: currency_symbol, accounting_negatives and amount_unit describe the amount column"},
		{amountHead + "missing_customer_values: 0\n", "line 6, column 26: missing_customer_values must be a list"},
		{amountHead + "missing_customer_values: [\"0\", 0]\n", `line 6, column 32: missing_customer_values: "0" is given twice`},
		{amountHead + "order: {column: id}\n", "line 6, column 8: order column must be a header name or a 1-based index"},
		{amountHead + "customer_normalize: [plus]\n", "customer_normalize must be a list of trim, integer, lower and plus_tag"},
		{"header: true\ncustomer: user_id\ntime: {column: days_since_prior_order, layout: days}\nkind: {constant: purchase}\n",
			`line 3, column 48: layout days counts days from one date shared by every customer`},
		{"header: true\ncustomer: user_id\ntime: {column: days_since_prior_order, layout: hours}\nkind: {constant: purchase}\n",
			`line 3, column 48: time layout "hours" holds no date element`},
	} {
		_, err := ParseMapping(strings.NewReader(c.yaml), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}

// TestJSONLines: an order export as pandas' to_json(orient="records",
// lines=True) writes it — the customer a float or null, numbers as JSON
// numbers, a byte-order mark, a blank line — is read through the same
// mapping as the CSV export, its keys the column names.
func TestJSONLines(t *testing.T) {
	const m = "header: true\ncustomer: CustomerID\ncustomer_normalize: [integer]\nmissing_customer: ignore\n" +
		"time: {column: InvoiceDate, layout: \"2006-01-02T15:04:05.000\"}\nkind: {constant: purchase}\namount: UnitPrice\nquantity: Quantity\n" +
		"negative_amount: ignore\n"
	const in = "\ufeff{\"InvoiceNo\":\"536365\",\"Quantity\":6,\"InvoiceDate\":\"2010-12-01T08:26:00.000\",\"UnitPrice\":2.55,\"CustomerID\":17850.0,\"Country\":\"United Kingdom\"}\n" +
		"{\"InvoiceNo\":\"536366\",\"Quantity\":2,\"InvoiceDate\":\"2010-12-01T08:28:00.000\",\"UnitPrice\":1.85,\"CustomerID\":null}\n" +
		"\n" +
		"{\"InvoiceNo\":\"C536379\",\"Quantity\":-1,\"InvoiceDate\":\"2010-12-01T09:41:00.000\",\"UnitPrice\":27.5,\"CustomerID\":14527.0}\n" +
		"{\"CustomerID\":\"13047\",\"InvoiceDate\":\"2010-12-01T08:34:00.000\",\"Quantity\":\"3\",\"UnitPrice\":\"4.25\"}\n" +
		"{\"CustomerID\":13047,\"InvoiceDate\":\"2010-12-01\",\"Quantity\":1,\"UnitPrice\":1}\n" +
		"{\"CustomerID\":13047,\"InvoiceDate\":\"2010-12-01T08:34:00.000\",\"Quantity\":1,\"UnitPrice\":{\"amount\":1}}\n" +
		"[1,2]\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m), OnError: Skip, MaxInvalidShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	// 6 × 2.55 = 15.3 for 17850; 3 × 4.25 = 12.75 for 13047 (strings read as in a CSV field).
	if len(evs) != 2 || evs[0].Customer != "17850" || math.Abs(evs[0].Amount-15.3) > 1e-9 || evs[1].Customer != "13047" || evs[1].Amount != 12.75 {
		t.Fatalf("got %+v, want 17850 15.3 and 13047 12.75", evs)
	}
	if !rep.JSONLines || !strings.Contains(rep.String(), "; read as JSON Lines") {
		t.Errorf("the report %q does not say the file was read as JSON Lines", rep.String())
	}
	if want := time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC); !evs[0].Time.Equal(want) {
		t.Errorf("got %v, want %v", evs[0].Time, want)
	}
	if rep.Skipped[ReasonMissingCustomer] != 1 || rep.Skipped[ReasonIgnoredNegative] != 1 || rep.Invalid != 3 {
		t.Errorf("got skipped %v, %d invalid; want one missing customer, one negative, three invalid", rep.Skipped, rep.Invalid)
	}
	var msgs []string
	for _, e := range rep.Errors {
		msgs = append(msgs, e.Error())
	}
	for i, want := range []string{`line 6: unparseable time: key "InvoiceDate": parsing time`, `line 7: bad JSON: key "UnitPrice": value {"amount":1} is not a string or a number`, "line 8: bad JSON"} {
		if i >= len(msgs) || !strings.Contains(msgs[i], want) {
			t.Errorf("error %d: got %q, want it to contain %q", i, msgs, want)
		}
	}
	// One JSON array (pandas without lines=True) is refused at once, saying
	// how to write JSON Lines.
	_, _, err = readString(t, "[\n {\"CustomerID\":1}\n]\n", Options{Format: CSV, Mapping: mustMapping(t, m)})
	if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "lines=True") {
		t.Errorf("got %v, want ErrNotText naming lines=True", err)
	}
	// A mapping with column indices cannot name keys.
	_, _, err = readString(t, "{\"a\":1}\n", Options{Format: CSV, Mapping: mustMapping(t, "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\n")})
	if err == nil || !strings.Contains(err.Error(), "JSON message has keys: name the key") {
		t.Errorf("got %v, want the refusal of column indices", err)
	}
}

// TestShopDateLayouts: the layouts docs/operations.md gives for the dates
// shop systems write read them as worked by hand (London is UTC in
// December).
func TestShopDateLayouts(t *testing.T) {
	for _, c := range []struct {
		layout, field string
		want          time.Time
	}{
		{"Jan 2, 2006 3:04:05 PM", "Dec 1, 2010 8:26:00 PM", time.Date(2010, 12, 1, 20, 26, 0, 0, time.UTC)},
		{"01/02/06 15:04:05", "12/01/10 08:26:00", time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)},
		{"02-Jan-2006", "01-Dec-2010", time.Date(2010, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"20060102", "20101201", time.Date(2010, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"02/01/2006 15:04:05", "01/12/2010 08:26:00", time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)},
	} {
		m := "header: true\ncustomer: c\ntime: {column: t, layout: \"" + c.layout + "\", zone: Europe/London}\nkind: {constant: purchase}\n"
		evs, _, err := readString(t, "c,t\nx,\""+c.field+"\"\n", Options{Format: CSV, Mapping: mustMapping(t, m)})
		if err != nil || len(evs) != 1 || !evs[0].Time.Equal(c.want) {
			t.Errorf("%q as %q: got %v, %v; want %v", c.field, c.layout, evs, err, c.want)
		}
	}
}

// TestValidateAmountFormat: a Mapping built in code (a client's config) is
// held to the rules ParseMapping applies.
func TestValidateAmountFormat(t *testing.T) {
	base := func() *Mapping {
		return &Mapping{Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: LayoutUnix, ConstKind: 4, Amount: Column{Index: 3}}
	}
	for _, c := range []struct {
		edit func(*Mapping)
		want string
	}{
		{func(m *Mapping) { m.CurrencySymbols = []string{"$", "€"} }, `mapping: currency_symbol lists "$" and "€"`},
		{func(m *Mapping) { m.CurrencySymbols = []string{"1"} }, `mapping: currency_symbol "1" holds "1"`},
		{func(m *Mapping) { m.AmountUnit = AmountUnitMinor }, "mapping: amount_unit: minor needs a currency column"},
		{func(m *Mapping) { m.AmountUnit = "dollars" }, `mapping: amount_unit "dollars" must be cents or minor`},
		{func(m *Mapping) { m.AccountingNegatives, m.Amount = true, Column{} }, "mapping: currency_symbol, accounting_negatives and amount_unit need an amount column"},
		{func(m *Mapping) {
			m.AmountUnit, m.Currency, m.CurrencyRates = AmountUnitMinor, Column{Index: 4}, map[string]float64{"dollar": 1}
		}, `"dollar" is not one`},
	} {
		m := base()
		c.edit(m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error containing %q", err, c.want)
		}
	}
	if err := base().Validate(); err != nil {
		t.Errorf("the base mapping: %v", err)
	}
}

// TestOrderLines: a line-item export (BigCommerce's or an order-export
// plugin's) repeats the order's date, status and total on each line. Read
// line by line, an order of three lines would be three purchases and three
// times its total; under order, its first good line is the purchase.
func TestOrderLines(t *testing.T) {
	const m = "header: true\ncustomer: Customer\ntime: {column: Date, layout: \"2006-01-02\"}\n" +
		"kind: {column: Status, values: {completed: purchase}, ignore: [refunded]}\namount: Order Total\norder: Order ID\n"
	const in = "Order ID,Date,Customer,Status,Order Total,SKU\n" +
		"1001,2024-01-02,a,completed,30.00,X\n" +
		"1001,2024-01-02,a,completed,30.00,Y\n" +
		"1002,2024-01-03,b,refunded,12.00,X\n" +
		"1002,2024-01-03,b,refunded,12.00,Z\n" +
		"1003,2024-01-04,a,completed,5.00,X\n" +
		"1001,2024-01-02,a,completed,30.00,Z\n" + // the order again, further down
		"1004,2024-01-05,c,completed,7.00,X\n" +
		"1004,2024-01-05,d,completed,7.00,Y\n" + // another customer: bad
		",2024-01-06,e,completed,9.00,X\n" + // no order id: its own purchase
		"1005,06.01.2024,f,completed,4.00,X\n" + // a bad first line claims nothing
		"1005,2024-01-07,f,completed,4.00,Y\n"
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: mustMapping(t, m), OnError: Skip, MaxInvalidShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Customer+" "+strconv.FormatFloat(ev.Amount, 'f', 2, 64))
	}
	if want := "a 30.00, a 5.00, c 7.00, e 9.00, f 4.00"; strings.Join(got, ", ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, ", "), want)
	}
	if rep.Skipped[ReasonOrderLine] != 2 || rep.Skipped[ReasonIgnoredKind] != 2 || rep.Invalid != 2 || rep.Skipped[ReasonOrderCustomer] != 1 {
		t.Errorf("got skipped %v, %d invalid; want 2 further order lines, 2 ignored, 1 order of two customers, 2 invalid", rep.Skipped, rep.Invalid)
	}
	if len(rep.Errors) < 1 || rep.Errors[0].Line != 9 || rep.Errors[0].Column != 1 || !strings.Contains(rep.Errors[0].Error(), `order "1004" has a line of customer "d", and its first line is customer "c"`) {
		t.Errorf("got errors %v, want line 9, column 1 naming the order and both customers", rep.Errors)
	}
	// The same lines as JSON Lines group alike; a stream message cannot.
	js := "{\"o\":\"1\",\"c\":\"a\",\"t\":1}\n{\"o\":\"1\",\"c\":\"a\",\"t\":1}\n{\"o\":\"2\",\"c\":\"a\",\"t\":2}\n"
	jm := mustMapping(t, "header: true\ncustomer: c\ntime: {column: t, layout: unix}\nkind: {constant: purchase}\norder: o\n")
	if evs, _, err := readString(t, js, Options{Format: CSV, Mapping: jm}); err != nil || len(evs) != 2 {
		t.Errorf("JSON Lines: got %d events, %v; want 2", len(evs), err)
	}
	if _, err := NewMessageDecoder(jm, MessageJSON, nil); err == nil || !strings.Contains(err.Error(), "a stream message is one event") {
		t.Errorf("got %v, want the stream decoder to refuse order", err)
	}
}
