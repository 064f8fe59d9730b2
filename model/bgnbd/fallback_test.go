package bgnbd

import "testing"

// TestFitFallback: with every BFGS run capped at 8 iterations none of them
// reaches a stationary point on CDNOW, and the Nelder–Mead fallback of
// minimize (then BFGS from its end) must still find the published fit;
// without the fallback this returns ErrNotConverged.
func TestFitFallback(t *testing.T) {
	cs := readSummaryFile(t, "testdata/cdnow_customers_summary.csv")
	p, ll, err := Fit(cs, FitOptions{MaxIterations: 8})
	if err != nil {
		t.Fatal(err)
	}
	checkPublished(t, p, ll)
}
