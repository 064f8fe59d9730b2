package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"
)

// round2Mapping uses every round-2 key at once.
func round2Mapping() *Mapping {
	m := testMapping()
	m.TrimCustomer, m.IntegerCustomer, m.LowerCustomer, m.IgnoreMissingCustomer = true, true, true, true
	m.Cancelled = Column{Name: "cancelled"}
	m.Currency, m.CurrencyRates = Column{Name: "cur"}, map[string]float64{"EUR": 1, "JPY": 0.00625}
	m.Encoding = EncodingWindows1252
	return m
}

// FuzzReadCSVRound2 reads any input through a mapping with every round-2
// key (and, in a second read, the Excel layout and a time-of-day column)
// and checks the invariants every reader keeps (checkRead).
func FuzzReadCSVRound2(f *testing.F) {
	const head = "user,ts,kind,amount,cur,cancelled\n"
	f.Add([]byte(head + " A@B.com ,100,buy,1,EUR,\n17850.0,200,buy,1200,JPY,\n,300,buy,1,EUR,\nu,400,buy,1,EUR,2024\n"))
	f.Add([]byte(head + "\"x\ny\",100,buy,1,EUR,\nu,1,buy,\"1\n\",GBP,\nuser,ts,kind,amount,cur,cancelled\n\x80\xe9,1,buy,1,EUR,\n"))
	f.Add([]byte(head + "u,\"never closed,1,buy,1,EUR,\nv,1,buy,1,EUR,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := round2Mapping()
		checkRead(t, in, Options{Format: CSV, Mapping: m})
		utf := *m
		utf.Encoding, utf.TrimCustomer, utf.IntegerCustomer, utf.IgnoreMissingCustomer = "", false, false, false
		checkRead(t, in, Options{Format: CSV, Mapping: &utf})
		ex := *m
		ex.TimeLayout = LayoutExcel
		checkRead(t, in, Options{Format: CSV, Mapping: &ex})
		tod := *m
		tod.TimeLayout, tod.TimeOfDay = "2006-01-02 15:04:05", Column{Name: "cancelled"}
		tod.Cancelled = Column{}
		checkRead(t, in, Options{Format: CSV, Mapping: &tod})
	})
}

// FuzzRecords compares the reader's records (lines joined while a quoted
// field is open, then split) with encoding/csv on whole files: whenever
// encoding/csv reads a file, the records and their fields must match.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{"a,b\r\nc,\"d\r\ne\"\r\n", "\"x\n\n\"\"y\"\"\",z\n1,2\n", "a\n\nb\n", "\"\",\"\n\"\n", "a,\"b\nc\"\"\",d\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := csv.NewReader(strings.NewReader(in))
		r.FieldsPerRecord = -1
		want, err := r.ReadAll()
		if err != nil {
			return
		}
		p := newCSVParser(&Mapping{Customer: Column{Index: 1}, Time: Column{Index: 1}, TimeLayout: LayoutUnix, ConstKind: 4}, time.UTC)
		sc := newLineScanner(strings.NewReader(in))
		var got [][]string
		for {
			rec, _, spanned, tooLong, err := sc.nextRecord(p)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || tooLong || spanned < 0 {
				t.Fatalf("%q: record %d: %v, too long %v, spanned %d; encoding/csv read %q", in, len(got)+1, err, tooLong, spanned, want)
			}
			if len(rec) == 0 {
				continue // the reader skips blank lines, as encoding/csv does
			}
			fields, col, serr := p.sp.split(rec)
			if serr != nil {
				t.Fatalf("%q: record %q: column %d: %v; encoding/csv read %q", in, rec, col, serr, want)
			}
			row := make([]string, len(fields))
			for i, fl := range fields {
				row[i] = string(fl)
			}
			got = append(got, row)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: got %d records %q, want %d %q", in, len(got), got, len(want), want)
		}
		for i := range want {
			if strings.Join(got[i], "\x00") != strings.Join(want[i], "\x00") {
				t.Fatalf("%q: record %d: got %q, want %q", in, i+1, got[i], want[i])
			}
		}
	})
}

// FuzzParseExcel checks the Excel serial reader against a second method,
// Unix seconds from the serial of 1970-01-01 (25569): the two agree to the
// second wherever it accepts, and it accepts exactly the plain decimals
// (at most 7 integer digits) in [61, 2958466).
func FuzzParseExcel(f *testing.F) {
	for _, s := range []string{"40513.35", "61", "60", "2958465.99999", "38718", "1e3", "-1", "40513,5", "0061.5", "40513."} {
		f.Add(s)
	}
	plain := regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]*)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseExcel([]byte(s), false, time.UTC)
		v, perr := strconv.ParseFloat(s, 64)
		if accept := plain.MatchString(s) && perr == nil && v >= excelFirst && v < excelEnd; accept != (err == nil) {
			t.Fatalf("parseExcel(%q): error %v; a plain decimal in range: %v", s, err, accept)
		}
		if err != nil {
			return
		}
		want := time.Unix(int64(math.Round((v-25569)*86400)), 0).UTC()
		if d := got.Sub(want); d < -time.Second || d > time.Second {
			t.Fatalf("parseExcel(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestTranscodeTables compares the Windows-1252 and Latin-1 tables with
// golang.org/x/text's code pages, byte by byte.
func TestTranscodeTables(t *testing.T) {
	for _, c := range []struct {
		enc string
		cm  *charmap.Charmap
	}{{EncodingWindows1252, charmap.Windows1252}, {EncodingLatin1, charmap.ISO8859_1}} {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		want, err := c.cm.NewDecoder().Bytes(all)
		if err != nil {
			t.Fatal(err)
		}
		got := transcode(nil, all, encodingTable(c.enc))
		gr, wr := []rune(string(got)), []rune(string(want))
		for i := range gr {
			if gr[i] != wr[i] && wr[i] != '\ufffd' {
				t.Errorf("%s byte 0x%02x: got %U, want %U", c.enc, i, gr[i], wr[i])
			}
		}
		if len(gr) != 256 || !bytes.Equal(got[:128], all[:128]) {
			t.Errorf("%s: got %d runes, ASCII changed", c.enc, len(gr))
		}
	}
}
