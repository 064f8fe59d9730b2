package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"
)

// TestEvalWorkbookParquet: `kairos eval --dataset csv` on the shop log
// saved as an .xlsx workbook (number cells for the times and amounts) and
// as Parquet (INT64 times, DOUBLE amounts) prints the report it prints for
// the CSV, and a --suite-file data set of the workbook reads too.
func TestEvalWorkbookParquet(t *testing.T) {
	l := newShopLog(false)
	data, mapping := l.write(t, shopMapping)
	dir := filepath.Dir(data)
	type row struct {
		User   string  `parquet:"user"`
		TS     int64   `parquet:"ts"`
		Event  string  `parquet:"event"`
		Amount float64 `parquet:"amount"`
	}
	wb := excelize.NewFile()
	defer wb.Close()
	header := []any{"user", "ts", "event", "amount"}
	if err := wb.SetSheetRow("Sheet1", "A1", &header); err != nil {
		t.Fatal(err)
	}
	rows := make([]row, 0, len(l.rows))
	for i, line := range l.rows {
		f := strings.Split(line, ",")
		ts, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		amt, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		cell, _ := excelize.CoordinatesToCellName(1, i+2)
		vals := []any{f[0], ts, f[2], amt}
		if err := wb.SetSheetRow("Sheet1", cell, &vals); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{f[0], ts, f[2], amt})
	}
	xlsx, pq := filepath.Join(dir, "shop.xlsx"), filepath.Join(dir, "shop.parquet")
	if err := wb.SaveAs(xlsx); err != nil {
		t.Fatal(err)
	}
	pf, err := os.Create(pq)
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(pf, rows); err != nil {
		t.Fatal(err)
	}
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	args := func(p string) []string {
		return append([]string{"--dataset", "csv", "--data", p, "--mapping", mapping}, shopCutoff...)
	}
	want, _, err := runEval(t, args(data)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{xlsx, pq} {
		got, stderr, err := runEval(t, args(p)...)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got != want {
			t.Errorf("%s: report differs from the CSV's:\n%s\nwant\n%s", p, got, want)
		}
		if !strings.Contains(stderr, ", 0 invalid; read as ") {
			t.Errorf("%s: read summary %q does not say how the file was read", p, stderr)
		}
	}
	suite := filepath.Join(dir, "suite.yaml")
	body := "builtin: false\ndatasets:\n  - {name: shop-xlsx, path: " + xlsx + ", format: csv, mapping: " + mapping +
		", test_cutoff: 2020-05-01, train_cutoffs: [2020-03-01, 2020-04-01]}\n"
	if err := os.WriteFile(suite, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runEval(t, "--suite-file", suite, "--json")
	if err != nil || !strings.Contains(out, `"name":"shop-xlsx"`) || strings.Contains(out, `"error"`) {
		t.Errorf("suite of a workbook: %v, %.300q", err, out)
	}
}
