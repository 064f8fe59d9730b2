package ingest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/suggest")

// TestSuggestGolden pins the whole document the suggester writes, comments
// and all, for a few of the table's exports: a change to the evidence a
// user reads shows in review as a change to these files (go test -update
// rewrites them).
func TestSuggestGolden(t *testing.T) {
	for _, tc := range suggestCases {
		name := ""
		switch {
		case strings.HasPrefix(tc.name, "online retail lines"):
			name = "retail"
		case strings.HasPrefix(tc.name, "Shopify-like"):
			name = "shopify"
		case strings.HasPrefix(tc.name, "day and month order no value resolves"):
			name = "ambiguous"
		default:
			continue
		}
		t.Run(name, func(t *testing.T) {
			sg, err := Suggest(context.Background(), strings.NewReader(tc.data), "export.csv", SuggestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "suggest", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, sg.YAML, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sg.YAML, want) {
				t.Errorf("got\n%s\nwant (%s)\n%s", sg.YAML, path, want)
			}
		})
	}
}
