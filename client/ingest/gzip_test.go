package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

// TestReadFileGzip: a gzip-compressed file (even without a .gz suffix) reads
// to the same events as the plain file; a truncated one is an error.
func TestReadFileGzip(t *testing.T) {
	plain := []byte("customer_id date number_of_cds dollar_value\n1 19970101 1 11.77\n2 19970112 1 12.00\n1 19970202 2 20.76\n")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var gz []byte
	{
		p := filepath.Join(dir, "tmp.gz")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		if _, err := zw.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if gz, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) ([]model.Event, error) {
		var evs []model.Event
		_, err := ReadFile(context.Background(), path, Options{Format: CDNOW}, func(e model.Event) error {
			evs = append(evs, e)
			return nil
		})
		return evs, err
	}
	want, err := read(write("plain.txt", plain))
	if err != nil || len(want) != 3 {
		t.Fatalf("plain file: %d events, %v; want 3 events", len(want), err)
	}
	for _, name := range []string{"cdnow.txt.gz", "cdnow-renamed.txt"} {
		got, err := read(write(name, gz))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	if _, err := read(write("truncated.gz", gz[:len(gz)-6])); err == nil {
		t.Error("truncated gzip file: got no error")
	}
}

// TestReadGrocery reads the BTYDplus grocery log with GroceryMapping: the
// README's 10,483 purchases of 1,525 customers, 2006-01-01 .. 2007-12-30.
func TestReadGrocery(t *testing.T) {
	path := sharedData(t, "grocery_btydplus/groceryElog.csv")
	var ta tally
	rep, err := ReadFile(context.Background(), path, Options{Format: CSV, Mapping: GroceryMapping()}, ta.add)
	if err != nil {
		t.Fatal(err)
	}
	if ta.events != 10483 || len(ta.customers) != 1525 || ta.kinds[model.Purchase] != 10483 || rep.Invalid != 0 {
		t.Errorf("got %d events (%d purchases) of %d customers, %d invalid; want 10483 purchases of 1525 customers, 0 invalid",
			ta.events, ta.kinds[model.Purchase], len(ta.customers), rep.Invalid)
	}
	if got, want := ta.first.Format("2006-01-02"), "2006-01-01"; got != want {
		t.Errorf("first purchase %s, want %s", got, want)
	}
	if got, want := ta.last.Format("2006-01-02"), "2007-12-30"; got != want {
		t.Errorf("last purchase %s, want %s", got, want)
	}
}

// FuzzDecompressed: a stream without the gzip magic, a UTF-16 byte-order
// mark or an OLE2 compound file's magic comes back unchanged; one with a
// UTF-16 mark comes back as its text decoded by the standard library; the
// gzip compression of any bytes comes back as those bytes; nothing panics.
func FuzzDecompressed(f *testing.F) {
	f.Add([]byte("customer_id date\n1 19970101\n"))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Add([]byte{0x1f})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xfe, 'a', 0})
	f.Add([]byte{0xfe, 0xff, 0xd8, 0x3d})
	f.Add([]byte{0xd0, 0xcf, 0x11, 0xe0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decompressed(bytes.NewReader(data))
		wide := bytes.HasPrefix(data, utf16LEMark) || bytes.HasPrefix(data, utf16BEMark)
		plain := (len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b) && !wide && !bytes.HasPrefix(data, xlsMagic)
		switch {
		case wide:
			got, err := io.ReadAll(r)
			if want := decodeUTF16Std(data[2:], data[0] == 0xfe); err != nil || string(got) != want {
				t.Fatalf("UTF-16 stream: %q, %v; want %q", got, err, want)
			}
		case bytes.HasPrefix(data, xlsMagic):
			if !errors.Is(err, ErrNotText) {
				t.Fatalf("compound file: %v, want ErrNotText", err)
			}
		case plain:
			if err != nil {
				t.Fatalf("plain stream: %v", err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("plain stream changed: %q, %v", got, err)
			}
		case err == nil:
			_, _ = io.ReadAll(r) // may fail: a corrupt stream is an error, not a panic
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		r, err = Decompressed(&z)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("gzip round trip: %q, %v; want %q", got, err, data)
		}
	})
}

// TestNotTextExports: an Excel 97-2003 workbook saved in place of the CSV
// made every line a bad row (or the header "has no column") without saying
// why; it is refused naming what the file is and how to save it. A CSV
// whose header happens to start with "PK" reads.
func TestNotTextExports(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "orders.xls")
	if err := os.WriteFile(p, append([]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, make([]byte, 64)...), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Mapping{Customer: Column{Index: 1}, Time: Column{Index: 2}, TimeLayout: LayoutUnix, ConstKind: model.Purchase}
	_, err := ReadFile(context.Background(), p, Options{Format: CSV, Mapping: m}, func(model.Event) error { return nil })
	if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "Excel 97-2003 workbook") || !strings.Contains(err.Error(), ".xlsx") {
		t.Errorf("%s: %v, want ErrNotText naming the Excel 97-2003 workbook and .xlsx", p, err)
	}
	// "PK" followed by text is a header, not an archive.
	r, err := Decompressed(strings.NewReader("PKID,date\n1,2020-01-01\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "PKID,date\n1,2020-01-01\n" {
		t.Errorf("read %q", b)
	}
}
