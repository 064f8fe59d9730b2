package ingest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

// zipOf writes an archive of the named files, in order.
func zipOf(t testing.TB, files ...[2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestZipOneFile: a zip archive of one export (with the folder entries and
// __MACOSX/ files macOS's Finder adds) reads as the export itself, a UTF-16
// or fixed-layout one too; several files, none, or a workbook inside are
// errors that say what to do.
func TestZipOneFile(t *testing.T) {
	const csv = "c,t,a\nanna,2024-01-05,12.5\nbob,2024-01-06,3\n"
	m := mustMapping(t, "customer: c\ntime: {column: t, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: a\n")
	want, _, err := readAll(t, writeFile(t, "orders.csv", []byte(csv)), Options{Format: CSV, Mapping: m})
	if err != nil || len(want) != 2 {
		t.Fatalf("plain: %+v, %v", want, err)
	}
	for name, z := range map[string][]byte{
		"one file":       zipOf(t, [2]string{"orders.csv", csv}),
		"macOS metadata": zipOf(t, [2]string{"export/", ""}, [2]string{"export/orders.csv", csv}, [2]string{"__MACOSX/export/._orders.csv", "\x00\x05"}, [2]string{"export/.DS_Store", "x"}),
		"UTF-16 inside":  zipOf(t, [2]string{"orders.txt", string(encodeUTF16(csv, false))}),
	} {
		got, rep, err := readAll(t, writeFile(t, "orders.zip", z), Options{Format: CSV, Mapping: m})
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: got %+v, %v; want %+v", name, got, err, want)
		}
		if !strings.Contains(rep.String(), "zip archive") {
			t.Errorf("%s: report %q does not say the file was archived", name, rep)
		}
	}
	cdnow := zipOf(t, [2]string{"CDNOW_master.txt", "customer_id date number_of_cds dollar_value\n1 19970101 1 11.77\n"})
	if got, _, err := readAll(t, writeFile(t, "cdnow.zip", cdnow), Options{Format: CDNOW}); err != nil || len(got) != 1 {
		t.Errorf("zipped CDNOW: %+v, %v", got, err)
	}

	two := zipOf(t, [2]string{"jan.csv", csv}, [2]string{"feb.csv", csv})
	_, _, err = readAll(t, writeFile(t, "orders.zip", two), Options{Format: CSV, Mapping: m})
	if err == nil || !strings.Contains(err.Error(), `2 files ("jan.csv", "feb.csv")`) || !strings.Contains(err.Error(), "unzip") {
		t.Errorf("two files: got %v, want both named and unzip advised", err)
	}
	_, _, err = readAll(t, writeFile(t, "empty.zip", zipOf(t)), Options{Format: CSV, Mapping: m})
	if err == nil || !strings.Contains(err.Error(), "holds no file") {
		t.Errorf("empty archive: got %v", err)
	}
	inner := zipOf(t, [2]string{"orders.zip", string(zipOf(t, [2]string{"orders.csv", csv}))})
	_, _, err = readAll(t, writeFile(t, "nested.zip", inner), Options{Format: CSV, Mapping: m})
	if !errors.Is(err, ErrNotText) || !strings.Contains(err.Error(), "nested.zip/orders.zip") {
		t.Errorf("archive in an archive: got %v, want ErrNotText naming the inner file", err)
	}
	_, _, err = readAll(t, writeFile(t, "cut.zip", two[:len(two)-10]), Options{Format: CSV, Mapping: m})
	if err == nil || !strings.Contains(err.Error(), "cut.zip") {
		t.Errorf("truncated archive: got %v", err)
	}
}

// TestZipBomb: an entry that declares more than maxUnzipRatio times the
// archive's size (at least minUnzipBound) is refused before a byte is
// inflated; archive/zip refuses to inflate past the declared size, so the
// declaration bounds the work.
func TestZipBomb(t *testing.T) {
	var data bytes.Buffer
	fw, err := flate.NewWriter(&data, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("1,2024-01-01\n", 1000))
	for range 100 {
		if _, err := fw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "orders.csv", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(nil),
		CompressedSize64: uint64(data.Len()), UncompressedSize64: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	m := mustMapping(t, "header: false\ncustomer: 1\ntime: {column: 2, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
	_, _, err = readAll(t, writeFile(t, "bomb.zip", b.Bytes()), Options{Format: CSV, Mapping: m})
	if err == nil || !strings.Contains(err.Error(), "unpacks to 1099511627776 bytes") {
		t.Errorf("zip bomb: got %v, want it refused by its declared size", err)
	}
}
