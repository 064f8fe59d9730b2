package ingest

import (
	"strings"
	"testing"
)

// TestParseMappingForeignLayouts: a data team writes the time layout it knows
// from Python or a standard's name. Every row would fail to parse, each with
// a message about the row; the mapping is refused instead, with the Go layout
// to write (translated by hand from the strftime directives).
func TestParseMappingForeignLayouts(t *testing.T) {
	tests := []struct{ layout, want string }{
		{"%Y-%m-%d", `time layout "%Y-%m-%d" is a strftime pattern; a mapping takes a Go layout, the reference time Mon Jan 2 15:04:05 -0700 2006 written as the file writes it: "2006-01-02"`},
		{"%d.%m.%Y %H:%M:%S", `"02.01.2006 15:04:05"`},
		{"%Y-%m-%dT%H:%M:%S%z", `"2006-01-02T15:04:05-0700"`},
		{"%Y-%m-%d %q", `time layout "%Y-%m-%d %q" is a strftime pattern; a mapping takes a Go layout, the reference time Mon Jan 2 15:04:05 -0700 2006 written as the file writes it (see docs/operations.md)`},
		{"RFC3339", `time layout "RFC3339" names a format; write it as the Go layout "2006-01-02T15:04:05Z07:00"`},
		{"iso8601", `time layout "iso8601" names a format; write it as the Go layout "2006-01-02T15:04:05Z07:00"`},
	}
	for _, tt := range tests {
		in := "customer: 1\ntime: {column: 2, layout: \"" + tt.layout + "\"}\nkind: {constant: purchase}\n"
		_, err := ParseMapping(strings.NewReader(in), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %s", tt.layout, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: error %v does not name the line", tt.layout, err)
		}
	}
	// A Go layout with a literal percent sign is not a strftime pattern.
	if _, err := ParseMapping(strings.NewReader("customer: 1\ntime: {column: 2, layout: \"2006-01-02 100%\"}\nkind: {constant: purchase}\n"), "m.yaml"); err != nil {
		t.Errorf("a Go layout with a literal %%: %v", err)
	}
}
