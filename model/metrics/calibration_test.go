package metrics

import (
	"errors"
	"math"
	"testing"
)

func TestECEHandWorked(t *testing.T) {
	// Ten equal-width bins. 0.05 → bin 0 (mean 0.05, observed 0/1): 0.05;
	// 0.15, 0.15 → bin 1 (mean 0.15, observed 1/2): 0.35, weight 2;
	// 0.85 → bin 8 (observed 1/1): 0.15; 0.95 → bin 9 (observed 1/1): 0.05.
	// ECE = (0.05 + 2·0.35 + 0.15 + 0.05) / 5 = 0.95 / 5 = 0.19.
	probs := []float64{0.05, 0.15, 0.15, 0.85, 0.95}
	labels := []bool{false, true, false, true, true}
	bins, err := Calibration(probs, labels, ECEBins)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ECE(bins)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "ECE", got, 0.19, 1e-12)

	// A perfectly calibrated table: in bin 2 mean 0.25 and one of four buys.
	probs = []float64{0.2, 0.3, 0.2, 0.3}
	labels = []bool{true, false, false, false}
	bins, err = Calibration(probs, labels, ECEBins)
	if err != nil {
		t.Fatal(err)
	}
	got, err = ECE(bins)
	if err != nil {
		t.Fatal(err)
	}
	// 0.2 is in bin 2, 0.3 in bin 3: bin 2 mean 0.2 observed 0.5, bin 3 mean
	// 0.3 observed 0 → (2·0.3 + 2·0.3) / 4 = 0.3.
	approx(t, "ECE two bins", got, 0.3, 1e-12)
}

func TestECEErrors(t *testing.T) {
	if _, err := ECE(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty table: got %v, want ErrEmpty", err)
	}
	if _, err := ECE([]Bin{{Count: 2, MeanPred: math.NaN(), FracPos: 0.5}}); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN mean in a populated bin: got %v, want ErrNotFinite", err)
	}
	if _, err := ECE([]Bin{{Count: -1}}); err == nil {
		t.Error("negative count: got no error")
	}
}

func TestCumulativeGainHandWorked(t *testing.T) {
	// Scores 0.9 0.8 0.8 0.3 0.1, labels + − + − +; 3 positives of 5.
	// Top 1: 1 positive; top 2 ends inside the 0.8 tie (1 positive in 2), so it
	// counts 1 + ½; top 3: 2; top 4: 2; top 5: 3.
	scores := []float64{0.9, 0.8, 0.8, 0.3, 0.1}
	labels := []bool{true, false, true, false, true}
	got, err := CumulativeGain(scores, labels, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []GainPoint{
		{0.2, 1.0 / 3, 5.0 / 3}, {0.4, 1.5 / 3, 1.25}, {0.6, 2.0 / 3, 10.0 / 9}, {0.8, 2.0 / 3, 2.0 / 3 / 0.8}, {1, 1, 1},
	}
	for k := range want {
		approx(t, "Share", got[k].Share, want[k].Share, 1e-12)
		approx(t, "Captured", got[k].Captured, want[k].Captured, 1e-12)
		approx(t, "Lift", got[k].Lift, want[k].Lift, 1e-12)
	}
	// Two points: the half boundary (2.5 customers) is inside the tie: 1 + 1.5·½.
	got, err = CumulativeGain(scores, labels, 2)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "Captured at ½", got[0].Captured, 1.75/3, 1e-12)
	approx(t, "Captured at 1", got[1].Captured, 1, 1e-12)

	// One score for everyone: lift 1 at every share, whatever the order.
	got, err = CumulativeGain([]float64{1, 1, 1, 1}, []bool{true, false, false, false}, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		approx(t, "Lift of a constant score", p.Lift, 1, 1e-12)
	}
	if _, err := CumulativeGain(scores, []bool{false, false, false, false, false}, 5); !errors.Is(err, ErrOneClass) {
		t.Errorf("no positives: got %v, want ErrOneClass", err)
	}
	if _, err := CumulativeGain(scores, labels, 0); err == nil {
		t.Error("0 points: got no error")
	}
}
