package chart_test

import (
	"testing"

	"github.com/kairos-fl/kairos/internal/importcheck"
)

// TestImports: charts are drawn from metrics' tables and nothing else.
func TestImports(t *testing.T) {
	importcheck.Check(t, "chart", "github.com/kairos-fl/kairos/model/metrics")
}
