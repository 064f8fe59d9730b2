package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// gzipMagic is the first two bytes of every gzip member (RFC 1952 §2.3.1).
var gzipMagic = [2]byte{0x1f, 0x8b}

// ErrNotText is matched by the error for a file that is not a text export
// the readers take (nor gzip-compressed text): a workbook, an archive,
// UTF-16 text, Parquet, or one JSON array of objects (not JSON Lines).
var ErrNotText = errors.New("not a text export")

// notText are the first bytes of files a shop's export is often saved as
// instead of CSV, and what to do about each. Read as text, each made every
// line a bad row, or the header "has no column", without saying why.
var notText = []struct {
	magic  []byte
	advice string
}{
	{[]byte("PK\x03\x04"), "the file is a zip archive (an Excel .xlsx or LibreOffice .ods workbook, or a zipped export): save the sheet as \"CSV UTF-8\", or unzip it"},
	{[]byte{0xd0, 0xcf, 0x11, 0xe0}, "the file is an Excel 97-2003 workbook (.xls): save the sheet as \"CSV UTF-8\""},
	{[]byte{0xff, 0xfe}, "the file is UTF-16 text (Excel's \"Unicode text\"): save it as \"CSV UTF-8\""},
	{[]byte{0xfe, 0xff}, "the file is UTF-16 text: save it as \"CSV UTF-8\""},
	{[]byte("PAR1"), "the file is Parquet: export it as CSV (e.g. pandas.read_parquet(p).to_csv(c, index=False))"},
}

// Open opens path for one of the readers, decompressing it when it is
// gzip-compressed. It looks at the first bytes rather than at a ".gz" suffix,
// so a renamed file reads the same; no text export starts with byte 0x1f.
// Closing the result closes the file.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := Decompressed(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Decompressed returns a reader of r's content: a buffered r, or the
// decompressed stream when r starts with the gzip magic number. Open uses it;
// a caller that opens the file itself (to count its bytes) wraps its reader.
func Decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for _, f := range notText {
		if bytes.HasPrefix(head, f.magic) {
			return nil, fmt.Errorf("%w: %s", ErrNotText, f.advice)
		}
	}
	if len(head) < len(gzipMagic) || [2]byte(head[:2]) != gzipMagic {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}
