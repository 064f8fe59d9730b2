package importcheck

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestViolations: in a package importing the standard library, an allowed
// module's subpackage, a module sharing the allowed one's prefix and another
// module, exactly the last two are reported; test files are ignored, and an
// empty directory is an error.
func TestViolations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.go", `package p
import (
	"fmt"
	_ "github.com/golang-jwt/jwt/v5/request"
	_ "github.com/golang-jwt/jwt/v50"
)
var _ = fmt.Sprint`)
	write("b.go", "package p\nimport _ \"example.com/x\"\n")
	write("c_test.go", "package p\nimport _ \"example.com/y\"\n")
	got, err := Violations(dir, "github.com/golang-jwt/jwt/v5")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`a.go imports "github.com/golang-jwt/jwt/v50"`, `b.go imports "example.com/x"`}
	if !slices.Equal(got, want) {
		t.Errorf("violations %q, want %q", got, want)
	}
	if _, err := Violations(t.TempDir()); err == nil {
		t.Error("an empty directory passed")
	}
}
