package client

import (
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/model/feature"
)

// Concentration returns how the dataset's purchases spread over its
// customers (feature.Concentration: a guest placeholder read as one
// customer, or a customer column that names orders). The top customer is
// named by its raw id when the dataset kept them, else by its pseudonym.
func (ds *Dataset) Concentration() (feature.Concentration, error) {
	var last time.Time
	for _, e := range ds.Events {
		if e.Time.After(last) {
			last = e.Time
		}
	}
	if last.IsZero() {
		return feature.Concentration{}, nil
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{last.Add(24 * time.Hour)}})
	if err != nil {
		return feature.Concentration{}, fmt.Errorf("purchase concentration: %w", err)
	}
	for i, e := range ds.Events {
		if err := b.Add(e); err != nil {
			return feature.Concentration{}, fmt.Errorf("purchase concentration: event %d: %w", i, err)
		}
	}
	c := b.PurchaseConcentration()
	if raw, ok := ds.IDs[c.Top]; ok {
		c.Top = raw
	}
	return c, nil
}
