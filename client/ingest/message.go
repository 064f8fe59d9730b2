package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// MessageEncoding names how one stream message carries one event.
type MessageEncoding string

// The message encodings NewMessageDecoder understands.
const (
	// MessageJSON is one JSON object per message; the mapping's columns are
	// its keys (customer, time, kind, amount, quantity, item, category), each a string
	// or a number.
	MessageJSON MessageEncoding = "json"
	// MessageCSV is one delimited line per message, without a header; the
	// mapping's columns are 1-based field indices.
	MessageCSV MessageEncoding = "csv"
)

// ParseMessageEncoding returns the encoding named s.
func ParseMessageEncoding(s string) (MessageEncoding, error) {
	switch e := MessageEncoding(s); e {
	case MessageJSON, MessageCSV:
		return e, nil
	}
	return "", fmt.Errorf("parse message encoding: unknown encoding %q (want json or csv)", s)
}

// ErrIgnoredKind is returned by MessageDecoder.Decode for a message whose
// kind value the mapping lists under IgnoreKinds: not an event, not an error
// of the sender either.
var ErrIgnoredKind = errors.New("kind value is ignored by the mapping")

// ReasonBadJSON is the reason of a message that is not one JSON object of
// strings and numbers.
const ReasonBadJSON = "bad JSON"

// ReasonNULCustomer is the reason of a message whose customer id holds a NUL
// character (a JSON "\u0000", or the byte in a CSV line): PostgreSQL text
// cannot store it, so the live store's commit would fail on every restart
// and one such message would stop the stream for good.
const ReasonNULCustomer = "NUL character in the customer id"

// ReasonLongCustomer is the reason of a message whose customer id is longer
// than MaxMessageCustomerBytes.
const ReasonLongCustomer = "customer id too long"

// MaxMessageCustomerBytes bounds a stream message's customer id. The live
// store keys states by it: PostgreSQL's B-tree refuses an entry over 2,704
// bytes, so a longer id would fail the commit on every restart and stop the
// stream for good; and every live state, drift snapshot and score keeps it.
// E-mail addresses are at most 254 bytes; UUIDs 36.
const MaxMessageCustomerBytes = 1024

// MessageError is one bad message. Field names the mapping's column (JSON key
// or #index) where the fault is, or is empty when it concerns the message.
type MessageError struct {
	Reason string // one of the Reason constants
	Field  string
	Err    error
}

func (e *MessageError) Error() string {
	s := "decode message: " + e.Reason
	if e.Field != "" {
		s += " in field " + e.Field
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the detail error.
func (e *MessageError) Unwrap() error { return e.Err }

// MessageDecoder turns stream messages into events with the same mapping, and
// the same field rules, as a generic CSV file. It is not safe for concurrent
// use.
type MessageDecoder struct {
	enc  MessageEncoding
	p    *csvParser
	cols []Column // mapped columns in field order, for JSON and error names
	keys []string // JSON keys in field order
	f    [][]byte
	// custCol is the customer's field position, for error names.
	custCol int
	// JSON scan scratch (jsonmsg.go): the mapped keys' values, unescaped
	// strings.
	slots []jsonSlot
	buf   []byte
}

// NewMessageDecoder validates m for enc and returns a decoder. loc is the
// time zone of times without an offset when the mapping names none.
func NewMessageDecoder(m *Mapping, enc MessageEncoding, loc *time.Location) (*MessageDecoder, error) {
	if m == nil {
		return nil, errors.New("new message decoder: no mapping")
	}
	if loc == nil {
		loc = time.UTC
	}
	if !m.Order.IsZero() {
		return nil, errors.New("new message decoder: order groups the lines of a file's orders; a stream message is one event (send one per order)")
	}
	return newMessageDecoder(m, enc, loc)
}

// newMessageDecoder is NewMessageDecoder for the messages of a file (JSON
// Lines), whose lines may be grouped by order.
func newMessageDecoder(m *Mapping, enc MessageEncoding, loc *time.Location) (*MessageDecoder, error) {
	d := &MessageDecoder{enc: enc}
	mm := *m
	switch enc {
	case MessageCSV:
		for _, c := range mm.columns() {
			if c.col.Name != "" {
				return nil, fmt.Errorf("new message decoder: %s column is named %q, but a CSV message has no header: use a 1-based index", c.what, c.col.Name)
			}
		}
		mm.Header = false
	case MessageJSON:
		// Each used column becomes a field position; the JSON key fills it.
		for _, nc := range mm.columns() {
			c := nc.col
			if c.IsZero() {
				continue
			}
			if c.Name == "" {
				return nil, fmt.Errorf("new message decoder: %s column is index %d, but a JSON message has keys: name the key", nc.what, c.Index)
			}
			d.keys = append(d.keys, c.Name)
			d.cols = append(d.cols, *c)
			*c = Column{Index: len(d.keys)}
		}
		mm.Header = false
	default:
		return nil, fmt.Errorf("new message decoder: unknown encoding %q", enc)
	}
	if err := mm.Validate(); err != nil {
		return nil, fmt.Errorf("new message decoder: %w", err)
	}
	d.p = newCSVParser(&mm, loc)
	d.custCol = mm.Customer.Index
	return d, nil
}

// Decode returns the event in msg. A bad message gives a *MessageError; a
// message of an ignored kind gives ErrIgnoredKind.
func (d *MessageDecoder) Decode(msg []byte) (model.Event, error) {
	if len(msg) > MaxLineBytes {
		return model.Event{}, &MessageError{Reason: ReasonLineTooLong, Err: fmt.Errorf("%d bytes, limit %d", len(msg), MaxLineBytes)}
	}
	msg = d.p.decodeLine(msg) // a mapping's single-byte encoding
	if i := invalidUTF8(msg); i >= 0 {
		return model.Event{}, &MessageError{Reason: ReasonNotUTF8, Err: fmt.Errorf("at byte %d", i)}
	}
	var (
		ev     model.Event
		reason string
		rerr   *RowError
	)
	switch d.enc {
	case MessageCSV:
		line := bytes.TrimRight(msg, "\r\n")
		if bytes.ContainsAny(line, "\r\n") {
			return model.Event{}, &MessageError{Reason: ReasonColumnCount, Err: errors.New("a CSV message is one line")}
		}
		d.p.ncols = 0 // every message stands alone
		ev, reason, rerr = d.p.parse(line)
	default:
		f, err := d.jsonFields(msg)
		if err != nil {
			return model.Event{}, err
		}
		d.p.ncols = 0
		ev, reason, rerr = d.p.parseFields(f)
	}
	if rerr != nil {
		return model.Event{}, &MessageError{Reason: rerr.Reason, Field: d.field(rerr.Column), Err: rerr.Err}
	}
	if reason != "" {
		// An ignored kind or negative amount, a cancellation, a missing
		// customer under missing_customer: ignore: the mapping says these
		// are not events.
		return model.Event{}, ErrIgnoredKind
	}
	if strings.IndexByte(ev.Customer, 0) >= 0 {
		return model.Event{}, &MessageError{Reason: ReasonNULCustomer, Field: d.field(d.custCol)}
	}
	if len(ev.Customer) > MaxMessageCustomerBytes {
		return model.Event{}, &MessageError{Reason: ReasonLongCustomer, Field: d.field(d.custCol),
			Err: fmt.Errorf("%d bytes, limit %d", len(ev.Customer), MaxMessageCustomerBytes)}
	}
	return ev, nil
}

// field names the 1-based field position col in the mapping's terms.
func (d *MessageDecoder) field(col int) string {
	if col <= 0 {
		return ""
	}
	if d.enc == MessageJSON {
		if col <= len(d.keys) {
			return strconv.Quote(d.keys[col-1])
		}
		return ""
	}
	return "#" + strconv.Itoa(col)
}
