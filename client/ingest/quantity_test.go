package ingest

import (
	"errors"
	"strings"
	"testing"
)

// TestQuantityColumn: an export with a unit price and a quantity per line,
// returns as negative quantities. The amount is price × quantity (7.50 for
// 3 × 2.50, worked by hand); a negative quantity makes a negative amount, so
// a return is dropped under negative_amount: ignore and a bad row otherwise —
// before, with no quantity key, mapping the price made every return a
// purchase.
func TestQuantityColumn(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: price\nquantity: qty\n"
	const in = "c,t,qty,price\na,2024-01-01,3,2.50\na,2024-01-02,-1,2.50\nb,2024-01-03,1,4\n"
	m, err := ParseMapping(strings.NewReader(mapping+"negative_amount: ignore\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Amount != 7.5 || evs[1].Amount != 4 {
		t.Fatalf("got %+v, want amounts 7.5 and 4", evs)
	}
	if rep.Skipped[ReasonIgnoredNegative] != 1 || rep.Invalid != 0 {
		t.Errorf("skipped %v, invalid %d; want the return ignored", rep.Skipped, rep.Invalid)
	}
	m, err = ParseMapping(strings.NewReader(mapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: m})
	var re *RowError
	if !errors.As(err, &re) || re.Reason != ReasonNegativeAmount || re.Line != 3 || re.Column != 3 || !strings.Contains(err.Error(), `quantity "-1"`) {
		t.Fatalf("got %v, want a negative amount for quantity \"-1\" at line 3, column 3", err)
	}
	_, _, err = readString(t, "c,t,qty,price\na,2024-01-01,x,2.50\n", Options{Format: CSV, Mapping: m})
	if !errors.As(err, &re) || re.Reason != ReasonBadAmount || re.Column != 3 {
		t.Errorf("got %v, want a bad quantity in column 3", err)
	}
	if _, err := ParseMapping(strings.NewReader("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\nquantity: 3\n"), "m.yaml"); err == nil ||
		!strings.Contains(err.Error(), "quantity needs an amount column") {
		t.Errorf("got %v, want quantity refused without an amount", err)
	}
}

// TestQuantityMessage: a stream message names its quantity by key like the
// other columns; 2 × 12.5 = 25, and a return is ignored like an ignored kind.
func TestQuantityMessage(t *testing.T) {
	m := jsonMapping()
	m.Quantity, m.IgnoreNegative = Column{Name: "qty"}, true
	d, err := NewMessageDecoder(m, MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := d.Decode([]byte(`{"customer":"c1","ts":"1700000000","type":"order","total":12.5,"qty":2}`))
	if err != nil || ev.Amount != 25 {
		t.Errorf("got %+v, %v; want amount 25", ev, err)
	}
	if _, err := d.Decode([]byte(`{"customer":"c1","ts":"1700000000","type":"order","total":12.5,"qty":-1}`)); !errors.Is(err, ErrIgnoredKind) {
		t.Errorf("return: got %v, want ErrIgnoredKind", err)
	}
}
