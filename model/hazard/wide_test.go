package hazard

import (
	"math/rand/v2"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// TestWideGradientFiniteDifferences checks the scratch kind wide's gradient
// (linear part and MLP residual) against central finite differences.
func TestWideGradientFiniteDifferences(t *testing.T) {
	const d = 5
	r := rand.New(rand.NewPCG(7, 8))
	m := newModel(t, KindWide, d, 4)
	if got, want := len(m.Params), 30+d+4*d+2*4; got != want {
		t.Fatalf("params: got %d, want %d", got, want)
	}
	m.Std = Standardization{Mean: []float64{1, 0, -1, 2, 0}, Scale: []float64{2, 1, 0.5, 3, 1}}
	for j := range m.Params {
		m.Params[j] = r.NormFloat64() * 0.5
	}
	for j := range 30 {
		m.Params[j] -= 3
	}
	var rows []feature.Row
	for i := range 4 {
		x := make([]float64, d)
		for j := range x {
			x[j] = r.NormFloat64() * 2
		}
		rows = append(rows, feature.Row{Customer: "c", Cutoff: i, X: x, Label: []int{0, 1, 17, 30}[i]})
	}
	checkFiniteDifferences(t, m, rows, 1e-6)
	if _, err := m.MarshalJSON(); err == nil {
		t.Error("a wide model was written as a model file")
	}
}
