package suite_test

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports: the suite stays below the readers and the services. It reads
// no file itself (cmd/kairos passes a Loader built on client/ingest), so it may
// import only the standard library, the model packages and the YAML parser.
func TestImports(t *testing.T) {
	importcheck.Check(t, "suite", "github.com/kairos-fl/kairos/model", "go.yaml.in/yaml/v3")
}
