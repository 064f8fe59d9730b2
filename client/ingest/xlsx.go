package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/kairos-fl/kairos/model"
)

// readWorkbook reads one sheet of the .xlsx workbook at path through
// opts.Mapping: Mapping.Sheet, or the first sheet. name is used in errors.
func readWorkbook(ctx context.Context, path, name string, size int64, opts *Options, emit func(model.Event) error) (rep Report, err error) {
	defer func() {
		// A workbook whose parts contradict each other can make the
		// library index out of range; that is a bad file, not a crash.
		if r := recover(); r != nil {
			rep, err = Report{File: name}, fmt.Errorf("read %s: the workbook is corrupt: %v (open it in Excel and save it again, or save the sheet as CSV UTF-8)", name, r)
		}
	}()
	f, sheets, err := openWorkbook(path, size)
	if err != nil {
		return Report{File: name}, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	sheet := opts.Mapping.Sheet
	if sheet == "" {
		sheet = sheets[0]
	} else if !slices.Contains(sheets, sheet) {
		return Report{File: name}, fmt.Errorf("read %s: the workbook has no sheet %q (sheet in the mapping); its sheets: %s", name, sheet, quoteList(sheets))
	}
	props, err := f.GetWorkbookProps()
	if err != nil {
		return Report{File: name}, fmt.Errorf("read %s: workbook properties: %w", name, err)
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		return Report{File: name}, fmt.Errorf("read %s: sheet %q: %w", name, sheet, workbookError(err))
	}
	defer rows.Close()
	loc := opts.Location
	if opts.Mapping.TimeZone != nil {
		loc = opts.Mapping.TimeZone
	}
	if loc == nil {
		loc = time.UTC
	}
	src := &sheetRows{rows: rows, sheet: sheet, date1904: props.Date1904 != nil && *props.Date1904, loc: loc, m: opts.Mapping}
	rep, err = readCells(ctx, src, name, nil, opts, emit)
	rep.ReadAs = fmt.Sprintf("sheet %q of a workbook", sheet)
	if err != nil && strings.Contains(err.Error(), "the header has no column") {
		err = fmt.Errorf("%w%s", err, mergedHeaderHint(f, sheet, src.headerRow))
	}
	return rep, err
}

// openWorkbook opens the workbook at path (size bytes, bounding what it
// may unpack to) and lists its sheets; a workbook without one is an error.
func openWorkbook(path string, size int64) (*excelize.File, []string, error) {
	f, err := excelize.OpenFile(path, excelize.Options{UnzipSizeLimit: unzipBound(size)})
	if err != nil {
		return nil, nil, fmt.Errorf("open workbook: %w", workbookError(err))
	}
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		f.Close()
		return nil, nil, errors.New("the workbook has no sheet")
	}
	return f, sheets, nil
}

// workbookError says what an excelize error means to the user who saved
// the workbook.
func workbookError(err error) error {
	switch {
	case errors.Is(err, excelize.ErrWorkbookFileFormat), errors.Is(err, excelize.ErrWorkbookPassword):
		return fmt.Errorf("%w (a password-protected workbook cannot be read: save it without a password, or as CSV UTF-8)", err)
	case strings.Contains(err.Error(), "unzip size"):
		return fmt.Errorf("%w (the workbook unpacks to more than %d times its size: not a sheet of orders)", err, maxUnzipRatio)
	}
	return fmt.Errorf("%w (the file is not a readable .xlsx workbook: open it in Excel and save it again, or save the sheet as CSV UTF-8)", err)
}

// mergedHeaderHint names the merged cells of the header row, which leave
// every column of a merged range but the first without a name.
func mergedHeaderHint(f *excelize.File, sheet string, headerRow int) string {
	if headerRow == 0 {
		return ""
	}
	merged, err := f.GetMergeCells(sheet)
	if err != nil {
		return ""
	}
	var in []string
	for _, mc := range merged {
		_, r1, err1 := excelize.CellNameToCoordinates(mc.GetStartAxis())
		_, r2, err2 := excelize.CellNameToCoordinates(mc.GetEndAxis())
		if err1 == nil && err2 == nil && r1 <= headerRow && headerRow <= r2 {
			in = append(in, mc.GetStartAxis()+":"+mc.GetEndAxis())
		}
	}
	if len(in) == 0 {
		return ""
	}
	return fmt.Sprintf("; the header row %d has merged cells %s, which name only their first column: unmerge them and give every column its own name (or put the table's header in the first row)", headerRow, strings.Join(in, ", "))
}

// sheetRows streams a sheet's rows with excelize's row iterator, its cells
// as stored (raw values, not as a number format displays them).
type sheetRows struct {
	rows      *excelize.Rows
	sheet     string
	date1904  bool
	loc       *time.Location
	m         *Mapping
	rowNo     int
	headerRow int // the header's row number, once read
	cells     []cell
	// tm and tod are the 0-based columns of time and time_of_day, known
	// once the header is read; -1 when absent.
	tm, tod int
	known   bool
}

func (s *sheetRows) next(context.Context) ([]cell, int, error) {
	if !s.rows.Next() {
		if err := s.rows.Error(); err != nil {
			return nil, s.rowNo, fmt.Errorf("sheet %q, row %d: %w", s.sheet, s.rowNo+1, err)
		}
		return nil, s.rowNo, io.EOF
	}
	s.rowNo++
	raw, err := s.rows.Columns(excelize.Options{RawCellValue: true})
	if err != nil {
		return nil, s.rowNo, fmt.Errorf("sheet %q, row %d: %w", s.sheet, s.rowNo, err)
	}
	if !s.known {
		if len(raw) == 0 {
			return nil, s.rowNo, nil
		}
		s.known = true
		if s.m.Header {
			s.headerRow = s.rowNo
			s.tm, s.tod = columnOf(s.m.Time, raw), columnOf(s.m.TimeOfDay, raw)
			s.cells = s.cells[:0]
			for _, v := range raw {
				s.cells = append(s.cells, cell{kind: textOrEmpty(v), text: []byte(v)})
			}
			return s.cells, s.rowNo, nil
		}
		s.tm, s.tod = columnOf(s.m.Time, nil), columnOf(s.m.TimeOfDay, nil)
	}
	s.cells = s.cells[:0]
	for i, v := range raw {
		role := roleOther
		switch i {
		case s.tm:
			role = roleTime
		case s.tod:
			role = roleTimeOfDay
		}
		s.cells = append(s.cells, xlsxCell(v, role, s.m.TimeLayout, s.date1904, s.loc))
	}
	return s.cells, s.rowNo, nil
}

func (s *sheetRows) where(rowNo, col int) string {
	if col < 0 {
		return fmt.Sprintf("sheet %q, row %d", s.sheet, rowNo)
	}
	name, err := excelize.CoordinatesToCellName(col+1, rowNo)
	if err != nil {
		name = fmt.Sprintf("column %d", col+1)
	}
	return fmt.Sprintf("sheet %q, row %d, cell %s", s.sheet, rowNo, name)
}

// columnOf is the 0-based position of c in a header, or its index; -1 when
// c is absent or the header lacks it.
func columnOf(c Column, header []string) int {
	if c.Index > 0 {
		return c.Index - 1
	}
	for i, h := range header {
		if c.Name != "" && strings.TrimSpace(h) == c.Name {
			return i
		}
	}
	return -1
}

func textOrEmpty(v string) cellKind {
	if v == "" {
		return cellEmpty
	}
	return cellText
}

// cellRole is what the mapping reads from a workbook's column, as far as
// the reading of a number depends on it.
type cellRole uint8

const (
	roleOther cellRole = iota
	roleTime
	roleTimeOfDay
)

// xlsxCell types a cell's stored value. A value in the form of an XML
// number is a number cell (Excel stores a text cell holding a number as
// text, which reads the same unless it is written in a decimal-comma
// locale's marks, which no XML number is). In the time column a number
// is a serial date (Excel stores every date as one, in the workbook's date
// system), unless the mapping's layout reads it (unix seconds, a day number,
// a layout of digits like 20060102); in the time-of-day column it is the
// time of day of its fraction. Any other value is text.
func xlsxCell(v string, role cellRole, layout string, date1904 bool, loc *time.Location) cell {
	if v == "" {
		return cell{}
	}
	if !isXMLNumber(v) {
		return cell{kind: cellText, text: []byte(v)}
	}
	switch role {
	case roleTime:
		switch layout {
		case LayoutUnix, LayoutUnixMs, LayoutDays:
			return cell{kind: cellNumber, text: []byte(v)}
		case LayoutExcel:
		default:
			if _, err := time.ParseInLocation(layout, v, loc); err == nil {
				return cell{kind: cellText, text: []byte(v)}
			}
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return cell{kind: cellBad, text: []byte(v), err: fmt.Errorf("number %q is not a serial date", v)}
		}
		t, err := cellSerialTime(f, date1904, loc)
		if err != nil {
			return cell{kind: cellBad, text: []byte(v), err: err}
		}
		return cell{kind: cellTime, text: []byte(v), t: t}
	case roleTimeOfDay:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) {
			return cell{kind: cellBad, text: []byte(v), err: fmt.Errorf("number %q is not a time of day", v)}
		}
		secs := int(math.Round((f - math.Floor(f)) * 86400))
		if secs == 86400 {
			secs--
		}
		return cell{kind: cellText, text: fmt.Appendf(nil, "%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)}
	}
	return cell{kind: cellNumber, text: []byte(v)}
}

// isXMLNumber reports whether v is a number as a workbook stores one
// (xsd:double's lexical form without INF and NaN): an optional sign,
// digits with an optional fraction, an optional exponent.
func isXMLNumber(v string) bool {
	i := 0
	if i < len(v) && (v[i] == '-' || v[i] == '+') {
		i++
	}
	start := i
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	digits := i - start
	if i < len(v) && v[i] == '.' {
		i++
		fs := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		digits += i - fs
	}
	if digits == 0 {
		return false
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '-' || v[i] == '+') {
			i++
		}
		es := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == es {
			return false
		}
	}
	return i == len(v)
}
