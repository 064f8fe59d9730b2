package api

import (
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// TestExplainRawValuesInUnits sends a customer whose raw features are known
// by hand — three purchases of 20 at 17:00 UTC, 91 and then 214 days apart,
// the last 29.5 days before as_of — to a model that weighs exactly four
// features, and checks that each explanation entry carries the raw value in
// its unit beside the transformed one: gap_last_days 214 days (log1p 5.37),
// recency_days 29.5 days, overdue_days 29.5 − (91 + 214)/2 = −123 days,
// spend_total 60 currency.
func TestExplainRawValuesInUnits(t *testing.T) {
	sc, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := sc.Len()
	std := hazard.Standardization{Mean: make([]float64, d), Scale: make([]float64, d)}
	for j := range d {
		std.Scale[j] = 1
	}
	m, err := hazard.New(hazard.KindLinear, sc, std, 0, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		w, raw float64
		unit   string
	}{
		"gap_last_days": {0.1, 214, "days"},
		"recency_days":  {-0.2, 29.5, "days"},
		"overdue_days":  {0.3, -123, "days"},
		"spend_total":   {0.05, 60, "currency"},
	}
	for j, n := range sc.Names {
		if w, ok := want[n]; ok {
			m.Params[m.Horizon+j] = w.w
		}
	}
	f := newPredictFixture(t, PredictOptions{})
	f.svc.versions[1] = versionOf(t, 1, m)
	asOf := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	amt := 20.0
	var events []EventInput
	for _, days := range []float64{29.5 + 214 + 91, 29.5 + 214, 29.5} {
		at := asOf.Add(-time.Duration(days * float64(24*time.Hour)))
		events = append(events, EventInput{Time: at.Format(time.RFC3339), Kind: "purchase", Amount: &amt})
	}
	body := mustJSON(t, PredictRequest{Merchant: "m2", Customer: "c-units", Events: events, AsOf: asOf.Format(time.RFC3339)})
	p := decodePrediction(t, f.do(t, "POST", "/v1/predict", f.tokens["crm-all"], "application/json", body))
	got := map[string]FeatureContribution{}
	for _, c := range append(append([]FeatureContribution{}, p.Explanation.Up...), p.Explanation.Down...) {
		got[c.Feature] = c
	}
	for name, w := range want {
		c, ok := got[name]
		if !ok {
			t.Errorf("%s: not in the explanation %+v", name, p.Explanation)
			continue
		}
		if math.Abs(c.RawValue-w.raw) > 1e-6 || c.Unit != w.unit {
			t.Errorf("%s: raw_value %v %q, want %v %q (value %v)", name, c.RawValue, c.Unit, w.raw, w.unit, c.Value)
		}
		if math.Abs(c.Contribution-w.w*c.Value) > 1e-9 {
			t.Errorf("%s: contribution %v, want %v·%v", name, c.Contribution, w.w, c.Value)
		}
	}
	if c := got["gap_last_days"]; math.Abs(c.Value-math.Log1p(214)) > 1e-9 {
		t.Errorf("gap_last_days value %v, want log1p(214) = %v: the model's reading stays as it was", c.Value, math.Log1p(214))
	}
}
