package console

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports keeps the console a leaf: static files and their handler, the
// standard library only. Everything it shows comes through the API.
func TestImports(t *testing.T) {
	importcheck.Check(t, "console")
}
