package distributed_test

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports: the encoder depends on the standard library and Kairos's dp package
// only, so both sides of secure aggregation can import it.
func TestImports(t *testing.T) {
	importcheck.Check(t, "dp/distributed", "github.com/kairos-fl/kairos/dp")
}
