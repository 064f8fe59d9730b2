package ingest

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/kairos-fl/kairos/model"
)

// pqOrder is one row of the Parquet fixtures: the types pandas (through
// pyarrow) and Spark write for an order export.
type pqOrder struct {
	Customer string  `parquet:"customer"`
	TS       int64   `parquet:"ts,timestamp(microsecond:local)"`
	TSUTC    int64   `parquet:"ts_utc,timestamp(nanosecond:utc)"`
	TSMs     int64   `parquet:"ts_ms,timestamp(millisecond)"`
	Day      int32   `parquet:"day,date"`
	Amount   float64 `parquet:"amount"`
	Price    int64   `parquet:"price,decimal(2:18)"`
	Qty      int32   `parquet:"qty"`
	Text     string  `parquet:"text"`
	Paid     bool    `parquet:"paid"`
	Note     *string `parquet:"note,optional"`
}

func writeParquet(t *testing.T, rows []pqOrder, opts ...parquet.WriterOption) string {
	t.Helper()
	var b bytes.Buffer
	if err := parquet.Write(&b, rows, opts...); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "orders.parquet", b.Bytes())
}

// wall is the microseconds pandas stores for a naive datetime: the wall
// clock read as if in UTC.
func wall(s string) int64 {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

// TestParquetRead: each timestamp flavour, DATE, DOUBLE, DECIMAL and INT
// read as the values they hold. Expected instants are written out by hand:
// a naive 2024-03-31 01:30 in Berlin (UTC+1 until 02:00 that day) is 00:30
// UTC; a UTC-adjusted timestamp is its instant whatever the zone; DATE
// 19813 is 2024-03-31 (19813 days after 1970-01-01), midnight in Berlin
// being 2024-03-30 23:00 UTC.
func TestParquetRead(t *testing.T) {
	note := "gift"
	rows := []pqOrder{
		{Customer: "anna", TS: wall("2024-03-31 01:30:00"), TSUTC: 1711848600_000000000, TSMs: 1711848600_000, Day: 19813,
			Amount: 12.5, Price: 123456, Qty: 3, Text: "1.234,50", Paid: true, Note: &note},
		{Customer: "17850", TS: wall("2024-07-01 12:00:00"), TSUTC: 1719835200_000000000, TSMs: 1719835200_000, Day: 19905,
			Amount: 0.1, Price: -5, Qty: 1, Text: "7,00"},
	}
	p := writeParquet(t, rows, parquet.MaxRowsPerRowGroup(1))
	for _, tc := range []struct {
		name, mapping string
		times         []string
		amounts       []float64
	}{
		{"naive micros in the zone", "time: {column: ts, layout: \"2006-01-02\", zone: Europe/Berlin}\namount: amount\n",
			[]string{"2024-03-31T00:30:00Z", "2024-07-01T10:00:00Z"}, []float64{12.5, 0.1}},
		{"UTC nanos", "time: {column: ts_utc, layout: \"2006-01-02\", zone: Europe/Berlin}\namount: price\nnegative_amount: ignore\n",
			[]string{"2024-03-31T01:30:00Z"}, []float64{1234.56}},
		{"UTC millis", "time: {column: ts_ms, layout: unix}\namount: amount\nquantity: qty\n",
			[]string{"2024-03-31T01:30:00Z", "2024-07-01T12:00:00Z"}, []float64{37.5, 0.1}},
		{"date", "time: {column: day, layout: \"2006-01-02\", zone: Europe/Berlin}\namount: text\ndecimal: \",\"\n",
			[]string{"2024-03-30T23:00:00Z", "2024-06-30T22:00:00Z"}, []float64{1234.5, 7}},
	} {
		m := mustMapping(t, "customer: customer\nkind: {constant: purchase}\n"+tc.mapping)
		evs, rep, err := readAll(t, p, Options{Format: CSV, Mapping: m})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(evs) != len(tc.times) {
			t.Fatalf("%s: got %d events %+v, want %d", tc.name, len(evs), evs, len(tc.times))
		}
		for i, ev := range evs {
			if got := ev.Time.Format(time.RFC3339); got != tc.times[i] || math.Abs(ev.Amount-tc.amounts[i]) > 1e-9 || !ev.HasAmount {
				t.Errorf("%s: event %d: got %s %v, want %s %v", tc.name, i, got, ev.Amount, tc.times[i], tc.amounts[i])
			}
		}
		if evs[0].Customer != "anna" || rep.ReadAs != "Parquet" {
			t.Errorf("%s: customer %q, read as %q", tc.name, evs[0].Customer, rep.ReadAs)
		}
	}
}

// TestParquetErrors: a column whose type cannot be its key's, a missing
// column, a bad value and a corrupt file are errors that name the file,
// the column and the row; none panics.
func TestParquetErrors(t *testing.T) {
	p := writeParquet(t, []pqOrder{{Customer: "a", TSMs: 1711848600_000, Text: "12.5"}, {Customer: "b", TSMs: 1711848600_000, Text: "abc"}})
	for _, tc := range []struct{ mapping, want string }{
		{"time: {column: paid, layout: unix}\n", `column "paid" (time): has type BOOLEAN, which is not a date or time`},
		{"time: {column: ts_ms, layout: unix}\namount: day\n", `column "day" (amount): has type DATE, which is not a number`},
		{"time: {column: ts_ms, layout: unix}\nitem: ts\n", `column "ts" (item): has type TIMESTAMP`},
		{"time: {column: stamp, layout: unix}\n", `the header has no column "stamp"`},
		{"time: {column: ts_ms, layout: unix}\namount: text\n", `row 2, column "text" (amount): bad amount: amount "abc" is not a finite number`},
	} {
		m := mustMapping(t, "customer: customer\nkind: {constant: purchase}\n"+tc.mapping)
		_, _, err := readAll(t, p, Options{Format: CSV, Mapping: m})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "orders.parquet") {
			t.Errorf("%q: got %v, want an error naming the file and %q", tc.mapping, err, tc.want)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m := mustMapping(t, "customer: customer\nkind: {constant: purchase}\ntime: {column: ts_ms, layout: unix}\n")
	for _, bad := range [][]byte{b[:len(b)/2], b[:len(b)-9], append(append([]byte{}, b[:8]...), make([]byte, len(b)-8)...)} {
		if _, _, err := readAll(t, writeFile(t, "cut.parquet", bad), Options{Format: CSV, Mapping: m}); err == nil || !strings.Contains(err.Error(), "cut.parquet") {
			t.Errorf("damaged file of %d bytes: got %v, want an error naming it", len(bad), err)
		}
	}
	_, _, err = readAll(t, p, Options{Format: CDNOW})
	if !errors.Is(err, ErrNotText) {
		t.Errorf("Parquet as CDNOW: got %v, want ErrNotText", err)
	}
}

// TestAppendDecimal checks DECIMAL's exact rendering against big.Rat.
func TestAppendDecimal(t *testing.T) {
	for _, tc := range []struct {
		n     int64
		scale int32
		want  string
	}{{123456, 2, "1234.56"}, {-5, 2, "-0.05"}, {0, 3, "0.000"}, {7, 0, "7"}, {12, -2, "1200"}, {-1205, 2, "-12.05"}} {
		got := string(appendDecimal(nil, big.NewInt(tc.n), tc.scale))
		if got != tc.want {
			t.Errorf("appendDecimal(%d, %d) = %q, want %q", tc.n, tc.scale, got, tc.want)
		}
	}
}

// FuzzParquetCell: a DECIMAL's text is the exact value (big.Rat of the
// unscaled integer over 10^scale); a timestamp's time is its instant in
// every unit, or its wall clock when not adjusted to UTC; a DATE is
// midnight of its day; a DOUBLE's text parses back to it. Nothing panics.
func FuzzParquetCell(f *testing.F) {
	f.Add(int64(123456), int32(2), int64(1711848600_000), 0.1)
	f.Add(int64(-1), int32(0), int64(-1), math.Inf(1))
	f.Add(int64(math.MinInt64), int32(30), int64(math.MaxInt64), math.NaN())
	loc := time.FixedZone("UTC+3", 3*3600)
	f.Fuzz(func(t *testing.T, n int64, scale int32, stamp int64, x float64) {
		scale %= 40
		if scale < 0 {
			scale = -scale
		}
		c, buf := parquetCell(nil, parquet.Int64Value(n), &pqColumn{conv: pqDecimal, scale: scale}, loc)
		want := new(big.Rat).SetFrac(big.NewInt(n), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
		got, ok := new(big.Rat).SetString(string(buf))
		if c.kind != cellNumber || !ok || got.Cmp(want) != 0 {
			t.Fatalf("decimal %d scale %d: %q, want %s", n, scale, buf, want.FloatString(int(scale)))
		}
		for _, unit := range []time.Duration{time.Millisecond, time.Microsecond, time.Nanosecond} {
			c, _ := parquetCell(nil, parquet.Int64Value(stamp), &pqColumn{conv: pqTimestamp, unit: unit, utc: true}, loc)
			k := int64(time.Second / unit)
			wantT := time.Unix(stamp/k, stamp%k*int64(unit))
			if c.kind != cellTime || !c.t.Equal(wantT) {
				t.Fatalf("timestamp %d %v: %v, want %v", stamp, unit, c.t, wantT)
			}
			c2, _ := parquetCell(nil, parquet.Int64Value(stamp), &pqColumn{conv: pqTimestamp, unit: unit}, loc)
			if d := c.t.Sub(c2.t); c.t.Year() > 1 && c.t.Year() < 9999 && d != 3*time.Hour {
				t.Fatalf("naive timestamp %d %v: %v, want 3 h before the instant %v", stamp, unit, c2.t, c.t)
			}
		}
		day := int32(stamp % 3_000_000)
		c, _ = parquetCell(nil, parquet.Int32Value(day), &pqColumn{conv: pqDate}, loc)
		if y, m, d := c.t.In(loc).Date(); c.t.In(loc).Hour() != 0 || time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() != int64(day)*86400 {
			t.Fatalf("date %d: %v", day, c.t)
		}
		c, buf = parquetCell(nil, parquet.DoubleValue(x), &pqColumn{conv: pqFloat}, loc)
		switch {
		case math.IsNaN(x):
			if c.kind != cellEmpty {
				t.Fatalf("NaN: %+v, want empty", c)
			}
		case math.IsInf(x, 0):
			if c.kind != cellBad {
				t.Fatalf("%v: %+v, want bad", x, c)
			}
		default:
			v, _, err := parseAmountShown(buf, buf)
			if (err == nil && v != x) || (err != nil && x >= 0 && x <= model.MaxAmount) {
				t.Fatalf("double %v: text %q reads as %v, %v", x, buf, v, err)
			}
		}
	})
}

// FuzzReadParquet: a damaged Parquet file (a valid one with a byte changed,
// or cut) is read or refused with an error naming the file; it never
// panics.
func FuzzReadParquet(f *testing.F) {
	var b bytes.Buffer
	note := "n"
	if err := parquet.Write(&b, []pqOrder{{Customer: "a", TSMs: 1711848600_000, Amount: 2.5, Price: 125, Note: &note}, {Customer: "b", TSMs: 1711848601_000, Text: "x"}}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes(), 0, byte(0), 0)
	f.Add(b.Bytes(), 40, byte(0x80), 10)
	m := &Mapping{Header: true, Customer: Column{Name: "customer"}, Time: Column{Name: "ts_ms"}, TimeLayout: LayoutUnix, ConstKind: model.Purchase,
		Amount: Column{Name: "price"}, Item: Column{Name: "note"}}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, at int, x byte, cut int) {
		b = append([]byte(nil), b...)
		if len(b) > 0 {
			b[(at%len(b)+len(b))%len(b)] ^= x
			b = b[:len(b)-(cut%len(b)+len(b))%len(b)/8]
		}
		p := filepath.Join(dir, "f.parquet")
		if err := os.WriteFile(p, append([]byte("PAR1"), b[min(4, len(b)):]...), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(context.Background(), p, Options{Format: CSV, Mapping: m, OnError: Skip}, func(model.Event) error { return nil })
		if err != nil && !strings.Contains(err.Error(), "f.parquet") {
			t.Fatalf("error %v does not name the file", err)
		}
	})
}
