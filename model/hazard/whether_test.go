package hazard

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// TestWhetherHandWorked works the direct horizon objective by hand. Every
// baseline logit is ln(1/3), so h_t = 0.25 and S_30 = 0.75^30, and the score
// weight is 0. With w = 0.4:
//
//	buyer on day 2:  0.6·(ln(4/3) + ln 4) + 0.4·(−ln(1 − 0.75^30))
//	non-buyer:       30·ln(4/3) (the same under both objectives)
//
// ∂(−ln(1 − S))/∂z_t = −h·S/(1 − S) = −0.25·r, r = 0.75^30/(1 − 0.75^30), on
// every day, so the buyer's baseline gradients are 0.6·(0.25, −0.75, 0, …)
// − 0.4·0.25·r, and with x = 1 the score weight's is their sum.
func TestWhetherHandWorked(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	if err := m.SetWhether(0.4); err != nil {
		t.Fatal(err)
	}
	S := math.Pow(0.75, 30)
	r := S / (1 - S)
	buyer := []feature.Row{{Customer: "a", X: []float64{1}, Label: 2}}
	grad := make([]float64, len(m.Params))
	loss, err := m.CustomerLoss(buyer, grad)
	if err != nil {
		t.Fatal(err)
	}
	if want := 0.6*(math.Log(4.0/3)+math.Log(4)) - 0.4*math.Log(1-S); math.Abs(loss-want) > 1e-12 {
		t.Errorf("buyer loss: got %v, want %v", loss, want)
	}
	want := make([]float64, 31)
	want[0], want[1] = 0.6*0.25, 0.6*-0.75
	for k := range 30 {
		want[k] -= 0.4 * 0.25 * r
		want[30] += want[k]
	}
	for j := range want {
		if math.Abs(grad[j]-want[j]) > 1e-12 {
			t.Errorf("buyer grad[%d]: got %v, want %v", j, grad[j], want[j])
		}
	}
	loss, err = m.CustomerLoss([]feature.Row{{Customer: "b", X: []float64{-2}, Label: 0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 30 * math.Log(4.0/3); math.Abs(loss-want) > 1e-12 {
		t.Errorf("non-buyer loss: got %v, want %v", loss, want)
	}
}

// whetherModels are the model shapes the direct objective's tests run on:
// shift is added to every baseline logit; the last one's daily logits are so
// low that 1 − S_30 underflows the direct formula.
var whetherModels = []struct {
	name   string
	kind   string
	hidden int
	rhythm bool
	shift  float64
}{
	{"linear", KindLinear, 0, false, -3}, {"mlp", KindMLP, 3, false, -3}, {"rhythm", KindLinear, 0, true, -3},
	{"underflow", KindLinear, 0, false, -40},
}

// TestWhetherDecomposition checks the identity the objective rests on, with
// the day's probabilities read from Predict (a separate computation from the
// loss): for a buyer on day ℓ, the hazard NLL (w = 0) equals the cross-entropy
// −ln(1 − S_30) (w = 1) plus −ln(P(T = ℓ)/(1 − S_30)), and w interpolates
// linearly between the two. Linear, MLP and rhythm models, random weights.
func TestWhetherDecomposition(t *testing.T) {
	full, pos := fullSchema(t)
	for _, tc := range whetherModels[:3] {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			m := randomFullModel(t, full, tc.kind, tc.hidden, tc.rhythm, rng, -3.5)
			for _, label := range []int{1, 7, 30} {
				x := make([]float64, full.Len())
				for j := range x {
					x[j] = rng.Float64()
				}
				x[pos["recency_days"]], x[pos["gap_mean_days"]], x[pos["has_gap"]] = 2.5, 3, 1
				row := []feature.Row{{Customer: "c", X: x, Label: label}}
				lossAt := func(w float64) float64 {
					if err := m.SetWhether(w); err != nil {
						t.Fatal(err)
					}
					l, err := m.CustomerLoss(row, nil)
					if err != nil {
						t.Fatal(err)
					}
					return l
				}
				nll, bce, mid := lossAt(0), lossAt(1), lossAt(0.3)
				p, err := m.Predict(x)
				if err != nil {
					t.Fatal(err)
				}
				buy := 1 - p.Survival[m.Horizon]
				day := -math.Log(p.Hazard[label-1] * p.Survival[label-1] / buy)
				if math.Abs(bce+math.Log(buy)) > 1e-9 {
					t.Errorf("day %d: w = 1 loss %v, −ln P(buy within 30) %v", label, bce, -math.Log(buy))
				}
				if math.Abs(nll-(bce+day)) > 1e-9 {
					t.Errorf("day %d: NLL %v, cross-entropy + day term %v", label, nll, bce+day)
				}
				if math.Abs(mid-(0.7*nll+0.3*bce)) > 1e-9 {
					t.Errorf("day %d: w = 0.3 loss %v, want %v", label, mid, 0.7*nll+0.3*bce)
				}
			}
		})
	}
}

// TestWhetherGradientFiniteDifferences checks the gradient of the mixed
// objective against central finite differences, for the linear, MLP and
// rhythm models, including a buyer whose daily logits are so low that
// 1 − S_30 underflows the direct formula (the log-sum-exp branch).
func TestWhetherGradientFiniteDifferences(t *testing.T) {
	full, pos := fullSchema(t)
	for _, tc := range whetherModels {
		for _, w := range []float64{0.3, 1} {
			t.Run(fmt.Sprintf("%s/w=%v", tc.name, w), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(5, 6))
				m := randomFullModel(t, full, tc.kind, tc.hidden, tc.rhythm, rng, tc.shift)
				if err := m.SetWhether(w); err != nil {
					t.Fatal(err)
				}
				var rows []feature.Row
				for i, label := range []int{0, 2, 19, 30} {
					x := make([]float64, full.Len())
					for j := range x {
						x[j] = rng.Float64()
					}
					x[pos["recency_days"]], x[pos["gap_mean_days"]], x[pos["has_gap"]] = 1+3*rng.Float64(), 1+3*rng.Float64(), 1
					rows = append(rows, feature.Row{Customer: "c", Cutoff: i, X: x, Label: label})
				}
				checkFiniteDifferences(t, m, rows, 1e-5)
			})
		}
	}
}

// TestWhetherUnderflowLoss: where 1 − S_30 underflows, the buyer's w = 1 loss
// is −ln Σ_t e^{z_t} (1 − S ≈ Σ h_t ≈ Σ e^{z_t}), worked here for 30 equal
// logits z: −z − ln 30.
func TestWhetherUnderflowLoss(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	const z = -800.0 // e^z underflows to 0
	for j := range m.Horizon {
		m.Params[j] = z
	}
	if err := m.SetWhether(1); err != nil {
		t.Fatal(err)
	}
	grad := make([]float64, len(m.Params))
	loss, err := m.CustomerLoss([]feature.Row{{Customer: "a", X: []float64{0}, Label: 5}}, grad)
	if err != nil {
		t.Fatal(err)
	}
	if want := -z - math.Log(30); math.Abs(loss-want) > 1e-9 {
		t.Errorf("loss: got %v, want %v", loss, want)
	}
	for j := range m.Horizon {
		// −h_t·S/(1 − S) → −1/30 for equal logits.
		if math.Abs(grad[j]+1.0/30) > 1e-12 {
			t.Errorf("grad[%d]: got %v, want %v", j, grad[j], -1.0/30)
		}
	}
}

// TestWhetherRejectsBadWeight: a weight outside [0, 1] (or NaN) is refused
// by name, by Train and by SetWhether.
func TestWhetherRejectsBadWeight(t *testing.T) {
	m := newModel(t, KindLinear, 1, 0)
	rows := []feature.Row{{Customer: "a", X: []float64{1}, Label: 2}}
	for _, w := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		if err := m.SetWhether(w); err == nil || !strings.Contains(err.Error(), "whether weight") {
			t.Errorf("SetWhether(%v): got %v, want an error naming the whether weight", w, err)
		}
		_, _, err := Train(context.Background(), m.Schema, rows, TrainOptions{Whether: w, Steps: 1})
		if err == nil || !strings.Contains(err.Error(), "whether weight") {
			t.Errorf("Train with Whether %v: got %v, want an error naming the whether weight", w, err)
		}
	}
}

// TestWhetherReachesTheStep: Train hands a caller's GradientStep (DP-SGD's
// interface: evaluate.TrainPrivate plugs dp.SGD in here) the per-customer
// loss of the mixed objective, worked by hand as in TestWhetherHandWorked:
// every hazard 0.25 and zero weights at the first step, w = 0.4.
func TestWhetherReachesTheStep(t *testing.T) {
	rows := []feature.Row{{Customer: "a", X: []float64{1}, Label: 2}, {Customer: "b", X: []float64{-2}, Label: 0}}
	var first float64
	calls := 0
	step := stepFunc(func(n int, grad func(int, []float64) float64, dir []float64) error {
		calls++
		clear(dir)
		g := make([]float64, len(dir))
		for i := range n {
			l := grad(i, g)
			if calls == 1 {
				first += l
			}
		}
		return nil
	})
	if _, _, err := Train(context.Background(), testSchema(t, 1), rows, TrainOptions{Step: step, Steps: 1, BaseHazard: 0.25, Whether: 0.4}); err != nil {
		t.Fatal(err)
	}
	S := math.Pow(0.75, 30)
	want := 0.6*(math.Log(4.0/3)+math.Log(4)) - 0.4*math.Log(1-S) + 30*math.Log(4.0/3)
	if calls != 1 || math.Abs(first-want) > 1e-9 {
		t.Errorf("%d steps, first step loss %v: want 1 step and %v", calls, first, want)
	}
}

// randomFullModel is a model over the full schema with fixed standardisation
// (and the rhythm term when rhythm is set), every parameter drawn from
// N(0, 0.1²) by rng and every baseline logit moved by shift.
func randomFullModel(t *testing.T, full feature.Schema, kind string, hidden int, rhythm bool, rng *rand.Rand, shift float64) *Model {
	t.Helper()
	m, err := New(kind, full, FixedStandardization(full), hidden, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	if rhythm {
		if err := m.EnableRhythm(); err != nil {
			t.Fatal(err)
		}
	}
	for j := range m.Params {
		m.Params[j] = rng.NormFloat64() * 0.1
	}
	for j := range m.Horizon {
		m.Params[j] += shift
	}
	return m
}
