package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// foldedKey walks body, a JSON document that decoded into a value of type
// t, beside t, and finds the first object key of a struct that is not
// spelled exactly as one of the struct's JSON field names: encoding/json
// matches "MERCHANT" to merchant when no exact spelling is present, so the
// server would act on a key that a case-sensitive reader (a gateway's
// policy, jq, a reviewer) takes for another, unknown one. It returns false
// with the key's path (customers[0].Customer; "" when a key on it is not
// fieldLike, so that the caller's text is not echoed), the field's name and
// the byte offset after the key, or true when every key is exact. Keys of
// maps, and values of types that decode themselves (json.Unmarshaler,
// encoding.TextUnmarshaler, json.RawMessage, any), are not checked.
func foldedKey(body []byte, t reflect.Type) (path, field string, offset int64, ok bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	var walk func(path string, t reflect.Type) (string, string, bool, error)
	// skip consumes one value.
	skip := func() error {
		var raw json.RawMessage
		return d.Decode(&raw)
	}
	walk = func(path string, t reflect.Type) (string, string, bool, error) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || selfDecoding(t) {
			return "", "", false, skip()
		}
		tok, err := d.Token()
		if err != nil {
			return "", "", false, err
		}
		switch tok {
		case json.Delim('{'):
			var fields map[string]reflect.Type
			switch t.Kind() {
			case reflect.Struct:
				fields = jsonFields(t)
			case reflect.Map:
			default:
				t = nil // decoded, so nothing below is checked
			}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return "", "", false, err
				}
				k, _ := kt.(string)
				sub := keyPath(path, k)
				var elem reflect.Type
				switch {
				case t == nil:
				case t.Kind() == reflect.Map:
					elem = t.Elem()
				default:
					ft, exact := fields[k]
					if !exact {
						for name := range fields {
							if strings.EqualFold(name, k) {
								return sub, name, true, nil
							}
						}
						// Not a field at all (decoding refused unknown
						// fields, unless it folds in a way EqualFold does
						// not): leave it to the decoder's verdict.
						return sub, "", true, nil
					}
					elem = ft
				}
				if p, f, found, err := walk(sub, elem); found || err != nil {
					return p, f, found, err
				}
			}
			_, err = d.Token()
			return "", "", false, err
		case json.Delim('['):
			var elem reflect.Type
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
				elem = t.Elem()
			}
			for i := 0; d.More(); i++ {
				sub := path + "[" + strconv.Itoa(i) + "]"
				if path == "?" {
					sub = "?"
				}
				if p, f, found, err := walk(sub, elem); found || err != nil {
					return p, f, found, err
				}
			}
			_, err = d.Token()
			return "", "", false, err
		}
		return "", "", false, nil
	}
	p, f, found, err := walk("", t)
	if err != nil || !found {
		return "", "", 0, true // the document decoded: an error here is not the caller's
	}
	if p == "?" {
		p = ""
	}
	return p, f, d.InputOffset(), false
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// selfDecoding reports whether values of t are decoded by their own code
// or hold any JSON (interfaces), so that their keys are not struct fields.
func selfDecoding(t reflect.Type) bool {
	if t.Kind() == reflect.Interface {
		return true
	}
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields returns the JSON names of struct type t's fields as
// encoding/json sees them (tags, untagged exported fields, the fields of
// embedded structs promoted) with each field's type.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					add(et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := out[name]; !dup {
				out[name] = ft
			}
		}
	}
	add(t)
	fieldCache.Store(t, out)
	return out
}
