package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kairos-fl/kairos/model"
)

// encodeUTF16 writes s as UTF-16 with a byte-order mark, with the standard
// library's encoder (the reader under test is not involved).
func encodeUTF16(s string, big bool) []byte {
	order := binary.AppendByteOrder(binary.LittleEndian)
	out := []byte{0xff, 0xfe}
	if big {
		order, out = binary.BigEndian, []byte{0xfe, 0xff}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		out = order.AppendUint16(out, u)
	}
	return out
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readAll(t *testing.T, path string, opts Options) ([]model.Event, Report, error) {
	t.Helper()
	var evs []model.Event
	rep, err := ReadFile(context.Background(), path, opts, func(ev model.Event) error {
		evs = append(evs, ev)
		return nil
	})
	return evs, rep, err
}

// TestUTF16Text: Excel's "Unicode Text" (UTF-16LE with a byte-order mark,
// tab-separated) and UTF-16BE read to the same events as the UTF-8 text,
// characters outside the BMP (a surrogate pair) included; the mapping's
// single-byte encoding gives way to the mark. A comma mapping says the file
// is tab-separated.
func TestUTF16Text(t *testing.T) {
	const text = "Kunde\tDatum\tBetrag\r\nzoë\t2024-01-05\t12,50\r\n€-shop 🛒\t2024-02-29\t1.234,00\r\n"
	m := mustMapping(t, "delimiter: \"\\t\"\ndecimal: \",\"\nencoding: windows-1252\ncustomer: Kunde\ntime: {column: Datum, layout: \"2006-01-02\"}\nkind: {constant: purchase}\namount: Betrag\n")
	utf8Mapping := *m
	utf8Mapping.Encoding = ""
	want, _, err := readAll(t, writeFile(t, "orders.csv", []byte(text)), Options{Format: CSV, Mapping: &utf8Mapping})
	if err != nil || len(want) != 2 || want[1].Customer != "€-shop 🛒" || want[1].Amount != 1234 {
		t.Fatalf("UTF-8 text: %+v, %v", want, err)
	}
	for _, big := range []bool{false, true} {
		got, rep, err := readAll(t, writeFile(t, "orders.txt", encodeUTF16(text, big)), Options{Format: CSV, Mapping: m})
		if err != nil {
			t.Fatalf("big endian %v: %v", big, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("big endian %v: got %+v, want %+v", big, got, want)
		}
		if !strings.Contains(rep.String(), "read as UTF-16") {
			t.Errorf("report %q does not say the file was UTF-16", rep)
		}
	}
	comma := mustMapping(t, "customer: Kunde\ntime: {column: Datum, layout: \"2006-01-02\"}\nkind: {constant: purchase}\n")
	_, _, err = readAll(t, writeFile(t, "orders.txt", encodeUTF16(text, false)), Options{Format: CSV, Mapping: comma})
	if err == nil || !strings.Contains(err.Error(), "Unicode Text") || !strings.Contains(err.Error(), `delimiter: "\t"`) {
		t.Errorf("comma mapping on Unicode Text: got %v, want the tab hint", err)
	}
}

// decodeUTF16Std is the standard library's decoding of UTF-16 bytes: the
// code units through utf16.Decode (a lone surrogate is U+FFFD), a last odd
// byte U+FFFD.
func decodeUTF16Std(b []byte, big bool) string {
	order := binary.ByteOrder(binary.LittleEndian)
	if big {
		order = binary.BigEndian
	}
	units := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		units = append(units, order.Uint16(b[i:]))
	}
	s := string(utf16.Decode(units))
	if len(b)%2 == 1 {
		s += string(utf8.RuneError)
	}
	return s
}

// FuzzUTF16Reader: the streaming decoder, fed one byte at a time or all at
// once, gives what the standard library decodes from the same bytes, and a
// string encoded to UTF-16 comes back as itself.
func FuzzUTF16Reader(f *testing.F) {
	f.Add([]byte("a\x00b\x00"), false)
	f.Add([]byte{0x3d, 0xd8, 0x52, 0xdf}, false) // a surrogate pair
	f.Add([]byte{0xd8, 0x3d}, true)              // a lone high surrogate
	f.Add([]byte{0x00, 0xdc, 0x41}, false)       // a lone low surrogate, an odd byte
	f.Fuzz(func(t *testing.T, b []byte, big bool) {
		want := decodeUTF16Std(b, big)
		for _, r := range []io.Reader{bytes.NewReader(b), iotest.OneByteReader(bytes.NewReader(b))} {
			got, err := io.ReadAll(newUTF16Reader(r, big))
			if err != nil || string(got) != want {
				t.Fatalf("decode % x (big %v): got %q, %v; want %q", b, big, got, err, want)
			}
		}
		if !utf8.Valid(b) {
			return
		}
		enc := encodeUTF16(string(b), big)[2:]
		got, err := io.ReadAll(newUTF16Reader(iotest.HalfReader(bytes.NewReader(enc)), big))
		if err != nil || string(got) != strings.ToValidUTF8(string(b), string(utf8.RuneError)) {
			t.Fatalf("round trip of %q: got %q, %v", b, got, err)
		}
	})
}

// TestUTF16ReadError: a read error of the file is returned, not taken for
// the end of the text.
func TestUTF16ReadError(t *testing.T) {
	boom := errors.New("disk gone")
	_, err := io.ReadAll(newUTF16Reader(io.MultiReader(bytes.NewReader([]byte("a\x00")), iotest.ErrReader(boom)), false))
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
}
