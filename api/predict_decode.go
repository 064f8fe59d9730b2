package api

// Predict request decoding. encoding/json's reflection was the largest CPU
// cost of a predict request (a quarter of the server's time at 32 clients,
// three quarters of a 1,000-customer batch), so the predict routes first try
// a small scanner made for their bodies' usual shape and fall back to
// decodeJSON, which gives the answer and the error messages of every other
// route, for anything else.
//
// The fast path accepts a strict subset of what decodeJSON accepts and must
// produce the same value for it (FuzzPredictDecode checks this against
// encoding/json): one JSON object with the exact, lower-case field names,
// each at most once; strings without escapes or control characters and
// valid UTF-8; numbers in JSON's grammar that fit their Go type; no null;
// nothing but white space after the object. Anything else — an unknown or
// repeated field, an escape, a syntax error — returns false and decodeJSON
// decodes the body again and answers as it always has.

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodePredict reads a predict body into v with fast, falling back to
// decodeJSON when fast declines.
func decodePredict[T any](w http.ResponseWriter, r *http.Request, limit int64, v *T, fast func([]byte, *T) bool) error {
	if err := requireMediaType(r, "application/json"); err != nil {
		return err
	}
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	if fast(body, v) {
		return nil
	}
	var zero T
	*v = zero
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decodeJSON(w, r, limit, v)
}

// scanner walks a JSON body. Every method returns false when the input is
// outside the fast path's subset; the caller then gives up.
type scanner struct {
	b   []byte
	src string // b as one string: decoded strings are slices of it, not copies
	i   int
	// amounts is the slab event amounts point into: one allocation for up
	// to amountSlab events (of any customers) instead of one each. A full
	// slab is left to its pointers and a new one started.
	amounts []float64
	// evs is scratch for one array of events, then copied once at its
	// final length: one allocation per array rather than one per doubling.
	evs []EventInput
}

func newScanner(b []byte) *scanner { return &scanner{b: b, src: string(b)} }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat skips white space and then c.
func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// rawString returns the bytes of a string without escapes.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for ; s.i < len(s.b); s.i++ {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return raw, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (s *scanner) str(dst *string) bool {
	raw, ok := s.rawString()
	if ok {
		end := s.i - 1 // the closing quote
		*dst = s.src[end-len(raw) : end]
	}
	return ok
}

// number returns the text of a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() (string, bool) {
	s.ws()
	start := s.i
	s.skip('-')
	switch {
	case s.skip('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return "", false
	}
	if s.skip('.') && s.digits() == 0 {
		return "", false
	}
	if s.skip('e') || s.skip('E') {
		if !s.skip('+') {
			s.skip('-')
		}
		if s.digits() == 0 {
			return "", false
		}
	}
	return s.src[start:s.i], true
}

func (s *scanner) skip(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) float(dst *float64) bool {
	raw, ok := s.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return false // out of range: encoding/json reports a type error
	}
	*dst = v
	return true
}

func (s *scanner) int(dst *int) bool {
	raw, ok := s.number()
	if !ok || strings.ContainsAny(raw, ".eE") {
		return false
	}
	v, err := strconv.ParseInt(raw, 10, strconv.IntSize)
	if err != nil {
		return false
	}
	*dst = int(v)
	return true
}

// object calls field for each key of an object; field consumes the value.
// The caller keeps the keys it has seen (once): a key seen twice ends the
// fast path (encoding/json would merge them). The set lives in the caller's
// frame rather than here, where a pointer to it handed to field would move
// it to the heap once per object.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		key, ok := s.rawString()
		if !ok || !s.eat(':') || !field(key) {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// once marks bit in seen and reports whether it was clear.
func once(seen *uint32, bit uint) bool {
	if *seen&(1<<bit) != 0 {
		return false
	}
	*seen |= 1 << bit
	return true
}

// array calls elem for each element; elem consumes it. An empty array gives
// zero calls (the caller keeps a non-nil empty slice, as encoding/json does).
func (s *scanner) array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat(']')
	}
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) floats(dst *[]float64) bool {
	// A number array holds no strings or nested values, so its commas up
	// to the first ']' count its elements: one allocation of the right size.
	// The count is capped: in a body that is not such an array the first
	// ']' may be far away, and the size is only a hint.
	n := 1
	if end := bytes.IndexByte(s.b[s.i:], ']'); end >= 0 {
		n += bytes.Count(s.b[s.i:s.i+end], []byte{','})
	}
	out := make([]float64, 0, min(n, maxFloatsHint))
	ok := s.array(func() bool {
		var v float64
		if !s.float(&v) {
			return false
		}
		out = append(out, v)
		return true
	})
	*dst = out
	return ok
}

func (s *scanner) events(dst *[]EventInput) bool {
	if s.evs == nil {
		s.evs = make([]EventInput, 0, 64)
	}
	s.evs = s.evs[:0]
	ok := s.array(func() bool {
		var e EventInput
		var seen uint32
		if !s.object(func(key []byte) bool {
			switch string(key) {
			case "time":
				return once(&seen, 0) && s.str(&e.Time)
			case "kind":
				return once(&seen, 1) && s.str(&e.Kind)
			case "amount":
				var a float64
				if !once(&seen, 2) || !s.float(&a) {
					return false
				}
				if len(s.amounts) == cap(s.amounts) {
					s.amounts = make([]float64, 0, amountSlab)
				}
				s.amounts = append(s.amounts, a)
				e.Amount = &s.amounts[len(s.amounts)-1]
				return true
			case "item":
				return once(&seen, 3) && s.str(&e.Item)
			case "category":
				return once(&seen, 4) && s.str(&e.Category)
			}
			return false
		}) {
			return false
		}
		s.evs = append(s.evs, e)
		return true
	})
	*dst = append(make([]EventInput, 0, len(s.evs)), s.evs...)
	return ok
}

// amountSlab is how many event amounts share one allocation.
const amountSlab = 64

// maxFloatsHint bounds the capacity floats allocates up front (feature
// vectors have tens of values); a longer array grows as usual.
const maxFloatsHint = 1024

// fastPredictRequest decodes the usual PredictRequest body.
func fastPredictRequest(b []byte, req *PredictRequest) bool {
	s := newScanner(b)
	var seen uint32
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "merchant":
			return once(&seen, 0) && s.str(&req.Merchant)
		case "customer":
			return once(&seen, 1) && s.str(&req.Customer)
		case "events":
			return once(&seen, 2) && s.events(&req.Events)
		case "features":
			return once(&seen, 3) && s.floats(&req.Features)
		case "model_version":
			return once(&seen, 4) && s.int(&req.ModelVersion)
		case "as_of":
			return once(&seen, 5) && s.str(&req.AsOf)
		}
		return false
	}) && s.end()
}

// fastBatchRequest decodes the usual PredictBatchRequest body.
func fastBatchRequest(b []byte, req *PredictBatchRequest) bool {
	s := newScanner(b)
	var seen uint32
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "merchant":
			return once(&seen, 0) && s.str(&req.Merchant)
		case "customers":
			if !once(&seen, 1) {
				return false
			}
			cs := make([]BatchCustomer, 0, 64)
			ok := s.array(func() bool {
				var c BatchCustomer
				var cseen uint32
				if !s.object(func(key []byte) bool {
					switch string(key) {
					case "customer":
						return once(&cseen, 0) && s.str(&c.Customer)
					case "events":
						return once(&cseen, 1) && s.events(&c.Events)
					case "features":
						return once(&cseen, 2) && s.floats(&c.Features)
					}
					return false
				}) {
					return false
				}
				cs = append(cs, c)
				return true
			})
			req.Customers = cs
			return ok
		case "model_version":
			return once(&seen, 2) && s.int(&req.ModelVersion)
		case "as_of":
			return once(&seen, 3) && s.str(&req.AsOf)
		}
		return false
	}) && s.end()
}
