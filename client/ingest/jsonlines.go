package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// jsonLinesParser reads a JSON Lines (NDJSON) export through a Mapping: one
// JSON object per line, the mapping's column names its keys, each value a
// string or a number, as the stream decoder reads a JSON message (it is
// that decoder). RFC 8259 allows no raw line break inside a string, so a
// record is one line.
type jsonLinesParser struct {
	d *MessageDecoder
}

var _ textParser = (*jsonLinesParser)(nil)

func newJSONLinesParser(m *Mapping, loc *time.Location) (*jsonLinesParser, error) {
	d, err := newMessageDecoder(m, MessageJSON, loc)
	if err != nil {
		return nil, fmt.Errorf("JSON Lines: %w", err)
	}
	return &jsonLinesParser{d: d}, nil
}

func (p *jsonLinesParser) header() bool                  { return false }
func (p *jsonLinesParser) parseHeader([]byte) *RowError  { return nil }
func (p *jsonLinesParser) column([]byte, int) int        { return 0 }
func (p *jsonLinesParser) endsInQuote([]byte, bool) bool { return false }
func (p *jsonLinesParser) decodeLine(line []byte) []byte { return p.d.p.decodeLine(line) }

// parse reads one object. Errors name the key where a row error has a
// column.
func (p *jsonLinesParser) parse(line []byte) (model.Event, string, *RowError) {
	if !p.d.p.lineUTF8 {
		i := invalidUTF8(line)
		return model.Event{}, "", &RowError{Reason: ReasonNotUTF8, Err: fmt.Errorf("invalid byte 0x%02x at byte %d (JSON text is UTF-8)", line[i], i+1)}
	}
	f, err := p.d.jsonFields(line)
	if err != nil {
		var me *MessageError
		if !errors.As(err, &me) {
			return model.Event{}, "", &RowError{Reason: ReasonBadJSON, Err: err}
		}
		if me.Field != "" {
			return model.Event{}, "", &RowError{Reason: me.Reason, Err: fmt.Errorf("key %s: %w", me.Field, me.Err)}
		}
		return model.Event{}, "", &RowError{Reason: me.Reason, Err: me.Err}
	}
	p.d.p.ncols = 0 // every object stands alone; an absent key is an empty field
	ev, skip, rerr := p.d.p.parseFields(f)
	if rerr != nil {
		if key := p.d.field(rerr.Column); key != "" {
			rerr.Err = fmt.Errorf("key %s: %w", key, rerr.Err)
		}
		rerr.Column = 0
	}
	return ev, skip, rerr
}

// sniffJSONLines reports whether r, a mapped export, holds JSON Lines: its
// first byte after a byte-order mark and blanks is "{", which starts no CSV
// header and no data row of a shop's export. It returns a reader of the
// same content.
func sniffJSONLines(r io.Reader) (io.Reader, bool, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return br, false, err
	}
	head = bytes.TrimLeft(trimBOM(head), " \t\r\n")
	if len(head) > 0 && head[0] == '[' && bytes.HasPrefix(bytes.TrimLeft(head[1:], " \t\r\n"), []byte("{")) {
		// Read as CSV, every line would be a bad row about quoting.
		return br, false, fmt.Errorf("%w: the file is one JSON array of objects, not JSON Lines (one object per line): "+
			"write it with lines=True in pandas (to_json(orient=\"records\", lines=True)), or jq -c '.[]'", ErrNotText)
	}
	return br, len(head) > 0 && head[0] == '{', nil
}
