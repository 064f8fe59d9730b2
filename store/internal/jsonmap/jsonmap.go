// Package jsonmap stores the string maps of audit entries as JSON objects,
// the same way in every backend.
package jsonmap

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Encode returns m as a JSON object with sorted keys; nil becomes "{}".
func Encode(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil { // a map[string]string always marshals
		panic(fmt.Sprintf("jsonmap: %v", err))
	}
	return string(b)
}

// Decode parses a JSON object of strings; an empty object gives nil, so a
// value read back equals the one written.
func Decode(s string) (map[string]string, error) {
	if m, ok := decodeFast(s); ok {
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// decodeFast parses the common case, a flat object of strings without
// escapes, several times faster than encoding/json (Verify reads two maps
// per entry). It reports false for anything else, and Decode falls back to
// encoding/json, which is the reference.
func decodeFast(s string) (map[string]string, bool) {
	if strings.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	i = skipSpace(s, i+1)
	var m map[string]string
	if i < len(s) && s[i] == '}' {
		return nil, skipSpace(s, i+1) == len(s)
	}
	for {
		k, j, ok := fastString(s, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return nil, false
		}
		v, j, ok := fastString(s, skipSpace(s, i+1))
		if !ok {
			return nil, false
		}
		if m == nil {
			m = make(map[string]string, 4)
		}
		m[k] = v
		i = skipSpace(s, j)
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return m, skipSpace(s, i+1) == len(s)
		default:
			return nil, false
		}
	}
}

// fastString reads a JSON string without escapes at s[i]; it returns the
// value and the index after the closing quote.
func fastString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	end := strings.IndexByte(s[i+1:], '"')
	if end < 0 {
		return "", 0, false
	}
	v := s[i+1 : i+1+end]
	for j := 0; j < len(v); j++ {
		if v[j] < 0x20 { // control characters must be escaped in JSON
			return "", 0, false
		}
	}
	if !utf8.ValidString(v) { // encoding/json would substitute U+FFFD
		return "", 0, false
	}
	return v, i + 2 + end, true
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
