package secagg_test

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports: the protocol depends on the standard library only, so a
// merchant's client and the aggregator can both import it.
func TestImports(t *testing.T) {
	importcheck.Check(t, "aggregator/secagg")
}
