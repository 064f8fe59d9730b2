package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// cellKind is what a cell of a workbook or a value of a Parquet column
// holds: files that type their values are read through the same mapping,
// and the same field rules, as text, with the types taken into account.
type cellKind uint8

const (
	cellEmpty cellKind = iota
	// cellText is text, read as a CSV field is (layout, decimal and
	// thousands marks, currency symbols).
	cellText
	// cellNumber is a number written with a decimal point and no grouping,
	// whatever the mapping's marks: the file stores a number, not how a
	// locale displays it.
	cellNumber
	// cellTime is a date or time the file types as one; t holds it.
	cellTime
	// cellBad is a value that cannot be what its column is (a serial date
	// outside the calendar); err says why, and the row is a bad row when
	// the mapping reads the column.
	cellBad
)

type cell struct {
	kind cellKind
	text []byte
	t    time.Time
	err  error
}

// cellRows is a source of typed rows: a workbook's sheet, a Parquet file.
type cellRows interface {
	// next returns the next row and its 1-based number (a sheet's row
	// number, a Parquet file's data row); io.EOF at the end. The cells are
	// valid until the next call.
	next(ctx context.Context) (row []cell, rowNo int, err error)
	// where names the place of a cell for a message: `sheet "Orders",
	// row 7, cell C7`, or the row alone when col is negative.
	where(rowNo, col int) string
}

// readCells reads the rows of src through opts.Mapping as Read reads a
// mapped text file, with the same accounting. header holds the column
// names of a source that has them apart from its rows (Parquet's schema);
// when it is nil and the mapping has a header, the first non-empty row is
// the header.
func readCells(ctx context.Context, src cellRows, name string, header []string, opts *Options, emit func(model.Event) error) (Report, error) {
	rep := Report{File: name, Skipped: map[string]int{}}
	acc := accounts{rep: &rep, opts: opts, emit: emit, unit: "row"}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	m := *opts.Mapping
	m.Encoding = "" // the cells are UTF-8 already
	p := newCSVParser(&m, loc)
	var headerRow [][]byte
	if header != nil {
		if err := resolveHeader(p, toBytes(header), src.where(0, -1)); err != nil {
			return rep, fmt.Errorf("read %s: %w", name, err)
		}
	} else if !m.Header {
		p.ncols = p.need
	}
	var f [][]byte
	for {
		row, rowNo, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			return rep, acc.end()
		}
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", name, err)
		}
		if rowNo&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("read %s: %s: %w", name, src.where(rowNo, -1), err)
			}
		}
		if emptyRow(row) {
			continue
		}
		if p.ncols == 0 {
			headerRow = make([][]byte, len(row))
			for i, c := range row {
				headerRow[i] = append([]byte(nil), c.text...)
			}
			if err := resolveHeader(p, headerRow, src.where(rowNo, -1)); err != nil {
				return rep, fmt.Errorf("read %s: %w", name, err)
			}
			continue
		}
		rep.Rows++
		if headerRow != nil && sameTexts(row, headerRow) {
			rep.Skipped[ReasonRepeatedHeader]++
			continue
		}
		var (
			ev   model.Event
			skip string
			rerr *RowError
		)
		if f, rerr = p.cellFields(f, row); rerr == nil {
			ev, skip, rerr = p.parseFields(f)
		}
		if rerr != nil {
			at := src.where(rowNo, rerr.Column-1)
			if key := p.keyAt(rerr.Column - 1); key != "" {
				at += " (" + key + ")"
			}
			rerr.Where = at
		}
		if err := acc.record(rowNo, ev, skip, rerr); err != nil {
			return rep, err
		}
	}
}

// resolveHeader finds the mapping's named columns among names, the header
// at where.
func resolveHeader(p *csvParser, names [][]byte, where string) error {
	if missing := p.resolve(names); missing != "" {
		return fmt.Errorf("%s: the header has no column %q%s", where, missing, headerHint(nil, names, missing, 0))
	}
	p.ncols = max(len(names), p.need)
	return nil
}

// cellFields turns a row of cells into the parser's fields, one per column
// of the header (a row's cells past it are not part of the table; missing
// ones are empty), and marks the typed ones.
func (p *csvParser) cellFields(f [][]byte, row []cell) ([][]byte, *RowError) {
	f = f[:0]
	p.numbers, p.timed = p.numbers[:0], p.timed[:0]
	if cap(p.times) < p.ncols {
		p.times = make([]time.Time, p.ncols)
	}
	p.times = p.times[:p.ncols]
	for i := range p.ncols {
		var c cell
		if i < len(row) {
			c = row[i]
		}
		if c.kind == cellBad {
			if p.keyAt(i) == "" {
				c = cell{}
			} else {
				return nil, &RowError{Column: i + 1, Reason: ReasonBadTime, Err: c.err}
			}
		}
		f = append(f, c.text)
		p.numbers = append(p.numbers, c.kind == cellNumber)
		p.timed = append(p.timed, c.kind == cellTime)
		p.times[i] = c.t
	}
	p.lineUTF8 = true
	for _, b := range f {
		if invalidUTF8(b) >= 0 {
			p.lineUTF8 = false
			break
		}
	}
	return f, nil
}

func emptyRow(row []cell) bool {
	for _, c := range row {
		if c.kind != cellEmpty {
			return false
		}
	}
	return true
}

// sameTexts reports whether row repeats the header (sheets pasted one
// under the other with their headers).
func sameTexts(row []cell, header [][]byte) bool {
	n := 0
	for i, c := range row {
		var h []byte
		if i < len(header) {
			h = header[i]
		}
		if c.kind != cellText && c.kind != cellEmpty || !bytes.Equal(c.text, h) {
			return false
		}
		n++
	}
	return n > 0 && n >= len(header)-countTrailingEmpty(header)
}

func countTrailingEmpty(h [][]byte) int {
	n := 0
	for i := len(h) - 1; i >= 0 && len(h[i]) == 0; i-- {
		n++
	}
	return n
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// quoteList quotes names for a message, the first 20.
func quoteList(names []string) string {
	q := make([]string, 0, min(len(names), 21))
	for i, n := range names {
		if i == 20 {
			q = append(q, "…")
			break
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return strings.Join(q, ", ")
}
