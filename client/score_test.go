package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/crypto/pseudonym"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
)

func TestScoreClosedForm(t *testing.T) {
	const h = 0.01
	m, err := hazard.Initial(mustSchema(t), h) // zero weights: every customer's daily hazard is h
	if err != nil {
		t.Fatal(err)
	}
	nyc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	ev := func(c string, d time.Time) model.Event {
		return model.Event{Customer: c, Time: d, Kind: model.Purchase, Amount: 5, HasAmount: true}
	}
	events := []model.Event{
		ev("ps-17", date(1998, 1, 3)), ev("ps-9", date(1998, 2, 1)), ev("ps-abc", date(1998, 2, 2)),
		ev("ps-late", date(1998, 4, 1)), // after the cutoff: not scored
	}
	ids := map[string]string{"ps-17": "17", "ps-9": "9"} // ps-abc has no raw id: written as is
	cutoff := time.Date(1998, 3, 1, 0, 0, 0, 0, nyc).UTC()
	var buf bytes.Buffer
	n, err := Score(context.Background(), events, ScoreOptions{Model: m, Cutoff: cutoff, Location: nyc, IDs: ids}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("customers: got %d, want 3", n)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(recs[0], ","), "customer,p_1d,p_3d,p_7d,p_14d,p_30d,p_60d,p_90d,expected_days,expected_day_if_buys,predicted_date"; got != want {
		t.Errorf("header: got %s, want %s", got, want)
	}
	var order []string
	for _, r := range recs[1:] {
		order = append(order, r[0])
		for i, d := range []int{1, 3, 7, 14, 30, 60, 90} {
			want := 1 - math.Pow(1-h, float64(d))
			got, _ := strconv.ParseFloat(r[1+i], 64)
			if math.Abs(got-want) > 5e-5 {
				t.Errorf("%s: P(within %d d): got %v, want %.4f", r[0], d, got, want)
			}
		}
		// E[min(T, 30)] = Σ_{t=0}^{29} (1−h)^t = (1 − (1−h)^30)/h.
		wantE := (1 - math.Pow(1-h, 30)) / h
		if got, _ := strconv.ParseFloat(r[8], 64); math.Abs(got-wantE) > 0.005 {
			t.Errorf("%s: expected days: got %v, want %.2f", r[0], got, wantE)
		}
		// Given a purchase within 30 days T is geometric truncated at 30:
		// E[T | T ≤ 30] = (1 − 31q³⁰ + 30q³¹)/h / (1 − q³⁰), q = 1 − h, and the
		// median is day ⌈ln(1 − (1 − q³⁰)/2)/ln q⌉ = 14 for h = 0.01
		// (ln 0.8700/ln 0.99 = 13.86), the cutoff's local date + 13 days.
		q := 1 - h
		wantIf := (1 - 31*math.Pow(q, 30) + 30*math.Pow(q, 31)) / h / (1 - math.Pow(q, 30))
		if got, _ := strconv.ParseFloat(r[9], 64); math.Abs(got-wantIf) > 0.005 {
			t.Errorf("%s: expected day if buys: got %v, want %.2f", r[0], got, wantIf)
		}
		if r[10] != "1998-03-14" {
			t.Errorf("%s: predicted date: got %s, want 1998-03-14", r[0], r[10])
		}
	}
	if got, want := strings.Join(order, " "), "9 17 ps-abc"; got != want {
		t.Errorf("order: got %s, want %s", got, want)
	}
}

func TestDefaultCutoff(t *testing.T) {
	nyc, _ := time.LoadLocation("America/New_York")
	events := []model.Event{{Time: time.Date(1998, 6, 30, 3, 0, 0, 0, time.UTC)}, {Time: time.Date(1998, 6, 1, 0, 0, 0, 0, time.UTC)}}
	got, err := DefaultCutoff(events, nyc)
	if err != nil {
		t.Fatal(err)
	}
	// 03:00 UTC on 30 June is 23:00 on 29 June in New York: the next local midnight is 30 June.
	if want := time.Date(1998, 6, 30, 0, 0, 0, 0, nyc); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := DefaultCutoff(nil, nil); err == nil {
		t.Error("no events: got nil error")
	}
}

// splitOf is the merchant split written from its definition (first 64 bits of
// SHA-256("kairos-split\x00" ‖ id) as a fraction, placed on cumulative shares).
func splitOf(id string, shares []float64) int {
	h := sha256.Sum256([]byte("kairos-split\x00" + id))
	u := float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
	c := 0.0
	for i, s := range shares {
		if c += s; u < c {
			return i
		}
	}
	return len(shares) - 1
}

// TestShardOfMatchesSimulation keeps the client's split and the simulation's
// (which the demo's local-only baselines use) the same customer for customer.
func TestShardOfMatchesSimulation(t *testing.T) {
	shares := []float64{0.40, 0.25, 0.15, 0.12, 0.08}
	counts := make([]int, len(shares))
	for i := range 20000 {
		id := fmt.Sprintf("%05d", i)
		got := ShardOf(id, shares)
		if want := sim.Merchant(id, shares); got != want {
			t.Fatalf("customer %s: shard %d, simulation %d", id, got, want)
		}
		if want := splitOf(id, shares); got != want {
			t.Fatalf("customer %s: shard %d, definition %d", id, got, want)
		}
		counts[got]++
	}
	for i, s := range shares {
		// Binomial(20000, s): 4.5 standard deviations is at most 0.016 of 20000.
		if got := float64(counts[i]) / 20000; math.Abs(got-s) > 0.016 {
			t.Errorf("shard %d holds %.3f of the customers, want %.2f", i, got, s)
		}
	}
}

func TestLoadEventsShardsAndPseudonymizes(t *testing.T) {
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pseudonym.New(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	shares := []float64{0.40, 0.25, 0.15, 0.12, 0.08}
	owner := map[string]int{} // raw id → shard that returned it
	total := 0
	for i := range shares {
		cfg, err := ParseConfig("t.yaml", dir, []byte(strings.Replace(validConfig, "index: 2", "index: "+strconv.Itoa(i), 1)))
		if err != nil {
			t.Fatal(err)
		}
		ds, err := LoadEvents(context.Background(), cfg, SourceOptions{Pseudonym: key, KeepIDs: true})
		if err != nil {
			t.Fatal(err)
		}
		total += len(ds.Events)
		if got, want := len(ds.Events)+ds.Dropped, ds.Report.Events; got != want {
			t.Errorf("shard %d: kept %d + dropped %d, want the %d events read", i, len(ds.Events), ds.Dropped, want)
		}
		for _, e := range ds.Events {
			raw, ok := ds.IDs[e.Customer]
			if !ok {
				t.Fatalf("shard %d: pseudonym %s has no raw id", i, e.Customer)
			}
			if e.Customer != ps.Pseudonym(raw) || strings.Contains(e.Customer, raw) {
				t.Fatalf("shard %d: customer %s is not the pseudonym of %s", i, e.Customer, raw)
			}
			if prev, seen := owner[raw]; seen && prev != i {
				t.Fatalf("customer %s in shards %d and %d", raw, prev, i)
			}
			owner[raw] = i
			if want := splitOf(raw, shares); want != i {
				t.Fatalf("customer %s: in shard %d, want %d", raw, i, want)
			}
		}
	}
	if len(owner) != 400 || total != 1395 {
		t.Errorf("shards hold %d customers and %d events, want 400 and 1395", len(owner), total)
	}
}

// TestSkipBoundsInvalidRows: a merchant whose file has 5 malformed rows in 100
// (5%) does not train on the 95 left under on_error: skip unless its config
// accepts that share; the default bound is 1%.
func TestSkipBoundsInvalidRows(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("customer_id date number_of_cds dollar_value\n")
	for i := range 100 {
		date := "19970101"
		if i%20 == 7 {
			date = "1997-01-01" // the wrong layout: a bad row
		}
		fmt.Fprintf(&b, "%05d %s 1 10.00\n", i+1, date)
	}
	if err := os.WriteFile(filepath.Join(dir, "orders.txt"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(validConfig, "data:")
	for _, tc := range []struct {
		name, extra string
		wantEvents  int // -1: the load fails with *ingest.TooManyInvalidError
	}{
		{"default bound", "", -1},
		{"share accepted", "  max_invalid_share: 0.05\n", 95},
		{"share below", "  max_invalid_share: 0.04\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig("t.yaml", dir, []byte(head+"data:\n  format: cdnow\n  path: orders.txt\n  on_error: skip\n"+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			ds, err := LoadEvents(context.Background(), cfg, SourceOptions{Pseudonym: key})
			var tooMany *ingest.TooManyInvalidError
			switch {
			case tc.wantEvents < 0 && !errors.As(err, &tooMany):
				t.Fatalf("got %v, want a *ingest.TooManyInvalidError", err)
			case tc.wantEvents < 0 && tooMany.Report.Invalid != 5:
				t.Errorf("error counts %d invalid rows, want 5", tooMany.Report.Invalid)
			case tc.wantEvents >= 0 && err != nil:
				t.Fatal(err)
			case tc.wantEvents >= 0 && len(ds.Events) != tc.wantEvents:
				t.Errorf("got %d events, want %d", len(ds.Events), tc.wantEvents)
			}
		})
	}
}

// TestLoadEventsGzip: `kairos eval` reads a gzip-compressed export (by its
// first bytes); a merchant's client given the same file must read the same
// events, not refuse its header. Three purchases of two customers, by hand.
func TestLoadEventsGzip(t *testing.T) {
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte("c,t\na,2024-01-01\nb,2024-01-02\na,2024-01-03\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"orders.csv.gz": gz.Bytes(),
		"m.yaml":        []byte("header: true\ncustomer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	head, _, _ := strings.Cut(validConfig, "data:")
	cfg, err := ParseConfig("t.yaml", dir, []byte(head+"data:\n  format: csv\n  path: orders.csv.gz\n  mapping: m.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pseudonym.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var wrapped int64
	ds, err := LoadEvents(context.Background(), cfg, SourceOptions{Pseudonym: key, KeepIDs: true, WrapReader: func(r io.Reader, size int64) io.Reader {
		wrapped = size
		return r
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Events) != 3 || len(ds.IDs) != 2 {
		t.Errorf("got %d events of %d customers, want 3 of 2", len(ds.Events), len(ds.IDs))
	}
	if wrapped != int64(gz.Len()) {
		t.Errorf("the progress reader was given size %d, want the file's %d bytes", wrapped, gz.Len())
	}
}

// TestScoreSpreadsheetSafe: scores.csv carries the shop's raw customer ids,
// and a raw id such as =HYPERLINK(…) ran as a formula when the marketer
// opened the file in a spreadsheet (CSV injection). Such ids get a leading
// apostrophe; numbers and ordinary ids are written as they are.
func TestScoreSpreadsheetSafe(t *testing.T) {
	for id, want := range map[string]string{
		`=HYPERLINK("https://evil.example","17")`: `'=HYPERLINK("https://evil.example","17")`,
		"+1+2": "'+1+2", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx",
		"-17": "-17", "17": "17", "anna@example.com": "anna@example.com", "": "",
	} {
		if got := SpreadsheetSafe(id); got != want {
			t.Errorf("SpreadsheetSafe(%q) = %q, want %q", id, got, want)
		}
	}
	m, err := hazard.Initial(mustSchema(t), 0.01)
	if err != nil {
		t.Fatal(err)
	}
	events := []model.Event{{Customer: "ps-1", Time: date(1998, 1, 3), Kind: model.Purchase, Amount: 5, HasAmount: true}}
	var buf bytes.Buffer
	ids := map[string]string{"ps-1": "=cmd|' /C calc'!A0"}
	if _, err := Score(context.Background(), events, ScoreOptions{Model: m, Cutoff: date(1998, 3, 1), IDs: ids}, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[1][0]; got != "'=cmd|' /C calc'!A0" {
		t.Errorf("written id %q, want it behind an apostrophe", got)
	}
}
