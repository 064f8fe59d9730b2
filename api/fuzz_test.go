package api

import (
	"net/http"
	"testing"
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
