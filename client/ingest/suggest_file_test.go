package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/kairos-fl/kairos/model"
)

// suggestedEvents suggests the mapping of the file at p and reads the whole
// file through it.
func suggestedEvents(t *testing.T, p string) (*Suggestion, []model.Event) {
	t.Helper()
	sg, err := SuggestFile(context.Background(), p, SuggestOptions{MaxRows: 3})
	if err != nil {
		t.Fatalf("SuggestFile(%s): %v", p, err)
	}
	evs, _, err := readAll(t, p, Options{Format: CSV, Mapping: sg.Mapping})
	if err != nil {
		t.Fatalf("%s read through the suggested mapping:\n%s\n%v", p, sg.YAML, err)
	}
	return sg, evs
}

// TestSuggestFileContainers: a workbook, a Parquet file and a zip archive
// get a mapping that reads them, sampled from three rows of four (two
// customers, two orders each, so that an id repeats) so that the
// file's own read (the Report) is of all four. The events are written out
// by hand from the cells: a workbook's date cell 2010-12-01 08:26 is that
// wall-clock time (UTC, no zone suggested), Parquet's naive microseconds
// likewise; the workbook's second sheet is a check.
func TestSuggestFileContainers(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := []model.Event{
		{Customer: "17850", Time: at("2010-12-01 08:26"), Kind: model.Purchase, Amount: 15.3, HasAmount: true},
		{Customer: "17850", Time: at("2010-12-01 08:34"), Kind: model.Purchase, Amount: 2.5, HasAmount: true},
		{Customer: "13047", Time: at("2010-12-02 09:00"), Kind: model.Purchase, Amount: 7, HasAmount: true},
		{Customer: "13047", Time: at("2010-12-03 10:15"), Kind: model.Purchase, Amount: 1.25, HasAmount: true},
	}
	same := func(name string, got []model.Event) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %d events %+v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: event %d: got %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}

	wb := newWorkbook(t, false, map[string][][]any{
		"Orders": {
			{"Order", "CustomerID", "InvoiceDate", "Total"},
			{"A1", 17850, at("2010-12-01 08:26"), 15.3},
			{"A2", 17850, at("2010-12-01 08:34"), 2.5},
			{"A3", 13047, at("2010-12-02 09:00"), 7},
			{"A4", 13047, at("2010-12-03 10:15"), 1.25},
		},
		"Returns": {{"Order", "CustomerID"}},
	}, "Orders", "Returns")
	sg, evs := suggestedEvents(t, wb)
	same("workbook", evs)
	if sg.Mapping.TimeLayout != LayoutExcel || sg.Mapping.Customer.Name != "CustomerID" {
		t.Errorf("workbook: time layout %q, customer %q; want excel, CustomerID\n%s", sg.Mapping.TimeLayout, sg.Mapping.Customer.Name, sg.YAML)
	}
	if len(sg.Checks) != 1 || !strings.Contains(sg.Checks[0], `"Returns"`) || !strings.Contains(string(sg.YAML), "# CHECK: the workbook has 2 sheets") {
		t.Errorf("workbook: checks %q, want one naming the sheet Returns\n%s", sg.Checks, sg.YAML)
	}
	if sg.Report.Rows != 4 || !strings.Contains(string(sg.YAML), `sheet "Orders" of an Excel workbook`) || !strings.Contains(string(sg.YAML), "from the head of the file") {
		t.Errorf("workbook: report of %d rows (want the file's 4), YAML head:\n%s", sg.Report.Rows, sg.YAML)
	}

	type order struct {
		Customer string  `parquet:"customer_id"`
		Ordered  int64   `parquet:"ordered_at,timestamp(microsecond:local)"`
		Total    float64 `parquet:"total"`
	}
	pq := writeParquet0(t, []order{
		{"17850", at("2010-12-01 08:26").UnixMicro(), 15.3},
		{"17850", at("2010-12-01 08:34").UnixMicro(), 2.5},
		{"13047", at("2010-12-02 09:00").UnixMicro(), 7},
		{"13047", at("2010-12-03 10:15").UnixMicro(), 1.25},
	})
	sg, evs = suggestedEvents(t, pq)
	same("parquet", evs)
	if len(sg.Checks) != 0 || sg.Report.Rows != 4 {
		t.Errorf("parquet: checks %q, report of %d rows; want none and 4\n%s", sg.Checks, sg.Report.Rows, sg.YAML)
	}

	csvText := "customer_id,ordered_at,total\n17850,2010-12-01 08:26:00,15.30\n17850,2010-12-01 08:34:00,2.50\n13047,2010-12-02 09:00:00,7\n13047,2010-12-03 10:15:00,1.25\n"
	zp := writeFile(t, "orders.zip", zipOf(t, [2]string{"export/orders.csv", csvText}))
	sg, evs = suggestedEvents(t, zp)
	same("zip", evs)
	if !strings.Contains(string(sg.YAML), "orders.zip/export/orders.csv") {
		t.Errorf("zip: the YAML does not name the archived file:\n%s", sg.YAML)
	}

	two := writeFile(t, "two.zip", zipOf(t, [2]string{"a.csv", csvText}, [2]string{"b.csv", csvText}))
	if _, err := SuggestFile(context.Background(), two, SuggestOptions{}); err == nil || !strings.Contains(err.Error(), `"a.csv"`) {
		t.Errorf("an archive of two files: %v, want an error listing them", err)
	}
}

// writeParquet0 writes rows of any struct type as a Parquet file.
func writeParquet0[T any](t *testing.T, rows []T) string {
	t.Helper()
	var b strings.Builder
	if err := parquet.Write(&b, rows); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "orders.parquet", []byte(b.String()))
}
