package dp_test

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports enforces the layering in ARCHITECTURE.md: package dp may import only the
// standard library and the Google DP library.
func TestImports(t *testing.T) {
	importcheck.Check(t, "dp", "github.com/google/differential-privacy/go/v3")
}
