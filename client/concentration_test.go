package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// TestDatasetConcentration: 300 customers with two purchases each and a
// pseudonym "p-guest" with 2,000 holds 2,000 / 2,600 = 76.9% of the
// purchases, 2,000 / 2 = 1,000× the others' mean; the warning names the raw
// id the dataset kept for it, not its pseudonym.
func TestDatasetConcentration(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ds := &Dataset{IDs: map[string]string{"p-guest": "Guest"}}
	for i := range 300 {
		c := fmt.Sprintf("p-%03d", i)
		ds.Events = append(ds.Events, model.Event{Customer: c, Time: t0.Add(time.Duration(i) * time.Hour), Kind: model.Purchase},
			model.Event{Customer: c, Time: t0.Add(time.Duration(i)*time.Hour + 48*time.Hour), Kind: model.Purchase})
	}
	for i := range 2000 {
		ds.Events = append(ds.Events, model.Event{Customer: "p-guest", Time: t0.Add(time.Duration(i) * time.Minute), Kind: model.Purchase})
	}
	c, err := ds.Concentration()
	if err != nil {
		t.Fatal(err)
	}
	if c.Customers != 301 || c.Purchases != 2600 || c.Repeaters != 301 || c.Top != "Guest" || c.TopPurchases != 2000 {
		t.Fatalf("concentration %+v", c)
	}
	if w := c.Warning(); !strings.Contains(w, `customer "Guest" holds 2000 of the 2600 purchases (76.9%)`) {
		t.Errorf("warning %q", w)
	}
	empty, err := (&Dataset{}).Concentration()
	if err != nil || empty.Warning() != "" || empty.NoRepeatHint() != "" {
		t.Errorf("no events: %+v, %v", empty, err)
	}
}
