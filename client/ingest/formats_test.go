package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"

	"github.com/kairos-fl/kairos/model"
)

// cdnowOrder is a CDNOW purchase as the Parquet fixture stores it: the
// customer as a string, the day as DATE, the amount as DOUBLE.
type cdnowOrder struct {
	Customer string  `parquet:"customer"`
	Date     int32   `parquet:"date,date"`
	Amount   float64 `parquet:"amount"`
}

// TestSameOrdersEveryFormat reads the 69,659 CDNOW purchases with the
// fixed-layout CDNOW reader, writes them as a merchant would bring them
// (CSV, an .xlsx workbook with number and date cells, Parquet with DATE
// and DOUBLE columns, Excel's UTF-16 Unicode Text, a zip of the CSV), and
// reads each through one mapping: every format gives the CDNOW reader's
// purchases, customer for customer, day for day, amount for amount.
func TestSameOrdersEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads a 70,000-row workbook")
	}
	path := sharedData(t, "cdnow/CDNOW_master.txt")
	var want []model.Event
	if _, err := ReadFile(context.Background(), path, Options{Format: CDNOW}, func(ev model.Event) error {
		want = append(want, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) != 69659 {
		t.Fatalf("CDNOW: %d purchases, want 69,659 (shared data README)", len(want))
	}
	files := writeFormats(t, want)
	for format, p := range files {
		delim := ""
		if format == "utf16" {
			delim = "delimiter: \"\\t\"\n"
		}
		m := mustMapping(t, delim+"customer: customer\ntime: {column: date, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: amount\n")
		got, rep, err := readAll(t, p, Options{Format: CSV, Mapping: m})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if rep.Rows != len(want) || rep.Invalid != 0 {
			t.Errorf("%s: %d rows, %d invalid; want %d rows, none invalid", format, rep.Rows, rep.Invalid, len(want))
		}
		if !slices.Equal(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("%s: event %d: got %+v, want %+v", format, i, got[i], want[i])
				}
			}
			t.Fatalf("%s: %d events, want %d", format, len(got), len(want))
		}
	}
}

// writeFormats writes evs (CDNOW purchases) as a merchant would bring
// them, one file per format, and returns their paths by format: csv,
// utf16 (tab-separated), zip, parquet, xlsx. The mapping
// "customer: customer, time: {column: date, layout: "2006-01-02"},
// amount: amount" reads each (with delimiter "\t" for utf16).
func writeFormats(t testing.TB, evs []model.Event) map[string]string {
	t.Helper()
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("customer,date,amount\n")
	orders := make([]cdnowOrder, len(evs))
	for i, ev := range evs {
		fmt.Fprintf(&csv, "%s,%s,%s\n", ev.Customer, ev.Time.Format(time.DateOnly), strconv.FormatFloat(ev.Amount, 'f', -1, 64))
		orders[i] = cdnowOrder{Customer: ev.Customer, Date: int32(ev.Time.Unix() / 86400), Amount: ev.Amount}
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{
		"csv":   write("orders.csv", []byte(csv.String())),
		"utf16": write("orders.txt", encodeUTF16(strings.ReplaceAll(strings.ReplaceAll(csv.String(), ",", "\t"), "\n", "\r\n"), false)),
		"zip":   write("orders.zip", zipOf(t, [2]string{"orders.csv", csv.String()})),
	}
	files["parquet"] = filepath.Join(dir, "orders.parquet")
	pf, err := os.Create(files["parquet"])
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(pf, orders, parquet.MaxRowsPerRowGroup(20000)); err != nil {
		t.Fatal(err)
	}
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	files["xlsx"] = writeCDNOWWorkbook(t, dir, evs)
	return files
}

// BenchmarkReadFormats reads CDNOW's purchases from each format through
// one mapping: ns/op is one read of the whole file (69,659 rows).
func BenchmarkReadFormats(b *testing.B) {
	path := sharedData(b, "cdnow/CDNOW_master.txt")
	var evs []model.Event
	if _, err := ReadFile(context.Background(), path, Options{Format: CDNOW}, func(ev model.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	files := writeFormats(b, evs)
	for _, format := range []string{"csv", "utf16", "zip", "parquet", "xlsx"} {
		delim := ""
		if format == "utf16" {
			delim = "delimiter: \"\\t\"\n"
		}
		m, err := ParseMapping(strings.NewReader(delim+"customer: customer\ntime: {column: date, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: amount\n"), "m.yaml")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rep, err := ReadFile(context.Background(), files[format], Options{Format: CSV, Mapping: m}, func(model.Event) error { return nil })
				if err != nil || rep.Events != len(evs) {
					b.Fatalf("%d events, %v", rep.Events, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(evs)), "ns/row")
		})
	}
}

// writeCDNOWWorkbook writes evs as a sheet: the customer id a text cell
// (CDNOW's ids are zero-padded, "00001", which Excel keeps only as text),
// the day a date cell, the amount a number cell.
func writeCDNOWWorkbook(t testing.TB, dir string, evs []model.Event) string {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	style, err := f.NewStyle(&excelize.Style{NumFmt: 14}) // m/d/yyyy, a date format
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.SetRow("A1", []any{"customer", "date", "amount"}); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		name, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(name, []any{ev.Customer, excelize.Cell{StyleID: style, Value: ev.Time}, ev.Amount}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "orders.xlsx")
	if err := f.SaveAs(p); err != nil {
		t.Fatal(err)
	}
	return p
}
