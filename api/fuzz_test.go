package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzEnrolBody posts arbitrary bytes as an enrolment: the answer is 201 or a
// 4xx problem, never a panic or a 5xx.
func FuzzEnrolBody(f *testing.F) {
	f.Add([]byte(`{"id":"m3","time_zone":"UTC","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"id":"m3","time_zone":"UTC","public_key":"AAAA"} []`))
	f.Add([]byte(`{"id":"m3","time_zone":"Local","public_key":null}`))
	f.Add([]byte(`{"id":1e999}`))
	f.Add([]byte(`{"region":"` + string(make([]byte, 70)) + `"}`))
	f.Add([]byte{0xff, 0xfe})
	fx := newFixture(f, &fakeService{}, Options{MaxJSONBytes: 4096})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fx.do(t, "POST", "/v1/merchants", fx.tokens["admin"], "application/json", body)
		switch {
		case rec.Code == http.StatusCreated:
		case rec.Code >= 400 && rec.Code < 500:
			problemOf(t, rec)
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzSubmitBody posts arbitrary bytes as a sealed envelope: the header parse
// refuses them with a 4xx problem before the service, never a panic or a 5xx.
func FuzzSubmitBody(f *testing.F) {
	svc := &fakeService{}
	fx := newFixture(f, svc, Options{MaxEnvelopeBytes: 8192})
	env := fx.envelope(f, "m1", "r1")
	f.Add(env)
	f.Add(env[:len(env)/2])
	f.Add([]byte("kairos-envelope"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fx.do(t, "POST", "/v1/rounds/r1/updates", fx.tokens["m1"], "application/octet-stream", body)
		switch {
		case rec.Code == http.StatusAccepted:
		case rec.Code >= 400 && rec.Code < 500:
			problemOf(t, rec)
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzTextValid builds one JSON string from fuzzed pieces — raw bytes and
// \u escapes of arbitrary code units — and knows by construction whether it
// decodes without replacement: each run of raw bytes between escapes is
// UTF-8 and each escaped surrogate is half of an adjacent pair. textValid
// must agree, and when it accepts, encoding/json must decode exactly the
// string built.
func FuzzTextValid(f *testing.F) {
	f.Add([]byte{0, 'a', 1, 0xd8, 0x3d, 1, 0xde, 0x00})
	f.Add([]byte{1, 0xd8, 0x3d, 0, 'x'})
	f.Add([]byte{0, 0xff, 0, '\\', 0, '"'})
	f.Add([]byte{0, 0xe2, 0, 0x82, 0, 0xac})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var lit []byte     // the JSON string's contents
		var want []rune    // what it decodes to, when valid
		var run []byte     // the raw bytes since the last \u escape
		var units []uint16 // the adjacent \u escapes
		valid := true
		flushRun := func() {
			if !utf8.Valid(run) {
				valid = false
			}
			want = append(want, []rune(string(run))...)
			run = run[:0]
		}
		flushUnits := func() {
			for i := 0; i < len(units); i++ {
				u := rune(units[i])
				switch {
				case utf16.IsSurrogate(u) && u < 0xdc00 && i+1 < len(units) && units[i+1] >= 0xdc00 && units[i+1] <= 0xdfff:
					want = append(want, utf16.DecodeRune(u, rune(units[i+1])))
					i++
				case utf16.IsSurrogate(u):
					valid = false
				default:
					want = append(want, u)
				}
			}
			units = units[:0]
		}
		for i := 0; i+1 < len(ops); i += 2 {
			if ops[i]%2 == 0 || i+2 >= len(ops) {
				flushUnits()
				c := ops[i+1]
				switch {
				case c == '"' || c == '\\':
					lit = append(lit, '\\', c)
				case c < 0x20:
					lit = fmt.Appendf(lit, `\u%04x`, c)
				default:
					lit = append(lit, c)
				}
				run = append(run, c)
				continue
			}
			flushRun()
			u := uint16(ops[i+1])<<8 | uint16(ops[i+2])
			i++
			lit = fmt.Appendf(lit, `\u%04X`, u)
			units = append(units, u)
		}
		flushRun()
		flushUnits()
		doc := append(append([]byte(`{"customer":"`), lit...), `"}`...)
		if !json.Valid(doc) {
			t.Fatalf("built invalid JSON %q", doc)
		}
		off, ok := textValid(doc)
		if ok != valid {
			t.Fatalf("textValid(%q) = %d, %v; built valid = %v", doc, off, ok, valid)
		}
		if !ok {
			if off < 0 || off >= len(doc) {
				t.Fatalf("offset %d outside the %d-byte document", off, len(doc))
			}
			return
		}
		var got struct{ Customer string }
		if err := json.Unmarshal(doc, &got); err != nil || got.Customer != string(want) {
			t.Fatalf("decoded %q (%v), built %q", got.Customer, err, string(want))
		}
	})
}
