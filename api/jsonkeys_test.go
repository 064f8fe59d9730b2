package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFoldedKey: whatever body decodes into a PredictBatchRequest (unknown
// fields refused), foldedKey does not panic; the value re-encoded by
// encoding/json (exact names by construction) always passes; and when the
// body passes, each of its top-level keys, read by a second path (a map),
// is exactly one of the struct's JSON names.
func FuzzFoldedKey(f *testing.F) {
	f.Add([]byte(`{"merchant":"m1","customers":[{"customer":"c","features":[1,2]}],"as_of":"2026-11-01T00:00:00Z"}`))
	f.Add([]byte(`{"MERCHANT":"m1","customers":[]}`))
	f.Add([]byte(`{"merchant":"m1","customers":[{"Customer":"c","events":[{"time":"t","\u212aind":"purchase"}]}]}`))
	f.Add([]byte(`{"Model_Version":2,"merchant":"m1","customers":null}`))
	typ := reflect.TypeFor[*PredictBatchRequest]()
	names := jsonFields(typ.Elem())
	f.Fuzz(func(t *testing.T, body []byte) {
		var v PredictBatchRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&v) != nil {
			return
		}
		_, _, _, ok := foldedKey(body, typ)
		again, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		if path, field, _, ok := foldedKey(again, typ); !ok {
			t.Fatalf("re-encoded %s refused at %q (field %q)", again, path, field)
		}
		if !ok {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil {
			return // trailing data: decodeJSON refuses it on its own
		}
		for k := range top {
			if _, exact := names[k]; !exact {
				t.Fatalf("%s passed with the top-level key %q, not a field name", body, k)
			}
		}
	})
}
