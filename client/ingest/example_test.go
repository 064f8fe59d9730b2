package ingest_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
)

func ExampleRead() {
	mapping, err := ingest.ParseMapping(strings.NewReader(`
header: true
customer: user
time: {column: ts, layout: unix}
kind:
  column: action
  values: {v: view, b: purchase}
amount: price
`), "shop.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	in := "user,ts,action,price\nann,1700000000,v,\nann,1700003600,b,12.50\nbob,1700007200,x,\n"
	rep, err := ingest.Read(context.Background(), strings.NewReader(in), "shop.csv",
		ingest.Options{Format: ingest.CSV, Mapping: mapping, OnError: ingest.Skip},
		func(ev model.Event) error {
			fmt.Println(ev.Customer, ev.Time.Format("15:04"), ev.Kind, ev.Amount)
			return nil
		})
	fmt.Println(rep.Events, "events,", rep.Invalid, "invalid:", rep.Errors[0])
	fmt.Println(err)
	// Output:
	// ann 22:13 view 0
	// ann 23:13 purchase 12.5
	// 2 events, 1 invalid: read shop.csv: line 4, column 3: unknown kind: kind "x" is not mapped (add it under kind values, or under kind ignore if it is not an event)
	// <nil>
}
