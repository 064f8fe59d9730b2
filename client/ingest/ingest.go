// Package ingest turns a merchant's exported files into a stream of model.Events:
// readers for the shared public data sets (CDNOW, Taobao UserBehavior, UCI Online
// Retail) and a generic column-mapped CSV reader driven by a Mapping, which reads
// the same columns from JSON Lines, an Excel .xlsx workbook, Parquet, UTF-16 text
// and a zip archive of one file, told apart by their first bytes.
//
// Readers stream: memory does not grow with the file, rows are split by hand on
// reused buffers, fixed-layout timestamps are parsed digit by digit, and repeated
// strings (customer ids, categories) are interned in bounded tables. Every bad row
// becomes a *RowError naming file, line and column; Options.OnError decides
// whether the first one stops the read (FailFast) or rows are counted per reason
// and skipped (Skip), up to Options.MaxInvalidShare of the file. Rows that a
// format defines as "not an event" (an Online Retail line without a customer, a
// cancellation, a kind value a Mapping ignores) and rows outside
// [Options.ValidFrom, Options.ValidTo) are never fatal: they are counted in the
// Report and dropped.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kairos-fl/kairos/model"
)

// Format names an input layout.
type Format string

// The formats Read understands.
const (
	// CDNOW is CDNOW_master.txt: a header line, then whitespace-separated
	// customer_id, date (YYYYMMDD), number_of_cds, dollar_value. Every row is a
	// purchase at local midnight of its date.
	CDNOW Format = "cdnow"
	// CDNOWSample is CDNOW_sample.txt: no header, id_in_master, id_in_sample,
	// date, cds, dollars. The customer is id_in_sample.
	CDNOWSample Format = "cdnow-sample"
	// Taobao is Alibaba's UserBehavior.csv: no header, user_id, item_id,
	// category_id, behavior_type (pv, cart, fav, buy), unix seconds.
	Taobao Format = "taobao"
	// OnlineRetail is the UCI Online Retail export with its header line and
	// quoted fields; see ReadOnlineRetail for what is emitted.
	OnlineRetail Format = "online-retail"
	// CSV is a generic delimited file described by a Mapping, or a JSON
	// Lines file (recognised by its first "{"), whose keys are the mapping's
	// column names.
	CSV Format = "csv"
)

// Formats lists every Format in a stable order, for flag help and validation.
func Formats() []Format { return []Format{CDNOW, CDNOWSample, Taobao, OnlineRetail, CSV} }

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("parse format: unknown format %q (want one of %s)", s, strings.Join(names, ", "))
}

// ErrorPolicy says what a reader does with a bad row.
type ErrorPolicy int

const (
	// FailFast stops at the first bad row and returns its *RowError. It is the
	// zero value.
	FailFast ErrorPolicy = iota
	// Skip counts bad rows per reason in Report.Skipped and goes on.
	Skip
)

// Options configure one read.
type Options struct {
	Format Format
	// Mapping describes the columns of a Format CSV file; required for CSV and
	// ignored otherwise.
	Mapping *Mapping
	OnError ErrorPolicy
	// MaxInvalidShare bounds the bad rows a Skip read accepts: when more than
	// this share of the data rows are bad input (Report.Invalid > MaxInvalidShare
	// × Report.Rows), the read returns a *TooManyInvalidError at the end of the
	// file. Rows a format excludes by rule and out-of-range rows do not count.
	// Zero means no bound; it must lie in [0, 1].
	MaxInvalidShare float64
	// Location is the zone of naive timestamps in the file (CDNOW dates, Online
	// Retail invoice dates, CSV layouts without an offset when the Mapping names
	// no zone). Nil means UTC.
	Location *time.Location
	// ValidFrom and ValidTo bound the events a caller accepts: an event outside
	// [ValidFrom, ValidTo) is out of range, counted in Report.OutOfRange and
	// dropped under either policy. A zero bound is open.
	ValidFrom, ValidTo time.Time
}

func (o *Options) validate() error {
	if _, err := ParseFormat(string(o.Format)); err != nil {
		return err
	}
	if o.OnError != FailFast && o.OnError != Skip {
		return fmt.Errorf("unknown error policy %d", o.OnError)
	}
	if !(o.MaxInvalidShare >= 0 && o.MaxInvalidShare <= 1) {
		return fmt.Errorf("max invalid share %v is not in [0, 1]", o.MaxInvalidShare)
	}
	if o.Format == CSV {
		if o.Mapping == nil {
			return errors.New("format csv needs a mapping")
		}
		if err := o.Mapping.Validate(); err != nil {
			return err
		}
	}
	if !o.ValidFrom.IsZero() && !o.ValidTo.IsZero() && !o.ValidFrom.Before(o.ValidTo) {
		return fmt.Errorf("valid range [%s, %s) is empty", o.ValidFrom.Format(time.RFC3339), o.ValidTo.Format(time.RFC3339))
	}
	return nil
}

// TaobaoRange returns the documented range of the Taobao UserBehavior data set,
// 2017-11-25 through 2017-12-03 inclusive in the shop's zone (UTC+8), as the
// half-open interval [from, to) suitable for Options.ValidFrom and ValidTo.
func TaobaoRange() (from, to time.Time) {
	cst := time.FixedZone("UTC+8", 8*3600)
	return time.Date(2017, 11, 25, 0, 0, 0, 0, cst).UTC(), time.Date(2017, 12, 4, 0, 0, 0, 0, cst).UTC()
}

// Reasons a row is skipped. The first group are bad input (a *RowError's
// Reason); the second are rows a format defines as not being events.
const (
	ReasonUnknownKind     = "unknown kind"
	ReasonBadTime         = "unparseable time"
	ReasonBadAmount       = "bad amount" // not a finite number, or above model.MaxAmount
	ReasonNegativeAmount  = "negative amount"
	ReasonMissingCustomer = "missing customer"
	ReasonColumnCount     = "wrong column count"
	ReasonNotUTF8         = "non-UTF-8 bytes"
	ReasonBadQuote        = "bad quoting"
	ReasonLineTooLong     = "line too long"
	ReasonBadNumber       = "non-numeric field"
	// ReasonBadCustomer is a customer id in a form that would make one
	// customer several (a float-written integer, blanks around it) when the
	// mapping does not say how to normalize it.
	ReasonBadCustomer = "customer id form"
	// ReasonUnknownCurrency is an amount in a currency the mapping's rates
	// do not name.
	ReasonUnknownCurrency = "unknown currency"
	// ReasonOrderCustomer is a line of an order (Mapping.Order) whose
	// customer is not the customer of the order's first line.
	ReasonOrderCustomer = "order of two customers"

	// ReasonCancellation counts Online Retail cancellation lines (invoice
	// numbers starting with C), which are not purchases.
	ReasonCancellation = "cancellation"
	// ReasonIgnoredKind counts rows whose kind value a Mapping lists under
	// IgnoreKinds.
	ReasonIgnoredKind = "ignored kind"
	// ReasonIgnoredNegative counts rows whose amount is below zero under a
	// Mapping with IgnoreNegative (returns and refunds).
	ReasonIgnoredNegative = "ignored negative amount"
	// ReasonRepeatedHeader counts lines equal to the header after it
	// (exports concatenated with their headers).
	ReasonRepeatedHeader = "repeated header"
	// ReasonOrderLine counts the lines of an order after its first under a
	// Mapping with Order: the order is one purchase.
	ReasonOrderLine = "further order line"
)

// MaxLineBytes is the longest line a reader accepts; a longer line is a
// ReasonLineTooLong row error and the reader resynchronises at the next newline.
const MaxLineBytes = 1 << 20

// RowError is one bad row. Line and Column are 1-based; Column is the field
// (not byte) position, or 0 when the error concerns the whole line.
type RowError struct {
	File   string
	Line   int
	Column int
	Reason string // one of the Reason constants
	Err    error  // detail, may be nil
	// Value is the offending field for ReasonUnknownKind, so that a Report can
	// count rows per unmapped value; empty otherwise.
	Value string
	// Where names the place of a row of a workbook or Parquet file in its
	// terms (`sheet "Orders", row 7, cell C7 (amount)`), in place of the
	// line and column of a text file; Line is then the row.
	Where string
}

func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString("read ")
	b.WriteString(e.File)
	switch {
	case e.Where != "":
		b.WriteString(": ")
		b.WriteString(e.Where)
	default:
		fmt.Fprintf(&b, ": line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the detail error.
func (e *RowError) Unwrap() error { return e.Err }

// OutOfRangeRow is one dropped out-of-range event, kept as an example.
type OutOfRangeRow struct {
	Line int
	Time time.Time
}

// maxExamples bounds the example lists in a Report.
const maxExamples = 10

// maxKindValues bounds the distinct unmapped kind values a Report counts.
const maxKindValues = 20

// Report counts what a read did.
type Report struct {
	File   string
	Rows   int // data rows seen (header and blank lines excluded)
	Events int // events emitted
	// Skipped counts rows that were not emitted, by reason: bad rows under the
	// Skip policy and rows the format excludes (ReasonMissingCustomer for an
	// Online Retail "NA" customer, ReasonCancellation). Out-of-range rows are
	// counted in OutOfRange instead.
	Skipped map[string]int
	// Invalid is how many of the skipped rows were bad input (*RowErrors).
	Invalid int
	// Errors holds the first few skipped *RowErrors, for printing.
	Errors []*RowError
	// UnknownKinds counts the rows of each kind value the format or Mapping
	// does not map (the first maxKindValues distinct values; all of them are
	// in Skipped[ReasonUnknownKind]).
	UnknownKinds map[string]int
	// OutOfRange counts well-formed events outside [ValidFrom, ValidTo);
	// OutOfRangeRows holds the first few.
	OutOfRange     int
	OutOfRangeRows []OutOfRangeRow
	// First and Last are the earliest and latest emitted event times.
	First, Last time.Time
	// JSONLines: a mapped export was read as JSON Lines (its first byte
	// was "{").
	JSONLines bool
	// ReadAs says how a file that is not plain text was read: "UTF-16LE
	// text", a workbook's sheet, "Parquet", a zip archive's entry; empty
	// for text.
	ReadAs string
}

// String summarises the report on a few lines.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows, %d events", r.File, r.Rows, r.Events)
	if r.Events > 0 {
		fmt.Fprintf(&b, " (%s .. %s)", r.First.Format(time.RFC3339), r.Last.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, ", %d out of range, %d invalid", r.OutOfRange, r.Invalid)
	if r.JSONLines {
		b.WriteString("; read as JSON Lines")
	}
	if r.ReadAs != "" {
		b.WriteString("; read as " + r.ReadAs)
	}
	reasons := make([]string, 0, len(r.Skipped))
	for k := range r.Skipped {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(&b, "\n  skipped %-20s %d", k+":", r.Skipped[k])
	}
	for _, v := range r.unknownKindsByCount() {
		fmt.Fprintf(&b, "\n  kind value %q is not mapped: %d rows", v, r.UnknownKinds[v])
	}
	for _, o := range r.OutOfRangeRows {
		fmt.Fprintf(&b, "\n  out of range: line %d at %s", o.Line, o.Time.Format(time.RFC3339))
	}
	if n := r.OutOfRange - len(r.OutOfRangeRows); n > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more out of range", n)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "\n  %v", e)
	}
	if n := r.Invalid - len(r.Errors); n > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more invalid rows", n)
	}
	return b.String()
}

// unknownKindsByCount returns the keys of UnknownKinds, most rows first.
func (r Report) unknownKindsByCount() []string {
	vs := make([]string, 0, len(r.UnknownKinds))
	for v := range r.UnknownKinds {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		if a, b := r.UnknownKinds[vs[i]], r.UnknownKinds[vs[j]]; a != b {
			return a > b
		}
		return vs[i] < vs[j]
	})
	return vs
}

// TooManyInvalidError is the error of a Skip read in which more than
// Options.MaxInvalidShare of the data rows were bad input: a sign that the
// file does not have the layout the reader was told (a wrong time layout, a
// kind column whose values are not mapped) rather than of a few damaged rows.
type TooManyInvalidError struct {
	Report   Report // the whole read, with the first bad rows in Errors
	MaxShare float64
}

// tooManyInvalidExamples is how many bad rows the error message shows.
const tooManyInvalidExamples = 5

func (e *TooManyInvalidError) Error() string {
	r := e.Report
	var b strings.Builder
	fmt.Fprintf(&b, "read %s: %d of %d data rows (%.1f%%) are bad input, more than the %g%% allowed",
		r.File, r.Invalid, r.Rows, 100*float64(r.Invalid)/float64(max(r.Rows, 1)), 100*e.MaxShare)
	reasons := make([]string, 0, len(r.Skipped))
	for _, re := range r.Errors {
		if !slices.Contains(reasons, re.Reason) {
			reasons = append(reasons, re.Reason)
		}
	}
	for _, k := range reasons {
		fmt.Fprintf(&b, "\n  %s: %d rows", k, r.Skipped[k])
	}
	for _, v := range r.unknownKindsByCount() {
		fmt.Fprintf(&b, "\n  kind value %q is not mapped: %d rows", v, r.UnknownKinds[v])
	}
	b.WriteString("\nfirst bad rows:")
	for _, re := range r.Errors[:min(len(r.Errors), tooManyInvalidExamples)] {
		if re.Where != "" {
			fmt.Fprintf(&b, "\n  %s", re.Where)
		} else {
			fmt.Fprintf(&b, "\n  line %d", re.Line)
		}
		if re.Column > 0 && re.Where == "" {
			fmt.Fprintf(&b, ", column %d", re.Column)
		}
		fmt.Fprintf(&b, ": %s", re.Reason)
		if re.Err != nil {
			fmt.Fprintf(&b, ": %v", re.Err)
		}
	}
	return b.String()
}

// ReadFile opens path with Open (so a gzip-compressed file is decompressed)
// and reads it with Read.
func ReadFile(ctx context.Context, path string, opts Options, emit func(model.Event) error) (Report, error) {
	kind, size, err := fileContainer(path)
	if err != nil {
		return Report{File: path}, fmt.Errorf("read: %w", err)
	}
	if kind != notContainer {
		if err := opts.validate(); err != nil {
			return Report{File: path}, fmt.Errorf("read %s: options: %w", path, err)
		}
		return readContainer(ctx, path, path, size, kind, &opts, emit)
	}
	f, err := Open(path)
	if err != nil {
		return Report{File: path}, fmt.Errorf("read: %w", err)
	}
	defer f.Close()
	return Read(ctx, f, path, opts, emit)
}

// Read parses r, whose name is used in errors, as opts.Format and calls emit for
// every event in file order. It returns the report so far together with the
// first bad row under FailFast, the first error emit returns (wrapped), or
// ctx's error.
func Read(ctx context.Context, r io.Reader, name string, opts Options, emit func(model.Event) error) (Report, error) {
	if err := opts.validate(); err != nil {
		return Report{File: name}, fmt.Errorf("read %s: options: %w", name, err)
	}
	if opts.Format == OnlineRetail {
		return ReadOnlineRetail(ctx, r, name, opts, func(ev model.Event, _ RetailLine) error { return emit(ev) })
	}
	enc := sourceEncoding(r)
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 256<<10 {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	r = br
	if head, _ := br.Peek(4); containerOf(head) != notContainer {
		return readSpooled(ctx, br, name, containerOf(head), &opts, emit)
	}
	if enc != "" && opts.Format == CSV && opts.Mapping.Encoding != "" {
		// The byte-order mark says the encoding; the mapping's
		// single-byte one would garble the transcoded text.
		m := *opts.Mapping
		m.Encoding = ""
		opts.Mapping = &m
	}
	var p rowParser
	jsonLines := false
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	switch opts.Format {
	case CDNOW:
		p = newCDNOWParser(false, loc)
	case CDNOWSample:
		p = newCDNOWParser(true, loc)
	case Taobao:
		p = newTaobaoParser()
	case CSV:
		var err error
		if r, jsonLines, err = sniffJSONLines(r); err != nil {
			return Report{File: name}, fmt.Errorf("read %s: %w", name, err)
		}
		if !jsonLines {
			cp := newCSVParser(opts.Mapping, loc)
			cp.utf16 = enc != ""
			p = cp
			break
		}
		jp, err := newJSONLinesParser(opts.Mapping, loc)
		if err != nil {
			return Report{File: name}, fmt.Errorf("read %s: %w", name, err)
		}
		p = jp
	}
	rep, err := run(ctx, r, name, &opts, p, emit)
	rep.JSONLines = jsonLines
	if enc != "" {
		rep.ReadAs = enc + " text"
	}
	return rep, err
}

// readSpooled reads a container that arrives as a stream from a temporary
// copy.
func readSpooled(ctx context.Context, r io.Reader, name string, kind containerKind, opts *Options, emit func(model.Event) error) (Report, error) {
	p, size, err := spool(ctx, r)
	if err != nil {
		return Report{File: name}, fmt.Errorf("read %s: %w", name, err)
	}
	defer os.Remove(p)
	return readContainer(ctx, p, name, size, kind, opts, emit)
}

// rowParser turns one line into an event. parse returns a non-empty skip reason
// for rows the format excludes, or a *RowError (with File and Line left for the
// driver to fill in).
type rowParser interface {
	header() bool
	parseHeader(line []byte) *RowError
	parse(line []byte) (ev model.Event, skip string, err *RowError)
	// column returns the 1-based field holding byte offset off of line.
	column(line []byte, off int) int
}

// textParser is a rowParser of delimited text (the mapped CSV reader): its
// records may span lines (a quoted field with a line break), its lines may
// be in a single-byte encoding, and it checks the UTF-8 of the fields it
// reads itself, so that bytes in a column it does not read do not make a row
// bad.
type textParser interface {
	rowParser
	// endsInQuote reports whether line, starting inside a quoted field when
	// in is true, ends inside one.
	endsInQuote(line []byte, in bool) bool
	// decodeLine returns line as UTF-8.
	decodeLine(line []byte) []byte
}

func run(ctx context.Context, r io.Reader, name string, opts *Options, p rowParser, emit func(model.Event) error) (Report, error) {
	rep := Report{File: name, Skipped: map[string]int{}}
	tl := accounts{rep: &rep, opts: opts, emit: emit, unit: "line"}
	sc := newLineScanner(r)
	needHeader := p.header()
	tp, text := p.(textParser)
	var header []byte // the header line, to know it again when repeated
	for {
		var line []byte
		var lineNo, spanned int
		var tooLong bool
		var err error
		if text {
			line, lineNo, spanned, tooLong, err = sc.nextRecord(tp)
		} else {
			line, lineNo, tooLong, err = sc.next()
		}
		if errors.Is(err, io.EOF) {
			return rep, tl.end()
		}
		if err != nil {
			return rep, fmt.Errorf("read %s: line %d: %w", name, lineNo, err)
		}
		if lineNo&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("read %s: line %d: %w", name, lineNo, err)
			}
		}
		if len(line) == 0 && !tooLong {
			continue
		}
		var rerr *RowError
		swallowed := 0 // lines after the first of a record that is a bad row as a whole
		switch {
		case tooLong:
			swallowed = spanned - 1
			rerr = &RowError{Reason: ReasonLineTooLong, Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
		case spanned < 0:
			spanned = -spanned
			swallowed = spanned - 1
			rerr = &RowError{Column: p.column(line, len(line)), Reason: ReasonBadQuote,
				Err: fmt.Errorf("quoted field not closed: it runs over %d lines to the end of the file", spanned)}
		case text:
			line = tp.decodeLine(line)
		default:
			if i := invalidUTF8(line); i >= 0 {
				rerr = &RowError{Column: p.column(line, i), Reason: ReasonNotUTF8, Err: fmt.Errorf("invalid byte 0x%02x at byte %d", line[i], i+1)}
			}
		}
		if needHeader {
			needHeader = false
			if rerr == nil {
				rerr = p.parseHeader(line)
			}
			if rerr != nil {
				// A bad header makes every later row meaningless: always fatal.
				rerr.File, rerr.Line = name, lineNo
				return rep, rerr
			}
			header = append([]byte(nil), line...)
			continue
		}
		if header != nil && rerr == nil && bytes.Equal(trimBOM(line), header) {
			// Exports concatenated with their headers.
			rep.Rows++
			rep.Skipped[ReasonRepeatedHeader]++
			continue
		}
		rep.Rows++
		var ev model.Event
		var skip string
		if rerr == nil {
			ev, skip, rerr = p.parse(line)
			if rerr != nil && spanned > 1 && (rerr.Reason == ReasonBadQuote || rerr.Reason == ReasonColumnCount) {
				// A record over several lines that does not split into the
				// file's columns was most likely opened by a stray quote.
				swallowed = spanned - 1
				rerr.Err = fmt.Errorf("%w (a quoted field ran over lines %d-%d)", rerr.Err, lineNo, lineNo+spanned-1)
			}
		}
		if swallowed > 0 {
			// The lines a bad record swallowed are bad rows each, so that
			// the bound on bad rows sees them.
			rep.Rows += swallowed
			rep.Skipped[rerr.Reason] += swallowed
			rep.Invalid += swallowed
		}
		if err := tl.record(lineNo, ev, skip, rerr); err != nil {
			return rep, err
		}
	}
}

// accounts does the accounting of one read that every reader shares: a bad
// row under each policy, an excluded row, an out-of-range event, an
// emitted one. unit is what a row is called in messages ("line", "row").
type accounts struct {
	rep  *Report
	opts *Options
	emit func(model.Event) error
	unit string
}

// record accounts for the row at lineNo: its event, or the reason it is
// excluded, or its error. The error it returns stops the read.
func (a *accounts) record(lineNo int, ev model.Event, skip string, rerr *RowError) error {
	rep, opts := a.rep, a.opts
	if rerr != nil {
		rerr.File, rerr.Line = rep.File, lineNo
		if opts.OnError == FailFast {
			return rerr
		}
		rep.Skipped[rerr.Reason]++
		rep.Invalid++
		if rerr.Reason == ReasonUnknownKind {
			if _, seen := rep.UnknownKinds[rerr.Value]; seen || len(rep.UnknownKinds) < maxKindValues {
				if rep.UnknownKinds == nil {
					rep.UnknownKinds = map[string]int{}
				}
				rep.UnknownKinds[rerr.Value]++
			}
		}
		if len(rep.Errors) < maxExamples {
			rep.Errors = append(rep.Errors, rerr)
		}
		return nil
	}
	if skip != "" {
		rep.Skipped[skip]++
		return nil
	}
	if (!opts.ValidFrom.IsZero() && ev.Time.Before(opts.ValidFrom)) || (!opts.ValidTo.IsZero() && !ev.Time.Before(opts.ValidTo)) {
		rep.OutOfRange++
		if len(rep.OutOfRangeRows) < maxExamples {
			rep.OutOfRangeRows = append(rep.OutOfRangeRows, OutOfRangeRow{Line: lineNo, Time: ev.Time})
		}
		return nil
	}
	if err := a.emit(ev); err != nil {
		return fmt.Errorf("read %s: %s %d: emit: %w", rep.File, a.unit, lineNo, err)
	}
	if rep.Events == 0 || ev.Time.Before(rep.First) {
		rep.First = ev.Time
	}
	if rep.Events == 0 || ev.Time.After(rep.Last) {
		rep.Last = ev.Time
	}
	rep.Events++
	return nil
}

// end is the outcome of a read that reached the end of its input.
func (a *accounts) end() error {
	if a.opts.MaxInvalidShare > 0 && float64(a.rep.Invalid) > a.opts.MaxInvalidShare*float64(a.rep.Rows) {
		return &TooManyInvalidError{Report: *a.rep, MaxShare: a.opts.MaxInvalidShare}
	}
	return nil
}

// invalidUTF8 returns the offset of the first byte of line that is not valid
// UTF-8, or -1.
func invalidUTF8(line []byte) int {
	if utf8.Valid(line) {
		return -1
	}
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// lineScanner yields lines without their line terminator ("\n" or "\r\n"),
// reusing its buffers: a returned line is valid until the next call.
type lineScanner struct {
	br     *bufio.Reader
	long   []byte
	rec    []byte // a record of several lines (nextRecord)
	lineNo int
	first  bool
}

func newLineScanner(r io.Reader) *lineScanner {
	return &lineScanner{br: bufio.NewReaderSize(r, 256<<10), first: true}
}

// next returns the next line and its 1-based number. tooLong reports a line
// over MaxLineBytes, whose content is dropped. err is io.EOF at the end.
func (s *lineScanner) next() (line []byte, lineNo int, tooLong bool, err error) {
	line, err = s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.br.ReadSlice('\n')
			// Room for the terminator ("\r\n"): the limit is on the row.
			if len(s.long)+len(line) > MaxLineBytes+2 {
				tooLong = true
			} else {
				s.long = append(s.long, line...)
			}
		}
		line = s.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, s.lineNo + 1, false, err
	}
	if errors.Is(err, io.EOF) && len(line) == 0 {
		return nil, s.lineNo, false, io.EOF
	}
	s.lineNo++
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if s.first {
		s.first = false
		line = trimBOM(line)
	}
	if len(line) > MaxLineBytes {
		tooLong = true
	}
	if tooLong {
		line = nil
	}
	return line, s.lineNo, tooLong, nil
}

// nextRecord returns the next record of a delimited text file: a line,
// joined with the lines after it by "\n" while a quoted field is open, and
// the number of the line it starts on. spanned is the number of lines it
// holds, negated when the file ended inside a quoted field; a record over
// MaxLineBytes is tooLong.
func (s *lineScanner) nextRecord(tp textParser) (rec []byte, lineNo, spanned int, tooLong bool, err error) {
	line, lineNo, tooLong, err := s.next()
	if err != nil || tooLong || !tp.endsInQuote(line, false) {
		return line, lineNo, 1, tooLong, err
	}
	s.rec = append(s.rec[:0], line...)
	for spanned = 1; ; {
		line, _, long, err := s.next()
		if errors.Is(err, io.EOF) {
			return s.rec, lineNo, -spanned, false, nil
		}
		if err != nil {
			return nil, lineNo, spanned, false, err
		}
		spanned++
		if long || len(s.rec)+1+len(line) > MaxLineBytes {
			tooLong = true
		}
		if !tooLong {
			s.rec = append(append(s.rec, '\n'), line...)
		}
		if long || !tp.endsInQuote(line, true) {
			if tooLong {
				return nil, lineNo, spanned, true, nil
			}
			return s.rec, lineNo, spanned, false, nil
		}
	}
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}
