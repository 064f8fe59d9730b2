package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
)

// splitJSON reads each line as one JSON object; the keys, in the order
// first seen, are the columns.
func (s *sample) splitJSON(lines [][]byte) error {
	index := map[string]int{}
	for _, l := range lines {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		kv, ok := jsonObject(l)
		if !ok {
			s.rows = append(s.rows, nil)
			continue
		}
		row := make([]string, len(s.names))
		for _, p := range kv {
			i, seen := index[p.key]
			if !seen {
				i = len(s.names)
				index[p.key] = i
				s.names = append(s.names, p.key)
				row = append(row, "")
			}
			if p.nested && !strings.Contains(strings.Join(s.nested, "\x00"), p.key) {
				s.nested = append(s.nested, p.key)
			}
			row[i] = p.value
		}
		s.rows = append(s.rows, row)
	}
	for i, r := range s.rows {
		if r != nil && len(r) < len(s.names) {
			s.rows[i] = append(r, make([]string, len(s.names)-len(r))...)
		}
	}
	return nil
}

type jsonPair struct {
	key, value string
	nested     bool
}

// jsonObject reads one JSON object's top-level keys and their values as
// text: a string as it is, a number as written, null as "".
func jsonObject(line []byte) ([]jsonPair, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []jsonPair
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		p := jsonPair{key: key}
		switch {
		case len(v) > 0 && (v[0] == '{' || v[0] == '['):
			p.nested = true
		case len(v) > 0 && v[0] == '"':
			if err := json.Unmarshal(v, &p.value); err != nil {
				return nil, false
			}
		case string(v) == "null":
		default:
			p.value = string(v)
		}
		out = append(out, p)
	}
	return out, true
}
