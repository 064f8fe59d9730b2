package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// FuzzSuggest: on any bytes the suggester does not panic, finishes in
// bounded time, and what it suggests is a mapping the parser reads back as
// the Mapping it returns, with a CHECK comment for every check.
func FuzzSuggest(f *testing.F) {
	for _, tc := range suggestCases {
		f.Add([]byte(tc.data))
	}
	f.Add([]byte("a,b\n1,2\n"))
	f.Add([]byte("{\"a\":{\"b\":1}}\n"))
	f.Add([]byte("[{\"a\":1}]"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Add([]byte("x;y;z\n\"q\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		start := time.Now()
		// A hang would stall the fuzzer without naming the input: a
		// watchdog crashes the worker with it instead.
		watchdog := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("suggest ran 20 s on %q", in)) })
		defer watchdog.Stop()
		sg, err := Suggest(context.Background(), bytes.NewReader(in), "fuzz", SuggestOptions{MaxRows: 200})
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v on %d bytes", d, len(in))
		}
		if err != nil {
			if sg != nil {
				t.Fatalf("a suggestion and an error %v", err)
			}
			if !errors.Is(err, ErrNoSuggestion) && !errors.Is(err, ErrNotText) {
				// gzip errors and truncated streams are the other causes.
				return
			}
			return
		}
		m, err := ParseMapping(bytes.NewReader(sg.YAML), "fuzz")
		if err != nil {
			t.Fatalf("the suggested mapping does not parse: %v\n%s", err, sg.YAML)
		}
		if !reflect.DeepEqual(m, sg.Mapping) {
			t.Fatalf("the YAML reads as %+v, the suggestion is %+v", *m, *sg.Mapping)
		}
		for _, c := range sg.Checks {
			if !bytes.Contains(sg.YAML, []byte("# CHECK: ")) || c == "" {
				t.Fatalf("check %q is not in the YAML", c)
			}
		}
		if sg.Report.Rows > 0 && sg.Rows == 0 {
			t.Fatalf("the sample read %d rows from none", sg.Report.Rows)
		}
	})
}
