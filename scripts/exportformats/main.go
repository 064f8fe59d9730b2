// Command exportformats writes a gzip-compressed Online Retail CSV (the
// shared data's online_retail_full/online_retail.csv.gz) into a folder as
// the exports a merchant brings: orders.csv (the CSV itself), orders.xlsx
// (date and number cells), orders.parquet (TIMESTAMP, INT64, DOUBLE),
// orders-utf16.txt (Excel's Unicode Text) and orders.zip (the CSV zipped),
// for the benchmark in docs/benchmarks.md ("Workbooks, Parquet and UTF-16
// text (round 4)").
//
//	go run ./scripts/exportformats ../shared/data/online_retail_full/online_retail.csv.gz /tmp/r4
package main

import (
	"archive/zip"
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"
)

type row struct {
	InvoiceNo   string  `parquet:"InvoiceNo"`
	StockCode   string  `parquet:"StockCode"`
	Description string  `parquet:"Description"`
	Quantity    int64   `parquet:"Quantity"`
	InvoiceDate int64   `parquet:"InvoiceDate,timestamp(microsecond:local)"`
	UnitPrice   float64 `parquet:"UnitPrice"`
	CustomerID  *string `parquet:"CustomerID,optional"`
	Country     string  `parquet:"Country"`
}

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: exportformats online_retail.csv.gz DIR")
	}
	in, out := os.Args[1], os.Args[2]
	f, err := os.Open(in)
	must(err)
	zr, err := gzip.NewReader(f)
	must(err)
	raw, err := io.ReadAll(zr)
	must(err)
	must(os.WriteFile(out+"/orders.csv", raw, 0o644))
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	must(err)

	// UTF-16LE, tab-separated, as Excel's "Unicode Text" (fields holding tabs or quotes are quoted).
	var sb strings.Builder
	for _, r := range recs {
		for i, v := range r {
			if i > 0 {
				sb.WriteByte('\t')
			}
			if strings.ContainsAny(v, "\t\"\n") {
				v = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
			}
			sb.WriteString(v)
		}
		sb.WriteString("\r\n")
	}
	u := utf16.Encode([]rune(sb.String()))
	b := make([]byte, 2, 2+2*len(u))
	b[0], b[1] = 0xff, 0xfe
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	must(os.WriteFile(out+"/orders-utf16.txt", b, 0o644))

	// zip of the CSV
	zf, err := os.Create(out + "/orders.zip")
	must(err)
	zw := zip.NewWriter(zf)
	w, err := zw.Create("orders.csv")
	must(err)
	_, err = w.Write(raw)
	must(err)
	must(zw.Close())
	must(zf.Close())

	// xlsx: numbers as number cells, the invoice date as a date cell.
	x := excelize.NewFile()
	sw, err := x.NewStreamWriter("Sheet1")
	must(err)
	style, err := x.NewStyle(&excelize.Style{NumFmt: 22})
	must(err)
	hdr := make([]any, len(recs[0]))
	for i, h := range recs[0] {
		hdr[i] = h
	}
	must(sw.SetRow("A1", hdr))
	rows := make([]row, 0, len(recs))
	for n, r := range recs[1:] {
		q, err := strconv.ParseInt(r[3], 10, 64)
		must(err)
		t, err := time.Parse("2006-01-02 15:04:05", r[4])
		must(err)
		p, err := strconv.ParseFloat(r[5], 64)
		must(err)
		var cust any = ""
		var cp *string
		if r[6] != "" {
			c, err := strconv.Atoi(r[6])
			must(err)
			cust = c
			s := r[6]
			cp = &s
		}
		cell, _ := excelize.CoordinatesToCellName(1, n+2)
		must(sw.SetRow(cell, []any{r[0], r[1], r[2], q, excelize.Cell{StyleID: style, Value: t}, p, cust, r[7]}))
		rows = append(rows, row{r[0], r[1], r[2], q, t.UnixMicro(), p, cp, r[7]})
	}
	must(sw.Flush())
	must(x.SaveAs(out + "/orders.xlsx"))

	pf, err := os.Create(out + "/orders.parquet")
	must(err)
	bw := bufio.NewWriter(pf)
	must(parquet.Write(bw, rows, parquet.Compression(&parquet.Snappy)))
	must(bw.Flush())
	must(pf.Close())
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
