package metrics

import (
	"errors"
	"math"
	"testing"
)

func TestDeLong(t *testing.T) {
	a := []float64{0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.4, 0.3, 0.1}
	b := []float64{0.2, 0.9, 0.5, 0.5, 0.7, 0.1, 0.3, 0.6, 0.8, 0.4}
	y := []bool{true, true, false, true, false, true, false, false, false, false}
	got, err := DeLong(a, b, y)
	if err != nil {
		t.Fatal(err)
	}
	// AUC of a by hand: the four buyers (0.9, 0.8, 0.7, 0.5) beat 6, 5½
	// (a tie at 0.8), 5 and 4 of the six non-buyers: 20.5/24. The SE is
	// the midrank implementation of scripts/choice_rule.py (numpy) on the
	// same vectors, a second method.
	want := PairedAUC{A: 20.5 / 24, B: 0.3541666666666667, SE: 0.2541325113662818}
	if math.Abs(got.A-want.A) > 1e-12 || math.Abs(got.B-want.B) > 1e-12 || math.Abs(got.SE-want.SE) > 1e-12 {
		t.Fatalf("DeLong = %+v, want %+v", got, want)
	}
	// The same score twice: no difference, no variance.
	same, err := DeLong(a, a, y)
	if err != nil || same.SE != 0 || same.A != same.B {
		t.Fatalf("DeLong(a, a) = %+v, %v", same, err)
	}
}

func TestDeLongErrors(t *testing.T) {
	y := []bool{true, false, false}
	if _, err := DeLong([]float64{1, 2, 3}, []float64{1, 2, 3}, y); !errors.Is(err, ErrOneClass) {
		t.Fatalf("one buyer: %v, want ErrOneClass", err)
	}
	if _, err := DeLong([]float64{1, 2}, []float64{1, 2, 3}, y); !errors.Is(err, ErrLength) {
		t.Fatalf("short scores: %v, want ErrLength", err)
	}
	if _, err := DeLong([]float64{1, math.NaN(), 3}, []float64{1, 2, 3}, y); !errors.Is(err, ErrNotFinite) {
		t.Fatalf("NaN score: %v, want ErrNotFinite", err)
	}
}
