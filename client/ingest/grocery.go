package ingest

import (
	"time"

	"github.com/kairos-fl/kairos/model"
)

// GroceryMapping is the mapping of the BTYDplus online grocery log
// (groceryElog.csv, Platzer & Reutterer 2016): a header line "cust","date",
// one purchase per row, dates YYYY-MM-DD without a time of day (read as
// midnight in Options.Location) and no amount.
func GroceryMapping() *Mapping {
	return &Mapping{
		Header:     true,
		Customer:   Column{Name: "cust"},
		Time:       Column{Name: "date"},
		TimeLayout: time.DateOnly,
		ConstKind:  model.Purchase,
	}
}
