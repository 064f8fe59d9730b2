package ingest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func TestInvoiceMerger(t *testing.T) {
	in := retailHead +
		`"1","A","x",2,"2011-01-01 10:00:00",1.5,7,"UK"` + "\n" +
		`"2","A","x",1,"2011-01-02 10:00:00",4,8,"France"` + "\n" +
		`"1","B","y",3,"2011-01-01 10:00:00",0.5,7,"UK"` + "\n" +
		`"C3","B","y",-3,"2011-01-03 10:00:00",0.5,7,"UK"` + "\n"
	var m InvoiceMerger
	if _, err := ReadOnlineRetail(context.Background(), strings.NewReader(in), "r.csv", Options{}, m.Add); err != nil {
		t.Fatal(err)
	}
	type out struct {
		ev model.Event
		l  RetailLine
	}
	var got []out
	if err := m.Flush(func(ev model.Event, l RetailLine) error {
		got = append(got, out{ev, l})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []out{
		{model.Event{Customer: "7", Time: time.Date(2011, 1, 1, 10, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 4.5, HasAmount: true}, RetailLine{Invoice: "1", Country: "UK", Quantity: 5}},
		{model.Event{Customer: "8", Time: time.Date(2011, 1, 2, 10, 0, 0, 0, time.UTC), Kind: model.Purchase, Amount: 4, HasAmount: true}, RetailLine{Invoice: "2", Country: "France", Quantity: 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d merged purchases %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("purchase %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if m.Len() != 0 {
		t.Errorf("got %d held after Flush, want 0", m.Len())
	}
}

// On the shared sample the merger gives the 8,144 distinct (customer,
// invoice) pairs counted with Python (see TestReadOnlineRetail) and keeps the
// total amount.
func TestInvoiceMergerSample(t *testing.T) {
	path := sharedData(t, "online_retail/online_retail_sample_20k.csv")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var m InvoiceMerger
	if _, err := ReadOnlineRetail(context.Background(), f, path, Options{}, m.Add); err != nil {
		t.Fatal(err)
	}
	var ta tally
	if err := m.Flush(func(ev model.Event, _ RetailLine) error { return ta.add(ev) }); err != nil {
		t.Fatal(err)
	}
	if ta.events != 8144 || len(ta.customers) != 3017 {
		t.Errorf("got %d purchases by %d customers, want 8144 by 3017", ta.events, len(ta.customers))
	}
	if d := ta.amount - 316047.01; d > 0.01 || d < -0.01 {
		t.Errorf("got total amount %.2f, want 316047.01", ta.amount)
	}
}

// TestInvoiceMergerQuantityOverflow: ten lines of invoice 9 with the largest
// quantity a line may hold (18 digits) and price 0 sum to 9.99…e18, past the
// int's 9.22e18: the summed quantity wrapped to a negative number, silently.
// Now the line that would overflow stops the read with an error naming the
// invoice and customer, and the merged purchase keeps the nine lines before.
func TestInvoiceMergerQuantityOverflow(t *testing.T) {
	const q = 999_999_999_999_999_999
	in := retailHead
	for range 10 {
		in += `"9","A","x",999999999999999999,"2011-01-01 10:00:00",0,7,"UK"` + "\n"
	}
	var m InvoiceMerger
	_, err := ReadOnlineRetail(context.Background(), strings.NewReader(in), "r.csv", Options{}, m.Add)
	if err == nil || !strings.Contains(err.Error(), `invoice "9" of customer "7"`) || !strings.Contains(err.Error(), "quantity") {
		t.Fatalf("got %v, want an error naming invoice 9's quantity", err)
	}
	t.Log(err)
	var got []RetailLine
	if err := m.Flush(func(_ model.Event, l RetailLine) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Quantity != 9*q {
		t.Errorf("merged %+v, want one purchase of quantity %d (nine lines)", got, 9*q)
	}
}
