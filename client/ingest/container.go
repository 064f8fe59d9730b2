package ingest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kairos-fl/kairos/model"
)

// containerKind is a file that holds its rows in a structure rather than
// as lines of text: read from the file as a whole, not as a stream.
type containerKind int

const (
	notContainer containerKind = iota
	zipContainer               // an .xlsx workbook or a zip archive
	parquetContainer
)

var (
	zipMagic      = []byte("PK\x03\x04")
	emptyZipMagic = []byte("PK\x05\x06") // an archive of no file: its end record alone
	parquetMagic  = []byte("PAR1")
)

// maxUnzipRatio bounds what a workbook, Parquet file or zip archive may unpack to, as a
// multiple of its own size (with a floor of minUnzipBound): text compresses
// ten- to thirtyfold, a zip bomb a thousandfold and more.
const (
	maxUnzipRatio = 200
	minUnzipBound = 256 << 20
)

// unzipBound is the most a container of size bytes may unpack to.
func unzipBound(size int64) int64 { return max(minUnzipBound, maxUnzipRatio*size) }

// containerOf tells a container by its first bytes, whatever the file's name.
func containerOf(head []byte) containerKind {
	switch {
	case bytes.HasPrefix(head, zipMagic), bytes.HasPrefix(head, emptyZipMagic):
		return zipContainer
	case bytes.HasPrefix(head, parquetMagic):
		return parquetContainer
	}
	return notContainer
}

// fileContainer opens path to tell whether it is a container, and returns
// its size.
func fileContainer(p string) (containerKind, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return notContainer, 0, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return notContainer, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return notContainer, 0, err
	}
	return containerOf(head[:n]), st.Size(), nil
}

// spool copies a container that arrives as a stream to a temporary file,
// which the workbook, Parquet and zip readers need to seek in; the caller
// removes it.
func spool(ctx context.Context, r io.Reader) (string, int64, error) {
	f, err := os.CreateTemp("", "kairos-ingest-*")
	if err != nil {
		return "", 0, fmt.Errorf("spool: %w", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("spool: %w", err)
	}
	return f.Name(), n, nil
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readContainer reads the container file at p (size bytes), named name in
// messages, as opts say.
func readContainer(ctx context.Context, p, name string, size int64, kind containerKind, opts *Options, emit func(model.Event) error) (Report, error) {
	if kind == parquetContainer {
		if opts.Format != CSV {
			return Report{File: name}, fmt.Errorf("read %s: %w: the file is Parquet, which is read through a mapping (format csv with --mapping), not as %s", name, ErrNotText, opts.Format)
		}
		return readParquet(ctx, p, name, size, opts, emit)
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		return Report{File: name}, fmt.Errorf("read %s: the file starts as a zip archive but is not one (%w): a truncated download?", name, err)
	}
	defer zr.Close()
	files := archiveFiles(zr)
	switch {
	case hasFile(zr, "xl/workbook.xml"):
		if opts.Format != CSV {
			return Report{File: name}, fmt.Errorf("read %s: %w: the file is an Excel workbook, which is read through a mapping (format csv with --mapping), not as %s", name, ErrNotText, opts.Format)
		}
		zr.Close()
		return readWorkbook(ctx, p, name, size, opts, emit)
	case hasFile(zr, "content.xml") && hasFile(zr, "mimetype"):
		return Report{File: name}, fmt.Errorf("read %s: %w: the file is a LibreOffice or OpenOffice workbook (.ods): save the sheet as \"Excel 2007-365 (.xlsx)\" or as CSV UTF-8", name, ErrNotText)
	case len(files) == 0:
		return Report{File: name}, fmt.Errorf("read %s: the zip archive holds no file", name)
	case len(files) > 1:
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.Name
		}
		return Report{File: name}, fmt.Errorf("read %s: the zip archive holds %d files (%s): unzip it and read one of them, or zip the export alone", name, len(files), quoteList(names))
	}
	return readArchived(ctx, files[0], name, size, opts, emit)
}

// refuseContainer returns a reader of r's content, or, when r holds a
// workbook, a Parquet file or an archive, the error of a reader of a fixed
// text layout given one.
func refuseContainer(r io.Reader, name string, f Format) (io.Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	head, _ := br.Peek(4)
	if containerOf(head) != notContainer {
		return br, fmt.Errorf("read %s: %w: the file is a workbook, a Parquet file or a zip archive, which the %s reader does not take: unzip it, or read it with format csv and a mapping", name, ErrNotText, f)
	}
	return br, nil
}
