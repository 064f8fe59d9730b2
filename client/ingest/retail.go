package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// RetailLine is what an Online Retail line carries beyond its model.Event.
type RetailLine struct {
	Invoice   string
	Country   string
	Quantity  int
	UnitPrice float64
}

// ReadOnlineRetail reads the UCI Online Retail export (header
// InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country;
// quoted fields) and calls emit with each event and its line's invoice and
// country, so a caller can split merchants by country. opts.Format is ignored.
//
// What is emitted, and why:
//   - One purchase event per invoice line: Time = InvoiceDate in opts.Location
//     (the shop is in the UK: pass Europe/London for true instants; nil reads
//     the dates as UTC), Amount = Quantity·UnitPrice, Item = StockCode. The file
//     is not sorted by invoice, so lines cannot be merged into one purchase per
//     invoice without holding every open invoice in memory; all lines of an
//     invoice share customer and time, so feature code that counts purchases
//     should count distinct (customer, time) pairs, or pass InvoiceMerger.Add
//     as emit to get one purchase per basket at the cost of that memory.
//   - A line without a CustomerID (a quarter of the file: guest checkouts) is
//     expected data, not an error: the UCI sample writes it "NA", the complete
//     UCI export leaves the field empty. Either is counted under
//     ReasonMissingCustomer in Report.Skipped and never stops the read, even
//     under FailFast.
//   - A cancellation (InvoiceNo starting with "C", negative quantity) is not a
//     purchase: it is counted under ReasonCancellation and not emitted. The
//     original purchase stays in the history; the signal of interest is that
//     the customer bought, not the net spend.
//   - A non-cancellation line with a negative quantity or price is a bad row
//     (ReasonNegativeAmount).
func ReadOnlineRetail(ctx context.Context, r io.Reader, name string, opts Options, emit func(model.Event, RetailLine) error) (Report, error) {
	opts.Format = OnlineRetail
	if err := opts.validate(); err != nil {
		return Report{File: name}, fmt.Errorf("read %s: options: %w", name, err)
	}
	r, err := refuseContainer(r, name, opts.Format)
	if err != nil {
		return Report{File: name}, err
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	p := &retailParser{
		sp:        splitter{delim: ',', fields: make([][]byte, 0, 10)},
		loc:       loc,
		customers: newInterner(1 << 14),
		items:     newInterner(1 << 12),
		invoices:  newInterner(1 << 12),
		countries: newInterner(1 << 10),
	}
	return run(ctx, r, name, &opts, p, func(ev model.Event) error { return emit(ev, p.last) })
}

// retailHeader returns the Online Retail column names in file order.
func retailHeader() [8]string {
	return [8]string{"InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"}
}

type retailParser struct {
	sp                                    splitter
	loc                                   *time.Location
	customers, items, invoices, countries *interner
	last                                  RetailLine
}

func (p *retailParser) header() bool                    { return true }
func (p *retailParser) column(line []byte, off int) int { return p.sp.column(line, off) }

func (p *retailParser) parseHeader(line []byte) *RowError {
	f, col, err := p.sp.split(line)
	if err != nil {
		return &RowError{Column: col, Reason: ReasonBadQuote, Err: err}
	}
	want := retailHeader()
	if len(f) != len(want) {
		return &RowError{Column: min(len(f), len(want)) + 1, Reason: ReasonColumnCount,
			Err: fmt.Errorf("header has %d columns, want %d", len(f), len(want))}
	}
	for i, w := range want {
		if !bytes.Equal(f[i], []byte(w)) {
			return &RowError{Column: i + 1, Reason: ReasonColumnCount, Err: fmt.Errorf("header column %q, want %q", f[i], w)}
		}
	}
	return nil
}

func (p *retailParser) parse(line []byte) (model.Event, string, *RowError) {
	f, col, err := p.sp.split(line)
	if err != nil {
		return model.Event{}, "", &RowError{Column: col, Reason: ReasonBadQuote, Err: err}
	}
	if len(f) != 8 {
		return model.Event{}, "", &RowError{Column: min(len(f), 8) + 1, Reason: ReasonColumnCount,
			Err: fmt.Errorf("%d columns, want 8", len(f))}
	}
	invoice, stock, qtyB, dateB, priceB, cust, country := f[0], f[1], f[3], f[4], f[5], f[6], f[7]
	qty, ok := atoiSigned(qtyB)
	if !ok {
		return model.Event{}, "", &RowError{Column: 4, Reason: ReasonBadAmount, Err: fmt.Errorf("quantity %q is not an integer", qtyB)}
	}
	t, err := parseDateTime(dateB, p.loc)
	if err != nil {
		return model.Event{}, "", &RowError{Column: 5, Reason: ReasonBadTime, Err: err}
	}
	price, ok := parseDecimal(priceB)
	if !ok {
		price, err = strconv.ParseFloat(string(priceB), 64)
	}
	if err != nil || math.IsNaN(price) || math.IsInf(price, 0) {
		return model.Event{}, "", &RowError{Column: 6, Reason: ReasonBadAmount, Err: fmt.Errorf("unit price %q is not a finite number", priceB)}
	}
	if len(cust) == 0 || string(cust) == "NA" {
		return model.Event{}, ReasonMissingCustomer, nil
	}
	if len(invoice) > 0 && invoice[0] == 'C' {
		return model.Event{}, ReasonCancellation, nil
	}
	if qty < 0 {
		return model.Event{}, "", &RowError{Column: 4, Reason: ReasonNegativeAmount, Err: fmt.Errorf("quantity %d on invoice %q, which is not a cancellation", qty, invoice)}
	}
	if price < 0 {
		return model.Event{}, "", &RowError{Column: 6, Reason: ReasonNegativeAmount, Err: fmt.Errorf("unit price %q is negative", priceB)}
	}
	if price > model.MaxAmount {
		return model.Event{}, "", &RowError{Column: 6, Reason: ReasonBadAmount, Err: fmt.Errorf("unit price %q is above the maximum amount %g", priceB, float64(model.MaxAmount))}
	}
	// Both factors are at most 10^18 and 10^12, so the product is finite.
	amount := float64(qty) * price
	if amount > model.MaxAmount {
		return model.Event{}, "", &RowError{Column: 4, Reason: ReasonBadAmount,
			Err: fmt.Errorf("quantity %d × unit price %q = %g is above the maximum amount %g", qty, priceB, amount, float64(model.MaxAmount))}
	}
	ev := model.Event{Customer: p.customers.get(cust), Time: t, Kind: model.Purchase,
		Amount: amount, HasAmount: true, Item: p.items.get(stock)}
	p.last = RetailLine{Invoice: p.invoices.get(invoice), Country: p.countries.get(country), Quantity: int(qty), UnitPrice: price}
	return ev, "", nil
}
