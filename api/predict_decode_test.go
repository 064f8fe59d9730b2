package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// stdDecode is decodeJSON's decoding, by encoding/json: the reference the
// fast path must agree with.
func stdDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

var predictDecodeSeeds = []string{
	`{"merchant":"m1","customer":"c1","events":[{"time":"2026-01-02T03:04:05Z","kind":"purchase","amount":12.5,"item":"i","category":"k"}],"as_of":"2026-02-01T00:00:00Z"}`,
	`{"merchant":"m1","customer":"c1","features":[1,-2.5,3e-2,0,-0,1E+3],"model_version":3}`,
	` { "merchant" : "m1" , "customer":"ü€", "events" : [ ] } ` + "\n",
	`{"merchant":"m1","customers":[{"customer":"a","features":[1,2]},{"customer":"b","events":[{"time":"t","kind":"view"}]}],"as_of":"x"}`,
	`{}`,
	`{"features":[]}`,
	`{"Merchant":"m1"}`,                 // other case: std matches it
	`{"merchant":"m1","merchant":"m2"}`, // repeated
	`{"merchant":"m\u00fc"}`,            // escape
	`{"merchant":"m1"} {}`,              // trailing data
	`{"merchant":null}`,                 // null
	`{"model_version":1.5}`,             // type error
	`{"model_version":99999999999999999999}`,
	`{"features":[1e400]}`,
	`{"features":[1e-400, 01]}`,
	`{"features":[1,]}`,
	`{"events":[{"amount":-0.0e-0}]}`,
	`{"customer":"` + "\xff" + `"}`,
	`{"nope":1}`,
	`[]`,
	``,
}

// FuzzPredictDecode: whenever the fast path accepts a body, encoding/json
// accepts it too and decodes the same value, for both request types.
func FuzzPredictDecode(f *testing.F) {
	for _, s := range predictDecodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastDecode(t, b, fastPredictRequest)
		checkFastDecode(t, b, fastBatchRequest)
	})
}

func checkFastDecode[T any](t *testing.T, b []byte, fast func([]byte, *T) bool) {
	t.Helper()
	var got T
	if !fast(b, &got) {
		return
	}
	var want T
	if err := stdDecode(b, &want); err != nil {
		t.Fatalf("%q: fast path accepted what encoding/json refuses: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: fast path decoded %+v, encoding/json %+v", b, got, want)
	}
}

// TestFastDecodeSubset pins which seeds the fast path takes; the others go
// to encoding/json and keep its answers and messages.
func TestFastDecodeSubset(t *testing.T) {
	tests := []struct {
		body        string
		single, bat bool
	}{
		{predictDecodeSeeds[0], true, false},
		{predictDecodeSeeds[1], true, false},
		{predictDecodeSeeds[2], true, false},
		{predictDecodeSeeds[3], false, true},
		{`{}`, true, true},
		{`{"features":[]}`, true, false},
		{`{"Merchant":"m1"}`, false, false},
		{`{"merchant":"m1","merchant":"m2"}`, false, false},
		{`{"merchant":"m\u00fc"}`, false, false},
		{`{"merchant":"m1"} {}`, false, false},
		{`{"merchant":null}`, false, false},
		{`{"model_version":1.5}`, false, false},
		{`{"features":[1e400]}`, false, false},
		{`{"features":[1,]}`, false, false},
		{`{"customer":"` + "\xff" + `"}`, false, false},
		{`[]`, false, false},
		{``, false, false},
	}
	for _, tt := range tests {
		var r PredictRequest
		if got := fastPredictRequest([]byte(tt.body), &r); got != tt.single {
			t.Errorf("fastPredictRequest(%q): got %v, want %v", tt.body, got, tt.single)
		}
		var br PredictBatchRequest
		if got := fastBatchRequest([]byte(tt.body), &br); got != tt.bat {
			t.Errorf("fastBatchRequest(%q): got %v, want %v", tt.body, got, tt.bat)
		}
		checkFastDecode(t, []byte(tt.body), fastPredictRequest)
		checkFastDecode(t, []byte(tt.body), fastBatchRequest)
	}
	// A decoded value, checked field by field against the seed's text.
	var r PredictRequest
	if !fastPredictRequest([]byte(predictDecodeSeeds[0]), &r) {
		t.Fatal("seed 0 refused")
	}
	e := r.Events[0]
	if r.Merchant != "m1" || r.Customer != "c1" || r.AsOf != "2026-02-01T00:00:00Z" || len(r.Events) != 1 ||
		e.Time != "2026-01-02T03:04:05Z" || e.Kind != "purchase" || e.Amount == nil || *e.Amount != 12.5 || e.Item != "i" || e.Category != "k" {
		t.Errorf("seed 0: got %+v events %+v", r, r.Events)
	}
	if r.Features != nil {
		t.Errorf("seed 0: features %v, want nil (absent)", r.Features)
	}
}
