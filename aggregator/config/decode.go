package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// decodeStrict sets v (addressable) from n. Unlike yaml's KnownFields, it
// reports every problem by the key path the user wrote (rounds.quorum), with
// its line, and in the user's terms ("a duration such as 10m"), never by the
// Go type that failed to decode. It refuses unknown keys, keys given twice
// and merge keys.
func decodeStrict(n *yaml.Node, v reflect.Value, path string) []error {
	n, err := resolve(n, path)
	if err != nil {
		return []error{err}
	}
	if isNull(n) {
		return nil // an absent value: the zero value
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeStrict(n, v.Elem(), path)
	case v.Kind() == reflect.Struct && v.Type() != timeType:
		return decodeStruct(n, v, path)
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		var errs []error
		for i, e := range n.Content {
			errs = append(errs, decodeStrict(e, s.Index(i), fmt.Sprintf("%s[%d]", orTop(path), i))...)
		}
		v.Set(s)
		return errs
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return []error{fmt.Errorf("%s: line %d: want %s, got %s", orTop(path), n.Line, describe(v.Type()), shown(n))}
	}
	return nil
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) []error {
	if n.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("%s: line %d: want a mapping of keys (%s), got %s", orTop(path), n.Line, strings.Join(keysOf(v.Type()), ", "), shown(n))}
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%s: line %d: a key must be a plain name, got %s", orTop(path), k.Line, shown(k)))
			continue
		}
		key := join(path, k.Value)
		if k.Value == "<<" {
			errs = append(errs, fmt.Errorf("%s: line %d: merge keys (<<) are not supported; write the keys out", orTop(path), k.Line))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			errs = append(errs, fmt.Errorf("%s: line %d: given twice (first on line %d)", key, k.Line, first))
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: line %d: unknown key; %s takes %s", key, k.Line, orTop(path), strings.Join(keysOf(v.Type()), ", ")))
			continue
		}
		errs = append(errs, decodeStrict(val, v.Field(idx), key)...)
	}
	return errs
}

// resolve follows aliases (yaml bounds their expansion).
func resolve(n *yaml.Node, path string) (*yaml.Node, error) {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode; depth++ {
		if depth > 64 {
			return nil, fmt.Errorf("%s: line %d: aliases nested too deep", orTop(path), n.Line)
		}
		n = n.Alias
	}
	if n == nil {
		return nil, fmt.Errorf("%s: an alias to nothing", orTop(path))
	}
	return n, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// fieldsOf maps a struct's YAML keys to field indexes, with yaml's own
// naming: the tag's name, else the lower-cased field name.
func fieldsOf(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name, ok := keyOf(t.Field(i)); ok {
			m[name] = i
		}
	}
	return m
}

func keyOf(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

func keysOf(t reflect.Type) []string {
	var ks []string
	for k := range fieldsOf(t) {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// describe says what a value of type t is written as, in YAML terms.
func describe(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration such as "10m" or "90s"`
	case timeType:
		return "a date such as 1997-07-01 or an RFC 3339 time such as 1997-07-01T00:00:00Z"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number ≥ 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list, each " + describe(t.Elem())
	case reflect.Pointer:
		return describe(t.Elem())
	}
	return "a mapping"
}

// shown is how an error quotes the value it refused.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return fmt.Sprintf("%q", v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// errEmpty is the error for a file without a document.
var errEmpty = errors.New("empty file")

// shortenDurations rewrites the duration values under n, a node encoded
// from a value of type t, without their zero tails: 10m0s as 10m, 2160h0m0s
// as 2160h. Both forms parse to the same duration.
func shortenDurations(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			shortenDurations(c, t)
		}
	case t == durationType && n.Kind == yaml.ScalarNode:
		n.Value = shortDuration(n.Value)
	case t.Kind() == reflect.Struct && t != timeType && n.Kind == yaml.MappingNode:
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if idx, ok := fields[n.Content[i].Value]; ok {
				shortenDurations(n.Content[i+1], t.Field(idx).Type)
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			shortenDurations(c, t.Elem())
		}
	}
}

func shortDuration(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
