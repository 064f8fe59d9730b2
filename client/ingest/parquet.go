package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/kairos-fl/kairos/model"
)

// pqConv is how the values of one Parquet column become cells.
type pqConv uint8

const (
	pqSkip      pqConv = iota // a column the mapping does not read
	pqText                    // BYTE_ARRAY (STRING, ENUM, JSON or untyped)
	pqInt                     // INT32, INT64 without a logical type, or a signed INT
	pqUint                    // an unsigned INT
	pqFloat                   // FLOAT, DOUBLE
	pqDecimal                 // DECIMAL over INT32, INT64 or a byte array
	pqTimestamp               // TIMESTAMP over INT64
	pqDate                    // DATE over INT32: days since 1970-01-01
	pqInt96                   // the legacy INT96 timestamp (Impala, Spark)
	pqTimeOfDay               // TIME over INT32 or INT64
	pqBool                    // BOOLEAN
)

// pqColumn is a mapped column of a Parquet file.
type pqColumn struct {
	name  string
	key   string
	conv  pqConv
	kind  parquet.Kind
	scale int32
	unit  time.Duration // of a TIMESTAMP or TIME
	utc   bool          // a TIMESTAMP adjusted to UTC: an instant, not a wall-clock time
}

// readParquet reads the Parquet file at path through opts.Mapping: the
// mapping's columns by name (or index) among the file's columns, each
// value by its type; row groups one after the other.
func readParquet(ctx context.Context, path, name string, size int64, opts *Options, emit func(model.Event) error) (rep Report, err error) {
	rep = Report{File: name}
	defer func() {
		// A file that lies about its own structure can make the decoder
		// index out of range; that is a bad file, not a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: the Parquet file is corrupt: %v", name, r)
		}
	}()
	fh, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", name, err)
	}
	defer fh.Close()
	pf, err := openParquet(fh, size)
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", name, err)
	}
	header := make([]string, 0, len(pf.Schema().Columns()))
	for _, p := range pf.Schema().Columns() {
		header = append(header, strings.Join(p, "."))
	}
	loc := opts.Location
	if opts.Mapping.TimeZone != nil {
		loc = opts.Mapping.TimeZone
	}
	if loc == nil {
		loc = time.UTC
	}
	cols, err := parquetColumns(pf.Schema(), header, opts.Mapping)
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", name, err)
	}
	src := &parquetRows{file: pf, cols: cols, loc: loc}
	defer src.close()
	rep, err = readCells(ctx, src, name, header, opts, emit)
	rep.ReadAs = "Parquet"
	return rep, err
}

// openParquet opens the Parquet file fh of size bytes, refusing one whose
// row groups declare more than unzipBound(size) unpacked.
func openParquet(fh *os.File, size int64) (*parquet.File, error) {
	pf, err := parquet.OpenFile(fh, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	bound := unzipBound(size)
	for i, rg := range pf.Metadata().RowGroups {
		if rg.TotalByteSize > bound {
			return nil, fmt.Errorf("row group %d unpacks to %d bytes, more than %d times the file's size: not an export of orders", i+1, rg.TotalByteSize, maxUnzipRatio)
		}
	}
	return pf, nil
}

// parquetColumns decides how to read each column the mapping names, and
// refuses a column whose type cannot hold what its key needs.
func parquetColumns(s *parquet.Schema, header []string, m *Mapping) ([]pqColumn, error) {
	cols := make([]pqColumn, len(header))
	for i, h := range header {
		cols[i].name = h
	}
	for _, nc := range m.columns() {
		i := columnOf(*nc.col, header)
		if i < 0 || i >= len(header) {
			continue // readCells names the missing column
		}
		leaf, ok := s.Lookup(strings.Split(header[i], ".")...)
		if !ok {
			continue
		}
		c, err := pqColumnOf(leaf, nc.what)
		if err != nil {
			return nil, fmt.Errorf("column %q (%s): %w", header[i], nc.what, err)
		}
		c.name = header[i]
		cols[i] = c
	}
	return cols, nil
}

// pqColumnOf types one mapped leaf column for the key what.
func pqColumnOf(leaf parquet.LeafColumn, what string) (pqColumn, error) {
	if leaf.MaxRepetitionLevel > 0 || len(leaf.Path) > 1 {
		return pqColumn{}, errors.New("is a nested or repeated column; Kairos reads flat columns, one value per row (flatten it, e.g. pandas.json_normalize, before writing)")
	}
	t := leaf.Node.Type()
	c := pqColumn{key: what, kind: t.Kind()}
	switch lt := logicalOf(t); v := lt.(type) {
	case *format.TimestampType:
		c.conv, c.utc, c.unit = pqTimestamp, v.IsAdjustedToUTC, unitOf(v.Unit)
	case *format.DateType:
		c.conv = pqDate
	case *format.TimeType:
		c.conv, c.unit = pqTimeOfDay, unitOf(v.Unit)
	case *format.DecimalType:
		c.conv, c.scale = pqDecimal, v.Scale
	case *format.IntType:
		c.conv = pqInt
		if !v.IsSigned {
			c.conv = pqUint
		}
	default:
		switch c.kind {
		case parquet.Boolean:
			c.conv = pqBool
		case parquet.Int32, parquet.Int64:
			c.conv = pqInt
		case parquet.Float, parquet.Double:
			c.conv = pqFloat
		case parquet.Int96:
			c.conv = pqInt96
		case parquet.ByteArray, parquet.FixedLenByteArray:
			c.conv = pqText
		}
	}
	if c.conv == pqSkip {
		return c, fmt.Errorf("has type %s, which Kairos does not read", t)
	}
	isTime := c.conv == pqTimestamp || c.conv == pqDate || c.conv == pqInt96
	switch {
	case what == "time" && (c.conv == pqBool || c.conv == pqTimeOfDay || c.conv == pqDecimal):
		return c, fmt.Errorf("has type %s, which is not a date or time (want a TIMESTAMP, a DATE, or a string, integer or number the time layout reads)", t)
	case what == "time_of_day" && (c.conv == pqBool || isTime || c.conv == pqDecimal):
		return c, fmt.Errorf("has type %s, which is not a time of day (want a TIME or a string like 15:04:05)", t)
	case (what == "amount" || what == "quantity") && (c.conv == pqBool || isTime || c.conv == pqTimeOfDay):
		return c, fmt.Errorf("has type %s, which is not a number (want an integer, a FLOAT or DOUBLE, a DECIMAL, or a string the mapping's marks read)", t)
	case what != "time" && what != "time_of_day" && what != "amount" && what != "quantity" && (isTime || c.conv == pqTimeOfDay):
		return c, fmt.Errorf("has type %s, a date or time, which cannot be the %s", t, what)
	case c.conv == pqBool && what != "cancelled":
		return c, fmt.Errorf("has type BOOLEAN, which cannot be the %s", what)
	}
	return c, nil
}

// logicalOf is a column's logical type, or the one its legacy converted
// type stands for (a file from an older writer).
func logicalOf(t parquet.Type) any {
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		return lt.Value
	}
	if ct := t.ConvertedType(); ct != nil {
		switch *ct {
		case deprecated.TimestampMillis:
			return &format.TimestampType{IsAdjustedToUTC: true, Unit: format.TimeUnit{Value: &format.MilliSeconds{}}}
		case deprecated.TimestampMicros:
			return &format.TimestampType{IsAdjustedToUTC: true, Unit: format.TimeUnit{Value: &format.MicroSeconds{}}}
		case deprecated.Date:
			return &format.DateType{}
		}
	}
	return nil
}

func unitOf(u format.TimeUnit) time.Duration {
	switch u.Value.(type) {
	case *format.MilliSeconds:
		return time.Millisecond
	case *format.NanoSeconds:
		return time.Nanosecond
	}
	return time.Microsecond
}

// parquetRows streams a Parquet file's rows, row group by row group.
type parquetRows struct {
	file  *parquet.File
	cols  []pqColumn
	loc   *time.Location
	group int
	rows  parquet.Rows
	buf   []parquet.Row
	n, at int
	rowNo int
	cells []cell
	text  []byte // the converted values of one row
}

func (s *parquetRows) close() {
	if s.rows != nil {
		s.rows.Close()
	}
}

func (s *parquetRows) next(context.Context) ([]cell, int, error) {
	for s.at >= s.n {
		if s.rows == nil {
			if s.group >= len(s.file.RowGroups()) {
				return nil, s.rowNo, io.EOF
			}
			s.rows = s.file.RowGroups()[s.group].Rows()
			s.group++
			if s.buf == nil {
				s.buf = make([]parquet.Row, 512)
			}
		}
		n, err := s.rows.ReadRows(s.buf)
		s.n, s.at = n, 0
		if errors.Is(err, io.EOF) {
			s.rows.Close()
			s.rows = nil
		} else if err != nil {
			return nil, s.rowNo, fmt.Errorf("row group %d, after row %d: %w", s.group, s.rowNo, err)
		}
	}
	row := s.buf[s.at]
	s.at++
	s.rowNo++
	if cap(s.cells) < len(s.cols) {
		s.cells = make([]cell, len(s.cols))
	}
	s.cells = s.cells[:len(s.cols)]
	clear(s.cells)
	s.text = s.text[:0]
	for _, v := range row {
		i := v.Column()
		if i < 0 || i >= len(s.cols) || s.cols[i].conv == pqSkip {
			continue
		}
		var c cell
		start := len(s.text)
		c, s.text = parquetCell(s.text, v, &s.cols[i], s.loc)
		if c.kind == cellNumber || c.kind == cellText && c.text == nil {
			c.text = s.text[start:len(s.text):len(s.text)]
		}
		s.cells[i] = c
	}
	return s.cells, s.rowNo, nil
}

func (s *parquetRows) where(rowNo, col int) string {
	switch {
	case rowNo == 0 && col < 0:
		return "the Parquet schema"
	case col < 0 || col >= len(s.cols):
		return fmt.Sprintf("row %d", rowNo)
	}
	return fmt.Sprintf("row %d, column %q", rowNo, s.cols[col].name)
}

// julianUnixEpoch is the Julian day number of 1970-01-01, for INT96.
const julianUnixEpoch = 2440588

// parquetCell converts one value of column c. A number's text is appended
// to buf (the returned cell's text is then nil and the caller slices it
// from buf); a string's text aliases the value. A null is an empty cell;
// so is a NaN, which pandas writes for a missing number.
func parquetCell(buf []byte, v parquet.Value, c *pqColumn, loc *time.Location) (cell, []byte) {
	if v.IsNull() {
		return cell{}, buf
	}
	switch c.conv {
	case pqText:
		b := v.ByteArray()
		if len(b) == 0 {
			return cell{}, buf
		}
		return cell{kind: cellText, text: b}, buf
	case pqBool:
		return cell{kind: cellText}, strconv.AppendBool(buf, v.Boolean())
	case pqInt:
		return cell{kind: cellNumber}, strconv.AppendInt(buf, intOf(v), 10)
	case pqUint:
		return cell{kind: cellNumber}, strconv.AppendUint(buf, uint64(intOf(v)), 10)
	case pqFloat:
		f := v.Double()
		if v.Kind() == parquet.Float {
			f = float64(v.Float())
		}
		switch {
		case math.IsNaN(f):
			return cell{}, buf
		case math.IsInf(f, 0):
			return cell{kind: cellBad, err: fmt.Errorf("%s %v is not a finite number", c.name, f)}, buf
		case math.Abs(f) < 1e21:
			return cell{kind: cellNumber}, strconv.AppendFloat(buf, f, 'f', -1, 64)
		}
		return cell{kind: cellNumber}, strconv.AppendFloat(buf, f, 'g', -1, 64)
	case pqDecimal:
		return cell{kind: cellNumber}, appendDecimal(buf, unscaled(v), c.scale)
	case pqTimestamp:
		n := intOf(v)
		var t time.Time
		switch c.unit {
		case time.Millisecond:
			t = time.UnixMilli(n)
		case time.Nanosecond:
			t = time.Unix(0, n)
		default:
			t = time.UnixMicro(n)
		}
		t = t.UTC()
		if !c.utc {
			// A wall-clock time, as pandas writes a naive datetime: the
			// mapping's zone says where.
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		}
		return cell{kind: cellTime, t: t}, buf
	case pqDate:
		d := time.Unix(intOf(v)*86400, 0).UTC()
		return cell{kind: cellTime, t: time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)}, buf
	case pqInt96:
		i := v.Int96()
		nanos := int64(uint64(i[1])<<32 | uint64(i[0]))
		days := int64(i[2]) - julianUnixEpoch
		return cell{kind: cellTime, t: time.Unix(days*86400, 0).Add(time.Duration(nanos)).UTC()}, buf
	case pqTimeOfDay:
		d := time.Duration(intOf(v)) * c.unit
		if d < 0 || d >= 24*time.Hour {
			return cell{kind: cellBad, err: fmt.Errorf("time of day %v is not within a day", d)}, buf
		}
		s := int(d / time.Second)
		return cell{kind: cellText}, fmt.Appendf(buf, "%02d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return cell{}, buf
}

// intOf is an INT32 or INT64 value as an int64.
func intOf(v parquet.Value) int64 {
	if v.Kind() == parquet.Int32 {
		return int64(v.Int32())
	}
	return v.Int64()
}

// unscaled is a DECIMAL's unscaled integer: an INT32, an INT64, or a
// big-endian two's complement byte array.
func unscaled(v parquet.Value) *big.Int {
	switch v.Kind() {
	case parquet.Int32, parquet.Int64:
		return big.NewInt(intOf(v))
	}
	b := v.ByteArray()
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// appendDecimal appends n·10^-scale in decimal, exactly ("-12.05" for
// -1205 at scale 2).
func appendDecimal(buf []byte, n *big.Int, scale int32) []byte {
	if n.Sign() < 0 {
		buf = append(buf, '-')
		n = new(big.Int).Neg(n)
	}
	digits := n.Text(10)
	switch {
	case scale <= 0:
		buf = append(buf, digits...)
		for range -scale {
			buf = append(buf, '0')
		}
		return buf
	case int(scale) >= len(digits):
		buf = append(buf, '0', '.')
		for range int(scale) - len(digits) {
			buf = append(buf, '0')
		}
		return append(buf, digits...)
	}
	cut := len(digits) - int(scale)
	return append(append(append(buf, digits[:cut]...), '.'), digits[cut:]...)
}
