package hazard

import (
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

func TestFixedStandardization(t *testing.T) {
	schema, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := FixedStandardization(schema)
	want := map[string][2]float64{
		"recency_days":           {3.5, 1.5}, // log1p of days
		"gap_std_days":           {3.5, 1.5},
		"purchase_days_distinct": {0.7, 0.7}, // a count, despite "days"
		"purchases_30d":          {0.7, 0.7},
		"spend_total":            {3, 2},
		"overdue_days":           {0, 3}, // signed log1p
		"has_purchase":           {0.5, 0.5},
		"purchase_share_sun":     {0.5, 0.5},
		"recency_years":          {0.5, 0.5},
	}
	seen := 0
	for j, name := range schema.Names {
		if !(s.Scale[j] > 0) {
			t.Errorf("%s: scale %v, want > 0", name, s.Scale[j])
		}
		if w, ok := want[name]; ok {
			seen++
			if s.Mean[j] != w[0] || s.Scale[j] != w[1] {
				t.Errorf("%s: got (%v, %v), want (%v, %v)", name, s.Mean[j], s.Scale[j], w[0], w[1])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d named features in the schema", seen, len(want))
	}
}
