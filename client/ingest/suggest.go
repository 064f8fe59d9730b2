package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kairos-fl/kairos/model"
)

// DefaultSuggestRows is how many data rows Suggest samples by default.
const DefaultSuggestRows = 10_000

// defaultSuggestBytes bounds the sample's bytes: with MaxLineBytes lines a
// row bound alone would not bound memory.
const defaultSuggestBytes = 32 << 20

// maxSuggestColumns bounds the columns the suggester profiles (each is
// tried against every layout): a line of thousands of fields is not an
// order export.
const maxSuggestColumns = 1000

// ErrNoSuggestion is matched by the error of a file no mapping can be
// suggested for (a single column, no rows).
var ErrNoSuggestion = errors.New("no mapping can be suggested")

// SuggestOptions bound what Suggest reads.
type SuggestOptions struct {
	// MaxRows is how many data rows are sampled from the head of the
	// file; DefaultSuggestRows when 0.
	MaxRows int
	// MaxBytes bounds the sampled bytes (decompressed); 32 MiB when 0.
	MaxBytes int
	// Size is the file's size in bytes, for the evidence; 0 when unknown.
	Size int64
	// source, when set, says what r is a rendering of (a workbook's sheet,
	// a Parquet file's columns) in place of the text's shape; more reports
	// that the file has rows after the rendered ones.
	source string
	more   bool
}

// Suggestion is a mapping suggested from the head of an export.
type Suggestion struct {
	// YAML is the mapping with a comment above each key giving the
	// evidence for it; ParseMapping reads it as Mapping.
	YAML    []byte
	Mapping *Mapping
	// Checks are the choices the file's head could not decide, each one
	// sentence; the YAML marks each with a "# CHECK:" line.
	Checks []string
	// Report is the sample read through Mapping.
	Report Report
	// Rows is the number of data rows sampled; Truncated reports that the
	// file goes on after them.
	Rows      int
	Truncated bool
}

// Suggest reads the head of an export (CSV, TSV, semicolon- or
// pipe-separated, JSON Lines; gzip-compressed or not; UTF-8 or
// Windows-1252) from r, named name in messages, and suggests the mapping
// that reads it: which column is the customer, the order time with its
// layout, the amount with its format, the status and its values, and the
// file's shape. Every candidate is checked with the reader's own parsing,
// and the sample is read through the result. A choice the sample cannot
// decide is written as the best guess and listed in Checks. It reads at
// most opts.MaxRows rows and opts.MaxBytes bytes of r.
func Suggest(ctx context.Context, r io.Reader, name string, opts SuggestOptions) (*Suggestion, error) {
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultSuggestRows
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultSuggestBytes
	}
	s, err := readHead(r, opts.MaxRows, opts.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", name, err)
	}
	if err := s.split(); err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", name, err)
	}
	p, err := newPlan(s, name, opts.Size)
	if err != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", name, err)
	}
	p.source, p.more = opts.source, opts.more
	p.decide(ctx)
	return p.finish(ctx)
}

// finish writes the plan as YAML, parses it as the reader will, reads the
// sample through it and adds what that read shows.
func (p *plan) finish(ctx context.Context) (*Suggestion, error) {
	doc := p.render()
	m, err := ParseMapping(bytes.NewReader(doc), "suggested mapping")
	if err != nil {
		// Every key is written from values the parser takes: a refusal
		// is a bug of the suggester, not of the file.
		return nil, fmt.Errorf("suggest mapping for %s: the suggested mapping does not parse: %w\n%s", p.name, err, doc)
	}
	perCustomer := map[string]int{}
	rep, err := Read(ctx, bytes.NewReader(p.s.raw), p.name, Options{Format: CSV, Mapping: m, OnError: Skip}, func(ev model.Event) error {
		if len(perCustomer) < 1<<20 {
			perCustomer[ev.Customer]++
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("suggest mapping for %s: %w", p.name, err)
	}
	var late []string
	switch {
	case err != nil:
		late = append(late, fmt.Sprintf("the sample does not read through the suggested mapping: %v", err))
	case rep.Events == 0:
		late = append(late, fmt.Sprintf("no event comes from the %d sampled rows through the suggested mapping (see the summary)", rep.Rows))
	case rep.Invalid*100 > rep.Rows:
		late = append(late, fmt.Sprintf("%d of %d sampled rows are bad input through the suggested mapping (more than 1%%: kairos eval would refuse the file); see the summary's first bad rows", rep.Invalid, rep.Rows))
	}
	if c, n := topCustomer(perCustomer); n >= 20 && n*20 >= rep.Events && float64(n) >= 100*float64(rep.Events-n)/float64(max(len(perCustomer)-1, 1)) {
		late = append(late, fmt.Sprintf("customer %q holds %d of the %d sampled events: a guest or placeholder id? List it under missing_customer_values", c, n, rep.Events))
	}
	if len(late) > 0 {
		p.checks = append(p.checks, late...)
		p.trailer = late
		doc = p.render()
	}
	return &Suggestion{YAML: doc, Mapping: m, Checks: p.checks, Report: rep, Rows: len(p.s.rows), Truncated: p.s.truncated}, nil
}

// topCustomer returns the customer with the most events.
func topCustomer(per map[string]int) (string, int) {
	best, n := "", 0
	for c, k := range per {
		if k > n || k == n && c < best {
			best, n = c, k
		}
	}
	return best, n
}

// entry is one key of the suggested mapping: its YAML lines, the evidence
// above them, and the check a guess needs.
type entry struct {
	why   []string
	check string
	lines []string
}

// plan is the suggester's state: the sample, what each column's name
// says, the roles decided so far and the entries written for them.
type plan struct {
	s       *sample
	name    string
	size    int64
	ncols   int
	info    []nameInfo
	used    map[int]string // column → role
	entries []entry
	checks  []string
	trailer []string
	source  string // what the sample renders, when not the text itself
	more    bool   // the rendered file goes on after the sample

	time         timeFit
	amount       int
	amountFit    amountFit
	qty          int
	status, cust int
	custKey      func(string) string // a customer id as the reader normalizes it
}

func newPlan(s *sample, name string, size int64) (*plan, error) {
	p := &plan{s: s, name: name, size: size, used: map[int]string{}, amount: -1, qty: -1, status: -1, cust: -1}
	p.ncols = len(s.names)
	if !s.header {
		for _, r := range s.rows {
			p.ncols = max(p.ncols, len(r))
		}
	}
	if len(s.rows) == 0 {
		return nil, fmt.Errorf("%w: the file has no data rows", ErrNoSuggestion)
	}
	if p.ncols < 2 {
		return nil, fmt.Errorf("%w: the file has one column (%s); a mapping needs a customer and a time column", ErrNoSuggestion, s.delimFit)
	}
	if p.ncols > maxSuggestColumns {
		return nil, fmt.Errorf("%w: the file has %d columns (%s), more than the %d an order export is taken to have", ErrNoSuggestion, p.ncols, s.delimFit, maxSuggestColumns)
	}
	if len(s.nested) > 0 {
		return nil, fmt.Errorf("%w: keys %s hold nested objects, which the reader does not take: flatten them first (docs/operations.md, JSON Lines)", ErrNoSuggestion, strings.Join(s.nested, ", "))
	}
	p.info = make([]nameInfo, p.ncols)
	for c := range p.ncols {
		if s.header && c < len(s.names) {
			p.info[c] = readName(s.names[c])
		} else {
			p.info[c] = nameInfo{label: fmt.Sprintf("#%d", c+1)}
		}
	}
	return p, nil
}

// decide takes the roles in the order in which each narrows the next.
func (p *plan) decide(ctx context.Context) {
	p.shape()
	p.decideTime(ctx)
	p.decideAmount()
	p.decideStatus()
	p.decideCancelled()
	p.decideCustomer()
	p.decideOrder()
	p.decideCurrency()
}

// add appends an entry; a non-empty check is also listed in p.checks.
func (p *plan) add(e entry) {
	if e.check != "" {
		p.checks = append(p.checks, e.check)
	}
	p.entries = append(p.entries, e)
}

// ref writes a column reference: the header name, or the 1-based index.
func (p *plan) ref(c int) string {
	if p.s.header {
		return yamlString(p.s.names[c])
	}
	return fmt.Sprint(c + 1)
}

// nonEmpty returns the values of column c that are not blank, and how many
// rows have the column.
func (s *sample) nonEmpty(c int) ([]string, int) {
	var out []string
	n := 0
	for _, r := range s.rows {
		if c >= len(r) {
			continue
		}
		n++
		if strings.TrimSpace(r[c]) != "" {
			out = append(out, r[c])
		}
	}
	return out, n
}
