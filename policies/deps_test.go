package policies

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports keeps the package pure: the standard library and the YAML
// parser only (see the layering table in the design).
func TestImports(t *testing.T) {
	importcheck.Check(t, "policies", "go.yaml.in/yaml/v3")
}
