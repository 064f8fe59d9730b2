package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shapeWriter writes one export shape of a shared data set into w and
// returns the mapping a user would write for it by hand.
type shapeWriter func(t *testing.T, w io.Writer) string

// TestSuggestRealShapes writes export shapes from the shared data sets
// (CDNOW, the complete Online Retail set, the grocery log), each with its
// hand-written mapping, and checks that the suggested mapping reads the
// same purchases and customers as the hand-written one, with nothing left
// to CHECK. The compact version of the answer key in docs/benchmarks.md.
func TestSuggestRealShapes(t *testing.T) {
	shapes := []struct {
		name string
		gzip bool
		src  string
		w    shapeWriter
	}{
		{"grocery as a German semicolon export", false, "grocery_btydplus/groceryElog.csv", groceryGerman},
		{"CDNOW as gzip JSON Lines with Unix seconds", true, "cdnow/CDNOW_master.txt", cdnowJSONLines},
		{"CDNOW as TSV with Excel serial dates and CRLF", false, "cdnow/CDNOW_master.txt", cdnowExcelTSV},
		{"Online Retail lines with US dates, float ids, returns, guests", false, "online_retail_full/online_retail.csv.gz", retailUSDates},
		{"Online Retail orders as line items with a status and repeated totals", false, "online_retail_full/online_retail.csv.gz", retailLineItems},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			src := sharedData(t, sh.src)
			path := filepath.Join(t.TempDir(), "export")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			var w io.Writer = f
			var zw *gzip.Writer
			if sh.gzip {
				zw = gzip.NewWriter(f)
				w = zw
			}
			bw := bufio.NewWriter(w)
			hand := sh.w(t, shapeSource(t, src, bw))
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if zw != nil {
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			want, err := ParseMapping(strings.NewReader(hand), "hand-written")
			if err != nil {
				t.Fatal(err)
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			sg, err := Suggest(context.Background(), in, path, SuggestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(sg.Checks) > 0 {
				t.Errorf("got checks %q, want none:\n%s", sg.Checks, sg.YAML)
			}
			wp, wc, err := readCounts(t, path, want)
			if err != nil {
				t.Fatalf("hand-written mapping: %v", err)
			}
			gp, gc, err := readCounts(t, path, sg.Mapping)
			if err != nil {
				t.Fatalf("suggested mapping: %v\n%s", err, sg.YAML)
			}
			if gp != wp || gc != wc || wp == 0 {
				t.Errorf("suggested mapping reads %d purchases of %d customers, the hand-written one %d of %d:\n%s", gp, gc, wp, wc, sg.YAML)
			}
		})
	}
}

// shapeSource passes the source path to a shape writer through a writer
// wrapper, so that each writer opens what it needs.
type sourced struct {
	io.Writer
	src string
}

func shapeSource(t *testing.T, src string, w io.Writer) io.Writer {
	t.Helper()
	return sourced{w, src}
}

func sourceOf(w io.Writer) string { return w.(sourced).src }

// groceryGerman writes the grocery log as Kundennummer;Bestelldatum;Betrag
// with day-first dotted dates and a decimal comma (amounts made up from the
// row number: the log has none).
func groceryGerman(t *testing.T, w io.Writer) string {
	t.Helper()
	rows := readCSVRows(t, sourceOf(w))
	fmt.Fprintln(w, "Kundennummer;Bestelldatum;Betrag")
	for i, r := range rows[1:] {
		d, err := time.Parse(time.DateOnly, r[1])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "K%s;%s;%d,%02d\n", r[0], d.Format("02.01.2006"), 1+i%90, i%100)
	}
	return "delimiter: \";\"\ndecimal: \",\"\ncustomer: Kundennummer\ntime: {column: Bestelldatum, layout: \"02.01.2006\"}\nkind: {constant: purchase}\namount: Betrag\n"
}

// cdnowRows reads CDNOW_master.txt: customer, date (YYYYMMDD), dollars.
func cdnowRows(t *testing.T, path string) [][3]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]string
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) != 4 {
			continue
		}
		out = append(out, [3]string{f[0], f[1], f[3]})
	}
	return out
}

func cdnowJSONLines(t *testing.T, w io.Writer) string {
	t.Helper()
	for _, r := range cdnowRows(t, sourceOf(w)) {
		d, err := time.Parse("20060102", r[1])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "{\"user_id\":%q,\"ts\":%d,\"value\":%s}\n", r[0], d.Add(12*time.Hour).Unix(), r[2])
	}
	return "customer: user_id\ntime: {column: ts, layout: unix}\nkind: {constant: purchase}\namount: value\n"
}

func cdnowExcelTSV(t *testing.T, w io.Writer) string {
	t.Helper()
	fmt.Fprint(w, "cust\tdate\tamount\r\n")
	base := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	for _, r := range cdnowRows(t, sourceOf(w)) {
		d, err := time.Parse("20060102", r[1])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\r\n", r[0], int(d.Sub(base).Hours()/24), r[2])
	}
	return "delimiter: \"\\t\"\ncustomer: cust\ntime: {column: date, layout: excel}\nkind: {constant: purchase}\namount: amount\n"
}

// retailLines reads the first n lines of the complete Online Retail set.
func retailLines(t *testing.T, path string, n int) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(zr)
	var out [][]string
	for len(out) <= n {
		r, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out[1:] // InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
}

func readCSVRows(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// retailUSDates writes Online Retail II's shape: US month-first dates
// without zero padding, customer ids as floats on every other line (pandas),
// guests empty, returns as negative quantities. The first 10,000 lines hold
// only days up to 12: the order is settled past the sample.
func retailUSDates(t *testing.T, w io.Writer) string {
	t.Helper()
	fmt.Fprintln(w, "Invoice,StockCode,Quantity,InvoiceDate,Price,Customer ID,Country")
	for i, r := range retailLines(t, sourceOf(w), 40000) {
		d, err := time.Parse("2006-01-02 15:04:05", r[4])
		if err != nil {
			t.Fatal(err)
		}
		cust := r[6]
		if cust == "NA" || cust == "" {
			cust = ""
		} else if i%2 == 1 {
			cust += ".0"
		}
		fmt.Fprintf(w, "%s,%s,%s,%s,%s,%s,%q\n", r[0], r[1], r[3], d.Format("1/2/2006 15:04"), r[5], cust, r[7])
	}
	return "customer: Customer ID\ncustomer_normalize: [integer]\nmissing_customer: ignore\ntime: {column: InvoiceDate, layout: \"1/2/2006 15:04\"}\n" +
		"kind: {constant: purchase}\namount: Price\nquantity: Quantity\nnegative_amount: ignore\n"
}

// retailLineItems writes each invoice of known customers as line items
// repeating the order's date, status and total: cancellations (C…) are
// Cancelled orders.
func retailLineItems(t *testing.T, w io.Writer) string {
	t.Helper()
	lines := retailLines(t, sourceOf(w), 30000)
	totals := map[string]float64{}
	for _, r := range lines {
		q, _ := strconv.ParseFloat(r[3], 64)
		p, _ := strconv.ParseFloat(r[5], 64)
		totals[r[0]] += q * p
	}
	fmt.Fprintln(w, "Order ID,Order Date,Order Status,Customer Email,Order Total,SKU")
	for i, r := range lines {
		if r[6] == "NA" || r[6] == "" {
			continue
		}
		d, err := time.Parse("2006-01-02 15:04:05", r[4])
		if err != nil {
			t.Fatal(err)
		}
		status, total := "Completed", totals[r[0]]
		if strings.HasPrefix(r[0], "C") {
			status, total = "Cancelled", -total
		}
		email := "customer" + r[6] + "@example.com"
		if i%3 == 0 {
			email = strings.ToUpper(email[:1]) + email[1:]
		}
		fmt.Fprintf(w, "%s,%q,%s,%s,%.2f,%s\n", r[0], d.Format(time.RFC1123Z), status, email, total, r[1])
	}
	return "customer: Customer Email\ncustomer_normalize: [lower]\ntime: {column: Order Date, layout: \"Mon, 02 Jan 2006 15:04:05 -0700\"}\n" +
		"kind: {column: Order Status, values: {Completed: purchase}, ignore: [Cancelled]}\namount: Order Total\norder: Order ID\n"
}
