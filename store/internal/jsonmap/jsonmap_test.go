package jsonmap

import (
	"encoding/json"
	"maps"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		fast bool
	}{
		{`{}`, nil, true},
		{`{"a":"1"}`, map[string]string{"a": "1"}, true},
		{`{"a": "1", "b": "naïve ✓"}`, map[string]string{"a": "1", "b": "naïve ✓"}, true}, // jsonb's text form
		{` { "a" : "" } `, map[string]string{"a": ""}, true},
		{`{"a":"1","a":"2"}`, map[string]string{"a": "2"}, true},
		{`{"q":"say \"hi\""}`, map[string]string{"q": `say "hi"`}, false},
		{`{"t":"a\u003cb"}`, map[string]string{"t": "a<b"}, false},
	} {
		got, err := Decode(tc.in)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("Decode(%s) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if _, ok := decodeFast(tc.in); ok != tc.fast {
			t.Errorf("decodeFast(%s) ok = %v, want %v", tc.in, ok, tc.fast)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `{"a":1}`, `{"a":"1",}`, `[]`, `{"a":"1"}x`, `{"a":null}x`} {
		if m, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %v, nil; want an error", bad, m)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range []map[string]string{nil, {"k": "v"}, {"<&>": "\"\\\n\u2028", "": "x", "é": "\u0001"}} {
		got, err := Decode(Encode(m))
		if err != nil || !maps.Equal(got, m) {
			t.Errorf("Decode(Encode(%q)) = %q, %v", m, got, err)
		}
	}
}

// FuzzDecodeFast checks the fast path against encoding/json: whenever the
// fast path accepts an input, encoding/json must accept it with the same map.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"1"}`, `{"a": "1", "b": "2"}`, `{"a":"\u00e9"}`, `{"a":"` + "\xff" + `"}`, "{\"a\":\"\x01\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := decodeFast(s)
		if !ok {
			return
		}
		var ref map[string]string
		if err := json.Unmarshal([]byte(s), &ref); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", s, err)
		}
		if len(ref) == 0 {
			ref = nil
		}
		if !maps.Equal(fast, ref) {
			t.Fatalf("%q: fast %q, encoding/json %q", s, fast, ref)
		}
	})
}
