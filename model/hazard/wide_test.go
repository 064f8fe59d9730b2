package hazard

import "testing"

// TestWideShape checks the scratch kind wide's parameter count (baselines,
// the linear part, then the MLP residual) and that it is never written as a
// model file; its gradient is checked with the other kinds in
// TestGradientFiniteDifferences.
func TestWideShape(t *testing.T) {
	const d = 5
	m := newModel(t, KindWide, d, 4)
	if got, want := len(m.Params), 30+d+4*d+2*4; got != want {
		t.Fatalf("params: got %d, want %d", got, want)
	}
	if _, err := m.MarshalJSON(); err == nil {
		t.Error("a wide model was written as a model file")
	}
}
