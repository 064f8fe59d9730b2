package policies

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// TestFormatGolden pins the effective policy of each example: a change in
// resolution shows up as a reviewable diff of testdata/*.effective.yaml.
func TestFormatGolden(t *testing.T) {
	for _, name := range []string{"cdnow-demo", "eu-us"} {
		data, err := os.ReadFile(filepath.Join("examples", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p := mustParse(t, name+".yaml", string(data))
		got := p.Format()
		golden := filepath.Join("testdata", name+".effective.yaml")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: Format output differs from %s:\n%s", name, golden, got)
		}
		if h := mustParse(t, golden, string(want)).Hash(); h != p.Hash() {
			t.Errorf("%s: golden file hashes to %s, want %s", name, h, p.Hash())
		}
	}
}
