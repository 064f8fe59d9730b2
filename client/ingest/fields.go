package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// splitSpace splits line on runs of spaces and tabs into dst, which it returns
// resliced. Leading and trailing blanks are ignored.
func splitSpace(dst [][]byte, line []byte) [][]byte {
	dst = dst[:0]
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			return dst
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		dst = append(dst, line[i:j])
		i = j
	}
}

// spaceColumn is the 1-based whitespace-separated field holding byte off.
func spaceColumn(line []byte, off int) int {
	col, in := 0, false
	for i := 0; i <= off && i < len(line); i++ {
		blank := line[i] == ' ' || line[i] == '\t'
		if !blank && !in {
			col++
		}
		in = !blank
	}
	return max(col, 1)
}

// splitter splits delimited lines with optional RFC 4180 quoting confined to
// one line (a quoted field may hold the delimiter and "" for a quote, but not a
// newline). Fields without escaped quotes alias the line; unescaped copies live
// in scratch. Both are reused between lines.
type splitter struct {
	delim   byte
	fields  [][]byte
	scratch []byte
}

// split returns the fields of line, or the 1-based column and detail of a
// quoting error.
func (s *splitter) split(line []byte) ([][]byte, int, error) {
	s.fields = s.fields[:0]
	s.scratch = s.scratch[:0]
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, s.delim)
			if i < 0 {
				s.fields = append(s.fields, line)
				return s.fields, 0, nil
			}
			s.fields = append(s.fields, line[:i])
			line = line[i+1:]
		}
	}
	// The slow path: at most one copy of the line into scratch, so field slices
	// into scratch stay valid while it grows only once.
	if cap(s.scratch) < len(line) {
		s.scratch = make([]byte, 0, len(line))
	}
	i := 0
	for col := 1; ; col++ {
		if i < len(line) && line[i] == '"' {
			start := len(s.scratch)
			i++
			for {
				q := bytes.IndexByte(line[i:], '"')
				if q < 0 {
					return nil, col, errors.New("quoted field not closed before end of line")
				}
				s.scratch = append(s.scratch, line[i:i+q]...)
				i += q
				if i+1 < len(line) && line[i+1] == '"' {
					s.scratch = append(s.scratch, '"')
					i += 2
					continue
				}
				i++
				break
			}
			s.fields = append(s.fields, s.scratch[start:len(s.scratch):len(s.scratch)])
			if i < len(line) && line[i] != s.delim {
				return nil, col, fmt.Errorf("unexpected %q after closing quote", line[i])
			}
		} else {
			start := i
			for i < len(line) && line[i] != s.delim {
				i++
			}
			s.fields = append(s.fields, line[start:i])
		}
		if i >= len(line) {
			return s.fields, 0, nil
		}
		i++ // the delimiter
		if i == len(line) {
			s.fields = append(s.fields, line[i:])
			return s.fields, 0, nil
		}
	}
}

// column is the 1-based field holding byte off, honouring quotes.
func (s *splitter) column(line []byte, off int) int {
	col, inQuote := 1, false
	for i := 0; i < off && i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			inQuote = !inQuote
		case c == s.delim && !inQuote:
			col++
		}
	}
	return col
}

// atoi parses an unsigned decimal integer of at most 18 digits.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// atoiSigned parses a decimal integer with an optional sign.
func atoiSigned(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	n, ok := atoi(b)
	if neg {
		n = -n
	}
	return n, ok
}

// digits parses b, which must be exactly n ASCII digits.
func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, len(b) > 0
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// civil builds a wall-clock time in loc from checked fields, returned in UTC.
func civil(y, mo, d, h, mi, s int, loc *time.Location) (time.Time, error) {
	if mo < 1 || mo > 12 {
		return time.Time{}, fmt.Errorf("month %d out of range", mo)
	}
	if d < 1 || d > daysIn(time.Month(mo), y) {
		return time.Time{}, fmt.Errorf("day %d out of range for %04d-%02d", d, y, mo)
	}
	if h > 23 || mi > 59 || s > 59 {
		return time.Time{}, fmt.Errorf("time of day %02d:%02d:%02d out of range", h, mi, s)
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, 0, loc).UTC(), nil
}

// dateCache remembers recently parsed YYYYMMDD dates in a small
// direct-mapped table, because date-only files use few distinct dates and
// converting a local midnight to UTC costs a zone lookup.
type dateCache struct {
	loc   *time.Location
	slots [1024]struct {
		key int // YYYYMMDD; 0 marks an empty slot
		t   time.Time
	}
}

// parseYYYYMMDD returns local midnight of an 8-digit date, in UTC.
func (c *dateCache) parseYYYYMMDD(b []byte) (time.Time, error) {
	key, ok := digits(b)
	if len(b) != 8 || !ok {
		return time.Time{}, fmt.Errorf("date %q is not YYYYMMDD", b)
	}
	slot := &c.slots[key%len(c.slots)]
	if slot.key == key && key != 0 {
		return slot.t, nil
	}
	t, err := civil(key/10000, key/100%100, key%100, 0, 0, 0, c.loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: %w", b, err)
	}
	slot.key, slot.t = key, t
	return t, nil
}

// parseDateTime parses "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DD HH:MM" in loc.
func parseDateTime(b []byte, loc *time.Location) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("time %q is not YYYY-MM-DD HH:MM[:SS]", b)
	}
	if (len(b) != 19 && len(b) != 16) || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' {
		return bad()
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, ok4 := digits(b[11:13])
	mi, ok5 := digits(b[14:16])
	s, ok6 := 0, true
	if len(b) == 19 {
		if b[16] != ':' {
			return bad()
		}
		s, ok6 = digits(b[17:19])
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return bad()
	}
	t, err := civil(y, mo, d, h, mi, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", b, err)
	}
	return t, nil
}

// The Unix seconds of 0000-01-01 and of 10000-01-01 (UTC): times outside
// them cannot be written as RFC 3339 or JSON.
const (
	minUnix = -62167219200
	endUnix = 253402300800
)

// parseUnix parses integer seconds (scale 1) or milliseconds (scale 1000)
// since the Unix epoch, in years 0–9999 (the other layouts' years have four
// digits): a stray larger value would move every "last event" date with it.
func parseUnix(b []byte, scale int64) (time.Time, error) {
	n, ok := atoiSigned(b)
	if !ok {
		return time.Time{}, fmt.Errorf("time %q is not an integer", b)
	}
	if n < minUnix*scale || n >= endUnix*scale {
		return time.Time{}, fmt.Errorf("unix time %d is outside the years 0–9999", n)
	}
	if scale == 1000 {
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Unix(n, 0).UTC(), nil
}

// pow10 holds the powers of ten that float64 represents exactly.
func pow10(k int) float64 {
	p := 1.0
	for range k {
		p *= 10
	}
	return p
}

// parseDecimal parses plain decimals like "12", "11.77" or ".5" without
// strconv. With at most 15 significant digits the mantissa m is exact in a
// float64 and so is 10^k for k ≤ 15, so the IEEE quotient m/10^k is the
// correctly rounded value, which is what strconv.ParseFloat returns (Clinger's
// fast path). ok is false for anything else (signs, exponents, long numbers),
// which the caller hands to strconv.
func parseDecimal(b []byte) (v float64, ok bool) {
	var m uint64
	digitsSeen, frac, dot := 0, 0, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digitsSeen > 0 || c != '0' {
				digitsSeen++
			}
			m = m*10 + uint64(c-'0')
			if dot {
				frac++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false
		}
	}
	if digitsSeen > 15 || frac > 15 || len(b) == 0 || (dot && len(b) == 1) {
		return 0, false
	}
	return float64(m) / pow10(frac), true
}

// parseAmount parses a non-negative decimal amount of at most
// model.MaxAmount. The reason is ReasonBadAmount or ReasonNegativeAmount when
// it fails.
func parseAmount(b []byte) (float64, string, error) {
	return parseAmountShown(b, b)
}

// parseAmountShown is parseAmount of b, a rewrite of the field shown (a
// grouped or decimal-comma amount in decimal-point form), whose errors quote
// the field as the file writes it.
func parseAmountShown(b, shown []byte) (float64, string, error) {
	v, ok := parseDecimal(b)
	if !ok {
		var err error
		v, err = strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, ReasonBadAmount, fmt.Errorf("amount %q is not a finite number", shown)
		}
	}
	if v < 0 {
		return 0, ReasonNegativeAmount, fmt.Errorf("amount %q is negative", shown)
	}
	if v > model.MaxAmount {
		return 0, ReasonBadAmount, fmt.Errorf("amount %q is above the maximum %g", shown, float64(model.MaxAmount))
	}
	return v, "", nil
}

// interner returns a shared string for repeated byte sequences, so repeated
// ids cost a hash and a compare instead of an allocation. It is a
// direct-mapped cache of a fixed number of slots: a miss allocates and takes
// the slot over, which keeps memory bounded on files with many distinct ids.
type interner struct {
	seed  maphash.Seed
	slots []string
	mask  uint64
	last  string // files grouped by customer repeat the previous id
}

// newInterner returns an interner of size slots, a power of two.
func newInterner(size int) *interner {
	return &interner{seed: maphash.MakeSeed(), slots: make([]string, size), mask: uint64(size - 1)}
}

func (in *interner) get(b []byte) string {
	if string(b) == in.last {
		return in.last
	}
	slot := &in.slots[maphash.Bytes(in.seed, b)&in.mask]
	if *slot != string(b) {
		*slot = string(b)
	}
	in.last = *slot
	return *slot
}

// taobaoKind maps a UserBehavior behavior_type to a Kind.
func taobaoKind(b []byte) (model.Kind, bool) {
	switch string(b) {
	case "pv":
		return model.View, true
	case "cart":
		return model.Cart, true
	case "fav":
		return model.Favorite, true
	case "buy":
		return model.Purchase, true
	}
	return 0, false
}
