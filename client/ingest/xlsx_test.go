package ingest

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/kairos-fl/kairos/model"
)

// newWorkbook writes a workbook with the given sheets (the first replaces
// excelize's default sheet), each a list of rows of cell values as
// excelize's SetSheetRow takes them: strings are text cells, numbers number
// cells, time.Time date cells with a date format.
func newWorkbook(t *testing.T, date1904 bool, sheets map[string][][]any, order ...string) string {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	if date1904 {
		on := true
		if err := f.SetWorkbookProps(&excelize.WorkbookPropsOptions{Date1904: &on}); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range order {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", name); err != nil {
				t.Fatal(err)
			}
		} else if _, err := f.NewSheet(name); err != nil {
			t.Fatal(err)
		}
		for r, row := range sheets[name] {
			cellName, _ := excelize.CoordinatesToCellName(1, r+1)
			if err := f.SetSheetRow(name, cellName, &row); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := filepath.Join(t.TempDir(), "orders.xlsx")
	if err := f.SaveAs(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWorkbookRead: a workbook's sheet reads through the mapping as a CSV
// does: named columns, the sheet key, date cells as dates in the mapping's
// zone, text dates through the layout, number cells as numbers whatever the
// decimal mark (1234.5 under decimal: ","), text amounts through the
// mapping's marks ("1.234,50"), number customer ids as their digits.
func TestWorkbookRead(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p := newWorkbook(t, false, map[string][][]any{
		"Notes": {{"exported by the shop"}},
		"Orders": {
			{"Kunde", "Datum", "Betrag", "Notiz"},
			{17850, time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC), 1234.5},
			{"anna", "05.01.2024", "1.234,50", "gift"},
			{},
			{"bob", 40513.35, 7},
		},
	}, "Notes", "Orders")
	m := mustMapping(t, "sheet: Orders\ndecimal: \",\"\ncustomer: Kunde\ntime: {column: Datum, layout: \"02.01.2006\", zone: Europe/Berlin}\nkind: {constant: purchase}\namount: Betrag\n")
	evs, rep, err := readAll(t, p, Options{Format: CSV, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	want := []model.Event{
		// Excel stores 2010-12-01 08:26 as a wall-clock serial: 08:26 in Berlin (UTC+1) is 07:26 UTC.
		{Customer: "17850", Time: time.Date(2010, 12, 1, 8, 26, 0, 0, berlin).UTC(), Kind: model.Purchase, Amount: 1234.5, HasAmount: true},
		{Customer: "anna", Time: time.Date(2024, 1, 5, 0, 0, 0, 0, berlin).UTC(), Kind: model.Purchase, Amount: 1234.5, HasAmount: true},
		// 40513 is 2010-12-01, 0.35 of a day 08:24.
		{Customer: "bob", Time: time.Date(2010, 12, 1, 8, 24, 0, 0, berlin).UTC(), Kind: model.Purchase, Amount: 7, HasAmount: true},
	}
	if len(evs) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(evs), evs, len(want))
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d: got %+v, want %+v", i, evs[i], want[i])
		}
	}
	if rep.Rows != 3 || !strings.Contains(rep.String(), `sheet "Orders"`) {
		t.Errorf("report: %d rows, %q; want 3 rows read from sheet Orders", rep.Rows, rep)
	}
	// header: false: columns by index, column 1 is A; the first row is data.
	p = newWorkbook(t, false, map[string][][]any{"S": {{"anna", 7, "2024-01-05"}, {"bob", 2.5, "2024-01-06"}}}, "S")
	byIndex := mustMapping(t, "header: false\ncustomer: 1\ntime: {column: 3, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: 2\n")
	evs, _, err = readAll(t, p, Options{Format: CSV, Mapping: byIndex})
	if err != nil || len(evs) != 2 || evs[0].Customer != "anna" || evs[1].Amount != 2.5 || evs[1].Time != time.Date(2024, 1, 6, 0, 0, 0, 0, time.UTC) {
		t.Errorf("header: false: got %+v, %v", evs, err)
	}
}

// TestExcelSerialTable checks serial dates against a table worked by hand
// from Excel's documented date systems: in the 1900 system serial 1 is
// 1900-01-01 and serial 60 the 29 February 1900 Excel counts (Lotus 1-2-3's
// leap-year bug), so 61 is 1900-03-01 and 25569 is 1970-01-01; in the 1904
// system serial 0 is 1904-01-01, so 24107 (25569 − 1462) is 1970-01-01.
// Each is read from a workbook's number cell as well as by the function.
func TestExcelSerialTable(t *testing.T) {
	for _, tc := range []struct {
		serial   float64
		date1904 bool
		want     string // RFC 3339 in UTC, or "" for an error
	}{
		{1, false, "1900-01-01T00:00:00Z"},
		{59, false, "1900-02-28T00:00:00Z"},
		{59.5, false, "1900-02-28T12:00:00Z"},
		{60, false, ""},
		{61, false, "1900-03-01T00:00:00Z"},
		{25569, false, "1970-01-01T00:00:00Z"},
		{25569.75, false, "1970-01-01T18:00:00Z"},
		{40513.35, false, "2010-12-01T08:24:00Z"},
		{45351, false, "2024-02-29T00:00:00Z"},
		{2958465, false, "9999-12-31T00:00:00Z"},
		{0, false, ""},
		{2958466, false, ""},
		{0, true, "1904-01-01T00:00:00Z"},
		{1, true, "1904-01-02T00:00:00Z"},
		{24107, true, "1970-01-01T00:00:00Z"},
		{24107.5, true, "1970-01-01T12:00:00Z"},
		{-1, true, ""},
	} {
		got, err := cellSerialTime(tc.serial, tc.date1904, time.UTC)
		if tc.want == "" {
			if err == nil {
				t.Errorf("serial %v (1904: %v): got %v, want an error", tc.serial, tc.date1904, got)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tc.want {
			t.Errorf("serial %v (1904: %v): got %v, %v; want %s", tc.serial, tc.date1904, got, err, tc.want)
		}
		p := newWorkbook(t, tc.date1904, map[string][][]any{"S": {{"c", "t"}, {"x", tc.serial}}}, "S")
		m := mustMapping(t, "customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
		evs, _, err := readAll(t, p, Options{Format: CSV, Mapping: m})
		if err != nil || len(evs) != 1 || evs[0].Time.Format(time.RFC3339) != tc.want {
			t.Errorf("workbook serial %v (1904: %v): got %+v, %v; want %s", tc.serial, tc.date1904, evs, err, tc.want)
		}
	}
}

// TestWorkbookErrors: a bad cell is a bad row named by sheet, row, cell and
// key; a missing sheet lists the sheets; a missing column lists the
// header's; merged header cells are named; a corrupt or encrypted workbook
// is an error that says so, not a panic.
func TestWorkbookErrors(t *testing.T) {
	m := mustMapping(t, "customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: a\n")
	p := newWorkbook(t, false, map[string][][]any{"Orders": {{"c", "t", "a"}, {"x", "2024-01-01", 3}, {"y", "2024-01-02", "abc"}, {"z", 60, 1}}}, "Orders")
	_, _, err := readAll(t, p, Options{Format: CSV, Mapping: m})
	var re *RowError
	if !errors.As(err, &re) || re.Line != 3 || re.Reason != ReasonBadAmount || !strings.Contains(err.Error(), `sheet "Orders", row 3, cell C3 (amount)`) {
		t.Errorf("bad amount: got %v, want a bad amount at sheet \"Orders\", row 3, cell C3 (amount)", err)
	}
	_, rep, err := readAll(t, p, Options{Format: CSV, Mapping: m, OnError: Skip})
	if err != nil || rep.Invalid != 2 || rep.Events != 1 || rep.Skipped[ReasonBadTime] != 1 ||
		!strings.Contains(rep.Errors[1].Error(), "cell B4 (time)") || !strings.Contains(rep.Errors[1].Error(), "29 February 1900") {
		t.Errorf("skip: %v, %v; want 1 event, a bad amount and serial 60 a bad time at B4", rep, err)
	}

	sheet := *m
	sheet.Sheet = "Bestellungen"
	_, _, err = readAll(t, p, Options{Format: CSV, Mapping: &sheet})
	if err == nil || !strings.Contains(err.Error(), `no sheet "Bestellungen"`) || !strings.Contains(err.Error(), `"Orders"`) {
		t.Errorf("missing sheet: got %v, want the sheets listed", err)
	}

	missing := mustMapping(t, "customer: Kunde\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
	_, _, err = readAll(t, p, Options{Format: CSV, Mapping: missing})
	if err == nil || !strings.Contains(err.Error(), `sheet "Orders", row 1: the header has no column "Kunde"`) || !strings.Contains(err.Error(), "c, t, a") {
		t.Errorf("missing column: got %v", err)
	}

	// A title merged over the table's columns stands where the header should.
	f := excelize.NewFile()
	for cellName, v := range map[string]any{"A1": "Orders 2024", "A2": "c", "B2": "t", "A3": "x", "B3": "2024-01-01"} {
		if err := f.SetCellValue("Sheet1", cellName, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.MergeCell("Sheet1", "A1", "C1"); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(t.TempDir(), "merged.xlsx")
	if err := f.SaveAs(merged); err != nil {
		t.Fatal(err)
	}
	simple := mustMapping(t, "customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
	_, _, err = readAll(t, merged, Options{Format: CSV, Mapping: simple})
	if err == nil || !strings.Contains(err.Error(), "merged cells A1:C1") {
		t.Errorf("merged header: got %v, want the merged cells named", err)
	}

	// Encrypted: excelize writes the OLE2 compound file Excel does.
	enc := filepath.Join(t.TempDir(), "secret.xlsx")
	if err := f.SaveAs(enc, excelize.Options{Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, enc, Options{Format: CSV, Mapping: simple})
	if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "password") {
		t.Errorf("encrypted: got %v, want ErrNotText naming the password", err)
	}

	// Corrupt: the workbook cut in half.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(b) / 2, len(b) - 30, 10} {
		bad := filepath.Join(t.TempDir(), "cut.xlsx")
		if err := os.WriteFile(bad, b[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readAll(t, bad, Options{Format: CSV, Mapping: m}); err == nil || !strings.Contains(err.Error(), "cut.xlsx") {
			t.Errorf("workbook cut at %d of %d bytes: got %v, want an error naming the file", cut, len(b), err)
		}
	}
	f.Close()
}

// TestWorkbookStream: Read, given a workbook as a stream (the client's
// file source wraps its file), reads it as ReadFile does.
func TestWorkbookStream(t *testing.T) {
	p := newWorkbook(t, false, map[string][][]any{"S": {{"c", "t"}, {"x", "2024-01-01"}, {"y", "2024-01-02"}}}, "S")
	m := mustMapping(t, "customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Decompressed(f)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rep, err := Read(context.Background(), r, "orders.xlsx", Options{Format: CSV, Mapping: m}, func(model.Event) error { n++; return nil })
	if err != nil || n != 2 || rep.Events != 2 {
		t.Errorf("got %d events, %v, %v; want 2", n, rep, err)
	}
	_, err = Read(context.Background(), mustOpen(t, p), "orders.xlsx", Options{Format: CDNOW}, func(model.Event) error { return nil })
	if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "mapping") {
		t.Errorf("workbook as CDNOW: got %v, want ErrNotText saying to use a mapping", err)
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// FuzzXLSXCell checks the typing of a stored cell value: a value is a
// number exactly when it has xsd:double's form (a regular expression); in
// the time column a number is the instant Unix arithmetic gives for its
// serial (1900 system: days since 1899-12-30 from 61, since 1899-12-31
// below 60; 1904 system: 1462 more) or refused, serial 60 and the range's
// outside refused; in the time-of-day column a non-negative number is a
// clock time of its fraction; elsewhere it keeps its text.
func FuzzXLSXCell(f *testing.F) {
	for _, s := range []string{"40513.35", "60", "59.5", "0", "1e3", "-1", "2958465.999999", ".5", "1.", "abc", "2024-01-01", "+7", "1E+400", "NaN"} {
		f.Add(s, false)
	}
	number := regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, s string, date1904 bool) {
		isNum := number.MatchString(s)
		if isXMLNumber(s) != isNum {
			t.Fatalf("isXMLNumber(%q) = %v, want %v", s, !isNum, isNum)
		}
		c := xlsxCell(s, roleOther, "2006-01-02", date1904, time.UTC)
		switch {
		case s == "":
			if c.kind != cellEmpty {
				t.Fatalf("empty: %+v", c)
			}
			return
		case isNum && (c.kind != cellNumber || string(c.text) != s), !isNum && (c.kind != cellText || string(c.text) != s):
			t.Fatalf("xlsxCell(%q) = %+v", s, c)
		}
		if !isNum {
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		c = xlsxCell(s, roleTime, "2006-01-02", date1904, time.UTC)
		serial := v
		if date1904 {
			serial += 1462
		}
		valid := err == nil && (date1904 && v >= 0 || !date1904 && v >= 1 && !(v >= 60 && v < 61)) && serial < 2958466
		if (c.kind == cellTime) != valid {
			t.Fatalf("time cell %q (1904: %v): %+v, want valid %v", s, date1904, c, valid)
		}
		if valid {
			days := serial - 25569
			if !date1904 && v < 60 {
				days++
			}
			want := time.Unix(int64(math.Round(days*86400)), 0).UTC()
			if d := c.t.Sub(want); d < -time.Second || d > time.Second {
				t.Fatalf("time cell %q (1904: %v): %v, want %v", s, date1904, c.t, want)
			}
		}
		c = xlsxCell(s, roleTimeOfDay, "15:04:05", date1904, time.UTC)
		if err == nil && v >= 0 && !math.IsInf(v, 0) {
			clock, perr := time.Parse("15:04:05", string(c.text))
			secs := math.Round((v - math.Floor(v)) * 86400)
			got := float64(clock.Hour()*3600 + clock.Minute()*60 + clock.Second())
			if perr != nil || c.kind != cellText || math.Abs(got-math.Min(secs, 86399)) > 0 {
				t.Fatalf("time-of-day cell %q: %+v (%v), want %v s", s, c, perr, secs)
			}
		}
	})
}

// FuzzReadWorkbook: a damaged workbook (any bytes after the zip magic, or
// a valid workbook with bytes changed) is read or refused with an error
// naming the file; it never panics.
func FuzzReadWorkbook(f *testing.F) {
	p := newWorkbookFile(f)
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, 0, byte(0))
	f.Add(b, len(b)/2, byte(0xff))
	f.Add([]byte("PK\x03\x04"), 0, byte(0))
	m := &Mapping{Header: true, Customer: Column{Name: "c"}, Time: Column{Name: "t"}, TimeLayout: "2006-01-02", ConstKind: model.Purchase, Amount: Column{Name: "a"}}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, at int, x byte) {
		b = append([]byte(nil), b...)
		if len(b) > 0 {
			b[(at%len(b)+len(b))%len(b)] ^= x
		}
		p := filepath.Join(dir, "w.xlsx")
		if err := os.WriteFile(p, append([]byte("PK\x03\x04"), b[min(4, len(b)):]...), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(context.Background(), p, Options{Format: CSV, Mapping: m, OnError: Skip}, func(model.Event) error { return nil })
		if err != nil && !strings.Contains(err.Error(), "w.xlsx") {
			t.Fatalf("error %v does not name the file", err)
		}
	})
}

// newWorkbookFile writes a small valid workbook for the fuzzers' seeds.
func newWorkbookFile(tb testing.TB) string {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, row := range [][]any{{"c", "t", "a"}, {"x", "2024-01-01", 3.5}, {"y", 45292.25, "1,5"}} {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &row); err != nil {
			tb.Fatal(err)
		}
	}
	p := filepath.Join(tb.TempDir(), "seed.xlsx")
	if err := f.SaveAs(p); err != nil {
		tb.Fatal(err)
	}
	return p
}
