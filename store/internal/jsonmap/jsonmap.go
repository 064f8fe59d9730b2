// Package jsonmap stores the string maps of audit entries as JSON objects,
// the same way in every backend.
package jsonmap

import (
	"encoding/json"
	"fmt"
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
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
