package feature

import (
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func concentrationOf(t *testing.T, events []model.Event) Concentration {
	t.Helper()
	b, err := NewBuilder(Config{Cutoffs: []time.Time{day(2020, 6, 1, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return b.PurchaseConcentration()
}

func TestPurchaseConcentrationHandWorked(t *testing.T) {
	buy := func(c string, at time.Time) model.Event {
		return model.Event{Customer: c, Time: at, Kind: model.Purchase}
	}
	t1, t2 := day(2020, 1, 1, 10), day(2020, 2, 1, 10)
	c := concentrationOf(t, []model.Event{
		buy("a", t1), buy("a", t1), buy("a", t1), // three lines of one order: not a repeat buyer
		buy("b", t1), buy("b", t2), // two orders
		buy("c", t2),
		{Customer: "d", Time: t1, Kind: model.View}, {Customer: "d", Time: t2, Kind: model.View}, // views are not purchases
	})
	want := Concentration{Customers: 3, Purchases: 6, Repeaters: 1, Top: "a", TopPurchases: 3}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if c.NoRepeatHint() != "" {
		t.Errorf("b buys twice, yet the hint says nobody does: %q", c.NoRepeatHint())
	}
	// a holds 50% of the purchases but only 3/((6−3)/2) = 2× the others' mean.
	if c.Dominant() || c.Warning() != "" {
		t.Errorf("a is not dominant (2× the mean of the others): %q", c.Warning())
	}
	// Every order under an id of its own: no repeat buyer.
	c = concentrationOf(t, []model.Event{buy("o1", t1), buy("o2", t2), buy("o3", t2)})
	if h := c.NoRepeatHint(); !strings.Contains(h, "none of the 3 customers") || !strings.Contains(h, "not the order") {
		t.Errorf("order ids as customers: hint %q", h)
	}
}

func TestDominantBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		customers, purchases int
		topPurchases         int
		dominant             bool
	}{
		// 99 customers with one purchase each and one with 100: share 100/199 = 50%, ratio 100/1 = 100, at the bar.
		{name: "ratio at the bar", customers: 100, purchases: 199, topPurchases: 100, dominant: true},
		// The same with 99: ratio 99/1 < 100.
		{name: "ratio below", customers: 100, purchases: 198, topPurchases: 99, dominant: false},
		// 10,000 customers with one purchase and one with 400: ratio 400, share 400/10,399 = 3.8% < 5%.
		{name: "share below", customers: 10001, purchases: 10400, topPurchases: 400, dominant: false},
		// 10,000 others and one with 527: share 527/10,527 = 5.006%, ratio 527.
		{name: "share above", customers: 10001, purchases: 10527, topPurchases: 527, dominant: true},
		{name: "one customer", customers: 1, purchases: 50, topPurchases: 50, dominant: false},
		{name: "every purchase one customer's but for one", customers: 2, purchases: 101, topPurchases: 100, dominant: true},
	} {
		c := Concentration{Customers: tc.customers, Purchases: tc.purchases, TopPurchases: tc.topPurchases, Top: "guest", Repeaters: 1}
		if c.Dominant() != tc.dominant {
			t.Errorf("%s: dominant = %v, want %v", tc.name, c.Dominant(), tc.dominant)
		}
		if got := c.Warning() != ""; got != tc.dominant {
			t.Errorf("%s: warning %q", tc.name, c.Warning())
		}
	}
	w := Concentration{Customers: 100, Purchases: 199, TopPurchases: 100, Top: "guest", Repeaters: 1}.Warning()
	if !strings.Contains(w, `customer "guest" holds 100 of the 199 purchases (50.3%)`) {
		t.Errorf("warning %q", w)
	}
}

func TestQuoteIDCutsAtRune(t *testing.T) {
	id := strings.Repeat("a", 63) + "é" + "zzz" // é is 2 bytes at 63..64: a cut at 64 would split it
	if got, want := quoteID(id), `"`+strings.Repeat("a", 63)+`"…`; got != want {
		t.Errorf("quoteID = %s, want %s", got, want)
	}
	if got := quoteID("guest"); got != `"guest"` {
		t.Errorf("quoteID(guest) = %s", got)
	}
}
