package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// sample is the head of an export, read once and looked at by the
// suggester: the bytes as the reader will see them (decompressed), and the
// same rows split into fields as UTF-8 text.
type sample struct {
	raw       []byte // the decompressed head, whole records only
	gzip      bool
	bom       bool
	jsonLines bool
	encoding  string // EncodingUTF8 or EncodingWindows1252
	delimiter byte   // for delimited text
	delimFit  string // evidence for the delimiter
	header    bool
	headerWhy string
	names     []string   // header names or JSON keys; nil without a header
	rows      [][]string // data rows, fields as UTF-8
	truncated bool       // the file goes on after the sample
	maxRows   int
	nested    []string // JSON keys holding objects or arrays
	// rest reads the file on after the sample, a line at a time, for a
	// question the sample leaves open (the day and month order).
	rest     *bufio.Reader
	restLine int // the number of the last line read into the sample
}

// readHead reads at most maxRows+1 lines and maxBytes bytes of r, which
// may be gzip-compressed, ending on a line boundary.
func readHead(r io.Reader, maxRows int, maxBytes int) (s *sample, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	s = &sample{gzip: len(magic) == 2 && [2]byte(magic) == gzipMagic, maxRows: maxRows}
	dr, err := Decompressed(br)
	if err != nil {
		return nil, err
	}
	lr := bufio.NewReaderSize(dr, 64<<10)
	var buf bytes.Buffer
	for lines := 0; lines <= maxRows; lines++ {
		line, err := lr.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			if buf.Len()+len(line) > maxBytes {
				break
			}
			buf.Write(line)
			line, err = lr.ReadSlice('\n')
		}
		if buf.Len()+len(line) > maxBytes {
			s.truncated = true
			break
		}
		buf.Write(line)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read head: %w", err)
		}
		if lines == maxRows {
			_, perr := lr.Peek(1)
			s.truncated = perr == nil
		}
	}
	s.raw = buf.Bytes()
	s.rest, s.restLine = lr, bytes.Count(s.raw, []byte("\n"))
	if s.truncated {
		// The sample ends on the last line break: a record cut in two would
		// be a bad row of the sample's own making.
		if i := bytes.LastIndexByte(s.raw, '\n'); i >= 0 {
			s.raw = s.raw[:i+1]
		}
	}
	return s, nil
}

// textLines returns the sample's lines without terminators, the BOM and
// the encoding applied, as UTF-8.
func (s *sample) textLines() [][]byte {
	body := s.raw
	if b := trimBOM(body); len(b) != len(body) {
		s.bom, body = true, b
	}
	s.encoding = EncodingUTF8
	if !utf8.Valid(body) {
		s.encoding = EncodingWindows1252
	}
	var out [][]byte
	for line := range bytes.Lines(body) {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if s.encoding != EncodingUTF8 {
			line = transcode(nil, line, &windows1252Table)
		}
		out = append(out, line)
	}
	return out
}

// split turns the sample's text into rows: JSON objects, or delimited
// records with the delimiter that splits the most lines alike.
func (s *sample) split() error {
	lines := s.textLines()
	// The first two characters that are not blanks, across lines: "[" and
	// "{" open a JSON array of objects, as the reader's sniff sees it.
	var head []byte
	for _, l := range lines {
		head = append(head, bytes.TrimSpace(l)...)
		if len(head) >= 2 {
			break
		}
	}
	first, second := byte(0), byte(0)
	if len(head) > 0 {
		first = head[0]
		if u := bytes.TrimLeft(head[1:], " \t\r"); len(u) > 0 {
			second = u[0]
		}
	}
	switch {
	case first == '[' && second == '{':
		return fmt.Errorf("%w: the file is one JSON array of objects, not JSON Lines (one object per line): "+
			"write it with lines=True in pandas (to_json(orient=\"records\", lines=True)), or jq -c '.[]'", ErrNotText)
	case first == '{':
		s.jsonLines, s.encoding, s.header = true, EncodingUTF8, true
		if len(lines) > s.maxRows {
			// The head holds a line more than the rows, for a header JSON
			// Lines does not have.
			lines, s.raw, s.truncated = lines[:s.maxRows], cutLines(s.raw, s.maxRows), true
		}
		return s.splitJSON(lines)
	}
	s.delimiter, s.delimFit = chooseDelimiter(lines)
	recs := records(lines, s.delimiter, s.truncated)
	if s.truncated {
		kept := 0
		for _, r := range recs {
			kept += r.lines
		}
		s.raw = cutLines(s.raw, kept)
	}
	sp := splitter{delim: s.delimiter}
	for _, r := range recs {
		if len(r.text) == 0 {
			continue
		}
		f, _, err := sp.split(r.text)
		if err != nil {
			s.rows = append(s.rows, nil) // a bad row: it counts, it holds nothing
			continue
		}
		row := make([]string, len(f))
		for i, x := range f {
			row[i] = string(x)
		}
		s.rows = append(s.rows, row)
	}
	s.header, s.headerWhy = hasHeader(s.rows)
	if s.header && len(s.rows) > 0 {
		s.names = make([]string, len(s.rows[0]))
		for i, n := range s.rows[0] {
			s.names[i] = strings.TrimSpace(n)
		}
		s.rows = s.rows[1:]
	}
	return nil
}

// record is one delimited record: its text (lines joined by "\n" while a
// quoted field is open) and how many lines it spans.
type record struct {
	text  []byte
	lines int
}

// records joins lines into records as the reader does; a last record
// still inside a quoted field is dropped when the file goes on.
func records(lines [][]byte, delim byte, truncated bool) []record {
	sp := splitter{delim: delim}
	var out []record
	var cur []byte
	in, n := false, 0
	for _, l := range lines {
		if in {
			cur = append(append(cur, '\n'), l...)
		} else {
			cur = append([]byte(nil), l...)
			n = 0
		}
		n++
		in = sp.endsInQuote(l, in)
		if !in {
			out = append(out, record{text: cur, lines: n})
		}
	}
	if in && !truncated {
		out = append(out, record{text: cur, lines: n})
	}
	return out
}

// cutLines shortens raw to its first n lines.
func cutLines(raw []byte, n int) []byte {
	off := 0
	for range n {
		i := bytes.IndexByte(raw[off:], '\n')
		if i < 0 {
			return raw
		}
		off += i + 1
	}
	return raw[:off]
}
