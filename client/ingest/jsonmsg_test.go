package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceJSONFields is the decoder's former JSON reader, on encoding/json:
// the second method the scanner is checked against. It returns the fields of
// keys, or the reason and field of the error.
func referenceJSONFields(keys []string, msg []byte) ([][]byte, *MessageError) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return nil, &MessageError{Reason: ReasonBadJSON, Err: err}
	}
	if obj == nil {
		return nil, &MessageError{Reason: ReasonBadJSON, Err: errors.New("null, want an object")}
	}
	var f [][]byte
	for _, k := range keys {
		v := bytes.TrimSpace(obj[k])
		switch {
		case len(v) == 0 || string(v) == "null":
			f = append(f, nil)
		case v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, &MessageError{Reason: ReasonBadJSON, Field: strconv.Quote(k), Err: err}
			}
			f = append(f, []byte(s))
		case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
			f = append(f, v)
		default:
			return nil, &MessageError{Reason: ReasonBadJSON, Field: strconv.Quote(k), Err: fmt.Errorf("value %.40s is not a string or a number", v)}
		}
	}
	return f, nil
}

// sameAsReference fails t unless the scanner and encoding/json agree on msg:
// the same fields (absent or null as nil, "" as empty), or errors of the same
// reason and field.
func sameAsReference(t *testing.T, d *MessageDecoder, msg []byte) {
	t.Helper()
	want, werr := referenceJSONFields(d.keys, msg)
	got, err := d.jsonFields(msg)
	if werr != nil {
		var me *MessageError
		if !errors.As(err, &me) {
			t.Fatalf("%q: scanner gave %q, %v; encoding/json gave %v", msg, got, err, werr)
		}
		if me.Reason != werr.Reason || me.Field != werr.Field {
			t.Fatalf("%q: scanner error %q field %q (%v); encoding/json %q field %q (%v)", msg, me.Reason, me.Field, me, werr.Reason, werr.Field, werr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: scanner error %v; encoding/json gave %q", msg, err, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) || (got[i] == nil) != (want[i] == nil) {
			t.Fatalf("%q: key %q: scanner %q (nil %v), encoding/json %q (nil %v)", msg, d.keys[i], got[i], got[i] == nil, want[i], want[i] == nil)
		}
	}
}

// TestJSONFields: hand-worked messages, each with the fields written out by
// hand and checked against encoding/json too.
func TestJSONFields(t *testing.T) {
	d, err := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	// d.keys: customer, ts, type, total.
	for _, tc := range []struct {
		msg  string
		want []string // "<nil>" for an absent or null key
	}{
		{`{"customer":"c1","ts":1,"type":"order","total":12.5}`, []string{"c1", "1", "order", "12.5"}},
		{" \t\r\n{ \"ts\" : -0.5e+3 , \"customer\" : \"\" }\n", []string{"", "-0.5e+3", "<nil>", "<nil>"}},
		{`{"customer":"c\u00e9\n\"\\\/","ts":0}`, []string{"cé\n\"\\/", "0", "<nil>", "<nil>"}},
		{`{"customer":"\ud83d\ude00","ts":1E2}`, []string{"😀", "1E2", "<nil>", "<nil>"}},
		{`{"customer":"\ud83dx","ts":1}`, []string{"\uFFFDx", "1", "<nil>", "<nil>"}}, // lone surrogate
		{`{"customer":"\ude00\ud83d","ts":1}`, []string{"\uFFFD\uFFFD", "1", "<nil>", "<nil>"}},
		{`{"customer":"a","customer":"b","total":null}`, []string{"b", "<nil>", "<nil>", "<nil>"}}, // last wins
		{`{"x":{"customer":"no","y":[1,{"z":[]},"s",true,false,null]},"customer":"yes","ts":7}`, []string{"yes", "7", "<nil>", "<nil>"}},
		{`{"cust\u006fmer":"escaped key","ts":2}`, []string{"escaped key", "2", "<nil>", "<nil>"}},
		{`{}`, []string{"<nil>", "<nil>", "<nil>", "<nil>"}},
	} {
		got, err := d.jsonFields([]byte(tc.msg))
		if err != nil {
			t.Errorf("%s: %v", tc.msg, err)
			continue
		}
		for i, w := range tc.want {
			g := string(got[i])
			if got[i] == nil {
				g = "<nil>"
			}
			if g != w {
				t.Errorf("%s: key %q: got %q, want %q", tc.msg, d.keys[i], g, w)
			}
		}
		sameAsReference(t, d, []byte(tc.msg))
	}
	for _, tc := range []struct{ msg, field string }{
		{``, ""}, {`  `, ""}, {`{`, ""}, {`{"customer"}`, ""}, {`{"customer":}`, ""},
		{`{"customer":"a",}`, ""}, {`{"customer":"a"} x`, ""}, {`{"customer":"a"}{}`, ""},
		{`{"ts":01}`, ""}, {`{"ts":1.}`, ""}, {`{"ts":-}`, ""}, {`{"ts":1e}`, ""}, {`{"ts":+1}`, ""},
		{`{"ts":.5}`, ""}, {"{\"customer\":\"a\tb\"}", ""}, {`{"customer":"\x"}`, ""}, {`{"customer":"\u12"}`, ""},
		{`{"customer":"a}`, ""}, {`{"x":[1,]}`, ""}, {`{"x":tru}`, ""}, {`{"x":nul}`, ""}, {`{'a':1}`, ""},
		{`null`, ""}, {`null x`, ""}, {`[1]`, ""}, {`"s"`, ""}, {`12`, ""}, {`true`, ""},
		{`{"total":true}`, `"total"`}, {`{"ts":[1],"total":{}}`, `"ts"`}, {`{"type":false,"x":1}`, `"type"`},
		{`{"total":true,"x":}`, ""}, // a syntax error anywhere wins over a type error
		{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), ""},
		{`{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, ""},
	} {
		_, err := d.jsonFields([]byte(tc.msg))
		var me *MessageError
		if !errors.As(err, &me) || me.Reason != ReasonBadJSON || me.Field != tc.field {
			t.Errorf("%.60q: got %v, want bad JSON in field %q", tc.msg, err, tc.field)
			continue
		}
		sameAsReference(t, d, []byte(tc.msg))
	}
	// Nesting up to encoding/json's limit is accepted.
	deep := `{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `,"ts":3}`
	sameAsReference(t, d, []byte(deep))
	if f, err := d.jsonFields([]byte(deep)); err != nil || string(f[1]) != "3" {
		t.Errorf("9,999 levels of nesting: got %q, %v", f, err)
	}
}

// FuzzJSONFields compares the scanner with encoding/json on any valid UTF-8
// message (Decode refuses other bytes before the scan).
func FuzzJSONFields(f *testing.F) {
	for _, s := range []string{
		`{"customer":"c1","ts":"1700000000","type":"order","total":12.5}`,
		`{"customer":42,"ts":1700000001,"type":"view","extra":[1,2,{"a":null}]}`,
		`{"customer":"\ud83d\ude00\u00e9\n","ts":-1.5e-3,"type":"a","type":null}`,
		`{"total":true}`, `null`, `[{}]`, `{"a":"\ud800\udc00\ud800"}`, ` {"ts" : 0 } `,
	} {
		f.Add([]byte(s))
	}
	d, err := NewMessageDecoder(jsonMapping(), MessageJSON, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if !utf8.Valid(msg) {
			return
		}
		sameAsReference(t, d, msg)
	})
}

// BenchmarkJSONFields: the scanner against the former encoding/json reader
// on one stream benchmark message.
func BenchmarkJSONFields(b *testing.B) {
	msg := []byte(`{"customer":"c1234","ts":1733300000,"kind":"purchase","amount":123.45,"sent":1764840000123456789}`)
	d, err := NewMessageDecoder(&Mapping{Customer: Column{Name: "customer"}, Time: Column{Name: "ts"}, TimeLayout: LayoutUnix,
		Kind: Column{Name: "kind"}, Amount: Column{Name: "amount"}}, MessageJSON, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := d.jsonFields(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := referenceJSONFields(d.keys, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := d.Decode(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
