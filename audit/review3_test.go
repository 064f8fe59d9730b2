package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/audit"
)

// TestReadExportOneReadingPerLine (review round 3): encoding/json matches
// keys case-insensitively and lets a repeated key overwrite the earlier one,
// so an export line could carry a field twice: `"actor":"partner:other",
// "ACTOR":"partner:crm"`. The verifier hashed the last spelling (the real
// actor, so the chain and the signed checkpoint verified: OK), while every
// other reader of the file (jq, Python, a spreadsheet import, a reviewer's
// eyes) sees "actor": "partner:other". The verified log and the log people
// read were two different logs. A line whose keys are not exactly the
// format's, once each, is now a syntax error naming the line; so is a
// repeated identifier or detail name.
func TestReadExportOneReadingPerLine(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join("testdata", "vectors.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(valid), "\n")
	forge := func(line, old, new string) string {
		t.Helper()
		if !strings.Contains(line, old) {
			t.Fatalf("vector line lacks %q", old)
		}
		return strings.Replace(line, old, new, 1)
	}
	for _, tc := range []struct{ name, line2 string }{
		{"case variant", forge(lines[1], `"actor":"partner:crm"`, `"actor":"partner:other","ACTOR":"partner:crm"`)},
		{"repeated key", forge(lines[1], `"actor":"partner:crm"`, `"actor":"partner:other","actor":"partner:crm"`)},
		{"case variant of type", forge(lines[1], `"type":"entry"`, `"Type":"entry"`)},
		{"repeated reason", forge(lines[1], `"reason":"scope missing"`, `"reason":"none","reason":"scope missing"`)},
		{"repeated detail", forge(lines[0], `"details":{"b":"2"`, `"details":{"b":"9","b":"2"`)},
	} {
		data := lines[0] + tc.line2 + lines[2]
		if tc.name == "repeated detail" {
			data = tc.line2 + lines[1] + lines[2]
		}
		snap, err := audit.ReadExport(strings.NewReader(data))
		if err == nil {
			res, verr := audit.Verify(context.Background(), snap, vecKey().Public().(ed25519.PublicKey))
			var shown map[string]any
			_ = json.Unmarshal([]byte(strings.SplitAfter(data, "\n")[1]), &shown)
			t.Errorf("%s: accepted; Verify = %d entries, %d checkpoints, %v; a plain JSON reader shows actor %v, reason %v",
				tc.name, res.Entries, res.Checkpoints, verr, shown["actor"], shown["reason"])
			continue
		}
		if !errors.Is(err, audit.ErrExportSyntax) {
			t.Errorf("%s: %v, want ErrExportSyntax", tc.name, err)
		}
	}
}
