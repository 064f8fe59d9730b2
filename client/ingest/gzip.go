package ingest

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// gzipMagic is the first two bytes of every gzip member (RFC 1952 §2.3.1).
var gzipMagic = [2]byte{0x1f, 0x8b}

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
	head, err := br.Peek(len(gzipMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(head) < len(gzipMagic) || [2]byte(head) != gzipMagic {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}
