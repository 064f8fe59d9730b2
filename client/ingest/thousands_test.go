package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

// TestThousandsAmounts reads amounts under each thousands separator a
// mapping can name. The values are read by hand from the inputs; a grouping
// that is not the first group of 1-3 digits followed by groups of exactly
// three is a bad amount, never a different number ("1,23.5" is not 123.5).
func TestThousandsAmounts(t *testing.T) {
	tests := []struct {
		thousands, decimal byte
		amount             string
		want               float64
		reason, err        string // reason and error text of a bad amount
	}{
		// US/UK export: thousands comma, decimal point.
		{',', 0, "1,234.50", 1234.5, "", ""},
		{',', 0, "1,234,567.89", 1234567.89, "", ""},
		{',', 0, "12,345", 12345, "", ""},
		{',', 0, "999.99", 999.99, "", ""},
		{',', 0, "1234.5", 1234.5, "", ""}, // ungrouped is unambiguous
		{',', 0, "0,001", 1, "", ""},
		{',', 0, "1,23.5", 0, ReasonBadAmount, `amount "1,23.5" is not a number with "," between groups of three digits`},
		{',', 0, "1,2345", 0, ReasonBadAmount, `amount "1,2345" is not a number with "," between groups of three digits`},
		{',', 0, "1234,567", 0, ReasonBadAmount, `amount "1234,567" is not`},
		{',', 0, ",123", 0, ReasonBadAmount, `amount ",123" is not`},
		{',', 0, "1,,234", 0, ReasonBadAmount, `amount "1,,234" is not`},
		{',', 0, "1,234.", 0, ReasonBadAmount, `amount "1,234." is not`},
		{',', 0, "1,234.5,0", 0, ReasonBadAmount, `amount "1,234.5,0" is not`},
		{',', 0, "1,234e3", 0, ReasonBadAmount, `amount "1,234e3" is not`},
		{',', 0, "-1,234.5", 0, ReasonNegativeAmount, `amount "-1,234.5" is negative`},
		// Swiss: apostrophe, decimal point.
		{'\'', 0, "1'234'567.05", 1234567.05, "", ""},
		{'\'', '.', "12'000", 12000, "", ""},
		{'\'', 0, "1'23", 0, ReasonBadAmount, `amount "1'23" is not a number with "'" between groups of three digits`},
		// French/Nordic: space, decimal comma.
		{' ', ',', "1 234,50", 1234.5, "", ""},
		{' ', ',', "12 345 678", 12345678, "", ""},
		{' ', ',', "35,58", 35.58, "", ""},
		{' ', ',', "1.234,50", 0, ReasonBadAmount, `amount "1.234,50" is not a number with a decimal comma and " " between groups of three digits`},
		{' ', ',', "1 23,5", 0, ReasonBadAmount, `amount "1 23,5" is not`},
		{' ', 0, "1 234.5", 1234.5, "", ""},
		// German: dot, decimal comma (the same as decimal: "," alone).
		{'.', ',', "1.234,5", 1234.5, "", ""},
		{'.', ',', "1.234.567", 1234567, "", ""},
		{'.', ',', "1,234.5", 0, ReasonBadAmount, `amount "1,234.5" is not a number with a decimal comma and "." between groups of three digits`},
	}
	for _, tt := range tests {
		t.Run(string(tt.thousands)+string(tt.decimal)+tt.amount, func(t *testing.T) {
			m := testMapping()
			m.Thousands, m.Decimal = tt.thousands, tt.decimal
			evs, err := readAmount(t, m, tt.amount)
			if tt.reason == "" {
				if err != nil || len(evs) != 1 || !evs[0].HasAmount || evs[0].Amount != tt.want {
					t.Fatalf("got %+v, %v; want amount %v", evs, err, tt.want)
				}
				return
			}
			wantBadAmount(t, err, tt.reason)
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q does not say %q", err, tt.err)
			}
		})
	}
}

// readAmount reads a file of one row with amount in column 4, line 2.
func readAmount(t *testing.T, m *Mapping, amount string) ([]model.Event, error) {
	t.Helper()
	evs, _, err := readString(t, "user,ts,kind,amount\nu1,1511544070,buy,\""+amount+"\"\n", Options{Format: CSV, Mapping: m})
	return evs, err
}

// wantBadAmount fails t unless err is a row error of reason in the amount
// of readAmount's row.
func wantBadAmount(t *testing.T, err error, reason string) {
	t.Helper()
	var re *RowError
	if !errors.As(err, &re) || re.Reason != reason || re.Line != 2 || re.Column != 4 {
		t.Fatalf("got %v, want %s at line 2, column 4", err, reason)
	}
}

// TestThousandsQuantity: the quantity column is read with the amount's
// marks, so 1,000 units at 2.50 are 2,500 (worked by hand), and a badly
// grouped quantity is a bad amount in the quantity's column.
func TestThousandsQuantity(t *testing.T) {
	m := testMapping()
	m.Thousands, m.Quantity = ',', Column{Name: "qty"}
	evs, _, err := readString(t, "user,ts,kind,amount,qty\nu1,1511544070,buy,2.50,\"1,000\"\n", Options{Format: CSV, Mapping: m})
	if err != nil || len(evs) != 1 || evs[0].Amount != 2500 {
		t.Fatalf("got %+v, %v; want amount 2500", evs, err)
	}
	_, _, err = readString(t, "user,ts,kind,amount,qty\nu1,1511544070,buy,2.50,\"1,00\"\n", Options{Format: CSV, Mapping: m})
	var re *RowError
	if !errors.As(err, &re) || re.Reason != ReasonBadAmount || re.Column != 5 || !strings.Contains(err.Error(), `quantity "1,00" is not a number with "," between groups of three digits`) {
		t.Errorf("got %v, want a bad quantity \"1,00\" in column 5", err)
	}
	// Without the key, the quantity's error names it too.
	m.Thousands = 0
	_, _, err = readString(t, "user,ts,kind,amount,qty\nu1,1511544070,buy,2.50,\"1,000\"\n", Options{Format: CSV, Mapping: m})
	if !errors.As(err, &re) || re.Reason != ReasonBadAmount || re.Column != 5 || !strings.Contains(err.Error(), `quantity "1,000" is not a finite number`) ||
		!strings.Contains(err.Error(), `set thousands: ","`) {
		t.Errorf("got %v, want a bad quantity \"1,000\" in column 5 naming thousands: \",\"", err)
	}
}

// TestThousandsHint: without the key, an amount that the key would read is a
// bad amount whose error names the key to set; one that it would not read
// gets no such hint.
func TestThousandsHint(t *testing.T) {
	comma := testMapping()
	comma.Decimal = ','
	tests := []struct {
		name, amount string
		m            *Mapping
		want, not    []string
	}{
		{"thousands comma", "1,234.50", testMapping(), []string{`set thousands: ","`}, []string{`decimal: ","`}},
		{"swiss", "1'234'567.05", testMapping(), []string{`set thousands: "'"`}, nil},
		{"space", "1 234.5", testMapping(), []string{`set thousands: " "`}, nil},
		// "1,234" reads either way: both keys are named.
		{"ambiguous", "1,234", testMapping(), []string{`decimal: ","`, `thousands: ","`}, nil},
		{"decimal comma only", "35,58", testMapping(), []string{`decimal: ","`}, []string{"thousands"}},
		{"bad grouping", "1,23.5", testMapping(), nil, []string{"thousands", "decimal"}},
		{"not a number", "12abc", testMapping(), nil, []string{"thousands", "decimal"}},
		{"space under decimal comma", "1 234,50", comma, []string{`set thousands: " "`}, nil},
		{"apostrophe under decimal comma", "1'234,50", comma, []string{`set thousands: "'"`}, nil},
		// Under decimal: ",", "." already separates thousands; "," cannot.
		{"dot point under decimal comma", "12.5", comma, nil, []string{"thousands"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAmount(t, tt.m, tt.amount)
			wantBadAmount(t, err, ReasonBadAmount)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q mentions %q, which would not help", err, n)
				}
			}
		})
	}
}

func TestParseMappingThousands(t *testing.T) {
	base := "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\n"
	for _, tt := range []struct {
		in                 string
		thousands, decimal byte
	}{
		{`thousands: ","`, ',', 0},
		{`thousands: "'"`, '\'', 0},
		{`thousands: " "`, ' ', 0},
		{"thousands: \" \"\ndecimal: \",\"", ' ', ','},
		{"decimal: \",\"\nthousands: .", '.', ','},
	} {
		m, err := ParseMapping(strings.NewReader(base+tt.in+"\n"), "m.yaml")
		if err != nil || m.Thousands != tt.thousands || m.Decimal != tt.decimal {
			t.Errorf("%s: got %+v, %v; want thousands %q, decimal %q", tt.in, m, err, tt.thousands, tt.decimal)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{`thousands: ";"`, `line 4, column 12: thousands ";" must be ",", ".", " " or "'"`},
		{`thousands: ""`, `line 4, column 12: thousands "" must be`},
		{`thousands: [","]`, `line 4, column 12: thousands must be a single value`},
		{"decimal: \",\"\nthousands: \",\"", `line 5, column 12: thousands "," is the decimal mark too`},
		{`thousands: "."`, `line 4, column 12: thousands "." is the decimal mark too (with a decimal comma, set decimal: ",")`},
		{"thousands: \".\"\ndecimal: \".\"", `line 4, column 12: thousands "." is the decimal mark too`},
	} {
		_, err := ParseMapping(strings.NewReader(base+tt.in+"\n"), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
	// A mapping built in code is checked the same way.
	m := testMapping()
	m.Thousands, m.Decimal = ',', ','
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), `thousands "," is the decimal mark too`) {
		t.Errorf("Validate: got %v, want thousands equal to the decimal refused", err)
	}
	m.Thousands, m.Decimal = '_', 0
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), `thousands "_" must be`) {
		t.Errorf("Validate: got %v, want thousands \"_\" refused", err)
	}
}

// TestThousandsMessage: stream messages read grouped amounts under the same
// key, in a JSON string or a quoted CSV field, and without the key the
// error names it.
func TestThousandsMessage(t *testing.T) {
	m := jsonMapping()
	m.Thousands = ','
	js := decodeAmounts(t, m, map[string]float64{
		`{"customer":"c1","ts":"1700000000","type":"order","total":"1,234.50"}`: 1234.5,
		`{"customer":"c1","ts":"1700000000","type":"order","total":1234.5}`:     1234.5,
	})
	_, err := js.Decode([]byte(`{"customer":"c1","ts":"1700000000","type":"order","total":"1,23.4"}`))
	var me *MessageError
	if !errors.As(err, &me) || me.Reason != ReasonBadAmount || me.Field != `"total"` {
		t.Errorf("got %v, want a bad amount in field \"total\"", err)
	}
	cm := csvMapping()
	cm.Thousands = ','
	cd, err := NewMessageDecoder(cm, MessageCSV, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := cd.Decode([]byte(`c1,2024-01-01 00:00:00,purchase,"12,000"`)); err != nil || ev.Amount != 12000 {
		t.Errorf("csv: got %+v, %v; want amount 12000", ev, err)
	}
	plain, err := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = plain.Decode([]byte(`{"customer":"c1","ts":"1700000000","type":"order","total":"1,234.50"}`))
	if !errors.As(err, &me) || me.Reason != ReasonBadAmount || !strings.Contains(err.Error(), `set thousands: ","`) {
		t.Errorf("no key: got %v, want a bad amount naming thousands: \",\"", err)
	}
}

// TestJSONNumberMarks: a JSON number has a decimal point and no grouping by
// JSON's grammar, so it reads as written under any mapping marks, while a
// string follows the mapping. Before, 12.5 under decimal: "," was a bad
// amount (the dot taken for a thousands mark in a bad place).
func TestJSONNumberMarks(t *testing.T) {
	m := jsonMapping()
	m.Decimal, m.Thousands, m.Quantity = ',', ' ', Column{Name: "qty"}
	d := decodeAmounts(t, m, map[string]float64{
		`{"customer":"c1","ts":"1700000000","type":"order","total":12.5,"qty":2}`:        25,
		`{"customer":"c1","ts":"1700000000","type":"order","total":"1 234,5","qty":0.5}`: 617.25,
		`{"customer":"c1","ts":"1700000000","type":"order","total":1.5e3,"qty":"2"}`:     3000,
	})
	var me *MessageError
	if _, err := d.Decode([]byte(`{"customer":"c1","ts":"1700000000","type":"order","total":"12.5","qty":1}`)); !errors.As(err, &me) || me.Reason != ReasonBadAmount {
		t.Errorf("string 12.5 under decimal comma: got %v, want a bad amount", err)
	}
}

// decodeAmounts decodes each JSON message under m and checks its amount.
func decodeAmounts(t *testing.T, m *Mapping, want map[string]float64) *MessageDecoder {
	t.Helper()
	d, err := NewMessageDecoder(m, MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	for msg, amount := range want {
		ev, err := d.Decode([]byte(msg))
		if err != nil || ev.Amount != amount {
			t.Errorf("%s: got %+v, %v; want amount %v", msg, ev, err, amount)
		}
	}
	return d
}
