package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"

	"github.com/kairos-fl/kairos/crypto/pseudonym"
)

// TestLoadEventsWorkbookParquet: a merchant's client reads its export from
// an .xlsx workbook or a Parquet file through the file source, which wraps
// the file in its progress reader, as `kairos eval` reads them. Three
// purchases of two customers, by hand.
func TestLoadEventsWorkbookParquet(t *testing.T) {
	dir := t.TempDir()
	wb := excelize.NewFile()
	for i, row := range [][]any{{"c", "t"}, {"a", "2024-01-01"}, {"b", "2024-01-02"}, {"a", "2024-01-03"}} {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := wb.SetSheetRow("Sheet1", cell, &row); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.SaveAs(filepath.Join(dir, "orders.xlsx")); err != nil {
		t.Fatal(err)
	}
	wb.Close()
	type order struct {
		C string `parquet:"c"`
		T int32  `parquet:"t,date"`
	}
	day := func(s string) int32 {
		d, _ := time.Parse(time.DateOnly, s)
		return int32(d.Unix() / 86400)
	}
	var pq bytes.Buffer
	if err := parquet.Write(&pq, []order{{"a", day("2024-01-01")}, {"b", day("2024-01-02")}, {"a", day("2024-01-03")}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "orders.parquet"), pq.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte("customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders.xlsx", "orders.parquet"} {
		head, _, _ := strings.Cut(validConfig, "data:")
		cfg, err := ParseConfig("t.yaml", dir, []byte(head+"data:\n  format: csv\n  path: "+name+"\n  mapping: m.yaml\n"))
		if err != nil {
			t.Fatal(err)
		}
		var counted int64
		ds, err := LoadEvents(context.Background(), cfg, SourceOptions{Pseudonym: key, KeepIDs: true, WrapReader: func(r io.Reader, size int64) io.Reader {
			return countingReader{r, &counted}
		}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, _ := os.Stat(filepath.Join(dir, name))
		if len(ds.Events) != 3 || len(ds.IDs) != 2 || counted != st.Size() {
			t.Errorf("%s: got %d events of %d customers, %d of %d bytes through the progress reader; want 3 of 2, all bytes",
				name, len(ds.Events), len(ds.IDs), counted, st.Size())
		}
		if want := time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC); !ds.Events[2].Time.Equal(want) {
			t.Errorf("%s: last purchase at %v, want %v", name, ds.Events[2].Time, want)
		}
	}
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}
