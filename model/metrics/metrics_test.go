package metrics

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// refScores, refLabels, refTimes and refEvents are printed by
// testdata/reference.py (numpy seed 20261127); the ref* constants below are
// scikit-learn 1.2.1's values on them, from
//
//	/usr/bin/python3 model/metrics/testdata/reference.py
var (
	refScores = []float64{0.3, 0.8, 0.6, 0.5, 0.1, 0.6, 0.3, 0.6, 0.4, 0.5, 0.9, 0.6, 0.1, 1, 0.1, 0.9, 0.6, 0.1, 0.4, 0.6, 0.6, 0.9, 0.1, 0.2, 0.1, 0.5, 0.3, 0.4, 0.9, 0.5, 0.3, 0.4, 0, 0.9, 0.1, 0.8, 0.7, 0.6, 0.7, 0.6}
	refLabels = []bool{false, true, false, true, false, true, false, false, false, false, true, true, false, true, false, true, false, false, false, false, false, true, false, false, false, true, false, true, true, false, false, true, false, true, false, true, true, false, true, false}
	refTimes  = []float64{1, 4, 2, 6, 4, 8, 9, 4, 7, 3, 9, 1, 7, 4, 8, 3, 8, 10, 6, 5, 3, 7, 1, 3, 2, 4, 4, 3, 7, 4, 9, 5, 9, 2, 9, 4, 1, 9, 9, 1}
	refEvents = []bool{false, true, true, true, true, false, true, false, true, true, false, false, true, true, false, false, false, true, true, true, true, true, true, false, true, true, true, false, false, true, true, false, false, true, false, false, false, true, true, true}
)

const (
	refAUC      = 0.8880208333333334 // roc_auc_score
	refAP       = 0.8541083990168659 // average_precision_score
	refBrier    = 0.14150000000000001
	refLogLoss  = 0.42840785774100204
	refF1       = 0.7692307692307693 // max over precision_recall_curve, at threshold 0.7
	refF1Thresh = 0.7
	// refCIndex is a brute-force O(n²) pair count in the same script, using
	// lifelines' tie convention: 244.5 / 458.
	refCIndex = 0.5338427947598253
)

func approx(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) != math.IsNaN(want) {
		t.Errorf("%s: got %.17g, want %.17g (tol %g)", name, got, want, tol)
	}
}

func TestAgainstScikitLearn(t *testing.T) {
	auc, err := AUC(refScores, refLabels)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "AUC", auc, refAUC, 1e-12)
	ap, err := AveragePrecision(refScores, refLabels)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "AveragePrecision", ap, refAP, 1e-12)
	br, err := Brier(refScores, refLabels)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "Brier", br, refBrier, 1e-12)
	ll, err := LogLoss(refScores, refLabels)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "LogLoss", ll, refLogLoss, 1e-12)
	th, f1, err := BestF1(refScores, refLabels)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "BestF1 threshold", th, refF1Thresh, 0)
	approx(t, "BestF1 f1", f1, refF1, 1e-12)
	c, err := ConcordanceIndex(refScores, refTimes, refEvents)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "ConcordanceIndex", c, refCIndex, 1e-12)
}

func TestCalibrationAgainstScikitLearn(t *testing.T) {
	// calibration_curve(y, s, n_bins=3, strategy="uniform"); every bin is populated
	// and no score lies on an edge (scikit-learn 1.2 puts a value on an edge in the
	// lower bin, numpy.searchsorted side="left"; Calibration puts it in the upper).
	wantFrac := []float64{0.0, 0.35294117647058826, 1.0}
	wantMean := []float64{0.16153846153846155, 0.5294117647058824, 0.85}
	bins, err := Calibration(refScores, refLabels, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) != 3 {
		t.Fatalf("got %d bins, want 3", len(bins))
	}
	total := 0
	for k, b := range bins {
		approx(t, "Lo", b.Lo, float64(k)/3, 0)
		approx(t, "Hi", b.Hi, float64(k+1)/3, 0)
		approx(t, "FracPos", b.FracPos, wantFrac[k], 1e-12)
		approx(t, "MeanPred", b.MeanPred, wantMean[k], 1e-12)
		total += b.Count
	}
	if total != len(refScores) {
		t.Errorf("bin counts sum to %d, want %d", total, len(refScores))
	}
}

func TestCalibrationEdges(t *testing.T) {
	// Five bins: 0 and 0.2 start bins 0 and 1; 0.6 = 3/5 starts bin 3 (numpy's
	// linspace edge is 0.6000000000000001, we use 3/5 itself); 1 is in the last bin.
	probs := []float64{0, 0.2, 0.6, 0.59, 1}
	labels := []bool{false, true, true, false, true}
	bins, err := Calibration(probs, labels, 5)
	if err != nil {
		t.Fatal(err)
	}
	wantCount := []int{1, 1, 1, 1, 1}
	for k, b := range bins {
		if b.Count != wantCount[k] {
			t.Errorf("bin %d: got count %d, want %d", k, b.Count, wantCount[k])
		}
	}
	bins, err = Calibration([]float64{0.05}, []bool{true}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(bins[1].MeanPred) || !math.IsNaN(bins[1].FracPos) || bins[1].Count != 0 {
		t.Errorf("empty bin: got %+v, want count 0 and NaN means", bins[1])
	}
}

func TestHandWorked(t *testing.T) {
	// scores 0.9 0.8 0.8 0.3, labels + − + −.
	// AUC: pairs (pos, neg): (0.9,0.8) 1, (0.9,0.3) 1, (0.8,0.8) ½, (0.8,0.3) 1 → 3.5/4.
	// AP: thresholds 0.9 → P=1, R=½; 0.8 → P=2/3, R=1; AP = ½·1 + ½·⅔ = 5/6.
	// Brier on the same numbers as probabilities: (0.01+0.64+0.04+0.09)/4 = 0.195.
	// BestF1: t=0.9 → 2·1/(2+0+1)=⅔; t=0.8 → 2·2/(4+1+0)=0.8; t=0.3 → 4/(4+2)=⅔.
	s := []float64{0.9, 0.8, 0.8, 0.3}
	l := []bool{true, false, true, false}
	auc, err := AUC(s, l)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "AUC", auc, 3.5/4, 1e-15)
	ap, err := AveragePrecision(s, l)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "AP", ap, 5.0/6, 1e-15)
	br, err := Brier(s, l)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "Brier", br, 0.195, 1e-15)
	th, f1, err := BestF1(s, l)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "F1 threshold", th, 0.8, 0)
	approx(t, "F1", f1, 0.8, 1e-15)
	// LogLoss: −(ln 0.9 + ln 0.2 + ln 0.8 + ln 0.7)/4.
	ll, err := LogLoss(s, l)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "LogLoss", ll, -(math.Log(0.9)+math.Log(0.2)+math.Log(0.8)+math.Log(0.7))/4, 1e-15)
}

func TestConcordanceHandWorked(t *testing.T) {
	tests := []struct {
		name       string
		risk, time []float64
		event      []bool
		want       float64
	}{
		// Times 1,2,3 all events, risk decreasing with time: 3 pairs, all concordant.
		{"perfect", []float64{3, 2, 1}, []float64{1, 2, 3}, []bool{true, true, true}, 1},
		{"reversed", []float64{1, 2, 3}, []float64{1, 2, 3}, []bool{true, true, true}, 0},
		// Subject 0 censored at 1: only pairs (1,2): risk 5 > 1 → concordant; the
		// pair (0,·) is not comparable because 0's event is not observed. C = 1.
		{"censored first", []float64{0, 5, 1}, []float64{1, 2, 3}, []bool{false, true, true}, 1},
		// Event at 2 and censoring at 2 are comparable (event earlier), risk tie ½;
		// two events at 2 would not be. Pairs: (0,1) tie ½ → ½.
		{"tie time event vs censored", []float64{4, 4}, []float64{2, 2}, []bool{true, false}, 0.5},
		// Events at 1 (risk 2) and 3 (risk 1), censored at 2 (risk 3):
		// comparable (0,1): 2>3? no → 0; (0,2): 2>1 → 1. C = ½.
		{"mixed", []float64{2, 3, 1}, []float64{1, 2, 3}, []bool{true, false, true}, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConcordanceIndex(tc.risk, tc.time, tc.event)
			if err != nil {
				t.Fatal(err)
			}
			approx(t, "C", got, tc.want, 1e-15)
		})
	}
	if _, err := ConcordanceIndex([]float64{1, 2}, []float64{1, 1}, []bool{true, true}); !errors.Is(err, ErrNoComparablePairs) {
		t.Errorf("two events at one time: got %v, want ErrNoComparablePairs", err)
	}
}

// bruteC is Harrell's C by the definition, O(n²), for the property test.
func bruteC(risk, time []float64, event []bool) float64 {
	var num, den float64
	for i := range risk {
		if !event[i] {
			continue
		}
		for j := range risk {
			if time[i] < time[j] || (time[i] == time[j] && !event[j]) {
				den++
				switch {
				case risk[i] > risk[j]:
					num++
				case risk[i] == risk[j]:
					num += 0.5
				}
			}
		}
	}
	return num / den
}

// bruteAUC is the Mann–Whitney statistic by the definition, O(n²).
func bruteAUC(s []float64, l []bool) float64 {
	var num, den float64
	for i := range s {
		for j := range s {
			if l[i] && !l[j] {
				den++
				switch {
				case s[i] > s[j]:
					num++
				case s[i] == s[j]:
					num += 0.5
				}
			}
		}
	}
	return num / den
}

func TestPropertiesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 2 + rng.IntN(60)
		s := make([]float64, n)
		neg := make([]float64, n)
		l := make([]bool, n)
		tm := make([]float64, n)
		ev := make([]bool, n)
		for i := range n {
			s[i] = float64(rng.IntN(8)) // coarse so that ties are common
			neg[i] = -s[i]
			l[i] = rng.IntN(3) == 0
			tm[i] = float64(rng.IntN(6))
			ev[i] = rng.IntN(2) == 0
		}
		l[0], l[1] = true, false
		ev[0], tm[0], tm[1] = true, 0, 1
		auc, err := AUC(s, l)
		if err != nil {
			t.Fatal(err)
		}
		approx(t, "AUC vs brute force", auc, bruteAUC(s, l), 1e-12)
		aucNeg, err := AUC(neg, l)
		if err != nil {
			t.Fatal(err)
		}
		approx(t, "AUC(−s) vs 1−AUC(s)", aucNeg, 1-auc, 1e-12)
		c, err := ConcordanceIndex(s, tm, ev)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		approx(t, "C vs brute force", c, bruteC(s, tm, ev), 1e-12)
		ap, err := AveragePrecision(s, l)
		if err != nil {
			t.Fatal(err)
		}
		if ap < 0 || ap > 1 {
			t.Errorf("AP = %v, want within [0, 1]", ap)
		}
	}
}

func TestErrors(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"auc one class", second(AUC([]float64{1, 2}, []bool{true, true})), ErrOneClass},
		{"auc all negative", second(AUC([]float64{1, 2}, []bool{false, false})), ErrOneClass},
		{"auc nan", second(AUC([]float64{nan, 2}, []bool{true, false})), ErrNotFinite},
		{"auc inf", second(AUC([]float64{math.Inf(1), 2}, []bool{true, false})), ErrNotFinite},
		{"auc length", second(AUC([]float64{1}, []bool{true, false})), ErrLength},
		{"auc empty", second(AUC(nil, nil)), ErrEmpty},
		{"ap no positive", second(AveragePrecision([]float64{1, 2}, []bool{false, false})), ErrOneClass},
		{"ap nan", second(AveragePrecision([]float64{1, nan}, []bool{true, false})), ErrNotFinite},
		{"brier range", second(Brier([]float64{1.5}, []bool{true})), ErrProbRange},
		{"brier nan", second(Brier([]float64{nan}, []bool{true})), ErrNotFinite},
		{"logloss range", second(LogLoss([]float64{-0.1}, []bool{true})), ErrProbRange},
		{"calibration nan", second(Calibration([]float64{nan}, []bool{true}, 3)), ErrNotFinite},
		{"c nan risk", second(ConcordanceIndex([]float64{nan, 1}, []float64{1, 2}, []bool{true, true})), ErrNotFinite},
		{"c nan time", second(ConcordanceIndex([]float64{0, 1}, []float64{1, nan}, []bool{true, true})), ErrNotFinite},
		{"c no events", second(ConcordanceIndex([]float64{0, 1}, []float64{1, 2}, []bool{false, false})), ErrNoComparablePairs},
		{"c length", second(ConcordanceIndex([]float64{0, 1}, []float64{1}, []bool{false, false})), ErrLength},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, _, err := BestF1([]float64{1}, []bool{false}); !errors.Is(err, ErrOneClass) {
		t.Errorf("bestf1 no positive: got %v, want ErrOneClass", err)
	}
	if _, err := Calibration([]float64{0.5}, []bool{true}, 0); err == nil {
		t.Error("calibration with 0 bins: got nil error, want an error")
	}
}

func second[T any](_ T, err error) error { return err }

func TestJData(t *testing.T) {
	// List a, b, c, d; truth: a on day 3, c on day 10, e on day 1 (not listed).
	// w = 1, 1/(1+ln2), 1/(1+ln3), 1/(1+ln4); o = 1, 0, 1, 0.
	// S2 = (10/(10+1) + 10/(10+16) + 0)/3 with d = 1 for a (4 vs 3) and 4 for c (6 vs 10).
	list := []JDataEntry{{"a", 4}, {"b", 2}, {"c", 6}, {"d", 1}}
	truth := map[string]int{"a": 3, "c": 10, "e": 1}
	w := []float64{1, 1 / (1 + math.Ln2), 1 / (1 + math.Log(3)), 1 / (1 + math.Log(4))}
	wantS1 := (w[0] + w[2]) / (w[0] + w[1] + w[2] + w[3])
	wantS2 := (10.0/11 + 10.0/26) / 3
	s, s1, s2, err := JData(list, truth)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "S1", s1, wantS1, 1e-15)
	approx(t, "S2", s2, wantS2, 1e-15)
	approx(t, "S", s, 0.4*wantS1+0.6*wantS2, 1e-15)
	// Numerically S1 = 1.4765050/2.4861810 (python3 math.log); one literal check so that a
	// change of log base in both code and test would still be caught.
	approx(t, "S1 literal", s1, 0.5938848413473687, 1e-12)

	if _, _, _, err := JData([]JDataEntry{{"a", 1}, {"a", 2}}, truth); err == nil {
		t.Error("duplicate user: got nil error, want an error")
	}
	if _, _, _, err := JData(nil, truth); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty list: got %v, want ErrEmpty", err)
	}
	if _, _, _, err := JData(list, nil); !errors.Is(err, ErrOneClass) {
		t.Errorf("no buyers: got %v, want ErrOneClass", err)
	}
}

func TestJDataList(t *testing.T) {
	users := []string{"u1", "u2", "u3", "u4"}
	scores := []float64{0.2, 0.9, 0.5, 0.9}
	days := []int{5, 1, 3, 2}
	got, err := JDataList(users, scores, days, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []JDataEntry{{"u2", 1}, {"u4", 2}, {"u3", 3}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
	all, err := JDataList(users, scores, days, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Errorf("n beyond population: got %d entries, want 4", len(all))
	}
	if _, err := JDataList(users, scores, days[:2], 2); !errors.Is(err, ErrLength) {
		t.Errorf("length mismatch: got %v, want ErrLength", err)
	}
	if _, err := JDataList(users, scores, days, 0); err == nil {
		t.Error("n = 0: got nil error, want an error")
	}
}

func BenchmarkAUC(b *testing.B) {
	const n = 25000
	rng := rand.New(rand.NewPCG(3, 4))
	s := make([]float64, n)
	l := make([]bool, n)
	for i := range n {
		l[i] = rng.Float64() < 0.0862
		s[i] = rng.NormFloat64()
		if l[i] {
			s[i]++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AUC(s, l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConcordanceIndex(b *testing.B) {
	const n = 25000
	rng := rand.New(rand.NewPCG(5, 6))
	risk := make([]float64, n)
	tm := make([]float64, n)
	ev := make([]bool, n)
	for i := range n {
		risk[i] = rng.Float64()
		tm[i] = float64(1 + rng.IntN(30))
		ev[i] = rng.Float64() < 0.3
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ConcordanceIndex(risk, tm, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDayAccuracy checks DayAccuracy against values worked by hand: days
// (3, 10, 7.5) against (5, 10, 30) give d = −2, 0, −22.5, so S2 =
// (10/14 + 1 + 10/516.25)/3 = 0.57784… and MAE = 24.5/3.
func TestDayAccuracy(t *testing.T) {
	s2, mae, err := DayAccuracy([]float64{3, 10, 7.5}, []int{5, 10, 30})
	if err != nil {
		t.Fatal(err)
	}
	if want := (10.0/14 + 1 + 10/516.25) / 3; math.Abs(s2-want) > 1e-12 {
		t.Errorf("s2 = %v, want %v", s2, want)
	}
	if want := 24.5 / 3; math.Abs(mae-want) > 1e-12 {
		t.Errorf("mae = %v, want %v", mae, want)
	}
	if _, _, err := DayAccuracy([]float64{1}, []int{1, 2}); !errors.Is(err, ErrLength) {
		t.Errorf("length mismatch: %v", err)
	}
	if _, _, err := DayAccuracy(nil, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	if _, _, err := DayAccuracy([]float64{math.NaN()}, []int{1}); !errors.Is(err, ErrNotFinite) {
		t.Errorf("NaN: %v", err)
	}
}
