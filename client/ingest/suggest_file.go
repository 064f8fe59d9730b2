package ingest

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"

	"github.com/kairos-fl/kairos/model"
)

// SuggestFile suggests the mapping of the export at path, whatever holds
// it: delimited text or JSON Lines (Suggest on the file), a zip archive of
// one export (Suggest on that file), an Excel workbook or a Parquet file.
// A workbook's first sheet and a Parquet file's columns are rendered as
// CSV text for Suggest: cells as stored (a date cell as Excel's serial
// number, so the time layout is `excel`), Parquet dates and timestamps as
// ISO dates, numbers with a decimal point. The suggestion of a workbook or
// Parquet file is then checked against the file itself: its Report is the
// whole file read through the suggested mapping, so what the typed reader
// makes of the cells, not of their rendering, is what the user sees.
func SuggestFile(ctx context.Context, path string, opts SuggestOptions) (*Suggestion, error) {
	kind, size, err := fileContainer(path)
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", path, err)
	}
	if opts.Size == 0 {
		opts.Size = size
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultSuggestRows
	}
	switch kind {
	case parquetContainer:
		head, more, err := parquetHead(ctx, path, opts.MaxRows)
		if err != nil {
			return nil, fmt.Errorf("suggest mapping for %s: %w", path, err)
		}
		opts.source, opts.more = "a Parquet file, its columns rendered as text: dates and timestamps as ISO dates", more
		return suggestTyped(ctx, path, head, "", opts)
	case zipContainer:
		return suggestZip(ctx, path, size, opts)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", path, err)
	}
	defer f.Close()
	return Suggest(ctx, f, path, opts)
}

// suggestZip suggests the mapping of a zip archive: a workbook, or an
// archive of one export.
func suggestZip(ctx context.Context, path string, size int64, opts SuggestOptions) (*Suggestion, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: the file starts as a zip archive but is not one (%w): a truncated download?", path, err)
	}
	defer zr.Close()
	if hasFile(zr, "xl/workbook.xml") {
		zr.Close()
		head, sheet, others, more, err := workbookHead(ctx, path, size, opts.MaxRows)
		if err != nil {
			return nil, fmt.Errorf("suggest mapping for %s: %w", path, err)
		}
		opts.source = fmt.Sprintf("sheet %q of an Excel workbook, its cells rendered as text as stored: a date cell as Excel's serial number", sheet)
		opts.more = more
		check := ""
		if len(others) > 0 {
			check = fmt.Sprintf("the workbook has %d sheets: this mapping reads the first, %q; its other sheets (%s) are not read: set sheet: to read one of them, or save them as one sheet",
				len(others)+1, sheet, quoteList(others))
		}
		return suggestTyped(ctx, path, head, check, opts)
	}
	files := archiveFiles(zr)
	switch {
	case len(files) == 0:
		return nil, fmt.Errorf("suggest mapping for %s: the zip archive holds no file", path)
	case len(files) > 1:
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.Name
		}
		return nil, fmt.Errorf("suggest mapping for %s: the zip archive holds %d files (%s): unzip it and suggest a mapping for one of them", path, len(files), quoteList(names))
	}
	inner := path + "/" + files[0].Name
	if files[0].UncompressedSize64 > uint64(unzipBound(size)) {
		return nil, fmt.Errorf("suggest mapping for %s: the archived file unpacks to %d bytes, more than %d times the archive's size: not an export of orders", inner, files[0].UncompressedSize64, maxUnzipRatio)
	}
	rc, err := files[0].Open()
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", inner, err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if head, _ := br.Peek(4); containerOf(head) != notContainer {
		return nil, fmt.Errorf("suggest mapping for %s: %w: the zip archive holds a workbook, Parquet file or another archive: unzip it and suggest a mapping for that file", inner, ErrNotText)
	}
	opts.Size = int64(files[0].UncompressedSize64)
	return Suggest(ctx, br, inner, opts)
}

// suggestTyped runs Suggest on head, the CSV rendering of a typed file's
// first rows, and checks the suggestion against the file at path: the
// Report becomes the whole file read through the mapping, and a file the
// mapping does not read is a check. check, when not empty, is one more
// choice to confirm.
func suggestTyped(ctx context.Context, path string, head []byte, check string, opts SuggestOptions) (*Suggestion, error) {
	sg, err := Suggest(ctx, bytes.NewReader(head), path, opts)
	if err != nil {
		return nil, err
	}
	var checks []string
	if check != "" {
		checks = append(checks, check)
	}
	// The bound on bad rows is kairos eval's default: a mapping that reads
	// the rendering but more than 1% of the file's own rows badly is wrong.
	rep, err := ReadFile(ctx, path, Options{Format: CSV, Mapping: sg.Mapping, OnError: Skip, MaxInvalidShare: 0.01},
		func(model.Event) error { return nil })
	if err != nil {
		checks = append(checks, fmt.Sprintf("the file does not read through the suggested mapping: %v", err))
	} else {
		sg.Report = rep
	}
	if len(checks) > 0 {
		var b bytes.Buffer
		for _, c := range checks {
			writeComment(&b, "CHECK: "+c)
		}
		sg.Checks = append(sg.Checks, checks...)
		sg.YAML = append(sg.YAML, append([]byte("\n"), b.Bytes()...)...)
	}
	return sg, nil
}

// workbookHead renders the first rows of a workbook's first sheet as CSV
// (rows+1 lines, for a header), cells as stored, names that sheet and the
// others, and reports whether the sheet goes on after them.
func workbookHead(ctx context.Context, path string, size int64, rows int) (head []byte, sheet string, others []string, more bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			head, err = nil, fmt.Errorf("the workbook is corrupt: %v (open it in Excel and save it again, or save the sheet as CSV UTF-8)", r)
		}
	}()
	f, sheets, err := openWorkbook(path, size)
	if err != nil {
		return nil, "", nil, false, err
	}
	defer f.Close()
	sheet, others = sheets[0], slices.Clone(sheets[1:])
	it, err := f.Rows(sheet)
	if err != nil {
		return nil, "", nil, false, fmt.Errorf("sheet %q: %w", sheet, workbookError(err))
	}
	defer it.Close()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	n := 0
	for it.Next() {
		if n > rows {
			more = true
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, "", nil, false, err
		}
		raw, err := it.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return nil, "", nil, false, fmt.Errorf("sheet %q, row %d: %w", sheet, n+1, err)
		}
		if len(raw) == 0 || slices.IndexFunc(raw, func(s string) bool { return strings.TrimSpace(s) != "" }) < 0 {
			continue
		}
		if err := w.Write(raw); err != nil {
			return nil, "", nil, false, fmt.Errorf("sheet %q: %w", sheet, err)
		}
		n++
	}
	if err := it.Error(); err != nil {
		return nil, "", nil, false, fmt.Errorf("sheet %q: %w", sheet, err)
	}
	w.Flush()
	if n == 0 {
		return nil, "", nil, false, fmt.Errorf("sheet %q is empty", sheet)
	}
	return buf.Bytes(), sheet, others, more, w.Error()
}

// parquetHead renders the header and the first rows of a Parquet file's
// flat columns as CSV. A column Kairos cannot read (nested, repeated, of
// a type no key takes) is left out.
func parquetHead(ctx context.Context, path string, rows int) (head []byte, more bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			head, more, err = nil, false, fmt.Errorf("the Parquet file is corrupt: %v", r)
		}
	}()
	fh, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, false, err
	}
	pf, err := openParquet(fh, st.Size())
	if err != nil {
		return nil, false, err
	}
	leaves := pf.Schema().Columns()
	cols := make([]pqColumn, len(leaves))
	var names []string
	var keep []int
	for i, p := range leaves {
		leaf, ok := pf.Schema().Lookup(p...)
		if !ok {
			continue
		}
		if c, ok := anyParquetColumn(leaf); ok {
			cols[i] = c
			keep = append(keep, i)
			names = append(names, strings.Join(p, "."))
		}
	}
	if len(keep) == 0 {
		return nil, false, errors.New("the Parquet file has no flat column Kairos reads")
	}
	src := &parquetRows{file: pf, cols: cols, loc: time.UTC}
	defer src.close()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(names); err != nil {
		return nil, false, err
	}
	rec := make([]string, len(keep))
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		row, _, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if n == rows {
			more = err == nil
			break
		}
		if err != nil {
			return nil, false, err
		}
		for j, i := range keep {
			rec[j] = renderCell(row[i], cols[i])
		}
		if err := w.Write(rec); err != nil {
			return nil, false, err
		}
	}
	w.Flush()
	return buf.Bytes(), more, w.Error()
}

// anyParquetColumn types a leaf column for the first key its type can be.
func anyParquetColumn(leaf parquet.LeafColumn) (pqColumn, bool) {
	for _, what := range []string{"time", "time_of_day", "amount", "cancelled", "customer"} {
		if c, err := pqColumnOf(leaf, what); err == nil {
			return c, true
		}
	}
	return pqColumn{}, false
}

// renderCell writes a typed cell as the CSV field the mapping reads back.
func renderCell(c cell, col pqColumn) string {
	switch c.kind {
	case cellText, cellNumber:
		return string(c.text)
	case cellTime:
		switch {
		case col.conv == pqDate:
			return c.t.Format(time.DateOnly)
		case col.utc || col.conv == pqInt96:
			return c.t.UTC().Format(time.RFC3339Nano)
		}
		return c.t.Format("2006-01-02 15:04:05.999999999")
	}
	return ""
}
