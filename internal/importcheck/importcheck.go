// Package importcheck is the layering tests' shared check: the non-test Go
// files of a package may import only the standard library and modules an
// allow-list names.
package importcheck

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Check fails t for every import of a non-test .go file in the current
// directory that is neither in the standard library (no dot in its first
// path element) nor equal to or under one of allowed; pkg names the package
// in the messages. It fails when there is no file to check.
func Check(t testing.TB, pkg string, allowed ...string) {
	t.Helper()
	bad, err := Violations(".", allowed...)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range bad {
		t.Errorf("%s; %s may import only the standard library and %s", v, pkg, strings.Join(allowed, ", "))
	}
}

// Violations lists, as "file imports path", the imports of the non-test .go
// files in dir that Check refuses.
func Violations(dir string, allowed ...string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var out []string
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && !allowedPath(path, allowed) {
				out = append(out, fmt.Sprintf("%s imports %q", filepath.Base(name), path))
			}
		}
		checked++
	}
	if checked == 0 {
		return nil, errors.New("import check: no source files in " + dir)
	}
	return out, nil
}

func allowedPath(path string, allowed []string) bool {
	for _, a := range allowed {
		if path == a || strings.HasPrefix(path, a+"/") {
			return true
		}
	}
	return false
}
