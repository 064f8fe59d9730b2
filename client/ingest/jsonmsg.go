package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the JSON message decoder's scanner: one pass over a message
// that validates it as RFC 8259 JSON (as encoding/json does), reads the
// mapped keys of the top-level object and skips every other value, without
// building a map or allocating per message (a string with escapes is
// unescaped into the decoder's scratch buffer). FuzzJSONFields checks it
// against encoding/json.

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jsonValue kinds of a mapped key's last value.
const (
	jvAbsent = iota // key absent, or null
	jvString
	jvNumber
	jvOther // true, false, an object or an array: not a field value
)

// jsonSlot is what the scan found for one mapped key.
type jsonSlot struct {
	kind int
	val  []byte // a string's contents or a number's literal
	raw  []byte // the value as written (for the error of jvOther)
}

type jsonScanner struct {
	b   []byte
	i   int
	buf *[]byte // scratch for unescaped strings
}

func (s *jsonScanner) errf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: "+format, append([]any{s.i}, args...)...)
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// unexpected describes the byte at s.i (or the end) for an error.
func (s *jsonScanner) unexpected(want string) error {
	if s.i >= len(s.b) {
		return s.errf("unexpected end of message, want %s", want)
	}
	return s.errf("invalid character %q, want %s", s.b[s.i], want)
}

// jsonFields reads the mapped keys of one JSON object into field positions:
// a string's contents, a number's literal, an absent key or null as empty.
// When a key appears twice, its last value counts (as with encoding/json).
func (d *MessageDecoder) jsonFields(msg []byte) ([][]byte, error) {
	if cap(d.slots) < len(d.keys) {
		d.slots = make([]jsonSlot, len(d.keys))
	}
	slots := d.slots[:len(d.keys)]
	clear(slots)
	d.buf = d.buf[:0]
	s := jsonScanner{b: msg, buf: &d.buf}
	if err := d.scanObject(&s, slots); err != nil {
		return nil, &MessageError{Reason: ReasonBadJSON, Err: err}
	}
	d.f = d.f[:0]
	d.p.numbers = d.p.numbers[:0]
	for i, sl := range slots {
		d.p.numbers = append(d.p.numbers, sl.kind == jvNumber)
		switch sl.kind {
		case jvAbsent:
			d.f = append(d.f, nil)
		case jvString, jvNumber:
			d.f = append(d.f, sl.val)
		default:
			return nil, &MessageError{Reason: ReasonBadJSON, Field: strconv.Quote(d.keys[i]), Err: fmt.Errorf("value %.40s is not a string or a number", sl.raw)}
		}
	}
	return d.f, nil
}

// scanObject scans the whole message: one object, surrounded by whitespace.
func (d *MessageDecoder) scanObject(s *jsonScanner, slots []jsonSlot) error {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		if err := s.literal("null"); err != nil {
			return err
		}
		if s.ws(); s.i < len(s.b) {
			return s.unexpected("the end after the value")
		}
		return errors.New("null, want an object")
	}
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		if s.i < len(s.b) {
			// A valid value of another type is a type error, not a syntax error.
			start := s.i
			if err := s.skip(1); err != nil {
				return err
			}
			end := s.i
			if s.ws(); s.i < len(s.b) {
				return s.unexpected("the end after the value")
			}
			return fmt.Errorf("value %.40s is not an object", s.b[start:end])
		}
		return s.unexpected("an object")
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
	} else {
		for {
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return s.unexpected("a key")
			}
			key, err := s.str()
			if err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return s.unexpected("':' after a key")
			}
			s.i++
			s.ws()
			k := -1
			for j, name := range d.keys {
				if string(key) == name {
					k = j
					break
				}
			}
			if k < 0 {
				if err := s.skip(1); err != nil {
					return err
				}
			} else if err := s.slot(&slots[k]); err != nil {
				return err
			}
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.i < len(s.b) && s.b[s.i] == '}' {
				s.i++
				break
			}
			return s.unexpected("',' or '}' after a value")
		}
	}
	if s.ws(); s.i < len(s.b) {
		return s.unexpected("the end after the object")
	}
	return nil
}

// slot scans the value of a mapped key into sl.
func (s *jsonScanner) slot(sl *jsonSlot) error {
	start := s.i
	if s.i >= len(s.b) {
		return s.unexpected("a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		v, err := s.str()
		if err != nil {
			return err
		}
		*sl = jsonSlot{kind: jvString, val: v}
	case c == '-' || (c >= '0' && c <= '9'):
		if err := s.number(); err != nil {
			return err
		}
		*sl = jsonSlot{kind: jvNumber, val: s.b[start:s.i]}
	case c == 'n':
		if err := s.literal("null"); err != nil {
			return err
		}
		*sl = jsonSlot{}
	default:
		if err := s.skip(1); err != nil {
			return err
		}
		*sl = jsonSlot{kind: jvOther, raw: s.b[start:s.i]}
	}
	return nil
}

// skip scans any value at nesting depth depth.
func (s *jsonScanner) skip(depth int) error {
	if s.i >= len(s.b) {
		return s.unexpected("a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '{' || c == '[':
		if depth > maxJSONDepth {
			return s.errf("nesting deeper than %d", maxJSONDepth)
		}
		obj := c == '{'
		close := byte(']')
		if obj {
			close = '}'
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == close {
			s.i++
			return nil
		}
		for {
			s.ws()
			if obj {
				if s.i >= len(s.b) || s.b[s.i] != '"' {
					return s.unexpected("a key")
				}
				if _, err := s.str(); err != nil {
					return err
				}
				s.ws()
				if s.i >= len(s.b) || s.b[s.i] != ':' {
					return s.unexpected("':' after a key")
				}
				s.i++
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.i < len(s.b) && s.b[s.i] == close {
				s.i++
				return nil
			}
			return s.unexpected(fmt.Sprintf("',' or '%c'", close))
		}
	default:
		return s.unexpected("a value")
	}
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		for j := range len(lit) {
			if s.i >= len(s.b) || s.b[s.i] != lit[j] {
				return s.unexpected(fmt.Sprintf("%q", lit))
			}
			s.i++
		}
	}
	s.i += len(lit)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case digits() == 0:
		return s.unexpected("a digit")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.unexpected("a digit after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.unexpected("a digit in the exponent")
		}
	}
	return nil
}

// str scans a string at s.i (its opening quote) and returns its contents:
// a slice of the message when it has no escape, else of the scratch buffer.
// Like encoding/json, it turns an unpaired surrogate escape into U+FFFD; the
// message's bytes are valid UTF-8 (MessageDecoder.Decode checks first).
func (s *jsonScanner) str() ([]byte, error) {
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, nil
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return nil, s.errf("control character %#02x in a string", c)
		default:
			s.i++
		}
	}
	return nil, s.unexpected("'\"' closing a string")
}

// escaped continues str from the first backslash, unescaping into the
// scratch buffer.
func (s *jsonScanner) escaped(start int) ([]byte, error) {
	from := len(*s.buf)
	out := append(*s.buf, s.b[start:s.i]...)
	defer func() { *s.buf = out }()
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return out[from:len(out):len(out)], nil
		case c < 0x20:
			return nil, s.errf("control character %#02x in a string", c)
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			s.i++
			return nil, s.unexpected("an escape")
		}
		e := s.b[s.i+1]
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.b[s.i+2:])
			if !ok {
				s.i += 2
				return nil, s.errf("bad \\u escape")
			}
			s.i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s.b[min(s.i+2, len(s.b)):]); ok && s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						s.i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			s.i++
			return nil, s.errf("bad escape '\\%c'", e)
		}
		s.i += 2
	}
	return nil, s.unexpected("'\"' closing a string")
}

// hex4 reads four hexadecimal digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
