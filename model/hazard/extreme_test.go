package hazard

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// TestExtremeEventsGiveFiniteGradients: from events to gradient, no history
// makes the model's loss or gradient non-finite. Two purchases of 1e308 (and
// events at the ends of time.Time's range) went through the feature builder as
// +Inf and gave a NaN gradient; with the builder's saturation, the loss, every
// gradient coordinate and every prediction are finite, for the initial model
// and for models with large random weights.
func TestExtremeEventsGiveFiniteGradients(t *testing.T) {
	tau := time.Date(1997, 2, 10, 0, 0, 0, 0, time.UTC)
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{tau, tau.Add(-40 * model.Day)}})
	if err != nil {
		t.Fatal(err)
	}
	buy := func(c string, at time.Time, amount float64) model.Event {
		return model.Event{Customer: c, Time: at, Kind: model.Purchase, Amount: amount, HasAmount: true}
	}
	for _, e := range []model.Event{
		buy("whale", tau.Add(-50*model.Day), 1e308), buy("whale", tau.Add(-3*model.Day), 1e308),
		buy("ancient", time.Unix(math.MinInt64, 0), math.MaxFloat64), buy("ancient", tau.Add(-45*model.Day), 5),
		buy("refund", tau.Add(-60*model.Day), -1e308), buy("refund", tau.Add(time.Hour), 1e308),
		{Customer: "browser", Time: tau.Add(-100 * model.Day), Kind: model.View},
	} {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	rows := b.Rows()
	m, err := Initial(b.Schema(), 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 20 {
		if trial > 0 {
			for j := range m.Params {
				m.Params[j] = rng.NormFloat64() * float64(trial)
			}
		}
		for _, r := range rows {
			g := make([]float64, len(m.Params))
			l, err := m.CustomerLoss([]feature.Row{r}, g)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(l) || math.IsInf(l, 0) {
				t.Fatalf("trial %d, %s at cutoff %d: loss %v", trial, r.Customer, r.Cutoff, l)
			}
			for j, x := range g {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("trial %d, %s at cutoff %d: gradient[%d] = %v", trial, r.Customer, r.Cutoff, j, x)
				}
			}
			p, err := m.Predict(r.X)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(p.ExpectedDays) || math.IsNaN(p.Within[len(p.Within)-1]) {
				t.Fatalf("trial %d, %s: prediction %+v", trial, r.Customer, p)
			}
		}
	}
}
