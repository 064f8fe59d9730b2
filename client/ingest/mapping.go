package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/model"
)

// Column names a column of a delimited file by header name or by 1-based
// index; exactly one of the two is set in a used column, neither in an absent
// optional one.
type Column struct {
	Name  string
	Index int
}

// IsZero reports whether c names no column.
func (c Column) IsZero() bool { return c.Name == "" && c.Index == 0 }

func (c Column) String() string {
	if c.Name != "" {
		return strconv.Quote(c.Name)
	}
	return "#" + strconv.Itoa(c.Index)
}

// ParseColumn reads a column reference from a flag: a string of digits is a
// 1-based index, anything else a header name.
func ParseColumn(s string) Column {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return Column{Index: n}
	}
	return Column{Name: s}
}

// Time layouts with special meaning in Mapping.TimeLayout.
const (
	LayoutUnix   = "unix"    // integer seconds since the epoch
	LayoutUnixMs = "unix_ms" // integer milliseconds since the epoch
	// LayoutExcel is an Excel serial date: days since 1899-12-30 in the
	// mapping's zone, the fraction the time of day ("40513.35" is
	// 2010-12-01 08:24).
	LayoutExcel = "excel"
	// LayoutDays is a day number: days since Mapping.TimeEpoch, one date
	// for every customer (dunnhumby's DAY, 1 … 711), the fraction the time
	// of day. It is not a count of days since a customer's previous order,
	// which holds no date (docs/operations.md, "Logs with relative days
	// only").
	LayoutDays = "days"
)

// Encodings a mapping's encoding key names. A single-byte encoding is
// transcoded to UTF-8 line by line before the line is split.
const (
	EncodingUTF8        = "utf-8"
	EncodingWindows1252 = "windows-1252"
	EncodingLatin1      = "latin-1"
)

// Mapping describes a generic delimited event file for Format CSV.
type Mapping struct {
	Header    bool // the first line names the columns
	Delimiter byte // ',' when zero
	// Decimal is the amount column's decimal separator: '.' when zero, or
	// ',' for exports written with a decimal comma ("1.234,5"), where a dot
	// may only separate groups of three digits.
	Decimal byte
	// Thousands is the separator between groups of three digits in the
	// amount and quantity columns: 0 for none, or ',', '.', ' ' or '\''
	// (which also takes the no-break spaces U+00A0 and U+202F). It must
	// differ from the decimal mark; with Decimal ',' and Thousands 0, a dot
	// separates thousands ("1.234,5").
	Thousands byte
	Customer  Column
	Time      Column
	// TimeLayout is LayoutUnix, LayoutUnixMs or a Go time layout
	// ("2006-01-02 15:04:05"). A layout without a zone offset is read in
	// TimeZone, or Options.Location when TimeZone is nil.
	TimeLayout string
	TimeZone   *time.Location
	// TimeEpoch is day 0 of a LayoutDays column, a date (its midnight in
	// the zone); zero for every other layout.
	TimeEpoch time.Time
	// Kind is the column holding the event kind, mapped through KindValues
	// (raw value → Kind), or through the canonical names (view, cart, favorite,
	// purchase) when KindValues is nil. When Kind is absent every row has
	// ConstKind.
	Kind       Column
	KindValues map[string]model.Kind
	// IgnoreKinds are values of the kind column that are not events (a
	// refund, a page the shop does not count): their rows are counted under
	// ReasonIgnoredKind and dropped, never an error. Any other value that
	// KindValues does not map is a bad row (ReasonUnknownKind).
	IgnoreKinds []string
	ConstKind   model.Kind
	// Optional columns.
	Amount, Item, Category Column
	// Quantity, when set, multiplies Amount (a unit price) per row; a
	// negative quantity (a return) makes a negative amount.
	Quantity Column
	// IgnoreNegative drops rows whose amount is below zero (returns and
	// refunds in an order-line export) as excluded rows counted under
	// ReasonIgnoredNegative; otherwise such a row is bad input
	// (ReasonNegativeAmount).
	IgnoreNegative bool
	// IgnoreMissingCustomer drops rows with an empty customer (guest
	// checkouts) as excluded rows counted under ReasonMissingCustomer;
	// otherwise such a row is bad input.
	IgnoreMissingCustomer bool
	// Customer id normalization, applied in this order: TrimCustomer drops
	// blanks around the id, IntegerCustomer reads an integer written as a
	// float ("17850.0") as the integer ("17850"), LowerCustomer lowercases
	// it (e-mail addresses). Without Trim or Integer, an id in the form
	// they would change is bad input (ReasonBadCustomer): it would
	// otherwise be a second customer.
	TrimCustomer, IntegerCustomer, LowerCustomer bool
	// Cancelled, when set, is a column whose non-empty value marks a
	// cancelled order ("Cancelled at"): the row is excluded, counted under
	// ReasonCancellation.
	Cancelled Column
	// Currency, when set, is the amount's currency column; the amount is
	// multiplied by CurrencyRates[currency] (into one currency of the
	// user's choice), and a currency without a rate is bad input
	// (ReasonUnknownCurrency).
	Currency      Column
	CurrencyRates map[string]float64
	// TimeOfDay, when set, is a column holding the time of day apart from
	// the date in Time; the two fields are joined by a space and read with
	// TimeLayout.
	TimeOfDay Column
	// Encoding is the file's character encoding: "" or EncodingUTF8,
	// EncodingWindows1252 or EncodingLatin1.
	Encoding string
	// CurrencySymbols are currency symbols or codes ("$", "€", "USD") that
	// an amount may carry before or after its number, with blanks between
	// (amountfmt.go); an amount with another is bad input. Longest first.
	CurrencySymbols []string
	// AccountingNegatives reads an amount in parentheses ("(12.00)") or
	// with a trailing minus ("12.00-", SAP) as negative, and a dash alone
	// as zero, as accounting formats display them.
	AccountingNegatives bool
	// AmountUnit is "" (the amount is in currency units), AmountUnitCents
	// or AmountUnitMinor: the amount, after quantity, is divided by 100 or
	// by the minor units of the row's currency.
	AmountUnit string
	// MissingCustomerValues are customer ids, compared after normalization,
	// that mean "no customer" in this export ("0" for WooCommerce's guest
	// orders, "Guest"): such a row is a missing customer, like an empty id.
	MissingCustomerValues []string
	// Order, when set, is an order id column of a line-item export that
	// repeats the order's fields (time, total, status) on every line: the
	// first good line of each order is its purchase, and later lines of the
	// same order are excluded, counted under ReasonOrderLine; a line whose
	// customer differs from the first line's is bad input
	// (ReasonOrderCustomer). A row with an empty order id stands alone.
	Order Column
	// PlusTagCustomer drops a "+tag" from the local part of an e-mail id
	// ("anna+shop@example.com" is "anna@example.com"), after the other
	// normalization rules.
	PlusTagCustomer bool
	// Sheet names the sheet of an .xlsx workbook to read; empty for the
	// first. Text and Parquet files ignore it.
	Sheet string
}

// namedColumn is a mapped column and its key, for checks and messages.
type namedColumn struct {
	what string
	col  *Column
}

// columns lists every column key of m, used or not, in the order of the
// mapping's layout.
func (m *Mapping) columns() []namedColumn {
	return []namedColumn{{"customer", &m.Customer}, {"time", &m.Time}, {"time_of_day", &m.TimeOfDay}, {"kind", &m.Kind},
		{"amount", &m.Amount}, {"quantity", &m.Quantity}, {"currency", &m.Currency}, {"item", &m.Item}, {"category", &m.Category},
		{"cancelled", &m.Cancelled}, {"order", &m.Order}}
}

// Validate checks that m describes a readable file.
func (m *Mapping) Validate() error {
	if m.Customer.IsZero() {
		return errors.New("mapping: customer column is required")
	}
	if m.Time.IsZero() {
		return errors.New("mapping: time column is required")
	}
	if m.TimeLayout == "" {
		return errors.New("mapping: time layout is required")
	}
	if m.Kind.IsZero() == (m.ConstKind == 0) {
		return errors.New("mapping: give exactly one of a kind column and a constant kind")
	}
	if m.ConstKind != 0 && (m.ConstKind < model.View || m.ConstKind > model.Purchase) {
		return fmt.Errorf("mapping: constant kind %v is not a known kind", m.ConstKind)
	}
	if !m.Quantity.IsZero() && m.Amount.IsZero() {
		return errors.New("mapping: quantity needs an amount column (the unit price it multiplies)")
	}
	if m.IgnoreNegative && m.Amount.IsZero() {
		return errors.New("mapping: negative_amount needs an amount column")
	}
	if !m.Currency.IsZero() && m.Amount.IsZero() {
		return errors.New("mapping: currency needs an amount column")
	}
	if !m.Currency.IsZero() && len(m.CurrencyRates) == 0 {
		return errors.New("mapping: currency needs rates, like currency: {column: Currency, rates: {EUR: 1, USD: 0.92}}")
	}
	for c, r := range m.CurrencyRates {
		if !(r > 0 && r <= model.MaxAmount) {
			return fmt.Errorf("mapping: currency rate %s: %v is not a positive number", c, r)
		}
	}
	if err := m.validateAmountFormat(); err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	if (m.TimeLayout == LayoutDays) != !m.TimeEpoch.IsZero() {
		return fmt.Errorf("mapping: a time epoch goes with layout %s and only with it (layout %q)", LayoutDays, m.TimeLayout)
	}
	if !m.TimeOfDay.IsZero() && (m.TimeLayout == LayoutUnix || m.TimeLayout == LayoutUnixMs || m.TimeLayout == LayoutExcel || m.TimeLayout == LayoutDays) {
		return fmt.Errorf("mapping: time_of_day needs a date and time layout like \"2006-01-02 15:04:05\" for the two fields joined by a space, not %s", m.TimeLayout)
	}
	switch m.Encoding {
	case "", EncodingUTF8, EncodingWindows1252, EncodingLatin1:
	default:
		return fmt.Errorf("mapping: encoding %q must be %s", m.Encoding, encodingChoices)
	}
	if len(m.IgnoreKinds) > 0 && m.Kind.IsZero() {
		return errors.New("mapping: ignored kind values need a kind column")
	}
	for _, v := range m.IgnoreKinds {
		if _, mapped := m.KindValues[v]; mapped {
			return fmt.Errorf("mapping: kind value %q is both mapped and ignored", v)
		}
		if _, ok := canonicalKind([]byte(v)); ok && m.KindValues == nil {
			return fmt.Errorf("mapping: kind value %q is a canonical kind and cannot be ignored without a value map", v)
		}
	}
	for raw, k := range m.KindValues {
		if k < model.View || k > model.Purchase {
			return fmt.Errorf("mapping: kind value %q maps to unknown kind %v", raw, k)
		}
	}
	if m.Decimal != 0 && m.Decimal != '.' && m.Decimal != ',' {
		return fmt.Errorf("mapping: decimal %q must be \".\" or \",\"", m.Decimal)
	}
	if err := checkThousands(m.Thousands, m.Decimal); err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	switch m.Delimiter {
	case '"', '\n', '\r':
		return fmt.Errorf("mapping: delimiter %q is not allowed", m.Delimiter)
	}
	for _, c := range m.columns() {
		if c.col.Name != "" && c.col.Index != 0 {
			return fmt.Errorf("mapping: %s column has both a name and an index", c.what)
		}
		if c.col.Index < 0 {
			return fmt.Errorf("mapping: %s column index %d is not 1-based", c.what, c.col.Index)
		}
		if c.col.Name != "" && !m.Header {
			return fmt.Errorf("mapping: %s column is named %q but the file has no header (header: false); use a 1-based index, or header: true (the default when a column is named; JSON Lines' keys are its header)", c.what, c.col.Name)
		}
	}
	return nil
}

// rawMapping is the YAML form as nodes, nil where a key is absent; the nodes
// keep line numbers for errors that point into the file.
type rawMapping struct {
	Header, Delimiter, Decimal, Customer *yaml.Node
	Thousands                            *yaml.Node
	TimeColumn, TimeLayout, TimeZone     *yaml.Node
	TimeEpoch                            *yaml.Node
	KindColumn, KindValues, KindIgnore   *yaml.Node
	KindConstant                         *yaml.Node
	Amount, Item, Category               *yaml.Node
	NegativeAmount, Quantity             *yaml.Node
	MissingCustomer, CustomerNormalize   *yaml.Node
	Cancelled, Encoding, TimeOfDay       *yaml.Node
	CurrencyColumn, CurrencyRates        *yaml.Node
	CurrencySymbol, AccountingNegatives  *yaml.Node
	AmountUnit, MissingCustomerValues    *yaml.Node
	Order, Sheet                         *yaml.Node
	// Time, Kind and Currency are the maps holding the Time…, Kind… and
	// Currency… keys.
	Time, Kind, Currency *yaml.Node
}

// LoadMapping reads a mapping YAML file; see ParseMapping.
func LoadMapping(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load mapping: %w", err)
	}
	defer f.Close()
	return ParseMapping(f, path)
}

// ParseMapping reads a mapping from YAML, strictly: unknown keys, wrong types
// and invalid values are errors that name the key, the value and the line, in
// the file's terms. The same mapping reads a JSON Lines export, whose keys
// are the column names (header: true). The layout:
//
//	header: true            # default true when a column is named, else false
//	delimiter: ","          # default ","; "\t" for TSV
//	encoding: windows-1252  # optional: utf-8 (default), windows-1252 or latin-1
//	decimal: ","            # the amount's decimal separator: "." (default) or "," ("1.234,5")
//	thousands: " "          # optional: between groups of three digits: ",", ".", " " or "'" ("1 234,5")
//	customer: user          # header name, or a 1-based index like 1
//	customer_normalize: [trim, integer, lower, plus_tag]  # optional: "a@b.com " = "A@b.com"; "17850.0" = "17850"; "a+x@b.com" = "a@b.com"
//	missing_customer: ignore  # rows without a customer (guests) are dropped and counted; default error
//	missing_customer_values: ["0", Guest]  # optional: ids that mean no customer in this export
//	time:
//	  column: ts
//	  time_of_day: clock    # optional: a second column with the time of day, joined to column by a space
//	  layout: unix          # unix, unix_ms, excel, days or a Go layout like "2006-01-02 15:04:05"
//	  epoch: 2020-01-01     # with layout days only: the date of day 0
//	  zone: Europe/Berlin   # for layouts without an offset; default Options.Location
//	kind:                   # either a column with an optional value map ...
//	  column: event
//	  values: {pv: view, cart: cart, fav: favorite, buy: purchase}
//	  ignore: [refund]      # values that are not events: counted and dropped
//	# kind: {constant: purchase}   # ... or one kind for every row
//	amount: price           # optional
//	currency_symbol: "$"    # optional, or a list: a symbol or code before or after the amount ("$1,234.50", "12,50 €")
//	accounting_negatives: true  # optional: "(12.00)" and "12.00-" are -12.00
//	amount_unit: cents      # optional: amounts in hundredths (cents), or minor: in the row currency's minor unit
//	quantity: qty           # optional: amount is then a unit price, multiplied by this column
//	negative_amount: ignore # rows with amount < 0 (returns) are dropped and counted; default error
//	currency: {column: cur, rates: {EUR: 1, USD: 0.92}}  # optional: amount × rate; other currencies are bad rows
//	cancelled: cancelled_at # optional: rows with a value here are cancelled orders, dropped and counted
//	order: order_id         # optional: lines repeating their order's fields; the first line of each order is the purchase
//	item: sku               # optional
//	category: cat           # optional
//	sheet: Orders           # optional: the sheet of an .xlsx workbook; default its first sheet
func ParseMapping(r io.Reader, name string) (*Mapping, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse mapping %s: empty document", name)
		}
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	raw, err := readRaw(&doc)
	if err != nil {
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	m, err := raw.mapping()
	if err != nil {
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	return m, nil
}

// readRaw walks the document by hand rather than decoding into a struct, so
// that a wrong shape is reported with the key the user wrote ("kind must be a
// map ...") instead of the Go type the decoder could not fill.
func readRaw(doc *yaml.Node) (*rawMapping, error) {
	root := deref(doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, nodeErr(root, "a mapping is a map of keys (%s), not %s", strings.Join(topKeys, ", "), describe(root))
	}
	raw := &rawMapping{}
	err := keys(root, "", map[string]**yaml.Node{
		"header": &raw.Header, "delimiter": &raw.Delimiter, "decimal": &raw.Decimal, "thousands": &raw.Thousands, "customer": &raw.Customer, "time": &raw.Time,
		"kind": &raw.Kind, "amount": &raw.Amount, "item": &raw.Item, "category": &raw.Category,
		"negative_amount": &raw.NegativeAmount, "quantity": &raw.Quantity, "missing_customer": &raw.MissingCustomer,
		"customer_normalize": &raw.CustomerNormalize, "cancelled": &raw.Cancelled, "encoding": &raw.Encoding, "currency": &raw.Currency,
		"currency_symbol": &raw.CurrencySymbol, "accounting_negatives": &raw.AccountingNegatives, "amount_unit": &raw.AmountUnit,
		"missing_customer_values": &raw.MissingCustomerValues, "order": &raw.Order, "sheet": &raw.Sheet,
	}, topKeys)
	if err != nil {
		return nil, err
	}
	if n := raw.Time; n != nil {
		if n.Kind != yaml.MappingNode {
			return nil, nodeErr(n, "time must be a map with a column and a layout, like time: {column: ts, layout: unix}; got %s", describe(n))
		}
		if err := keys(n, "time", map[string]**yaml.Node{"column": &raw.TimeColumn, "time_of_day": &raw.TimeOfDay, "layout": &raw.TimeLayout, "zone": &raw.TimeZone, "epoch": &raw.TimeEpoch},
			[]string{"column", "time_of_day", "layout", "zone", "epoch"}); err != nil {
			return nil, err
		}
	}
	if n := raw.Currency; n != nil {
		if n.Kind != yaml.MappingNode {
			return nil, nodeErr(n, "currency must be a map with a column and rates, like currency: {column: Currency, rates: {EUR: 1, USD: 0.92}}; got %s", describe(n))
		}
		if err := keys(n, "currency", map[string]**yaml.Node{"column": &raw.CurrencyColumn, "rates": &raw.CurrencyRates},
			[]string{"column", "rates"}); err != nil {
			return nil, err
		}
	}
	if n := raw.Kind; n != nil {
		if n.Kind != yaml.MappingNode {
			hint := "kind: {column: event, values: {buy: purchase}} or kind: {constant: purchase}"
			if _, err := model.ParseKind(n.Value); err == nil && n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("kind: {constant: %s} for one kind on every row", n.Value)
			}
			return nil, nodeErr(n, "kind must be a map with a column (and optional values) or a constant, like %s; got %s", hint, describe(n))
		}
		if err := keys(n, "kind", map[string]**yaml.Node{"column": &raw.KindColumn, "values": &raw.KindValues, "ignore": &raw.KindIgnore,
			"constant": &raw.KindConstant}, []string{"column", "values", "ignore", "constant"}); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// topKeys are the keys of a mapping document, in the order of its layout.
var topKeys = []string{"header", "delimiter", "encoding", "decimal", "thousands", "customer", "customer_normalize", "missing_customer",
	"missing_customer_values", "time", "kind", "amount", "currency_symbol", "accounting_negatives", "amount_unit", "quantity", "currency",
	"item", "category", "negative_amount", "cancelled", "order", "sheet"}

// encodingChoices lists the encodings a mapping may name.
const encodingChoices = `utf-8, windows-1252 or latin-1`

// encodingNames maps the names a user writes for an encoding to its
// canonical name.
var encodingNames = map[string]string{
	"utf-8": EncodingUTF8, "utf8": EncodingUTF8,
	"windows-1252": EncodingWindows1252, "cp1252": EncodingWindows1252, "win-1252": EncodingWindows1252,
	"latin-1": EncodingLatin1, "latin1": EncodingLatin1, "iso-8859-1": EncodingLatin1, "iso8859-1": EncodingLatin1,
}

// keys stores the value node of every key of the map n into dst[key], and
// refuses a key that is not in dst or that is given twice. under names the
// enclosing key for messages ("" at the top); want lists the keys in the
// order they are documented.
func keys(n *yaml.Node, under string, dst map[string]**yaml.Node, want []string) error {
	where := ""
	if under != "" {
		where = " under " + under
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := deref(n.Content[i]), deref(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			return nodeErr(kn, "a key%s must be a word, not %s", where, describe(kn))
		}
		p, ok := dst[kn.Value]
		if !ok {
			return nodeErr(kn, "unknown key %q%s (want %s)", kn.Value, where, strings.Join(want, ", "))
		}
		if *p != nil {
			return nodeErr(kn, "key %q%s is given twice (first on line %d)", kn.Value, where, firstLine(n, kn.Value))
		}
		*p = vn
	}
	return nil
}

// firstLine is the line of the first key named key in the map n.
func firstLine(n *yaml.Node, key string) int {
	for i := 0; i < len(n.Content); i += 2 {
		if kn := deref(n.Content[i]); kn.Value == key {
			return kn.Line
		}
	}
	return 0
}

// deref follows an alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for range 16 {
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	return n
}

// describe names a node's value the way the user wrote it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "an empty document"
}

func nodeErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d, column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", nodeErr(n, "%s must be a single value, not %s", what, describe(n))
	}
	return n.Value, nil
}

func column(n *yaml.Node, what string, required bool) (Column, error) {
	if n == nil {
		if required {
			return Column{}, fmt.Errorf("%s column is required", what)
		}
		return Column{}, nil
	}
	if n.Kind != yaml.ScalarNode {
		return Column{}, nodeErr(n, "%s column must be a header name or a 1-based index, not %s", what, describe(n))
	}
	v := n.Value
	if n.ShortTag() == "!!int" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 {
			return Column{}, nodeErr(n, "%s column index %s is not a 1-based index", what, v)
		}
		return Column{Index: i}, nil
	}
	if n.ShortTag() != "!!str" || v == "" {
		return Column{}, nodeErr(n, "%s column must be a header name or a 1-based index", what)
	}
	return Column{Name: v}, nil
}

func (raw *rawMapping) mapping() (*Mapping, error) {
	m := &Mapping{Delimiter: ','}
	var err error
	if n := raw.Header; n != nil {
		if n.ShortTag() != "!!bool" {
			return nil, nodeErr(n, "header must be true or false, not %s", describe(n))
		}
		m.Header = n.Value == "true"
	}
	if n := raw.Delimiter; n != nil {
		d, err := scalar(n, "delimiter")
		if err != nil {
			return nil, err
		}
		if len(d) != 1 || d[0] >= 0x80 {
			return nil, nodeErr(n, "delimiter %q must be one ASCII character", d)
		}
		m.Delimiter = d[0]
	}
	if n := raw.Decimal; n != nil {
		d, err := scalar(n, "decimal")
		if err != nil {
			return nil, err
		}
		if d != "." && d != "," {
			return nil, nodeErr(n, "decimal %q must be \".\" or \",\"", d)
		}
		m.Decimal = d[0]
	}
	if n := raw.Thousands; n != nil {
		t, err := scalar(n, "thousands")
		if err != nil {
			return nil, err
		}
		if len(t) != 1 {
			return nil, nodeErr(n, "thousands %q must be %s", t, thousandsChoices) // a string, not one mark
		}
		// Checked here as well as in Validate, to name the line.
		if err := checkThousands(t[0], m.Decimal); err != nil {
			return nil, nodeErr(n, "%v", err)
		}
		m.Thousands = t[0]
	}
	if n := raw.Encoding; n != nil {
		e, err := scalar(n, "encoding")
		if err != nil {
			return nil, err
		}
		if m.Encoding = encodingNames[strings.ToLower(e)]; m.Encoding == "" {
			return nil, nodeErr(n, "encoding %q must be %s (a file from Windows or Excel is usually windows-1252)", e, encodingChoices)
		}
	}
	if m.Customer, err = column(raw.Customer, "customer", true); err != nil {
		return nil, err
	}
	if err := raw.customerRules(m); err != nil {
		return nil, err
	}
	if raw.Time == nil {
		return nil, errors.New("time is required, like time: {column: ts, layout: unix}")
	}
	if m.Time, err = column(raw.TimeColumn, "time", true); err != nil {
		return nil, err
	}
	if m.TimeOfDay, err = column(raw.TimeOfDay, "time_of_day", false); err != nil {
		return nil, err
	}
	if raw.TimeLayout == nil {
		return nil, nodeErr(raw.Time, "time layout is required (unix, unix_ms or a Go layout like \"2006-01-02 15:04:05\")")
	}
	if m.TimeLayout, err = scalar(raw.TimeLayout, "time layout"); err != nil {
		return nil, err
	}
	if m.TimeLayout == "" {
		return nil, nodeErr(raw.TimeLayout, "time layout is empty")
	}
	if err := foreignLayout(m.TimeLayout); err != nil {
		return nil, nodeErr(raw.TimeLayout, "%v", err)
	}
	if err := relativeLayout(m.TimeLayout); err != nil {
		return nil, nodeErr(raw.TimeLayout, "%v", err)
	}
	if err := raw.epoch(m); err != nil {
		return nil, err
	}
	if n := raw.TimeZone; n != nil {
		z, err := scalar(n, "time zone")
		if err != nil {
			return nil, err
		}
		if m.TimeZone, err = time.LoadLocation(z); err != nil || z == "" || strings.HasPrefix(z, "/") {
			return nil, nodeErr(n, "unknown time zone %q", z)
		}
	}
	if raw.Kind == nil {
		return nil, errors.New("kind is required: kind: {constant: purchase} when every row is an order, or kind: {column: NAME, values: {...}} naming which values are purchases (and views, carts, favorites)")
	}
	if m.Kind, err = column(raw.KindColumn, "kind", false); err != nil {
		return nil, err
	}
	if n := raw.KindConstant; n != nil {
		c, err := scalar(n, "kind constant")
		if err != nil {
			return nil, err
		}
		if m.ConstKind, err = model.ParseKind(c); err != nil {
			return nil, nodeErr(n, "kind constant: %v", err)
		}
		if !m.Kind.IsZero() {
			return nil, nodeErr(n, "give either a kind column or a constant kind, not both")
		}
	} else if m.Kind.IsZero() {
		return nil, nodeErr(raw.Kind, "kind needs a column or a constant")
	}
	if v := raw.KindValues; v != nil {
		if v.Kind != yaml.MappingNode {
			return nil, nodeErr(v, "kind values must be a map from file value to kind, like {buy: purchase}, not %s", describe(v))
		}
		if m.Kind.IsZero() {
			return nil, nodeErr(v, "kind values need a kind column")
		}
		m.KindValues = make(map[string]model.Kind, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			kn, vn := deref(v.Content[i]), deref(v.Content[i+1])
			key, err := scalar(kn, "a file value under kind values")
			if err != nil {
				return nil, err
			}
			val, err := scalar(vn, fmt.Sprintf("kind value %s", key))
			if err != nil {
				return nil, err
			}
			k, err := model.ParseKind(val)
			if err != nil {
				return nil, nodeErr(vn, "kind value %s: %v", key, err)
			}
			if _, dup := m.KindValues[key]; dup {
				return nil, nodeErr(kn, "kind value %q given twice", key)
			}
			m.KindValues[key] = k
		}
	}
	if v := raw.KindIgnore; v != nil {
		if v.Kind != yaml.SequenceNode {
			return nil, nodeErr(v, "kind ignore must be a list of file values, like [refund, view_promo], not %s", describe(v))
		}
		if m.Kind.IsZero() {
			return nil, nodeErr(v, "kind ignore needs a kind column")
		}
		for _, n := range v.Content {
			n = deref(n)
			val, err := scalar(n, "a value under kind ignore")
			if err != nil {
				return nil, err
			}
			if _, mapped := m.KindValues[val]; mapped {
				return nil, nodeErr(n, "kind value %q is both mapped under values and ignored", val)
			}
			if slices.Contains(m.IgnoreKinds, val) {
				return nil, nodeErr(n, "kind value %q ignored twice", val)
			}
			m.IgnoreKinds = append(m.IgnoreKinds, val)
		}
	}
	if m.Amount, err = column(raw.Amount, "amount", false); err != nil {
		return nil, err
	}
	if n := raw.NegativeAmount; n != nil {
		v, _ := scalar(n, "negative_amount")
		if v != "error" && v != "ignore" {
			return nil, nodeErr(n, "negative_amount must be \"error\" or \"ignore\" (rows with an amount below zero, such as returns), not %s", describe(n))
		}
		m.IgnoreNegative = v == "ignore"
	}
	if m.Quantity, err = column(raw.Quantity, "quantity", false); err != nil {
		return nil, err
	}
	if m.Cancelled, err = column(raw.Cancelled, "cancelled", false); err != nil {
		return nil, err
	}
	if m.Order, err = column(raw.Order, "order", false); err != nil {
		return nil, err
	}
	if n := raw.Sheet; n != nil {
		if m.Sheet, err = scalar(n, "sheet"); err != nil {
			return nil, err
		}
		if m.Sheet == "" {
			return nil, nodeErr(n, "sheet is empty: name a sheet of the workbook, or leave the key out for the first sheet")
		}
	}
	if err := raw.currency(m); err != nil {
		return nil, err
	}
	if err := raw.amountFormat(m); err != nil {
		return nil, err
	}
	if m.Item, err = column(raw.Item, "item", false); err != nil {
		return nil, err
	}
	if m.Category, err = column(raw.Category, "category", false); err != nil {
		return nil, err
	}
	if raw.Header == nil {
		// A column can be found by its name only in a header line: a mapping
		// that names one says the file has one (a JSON Lines file's keys
		// are its header). header: false with a named column stays an error.
		for _, c := range m.columns() {
			if c.col.Name != "" {
				m.Header = true
				break
			}
		}
	}
	return m, nil
}

// thousandsChoices lists the thousands separators a mapping may name.
const thousandsChoices = `",", ".", " " or "'"`

// checkThousands checks a thousands separator (0 for none) against the
// decimal mark (0 for a point): a mark that is both would make "1,234"
// mean two numbers.
func checkThousands(thousands, decimal byte) error {
	if thousands == 0 {
		return nil
	}
	if !slices.Contains(thousandsMarks, thousands) {
		return fmt.Errorf("thousands %s must be %s", quoteMark(thousands), thousandsChoices)
	}
	switch {
	case thousands == '.' && decimal == 0:
		return errors.New(`thousands "." is the decimal mark too (with a decimal comma, set decimal: ",")`)
	case thousands == decimal:
		return fmt.Errorf("thousands %s is the decimal mark too", quoteMark(thousands))
	}
	return nil
}

// strftimeToGo translates the strftime directives a data team writes into Go
// layout elements.
var strftimeToGo = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
	'p': "PM", 'z': "-0700", 'Z': "MST", 'b': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'j': "002",
	'f': "000000", 'F': "2006-01-02", 'T': "15:04:05", '%': "%",
}

// standardLayouts are names users give a layout instead of writing it.
var standardLayouts = map[string]string{"rfc3339": time.RFC3339, "iso8601": time.RFC3339, "iso": time.RFC3339, "iso-8601": time.RFC3339}

// foreignLayout refuses a time layout that is a strftime pattern or a
// standard's name: no row would parse with it, and the rows' errors would
// not say the layout is the cause. It suggests the Go layout when it can.
func foreignLayout(layout string) error {
	if goLayout, ok := standardLayouts[strings.ToLower(layout)]; ok {
		return fmt.Errorf("time layout %q names a format; write it as the Go layout %q", layout, goLayout)
	}
	var b strings.Builder
	strftime, known := false, true
	for i := 0; i < len(layout); i++ {
		c := layout[i]
		if c != '%' || i+1 == len(layout) || !isASCIILetter(layout[i+1]) && layout[i+1] != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		strftime = strftime || layout[i] != '%'
		g, ok := strftimeToGo[layout[i]]
		known = known && ok
		b.WriteString(g)
	}
	if !strftime {
		return nil
	}
	const what = "time layout %q is a strftime pattern; a mapping takes a Go layout, the reference time Mon Jan 2 15:04:05 -0700 2006 written as the file writes it"
	if !known {
		return fmt.Errorf(what+" (see docs/operations.md)", layout)
	}
	return fmt.Errorf(what+": %q", layout, b.String())
}

// relativeLayout refuses a Go layout without a digit: it holds no year,
// month or day element (2006, 06, 01, 1, 02, 2, …), so no field could give
// a date. A user who reaches for one often has a log of relative days
// (Instacart's days_since_prior_order), which holds no dates at all: each
// customer's history would have to be placed in time by an assumption, and
// the recency every prediction starts from would be that assumption.
func relativeLayout(layout string) error {
	switch layout {
	case LayoutUnix, LayoutUnixMs, LayoutExcel, LayoutDays:
		return nil
	}
	if strings.ContainsAny(layout, "0123456789") {
		return nil
	}
	return fmt.Errorf("time layout %q holds no date element (a Go layout writes the year as 2006, the month as 01 or Jan, the day as 02, like \"2006-01-02\"); "+
		"a column of days since the previous order is not a time: Kairos needs each order's date (docs/operations.md, \"Logs with relative days only\")", layout)
}

// epoch reads the time's epoch, which layout days needs and no other
// layout takes.
func (raw *rawMapping) epoch(m *Mapping) error {
	n := raw.TimeEpoch
	if n == nil {
		if m.TimeLayout == LayoutDays {
			return nodeErr(raw.TimeLayout, "layout %s counts days from one date shared by every customer (a day number, like dunnhumby's DAY): "+
				"give the date of day 0 as epoch: 2006-01-02 beside it (any date will do when the real one is unknown; the weekdays then shift); "+
				"a column of days since each customer's previous order is not a day number (docs/operations.md, \"Logs with relative days only\")", LayoutDays)
		}
		return nil
	}
	if m.TimeLayout != LayoutDays {
		return nodeErr(n, "epoch is the date of day 0 of layout %s, and the layout is %q", LayoutDays, m.TimeLayout)
	}
	v, err := scalar(n, "time epoch")
	if err != nil {
		return err
	}
	e, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return nodeErr(n, "epoch must be a date written 2006-01-02, not %q", v)
	}
	m.TimeEpoch = e
	return nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// customerRules reads customer_normalize and missing_customer.
func (raw *rawMapping) customerRules(m *Mapping) error {
	if n := raw.MissingCustomer; n != nil {
		v, _ := scalar(n, "missing_customer")
		if v != "error" && v != "ignore" {
			return nodeErr(n, "missing_customer must be \"error\" or \"ignore\" (rows without a customer, such as guest checkouts), not %s", describe(n))
		}
		m.IgnoreMissingCustomer = v == "ignore"
	}
	if err := raw.missingValues(m); err != nil {
		return err
	}
	n := raw.CustomerNormalize
	if n == nil {
		return nil
	}
	const want = "customer_normalize must be a list of trim, integer, lower and plus_tag, like customer_normalize: [trim, lower]"
	if n.Kind != yaml.SequenceNode {
		return nodeErr(n, "%s; got %s", want, describe(n))
	}
	for _, e := range n.Content {
		e = deref(e)
		v, err := scalar(e, "a rule under customer_normalize")
		if err != nil {
			return err
		}
		var rule *bool
		switch v {
		case "trim":
			rule = &m.TrimCustomer
		case "integer":
			rule = &m.IntegerCustomer
		case "lower":
			rule = &m.LowerCustomer
		case "plus_tag":
			rule = &m.PlusTagCustomer
		default:
			return nodeErr(e, "%s; got %q", want, v)
		}
		if *rule {
			return nodeErr(e, "customer_normalize rule %q is given twice", v)
		}
		*rule = true
	}
	return nil
}

// currency reads the currency map: its column and its rates.
func (raw *rawMapping) currency(m *Mapping) error {
	if raw.Currency == nil {
		return nil
	}
	var err error
	if m.Currency, err = column(raw.CurrencyColumn, "currency", true); err != nil {
		return nodeErr(raw.Currency, "%v", err)
	}
	v := raw.CurrencyRates
	if v == nil {
		return nodeErr(raw.Currency, "currency needs rates into one currency, like rates: {EUR: 1, USD: 0.92}: amounts in different currencies cannot be added")
	}
	if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
		return nodeErr(v, "currency rates must be a map from currency code to rate, like {EUR: 1, USD: 0.92}, not %s", describe(v))
	}
	m.CurrencyRates = make(map[string]float64, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		kn, vn := deref(v.Content[i]), deref(v.Content[i+1])
		code, err := scalar(kn, "a currency under currency rates")
		if err != nil {
			return err
		}
		rs, err := scalar(vn, "currency rate "+code)
		if err != nil {
			return err
		}
		r, err := strconv.ParseFloat(rs, 64)
		if err != nil || !(r > 0 && r <= model.MaxAmount) {
			return nodeErr(vn, "currency rate %s: %q is not a positive number", code, rs)
		}
		if _, dup := m.CurrencyRates[code]; dup {
			return nodeErr(kn, "currency %q given twice under rates", code)
		}
		m.CurrencyRates[code] = r
	}
	return nil
}

// missingValues reads missing_customer_values: the ids an export writes
// for "no customer" beyond the usual markers.
func (raw *rawMapping) missingValues(m *Mapping) error {
	n := raw.MissingCustomerValues
	if n == nil {
		return nil
	}
	const want = `missing_customer_values must be a list of the customer ids that mean "no customer" in this export, like missing_customer_values: ["0", Guest]`
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nodeErr(n, "%s; got %s", want, describe(n))
	}
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || e.Value == "" {
			return nodeErr(e, "%s; got %s", want, describe(e))
		}
		if slices.Contains(m.MissingCustomerValues, e.Value) {
			return nodeErr(e, "missing_customer_values: %q is given twice", e.Value)
		}
		m.MissingCustomerValues = append(m.MissingCustomerValues, e.Value)
	}
	return nil
}
