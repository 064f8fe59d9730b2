package ingest

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/kairos-fl/kairos/model"
)

// readArchived reads the one file of a zip archive as Read reads a file.
func readArchived(ctx context.Context, f *zip.File, name string, size int64, opts *Options, emit func(model.Event) error) (Report, error) {
	inner := name + "/" + f.Name
	bound := unzipBound(size)
	// archive/zip fails a read past the size the entry declares, so a
	// check of the declared size bounds what is decompressed.
	if f.UncompressedSize64 > uint64(bound) {
		return Report{File: inner}, fmt.Errorf("read %s: the archived file unpacks to %d bytes, more than %d times the archive's size (%d bytes allowed): not an export of orders (unzip it to read it anyway)",
			inner, f.UncompressedSize64, maxUnzipRatio, bound)
	}
	rc, err := f.Open()
	if err != nil {
		return Report{File: inner}, fmt.Errorf("read %s: %w", inner, err)
	}
	defer rc.Close()
	r, err := Decompressed(rc)
	if err != nil {
		return Report{File: inner}, fmt.Errorf("read %s: %w", inner, err)
	}
	br := bufio.NewReaderSize(r, 256<<10)
	head, _ := br.Peek(4)
	if containerOf(head) != notContainer {
		return Report{File: inner}, fmt.Errorf("read %s: %w: the zip archive holds a workbook, Parquet file or another archive: unzip it and read that file", inner, ErrNotText)
	}
	var rd io.Reader = br
	if enc := sourceEncoding(r); enc != "" {
		rd = encodedReader{br, enc}
	}
	rep, err := Read(ctx, rd, inner, *opts, emit)
	if rep.ReadAs == "" {
		rep.ReadAs = "the one file of a zip archive"
	} else {
		rep.ReadAs += " in a zip archive"
	}
	return rep, err
}

// encodedReader keeps the encoding a transcoded stream came from across a
// buffer.
type encodedReader struct {
	*bufio.Reader
	enc string
}

func (e encodedReader) sourceEncoding() string { return e.enc }

// archiveFiles lists the files of an archive that may be the export: not
// folders, nor what macOS's Finder adds (__MACOSX/, .DS_Store).
func archiveFiles(zr *zip.ReadCloser) []*zip.File {
	var files []*zip.File
	for _, f := range zr.File {
		base := path.Base(f.Name)
		if f.FileInfo().IsDir() || strings.HasPrefix(f.Name, "__MACOSX/") || base == ".DS_Store" {
			continue
		}
		files = append(files, f)
	}
	return files
}

func hasFile(zr *zip.ReadCloser, name string) bool {
	for _, f := range zr.File {
		if f.Name == name {
			return true
		}
	}
	return false
}
