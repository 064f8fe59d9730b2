package dp

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseError locates a problem in a ledger file or release spec. Line is 1-based (0 for
// a one-line spec); Column is the 1-based byte column of the offending field.
type ParseError struct {
	Line, Column int
	Err          error
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("column %d: %v", e.Column, e.Err)
	}
	return fmt.Sprintf("line %d, column %d: %v", e.Line, e.Column, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// releaseFields are the keys a release record may use, in the order WriteReleases and
// the CSV header documentation list them.
var releaseFields = []string{"mechanism", "q", "z", "steps", "rho", "epsilon", "sigma2", "cohort", "l2", "l1", "dim"}

// setField parses one key=value of a release record into r, checking the value's range.
func setField(r *Release, key, val string) error {
	if key == "mechanism" {
		switch m := Mechanism(strings.ToLower(strings.TrimSpace(val))); m {
		case Gaussian, ZCDP, Pure, DDGauss:
			r.Mechanism = m
			return nil
		default:
			return fmt.Errorf("mechanism %q unknown (want gaussian, zcdp, pure or ddgauss): %w", val, ErrInvalidParameter)
		}
	}
	if key == "steps" || key == "cohort" || key == "dim" {
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 1 {
			return fmt.Errorf("%s %q must be an integer ≥ 1: %w", key, val, ErrInvalidParameter)
		}
		switch key {
		case "steps":
			r.Steps = n
		case "cohort":
			r.Cohort = n
		default:
			r.Dim = n
		}
		return nil
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("%s %q is not a finite number: %w", key, val, ErrInvalidParameter)
	}
	return setNumber(r, key, x)
}

func setNumber(r *Release, key string, x float64) error {
	switch key {
	case "q":
		if !(x >= 0 && x <= 1) {
			return fmt.Errorf("q %v must be in [0, 1]: %w", x, ErrInvalidParameter)
		}
		r.Q = x
	case "z":
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("z %v must be finite and > 0: %w", x, ErrInvalidParameter)
		}
		r.Z = x
	case "rho":
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("rho %v must be finite and > 0: %w", x, ErrInvalidParameter)
		}
		r.Rho = x
	case "epsilon":
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("epsilon %v must be finite and > 0: %w", x, ErrInvalidParameter)
		}
		r.Epsilon = x
	case "sigma2", "l2", "l1":
		if !(x > 0) || math.IsInf(x, 0) {
			return fmt.Errorf("%s %v must be finite and > 0: %w", key, x, ErrInvalidParameter)
		}
		switch key {
		case "sigma2":
			r.Sigma2 = x
		case "l2":
			r.L2 = x
		default:
			r.L1 = x
		}
	default:
		return fmt.Errorf("unknown field %q (want one of %s): %w", key, strings.Join(releaseFields, ", "), ErrInvalidParameter)
	}
	return nil
}

// finish infers the mechanism when none was named (rho ⇒ zcdp, epsilon ⇒ pure, sigma2 ⇒
// ddgauss, else gaussian), defaults steps to 1 when it was not given, and validates the whole release.
func finish(r *Release, stepsGiven bool) error {
	if r.Mechanism == "" {
		switch {
		case r.Rho != 0:
			r.Mechanism = ZCDP
		case r.Epsilon != 0:
			r.Mechanism = Pure
		case r.Sigma2 != 0:
			r.Mechanism = DDGauss
		default:
			r.Mechanism = Gaussian
		}
	}
	if !stepsGiven {
		r.Steps = 1
	}
	if r.Mechanism == Gaussian && r.Z == 0 {
		return fmt.Errorf("a gaussian release needs z: %w", ErrInvalidParameter)
	}
	return r.Validate()
}

// ParseReleaseSpec parses one release written as comma-separated key=value pairs, e.g.
// "q=0.01,z=1.1,steps=100", "rho=0.02", "mechanism=pure,epsilon=0.5" or
// "mechanism=ddgauss,q=0.05,sigma2=1e6,cohort=10,l2=1040,l1=8320,dim=64,steps=40". Keys
// are mechanism, q, z, steps, rho, epsilon, sigma2, cohort, l2, l1, dim; steps defaults
// to 1; the mechanism is inferred when omitted (rho ⇒ zcdp, epsilon ⇒ pure, sigma2 ⇒
// ddgauss, else gaussian).
func ParseReleaseSpec(spec string) (Release, error) {
	var r Release
	seen := map[string]bool{}
	col := 1
	for part := range strings.SplitSeq(spec, ",") {
		key, val, ok := strings.Cut(part, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		switch {
		case !ok:
			return Release{}, &ParseError{Column: col, Err: fmt.Errorf("%q is not key=value: %w", part, ErrInvalidParameter)}
		case seen[key]:
			return Release{}, &ParseError{Column: col, Err: fmt.Errorf("%s given twice: %w", key, ErrInvalidParameter)}
		}
		seen[key] = true
		if err := setField(&r, key, val); err != nil {
			return Release{}, &ParseError{Column: col, Err: err}
		}
		col += len(part) + 1
	}
	if err := finish(&r, seen["steps"]); err != nil {
		return Release{}, &ParseError{Column: 1, Err: err}
	}
	return r, nil
}

// maxLedgerBytes bounds what ParseReleases reads: about a million releases.
const maxLedgerBytes = 64 << 20

// ParseReleases reads a ledger file: either JSON lines (one object per line with the keys
// of ParseReleaseSpec, e.g. {"q":0.01,"z":1.1,"steps":100}) or CSV with a header row
// naming some of those keys. The format is chosen by the first non-blank byte ('{' means
// JSON lines). Blank lines are skipped. Errors are *ParseError with line and column.
func ParseReleases(r io.Reader) ([]Release, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLedgerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	if len(data) > maxLedgerBytes {
		return nil, fmt.Errorf("read ledger: larger than %d bytes: %w", maxLedgerBytes, ErrInvalidParameter)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, nil
	case trimmed[0] == '{':
		return parseJSONLines(bytes.NewReader(data))
	default:
		return parseCSV(bytes.NewReader(data))
	}
}

func parseJSONLines(r io.Reader) ([]Release, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var out []Release
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		rel, err := parseJSONRecord(text)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				pe.Line = line
				return nil, fmt.Errorf("read ledger: %w", pe)
			}
			return nil, fmt.Errorf("read ledger: %w", &ParseError{Line: line, Column: 1, Err: err})
		}
		out = append(out, rel)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ledger: line %d: %w", line+1, err)
	}
	return out, nil
}

// parseJSONRecord decodes one JSON object, reporting the column of the offending key.
func parseJSONRecord(text []byte) (Release, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	colOf := func(off int64) int { return int(off) + 1 }
	tok, err := dec.Token()
	if err != nil {
		return Release{}, &ParseError{Column: colOf(dec.InputOffset()), Err: fmt.Errorf("json: %w", err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Release{}, &ParseError{Column: 1, Err: fmt.Errorf("want a JSON object: %w", ErrInvalidParameter)}
	}
	var r Release
	seen := map[string]bool{}
	for dec.More() {
		keyCol := colOf(dec.InputOffset())
		for keyCol <= len(text) && bytes.IndexByte([]byte(" \t\r,"), text[keyCol-1]) >= 0 {
			keyCol++
		}
		kt, err := dec.Token()
		if err != nil {
			return Release{}, &ParseError{Column: colOf(dec.InputOffset()), Err: fmt.Errorf("json: %w", err)}
		}
		key, _ := kt.(string)
		if seen[key] {
			return Release{}, &ParseError{Column: keyCol, Err: fmt.Errorf("%s given twice: %w", key, ErrInvalidParameter)}
		}
		seen[key] = true
		vt, err := dec.Token()
		if err != nil {
			return Release{}, &ParseError{Column: colOf(dec.InputOffset()), Err: fmt.Errorf("json: %w", err)}
		}
		var val string
		switch v := vt.(type) {
		case json.Number:
			val = v.String()
		case string:
			if key != "mechanism" {
				return Release{}, &ParseError{Column: keyCol, Err: fmt.Errorf("%s must be a number, not a string: %w", key, ErrInvalidParameter)}
			}
			val = v
		default:
			return Release{}, &ParseError{Column: keyCol, Err: fmt.Errorf("%s has a value of the wrong type: %w", key, ErrInvalidParameter)}
		}
		if key == "mechanism" {
			if _, ok := vt.(string); !ok {
				return Release{}, &ParseError{Column: keyCol, Err: fmt.Errorf("mechanism must be a string: %w", ErrInvalidParameter)}
			}
		}
		if err := setField(&r, key, val); err != nil {
			return Release{}, &ParseError{Column: keyCol, Err: err}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Release{}, &ParseError{Column: colOf(dec.InputOffset()), Err: fmt.Errorf("json: %w", err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Release{}, &ParseError{Column: colOf(dec.InputOffset()), Err: fmt.Errorf("trailing data after the object: %w", ErrInvalidParameter)}
	}
	if err := finish(&r, seen["steps"]); err != nil {
		return Release{}, &ParseError{Column: 1, Err: err}
	}
	return r, nil
}

func parseCSV(r io.Reader) ([]Release, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = 0
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", csvError(err))
	}
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.ToLower(strings.TrimSpace(h))
		line, col := cr.FieldPos(i)
		if !isReleaseField(names[i]) {
			return nil, fmt.Errorf("read ledger: %w", &ParseError{Line: line, Column: col,
				Err: fmt.Errorf("unknown column %q (want some of %s): %w", h, strings.Join(releaseFields, ", "), ErrInvalidParameter)})
		}
		for j := range i {
			if names[j] == names[i] {
				return nil, fmt.Errorf("read ledger: %w", &ParseError{Line: line, Column: col,
					Err: fmt.Errorf("column %q given twice: %w", h, ErrInvalidParameter)})
			}
		}
	}
	var out []Release
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", csvError(err))
		}
		var rel Release
		stepsGiven := false
		for i, v := range rec {
			if strings.TrimSpace(v) == "" {
				continue
			}
			if err := setField(&rel, names[i], v); err != nil {
				line, col := cr.FieldPos(i)
				return nil, fmt.Errorf("read ledger: %w", &ParseError{Line: line, Column: col, Err: err})
			}
			stepsGiven = stepsGiven || names[i] == "steps"
		}
		if err := finish(&rel, stepsGiven); err != nil {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("read ledger: %w", &ParseError{Line: line, Column: 1, Err: err})
		}
		out = append(out, rel)
	}
}

func isReleaseField(s string) bool {
	for _, f := range releaseFields {
		if s == f {
			return true
		}
	}
	return false
}

// csvError turns encoding/csv's positioned error into a *ParseError.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return err
}

// WriteReleases writes releases as JSON lines, the format ParseReleases reads back
// exactly.
func WriteReleases(w io.Writer, rs []Release) error {
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("write ledger: release %d: %w", i+1, err)
		}
		r.Mechanism = r.kind()
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("write ledger: release %d: %w", i+1, err)
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("write ledger: %w", err)
		}
	}
	return nil
}
