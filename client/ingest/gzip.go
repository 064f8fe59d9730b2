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

// ErrNotText is matched by the error for a file that none of the readers
// takes: an Excel 97-2003 workbook, one JSON array of objects (not JSON
// Lines), or a workbook, Parquet file or archive given to a reader of a
// fixed text layout (CDNOW, Taobao, Online Retail) rather than through a
// mapping.
var ErrNotText = errors.New("not a text export")

// xlsMagic starts an OLE2 compound file: an Excel 97-2003 workbook.
var xlsMagic = []byte{0xd0, 0xcf, 0x11, 0xe0}

const xlsAdvice = "the file is an Excel 97-2003 workbook (.xls), or a password-protected one: save the sheet as \"Excel Workbook (.xlsx)\" without a password, or as \"CSV UTF-8\""

const encryptedAdvice = "the file is a password-protected (encrypted) Excel workbook, which cannot be read without its password: " +
	"open it in Excel, remove the password (File > Info > Protect Workbook > Encrypt with Password, then clear it) and save it, or save the sheet as \"CSV UTF-8\""

// encryptedPackage is the name, in UTF-16LE, of the stream that holds an
// encrypted .xlsx inside its OLE2 compound file (MS-OFFCRYPTO §2.3.4.4).
var encryptedPackage = []byte("E\x00n\x00c\x00r\x00y\x00p\x00t\x00e\x00d\x00P\x00a\x00c\x00k\x00a\x00g\x00e\x00")

// encryptedWorkbook reports whether the compound file br starts names the
// encrypted package stream in its first bytes, where a directory usually
// lies; an .xls does not have one.
func encryptedWorkbook(br *bufio.Reader) bool {
	head, _ := br.Peek(br.Size())
	return bytes.Contains(head, encryptedPackage)
}

// Open opens path for one of the readers: decompressed when it is
// gzip-compressed, transcoded to UTF-8 when it is UTF-16 text (it starts
// with a byte-order mark). It looks at the first bytes rather than at a
// ".gz" suffix, so a renamed file reads the same; no text export starts
// with byte 0x1f. A workbook, Parquet file or zip archive comes back as it
// is, for Read. Closing the result closes the file.
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

// sourceEncoding forwards the transcoding reader's.
func (rc readCloser) sourceEncoding() string { return sourceEncoding(rc.Reader) }

// sourceEncoding names the encoding r's text was transcoded from (UTF-16LE
// or UTF-16BE), or is empty.
func sourceEncoding(r io.Reader) string {
	if t, ok := r.(interface{ sourceEncoding() string }); ok {
		return t.sourceEncoding()
	}
	return ""
}

// Decompressed returns a reader of r's content: the decompressed stream
// when r starts with the gzip magic number, the UTF-8 text of UTF-16 (after
// a byte-order mark), a buffered r otherwise. Open uses it; a caller that
// opens the file itself (to count its bytes) wraps its reader.
func Decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, xlsMagic):
		if encryptedWorkbook(br) {
			return nil, fmt.Errorf("%w: %s", ErrNotText, encryptedAdvice)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotText, xlsAdvice)
	case bytes.HasPrefix(head, utf16LEMark), bytes.HasPrefix(head, utf16BEMark):
		_, _ = br.Discard(2)
		return newUTF16Reader(br, head[0] == utf16BEMark[0]), nil
	case len(head) < len(gzipMagic) || [2]byte(head[:2]) != gzipMagic:
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}
