package ingest

import (
	"errors"
	"strings"
	"testing"
)

// TestNegativeAmountIgnore: an order-line export writes returns as lines with
// a negative amount. With negative_amount: ignore they are excluded rows
// (counted, not bad input, never events); without it they stay bad rows whose
// message says how to map them.
func TestNegativeAmountIgnore(t *testing.T) {
	const mapping = "header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: total\n"
	const in = "c,t,total\na,2024-01-01,10.50\na,2024-01-02,-10.50\nb,2024-01-03,4\nb,2024-01-03,-0\n"
	m, err := ParseMapping(strings.NewReader(mapping+"negative_amount: ignore\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	evs, rep, err := readString(t, in, Options{Format: CSV, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	// "-0" is not below zero: a purchase of amount 0, as "0" would be.
	want := []float64{10.5, 4, 0}
	if len(evs) != len(want) {
		t.Fatalf("got %d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if ev.Amount != want[i] {
			t.Errorf("event %d: amount %v, want %v", i, ev.Amount, want[i])
		}
	}
	if rep.Skipped[ReasonIgnoredNegative] != 1 || rep.Invalid != 0 {
		t.Errorf("skipped %v, invalid %d; want 1 ignored negative amount and no bad row", rep.Skipped, rep.Invalid)
	}

	m, err = ParseMapping(strings.NewReader(mapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = readString(t, in, Options{Format: CSV, Mapping: m})
	var re *RowError
	if !errors.As(err, &re) || re.Reason != ReasonNegativeAmount || re.Line != 3 || re.Column != 3 {
		t.Fatalf("got %v, want a negative amount at line 3, column 3", err)
	}
	if !strings.Contains(err.Error(), "negative_amount: ignore") {
		t.Errorf("error %q does not say how to drop returns", err)
	}

	for _, bad := range []string{"negative_amount: drop\n", "negative_amount: [ignore]\n"} {
		if _, err := ParseMapping(strings.NewReader(mapping+bad), "m.yaml"); err == nil || !strings.Contains(err.Error(), `negative_amount must be "error" or "ignore"`) {
			t.Errorf("%q: got %v, want the two allowed values named", bad, err)
		}
	}
	if _, err := ParseMapping(strings.NewReader("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\nnegative_amount: ignore\n"), "m.yaml"); err == nil ||
		!strings.Contains(err.Error(), "negative_amount needs an amount column") {
		t.Errorf("got %v, want negative_amount refused without an amount column", err)
	}
}
