package evaluate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

func TestCustomerPositiveRate(t *testing.T) {
	rows := []feature.Row{
		{Customer: "a", Label: 3}, {Customer: "a", Label: 0}, // ½
		{Customer: "b", Label: 30}, // 1
		{Customer: "c", Label: 0},  // 0
	}
	if got := CustomerPositiveRate(rows); got != 0.5 {
		t.Errorf("got %v, want (½ + 1 + 0)/3 = 0.5", got)
	}
	if got := CustomerPositiveRate(nil); got != 0 {
		t.Errorf("no rows: got %v, want 0", got)
	}
}

// TestShiftPrior: 1,000 customers of whom half buy in each of their rows (rate
// ½) against a prior fitted where 20% did: the baselines move by
// logit(½) − logit(0.2) = ln 4 (to within the noise: σ = 1 on a sum of 500
// gives a rate error of about 0.001, 0.004 in log-odds), the weights stay, and
// the prior itself is not modified.
func TestShiftPrior(t *testing.T) {
	schema, err := feature.NewSchema([]string{"recency_days", "has_purchase"})
	if err != nil {
		t.Fatal(err)
	}
	prior, err := hazard.Initial(schema, 0.003)
	if err != nil {
		t.Fatal(err)
	}
	prior.Params[prior.Horizon] = 0.7
	before := slices.Clone(prior.Params)
	var rows []feature.Row
	for c := range 1000 {
		label := 0
		if c%2 == 0 {
			label = 5
		}
		rows = append(rows, feature.Row{Customer: fmt.Sprint(c), X: []float64{1, 1}, Label: label})
	}
	got, rel, err := shiftPrior(prior, rows, 0.2, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := math.Log(4)
	for j := range got.Horizon {
		if d := got.Params[j] - before[j]; math.Abs(d-want) > 0.05 {
			t.Errorf("baseline %d moved by %v, want ln 4 = %v", j, d, want)
		}
	}
	if got.Params[got.Horizon] != 0.7 || !slices.Equal(prior.Params, before) {
		t.Errorf("weight %v (want 0.7), prior changed: %v", got.Params[got.Horizon], !slices.Equal(prior.Params, before))
	}
	if rel.Mechanism != dp.Gaussian || rel.Q != 1 || rel.Steps != 1 || math.Abs(rel.Z-1) > 1e-3 {
		t.Errorf("release %+v, want one Gaussian release of z 1", rel)
	}
}

// TestTrainPrivatePriorLevelDebited: with a prior and PriorRate the level
// release is composed with the count and DP-SGD, within ε.
func TestTrainPrivatePriorLevelDebited(t *testing.T) {
	schema, rows := synthRows(t, 1000, 2, 3)
	prior, err := hazard.New(hazard.KindLinear, schema, unitStd(schema), 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	o := DPOptions{Epsilon: 1, Delta: 1e-6, BatchSize: 100, Epochs: 1, Std: unitStd, PriorRate: 0.3}
	_, _, p, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{Init: prior}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Releases) != 3 || p.Releases[1].Steps != 1 || p.Releases[1].Q != 1 || p.Epsilon > 1 {
		t.Errorf("releases %+v, ε %v: want count, level, DP-SGD within ε 1", p.Releases, p.Epsilon)
	}
	if e, _, err := dp.Epsilon(p.Releases, 1e-6, dp.AccountantOptions{}); err != nil || math.Abs(e-p.Epsilon) > 1e-12 {
		t.Errorf("recomposed ε %v (%v), reported %v", e, err, p.Epsilon)
	}
	o.PriorRate = 1
	if _, _, _, err := TrainPrivate(context.Background(), schema, rows, hazard.TrainOptions{Init: prior}, o); err == nil {
		t.Error("prior rate 1: no error")
	}
}
