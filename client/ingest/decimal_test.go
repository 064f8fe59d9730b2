package ingest

import (
	"strings"
	"testing"
)

// TestDecimalCommaExport reads a German shop export as its users write it:
// semicolons, day.month.year dates and amounts with a decimal comma and a dot
// between thousands. The amounts are the hand-read values of the file.
func TestDecimalCommaExport(t *testing.T) {
	m, err := ParseMapping(strings.NewReader(`header: true
delimiter: ";"
decimal: ","
customer: Kundennummer
time: {column: Bestelldatum, layout: "02.01.2006", zone: Europe/Berlin}
kind: {constant: purchase}
amount: Betrag
`), "de.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := "Kundennummer;Bestelldatum;Betrag\nK1;01.01.2006;35,58\nK2;02.01.2006;1.234,5\nK3;03.01.2006;7\nK4;04.01.2006;0,07\n"
	evs, _, err := readString(t, in, Options{Format: CSV, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{35.58, 1234.5, 7, 0.07}
	if len(evs) != len(want) {
		t.Fatalf("got %d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if !ev.HasAmount || ev.Amount != want[i] {
			t.Errorf("row %d: amount %v (has %v), want %v", i+2, ev.Amount, ev.HasAmount, want[i])
		}
	}
}

// TestDecimalCommaBadAmounts: a dot that is not a thousands separator in a
// decimal-comma file is a bad amount (12.5 would otherwise be read as 125),
// and a decimal comma in a file mapped with the default decimal point is a bad
// amount whose message says how to map it.
func TestDecimalCommaBadAmounts(t *testing.T) {
	comma := testMapping()
	comma.Decimal = ','
	tests := []struct {
		name, amount string
		m            *Mapping
		want         string
	}{
		{"dot as decimal point", "12.5", comma, `amount "12.5" is not a number with a decimal comma`},
		{"two commas", "1,2,3", comma, `amount "1,2,3" is not a number with a decimal comma`},
		{"thousands group of two", "1.23,4", comma, `amount "1.23,4" is not a number with a decimal comma`},
		{"comma without decimal key", "35,58", testMapping(), `decimal: ","`},
		// A thousands comma is not a decimal comma: no hint that would not help.
		{"thousands comma", "1,234.50", testMapping(), `amount "1,234.50" is not a finite number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAmount(t, tt.m, tt.amount)
			wantBadAmount(t, err, ReasonBadAmount)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.amount == "1,234.50" && strings.Contains(err.Error(), "decimal") {
				t.Errorf("error %q suggests a decimal comma for a thousands comma", err)
			}
		})
	}
}

func TestParseMappingDecimal(t *testing.T) {
	base := "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\n"
	m, err := ParseMapping(strings.NewReader(base), "m.yaml")
	if err != nil || m.Decimal != 0 {
		t.Fatalf("default decimal %q, %v; want 0 (a decimal point)", m.Decimal, err)
	}
	for _, tt := range []struct{ in, want string }{
		{`decimal: ";"`, `line 4, column 10: decimal ";" must be "." or ","`},
	} {
		_, err := ParseMapping(strings.NewReader(base+tt.in+"\n"), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}
