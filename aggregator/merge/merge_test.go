package merge

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
)

func near(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

func TestCombine(t *testing.T) {
	tests := []struct {
		name    string
		deltas  [][]float64
		weights []float64
		opt     Options
		want    []float64
	}{
		{"fedavg equal weights", [][]float64{{1, 2}, {3, 4}, {5, 9}}, nil, Options{}, []float64{3, 5}},
		{"fedavg explicit method", [][]float64{{1, 2}, {3, 4}, {5, 9}}, []float64{1, 1, 1}, Options{Method: MethodFedAvg}, []float64{3, 5}},
		// (1·0 + 3·4)/4 = 3, (1·4 + 3·0)/4 = 1
		{"fedavg weighted", [][]float64{{0, 4}, {4, 0}}, []float64{1, 3}, Options{}, []float64{3, 1}},
		{"fedavg zero weight drops update", [][]float64{{0, 4}, {100, -100}}, []float64{2, 0}, Options{}, []float64{0, 4}},
		{"median odd", [][]float64{{1, 10}, {5, -2}, {3, 7}}, nil, Options{Method: MethodMedian}, []float64{3, 7}},
		// column 0 sorted 1 3 5 100 → (3+5)/2; column 1 sorted -2 0 7 10 → (0+7)/2
		{"median even", [][]float64{{1, 10}, {5, -2}, {3, 7}, {100, 0}}, nil, Options{Method: MethodMedian}, []float64{4, 3.5}},
		{"median ignores weights", [][]float64{{1}, {5}, {3}}, []float64{100, 1, 1}, Options{Method: MethodMedian}, []float64{3}},
		{"median single", [][]float64{{-7, 2}}, nil, Options{Method: MethodMedian}, []float64{-7, 2}},
		// k = ⌊0.2·5⌋ = 1: drop 1 and 100 → (2+3+4)/3
		{"trimmed mean 0.2 of 5", [][]float64{{4}, {100}, {1}, {3}, {2}}, nil, Options{Method: MethodTrimmedMean, TrimFraction: 0.2}, []float64{3}},
		// k = ⌊0.25·5⌋ = 1
		{"trimmed mean 0.25 of 5", [][]float64{{4}, {100}, {1}, {3}, {2}}, nil, Options{Method: MethodTrimmedMean, TrimFraction: 0.25}, []float64{3}},
		// k = ⌊0.2·10⌋ = 2: drop -50, -40 and 90, 1000 → mean of 1..6 = 3.5
		{"trimmed mean 0.2 of 10", [][]float64{{1}, {2}, {3}, {4}, {5}, {6}, {-50}, {-40}, {90}, {1000}}, nil, Options{Method: MethodTrimmedMean, TrimFraction: 0.2}, []float64{3.5}},
		{"trimmed mean 0 is the mean", [][]float64{{4}, {100}, {1}, {3}, {2}}, nil, Options{Method: MethodTrimmedMean}, []float64{22}},
		// k = ⌊0.49·4⌋ = 1: middle two of 1 3 5 100
		{"trimmed mean 0.49 of 4", [][]float64{{1}, {5}, {3}, {100}}, nil, Options{Method: MethodTrimmedMean, TrimFraction: 0.49}, []float64{4}},
		{"norm bound scales down", [][]float64{{3, 4}}, nil, Options{NormBound: 1}, []float64{0.6, 0.8}},
		{"norm bound leaves small updates", [][]float64{{0.3, 0.4}}, nil, Options{NormBound: 1}, []float64{0.3, 0.4}},
		// {3,4} → {1.2,1.6}; mean with {0,1}
		{"norm bound then fedavg", [][]float64{{3, 4}, {0, 1}}, nil, Options{NormBound: 2}, []float64{0.6, 1.3}},
		// {30,40} → {3,4}; medians of {3,0,0} and {4,1,2}
		{"norm bound then median", [][]float64{{30, 40}, {0, 1}, {0, 2}}, nil, Options{Method: MethodMedian, NormBound: 5}, []float64{0, 2}},
		{"huge finite values", [][]float64{{1e300, 1e300}}, nil, Options{NormBound: math.Sqrt2}, []float64{1, 1}},
		{"trimmed mean of huge values", [][]float64{{1e308}, {1e308}, {1e308}}, nil, Options{Method: MethodTrimmedMean}, []float64{1e308}},
		{"fedavg of huge values", [][]float64{{1e308}, {1e308}, {1e308}}, nil, Options{}, []float64{1e308}},
		// weights 1:3 capped at half each → the plain mean
		{"fedavg share cap", [][]float64{{0, 4}, {4, 0}}, []float64{1, 3}, Options{MaxWeightShare: 0.5}, []float64{2, 2}},
		// a claimed weight of 1e300 gets half: (1e300-weighted {10} and {0, 0}) → 5, 0, 0 over shares ½ ¼ ¼
		{"fedavg share cap of a huge weight", [][]float64{{10}, {0}, {2}}, []float64{1e300, 1, 1}, Options{MaxWeightShare: 0.5}, []float64{5.5}},
		{"share cap ignored by the median", [][]float64{{1}, {5}, {3}}, []float64{100, 1, 1}, Options{Method: MethodMedian, MaxWeightShare: 0.5}, []float64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := make([][]float64, len(tt.deltas))
			for i, v := range tt.deltas {
				orig[i] = slices.Clone(v)
			}
			got, err := Combine(tt.deltas, tt.weights, tt.opt)
			if err != nil {
				t.Fatalf("Combine: %v", err)
			}
			if !near(got, tt.want, 1e-12) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for i := range orig {
				if !slices.Equal(orig[i], tt.deltas[i]) {
					t.Errorf("input %d modified: got %v, want %v", i, tt.deltas[i], orig[i])
				}
			}
		})
	}
}

func TestCombineErrors(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	tests := []struct {
		name    string
		deltas  [][]float64
		weights []float64
		opt     Options
		want    error
	}{
		{"empty", nil, nil, Options{}, ErrEmpty},
		{"lengths differ", [][]float64{{1, 2}, {3}}, nil, Options{}, ErrLength},
		{"NaN", [][]float64{{1, 2}, {math.NaN(), 4}}, nil, Options{Method: MethodMedian}, ErrNonFinite},
		{"Inf", [][]float64{{1, math.Inf(-1)}, {3, 4}}, nil, Options{}, ErrNonFinite},
		{"negative weight", ok, []float64{1, -1}, Options{}, ErrWeight},
		{"NaN weight", ok, []float64{1, math.NaN()}, Options{}, ErrWeight},
		{"Inf weight", ok, []float64{1, math.Inf(1)}, Options{}, ErrWeight},
		{"weights sum to zero", ok, []float64{0, 0}, Options{}, ErrWeight},
		{"weight count", ok, []float64{1}, Options{}, ErrWeight},
		{"negative weight with median", ok, []float64{1, -1}, Options{Method: MethodMedian}, ErrWeight},
		{"unknown method", ok, nil, Options{Method: "krum"}, ErrOptions},
		{"trim 0.5", ok, nil, Options{Method: MethodTrimmedMean, TrimFraction: 0.5}, ErrOptions},
		{"trim negative", ok, nil, Options{Method: MethodTrimmedMean, TrimFraction: -0.1}, ErrOptions},
		{"trim NaN", ok, nil, Options{Method: MethodTrimmedMean, TrimFraction: math.NaN()}, ErrOptions},
		{"norm bound negative", ok, nil, Options{NormBound: -1}, ErrOptions},
		{"norm bound Inf", ok, nil, Options{NormBound: math.Inf(1)}, ErrOptions},
		{"share cap above 1", ok, nil, Options{MaxWeightShare: 1.5}, ErrOptions},
		{"share cap NaN", ok, nil, Options{MaxWeightShare: math.NaN()}, ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Combine(tt.deltas, tt.weights, tt.opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got (%v, %v), want error %v", got, err, tt.want)
			}
		})
	}
}

func TestAdamClosedForm(t *testing.T) {
	// η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 0.01, worked by hand:
	// step 1, Δ = (0.5, −1): m = (0.05, −0.1), v = (0.0025, 0.01), √v = (0.05, 0.1)
	//   x = (1 + 0.1·0.05/0.06, −2 + 0.1·(−0.1)/0.11) = (1.08333…, −2.090909…)
	// step 2, Δ = (0.5, 0): m = (0.095, −0.09), v = (0.004975, 0.0099)
	//   x₀ += 0.1·0.095/(√0.004975 + 0.01), x₁ += 0.1·(−0.09)/(√0.0099 + 0.01)
	a := NewAdam(0.1, 0.01)
	p := []float64{1, -2}
	if err := a.Step(p, []float64{0.5, -1}); err != nil {
		t.Fatal(err)
	}
	if want := []float64{1 + 0.005/0.06, -2 - 0.01/0.11}; !near(p, want, 1e-15) {
		t.Errorf("after step 1: got %v, want %v", p, want)
	}
	if err := a.Step(p, []float64{0.5, 0}); err != nil {
		t.Fatal(err)
	}
	want := []float64{1.0833333333333333 + 0.0095/(math.Sqrt(0.004975)+0.01), -2.090909090909091 - 0.009/(math.Sqrt(0.0099)+0.01)}
	if !near(p, want, 1e-14) {
		t.Errorf("after step 2: got %v, want %v", p, want)
	}
	// The same numbers from an independent double-precision evaluation (Python).
	if want := []float64{1.2012964018531547, -2.1731018147250047}; !near(p, want, 1e-14) {
		t.Errorf("after step 2: got %v, want %v (python)", p, want)
	}
	if a.T != 2 {
		t.Errorf("steps: got %d, want 2", a.T)
	}
	if want := []float64{0.095, -0.09}; !near(a.M, want, 1e-15) {
		t.Errorf("first moment: got %v, want %v", a.M, want)
	}
	if want := []float64{0.004975, 0.0099}; !near(a.V, want, 1e-15) {
		t.Errorf("second moment: got %v, want %v", a.V, want)
	}
}

func TestAdamTauBoundsTinyUpdates(t *testing.T) {
	// With β₁ = β₂ = 0, one step moves by η·Δ/(|Δ| + τ): about η·sign(Δ) for |Δ| ≫ τ
	// and about η·Δ/τ for |Δ| ≪ τ.
	a := &Adam{LR: 1, Tau: 1e-3}
	p := []float64{0, 0}
	if err := a.Step(p, []float64{10, 1e-9}); err != nil {
		t.Fatal(err)
	}
	want := []float64{10 / (10 + 1e-3), 1e-9 / (1e-9 + 1e-3)}
	if !near(p, want, 1e-15) {
		t.Errorf("got %v, want %v", p, want)
	}
}

func TestAdamJSONResume(t *testing.T) {
	deltas := [][]float64{{0.3, -0.1, 0}, {0.2, 0.4, -1}, {-0.5, 0.1, 2}}
	straight := NewAdam(0.05, 1e-3)
	p1 := []float64{1, 2, 3}
	for _, d := range deltas {
		if err := straight.Step(p1, d); err != nil {
			t.Fatal(err)
		}
	}
	resumed := NewAdam(0.05, 1e-3)
	p2 := []float64{1, 2, 3}
	for _, d := range deltas {
		if err := resumed.Step(p2, d); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(resumed)
		if err != nil {
			t.Fatal(err)
		}
		resumed = &Adam{}
		if err := json.Unmarshal(b, resumed); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(p1, p2) {
		t.Errorf("resumed params: got %v, want %v", p2, p1)
	}
	if resumed.T != 3 || !slices.Equal(resumed.M, straight.M) || !slices.Equal(resumed.V, straight.V) {
		t.Errorf("resumed state: got %+v, want %+v", resumed, straight)
	}
}

func TestAdamErrorsLeaveStateUnchanged(t *testing.T) {
	tests := []struct {
		name   string
		a      Adam
		params []float64
		delta  []float64
	}{
		{"zero lr", Adam{Beta1: 0.9, Beta2: 0.99, Tau: 1e-3}, []float64{1}, []float64{1}},
		{"beta1 one", Adam{LR: 1, Beta1: 1, Beta2: 0.99, Tau: 1e-3}, []float64{1}, []float64{1}},
		{"beta2 negative", Adam{LR: 1, Beta1: 0.9, Beta2: -0.1, Tau: 1e-3}, []float64{1}, []float64{1}},
		{"tau zero", Adam{LR: 1, Beta1: 0.9, Beta2: 0.99}, []float64{1}, []float64{1}},
		{"length", *NewAdam(1, 1e-3), []float64{1, 2}, []float64{1}},
		{"state length", Adam{LR: 1, Tau: 1, M: []float64{0, 0}, V: []float64{0, 0}}, []float64{1}, []float64{1}},
		{"moment lengths", Adam{LR: 1, Tau: 1, M: []float64{0}, V: []float64{}}, []float64{1}, []float64{1}},
		{"negative v", Adam{LR: 1, Tau: 1, M: []float64{0}, V: []float64{-1}}, []float64{1}, []float64{1}},
		{"NaN delta", *NewAdam(1, 1e-3), []float64{1, 2}, []float64{0, math.NaN()}},
		{"Inf param", *NewAdam(1, 1e-3), []float64{math.Inf(1), 2}, []float64{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a
			p := slices.Clone(tt.params)
			err := a.Step(p, tt.delta)
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			if !slices.Equal(p, tt.params) {
				t.Errorf("params: got %v, want unchanged %v", p, tt.params)
			}
			if a.T != tt.a.T {
				t.Errorf("step count: got %d, want %d", a.T, tt.a.T)
			}
		})
	}
}

func TestNorm(t *testing.T) {
	tests := []struct {
		v    []float64
		want float64
	}{
		{[]float64{3, 4}, 5},
		{[]float64{0, 0}, 0},
		{[]float64{3e200, 4e200}, 5e200},    // plain squares overflow
		{[]float64{3e-200, 4e-200}, 5e-200}, // plain squares underflow
		{[]float64{-1, -1, -1, -1}, 2},
	}
	for _, tt := range tests {
		if got := norm(tt.v); math.Abs(got-tt.want) > 1e-15*tt.want {
			t.Errorf("norm(%v): got %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestCapShares checks water-filling against shares worked out by hand.
func TestCapShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []float64
		cap     float64
		want    []float64
	}{
		{"under the cap", []float64{1, 1, 2}, 0.5, []float64{0.25, 0.25, 0.5}},
		{"one capped", []float64{5, 1, 1}, 0.5, []float64{0.5, 0.25, 0.25}},
		// 8/16 → 0.4; the other 0.6 over 4, 2, 1, 1 (sum 8)
		{"rest in proportion", []float64{8, 4, 2, 1, 1}, 0.4, []float64{0.4, 0.3, 0.15, 0.075, 0.075}},
		// 100 capped at 0.3 leaves 0.7 over 90, 1, 1: 90's 0.685 is capped in turn
		{"cascade", []float64{100, 90, 1, 1}, 0.3, []float64{0.3, 0.3, 0.2, 0.2}},
		{"cap below 1/n gives equal shares", []float64{5, 1}, 0.4, []float64{0.5, 0.5}},
		{"zero weights share the rest", []float64{1, 0, 0}, 0.5, []float64{0.5, 0.25, 0.25}},
		{"huge weight", []float64{1e300, 1, 1, 1, 1}, 0.5, []float64{0.5, 0.125, 0.125, 0.125, 0.125}},
		{"cap 1 is no cap", []float64{3, 1}, 1, []float64{0.75, 0.25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CapShares(tt.weights, tt.cap)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tt.want, 1e-12) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		weights []float64
		cap     float64
		want    error
	}{
		{[]float64{1}, 0, ErrOptions}, {[]float64{1}, 1.1, ErrOptions}, {[]float64{1, -1}, 0.5, ErrWeight},
		{[]float64{0, 0}, 0.5, ErrWeight}, {[]float64{math.Inf(1), 1}, 0.5, ErrWeight}, {nil, 0.5, ErrWeight},
	} {
		if _, err := CapShares(bad.weights, bad.cap); !errors.Is(err, bad.want) {
			t.Errorf("CapShares(%v, %v): got %v, want %v", bad.weights, bad.cap, err, bad.want)
		}
	}
}
