package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/bgnbd"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// classicLog is n customers buying at their own Poisson rate (a few a year to
// a few a month) from a random start in 1997, some stopping for good.
func classicLog(n int) []model.Event {
	rng := rand.New(rand.NewPCG(5, 6))
	start := date("1997-01-01")
	end := date("1998-04-01")
	var ev []model.Event
	for c := range n {
		rate := math.Exp(rng.NormFloat64() - 3) // purchases a day
		stop := end
		if rng.Float64() < 0.4 {
			stop = start.Add(time.Duration(rng.Float64()*400*24) * time.Hour)
		}
		t := start.Add(time.Duration(rng.Float64()*300*24) * time.Hour)
		for t.Before(stop) {
			ev = append(ev, model.Event{Customer: fmt.Sprintf("c%03d", c), Time: t, Kind: model.Purchase})
			t = t.Add(time.Duration(rng.ExpFloat64()/rate*24) * time.Hour)
		}
	}
	return ev
}

// TestClassicLocalFit: the local classic features use BG/NBD's maximum
// likelihood fit on every customer's purchases before the test cutoff, the
// same fit bgnbd.Fit makes from bgnbd's own summariser.
func TestClassicLocalFit(t *testing.T) {
	events := classicLog(400)
	cfg := Config{TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodHazard}, Classic: ClassicLocal, Hazard: hazard.TrainOptions{Steps: 50}}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hist := map[string][]time.Time{}
	for _, e := range events {
		hist[e.Customer] = append(hist[e.Customer], e.Time)
	}
	var sums []bgnbd.Customer
	for _, ts := range hist {
		c, err := bgnbd.SummarizeBefore(ts, cfg.TestCutoff, feature.ClassicUnit)
		if errors.Is(err, bgnbd.ErrNoPurchases) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.T > 0 {
			sums = append(sums, c)
		}
	}
	want, _, err := bgnbd.Fit(sums, bgnbd.FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Classic
	if got == nil || got.Mode != ClassicLocal || got.Customers != float64(len(sums)) || got.Releases != nil {
		t.Fatalf("classic fit %+v, want local over %d customers", got, len(sums))
	}
	for _, c := range [][2]float64{{got.Params.R, want.R}, {got.Params.Alpha, want.Alpha}, {got.Params.A, want.A}, {got.Params.B, want.B}} {
		if math.Abs(c[0]-c[1]) > 1e-9*c[1] {
			t.Errorf("classic params %+v, bgnbd.Fit %+v", got.Params, want)
			break
		}
	}
	if base, _ := feature.NewSchema(nil); rep.Model.Schema.Len() != base.Len()+5 || rep.Model.Schema.Names[base.Len()] != "has_classic" {
		t.Errorf("model schema ends %v, want the classic features", rep.Model.Schema.Names[rep.Model.Schema.Len()-5:])
	}
	// A local fit cannot feed a private model.
	prep, err := Prepare(events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg
	c.DP = &DPOptions{Epsilon: 1, Delta: 1e-6, Std: hazard.FixedStandardization}
	if _, err := prep.Run(context.Background(), c); err == nil {
		t.Error("local classic features in a DP model: no error")
	}
}

// TestClassicPrivateFitComposes: a DP model with DP-fitted classic features
// spends one budget: the fit's count and noisy gradient steps, then the
// training's count and DP-SGD, composed by the accountant within ε.
func TestClassicPrivateFitComposes(t *testing.T) {
	events := classicLog(400)
	o := DPOptions{Epsilon: 1, Delta: 1e-6, BatchSize: 100, Epochs: 2, Std: hazard.FixedStandardization}
	cfg := Config{TestCutoff: date("1998-03-01"), TrainCutoffs: []time.Time{date("1997-12-01"), date("1998-01-01")},
		Methods: []string{MethodHazard}, Classic: ClassicDP, DP: &o}
	rep, err := Run(context.Background(), events, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Privacy
	if p == nil || rep.Classic == nil || rep.Classic.Mode != ClassicDP {
		t.Fatalf("privacy %+v, classic %+v", p, rep.Classic)
	}
	rs := p.Releases
	if len(rs) != 4 || rs[0].Steps != 1 || rs[2].Steps != 1 || rs[1].Q != 1 || rs[1].Steps != classicSteps || rs[3].Steps != p.Steps {
		t.Fatalf("releases %+v, want count, BG/NBD fit (q 1, %d steps), count, DP-SGD", rs, classicSteps)
	}
	// The fit alone spends at most its share; everything at most ε.
	if e, _, err := dp.Epsilon(rs[:2], o.Delta, dp.AccountantOptions{}); err != nil || e > 0.1*o.Epsilon*(1+1e-9) || e < 0.09 {
		t.Errorf("fit ε %v (%v), want within [0.09, 0.1]", e, err)
	}
	if e, _, err := dp.Epsilon(rs, o.Delta, dp.AccountantOptions{}); err != nil || e > o.Epsilon*(1+1e-9) || math.Abs(e-p.Epsilon) > 1e-12 {
		t.Errorf("total ε %v (%v), reported %v, target %v", e, err, p.Epsilon, o.Epsilon)
	}
	if _, err := Prepare(events, Config{TestCutoff: cfg.TestCutoff, TrainCutoffs: cfg.TrainCutoffs, Classic: ClassicDP}); err == nil {
		t.Error("DP classic fit without a budget: no error")
	}
	if _, err := Prepare(events, Config{TestCutoff: cfg.TestCutoff, TrainCutoffs: cfg.TrainCutoffs, Classic: "lifetimes"}); err == nil {
		t.Error("unknown classic mode: no error")
	}
}
