package sim

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func TestSplitRetailRegions(t *testing.T) {
	// 60 German customers are a merchant of their own; 10 Spanish and 5
	// Portuguese make Iberia; 3 from a country no region lists join the rest
	// of the world; 49 Dutch stay below the threshold and join Benelux.
	d := &RetailData{Country: map[string]string{}}
	add := func(country string, n int) {
		for i := range n {
			d.Country[fmt.Sprintf("%s-%d", country, i)] = country
		}
	}
	add("Germany", 60)
	add("Spain", 10)
	add("Portugal", 5)
	add("Atlantis", 3)
	add("Netherlands", 49)
	s, err := SplitRetailRegions(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []SplitMerchant{
		{Name: "Germany", Customers: 60, Zone: "Europe/Berlin"},
		{Name: "benelux", Customers: 49, Zone: "Europe/Brussels"},
		{Name: "iberia", Customers: 15, Zone: "Europe/Madrid"},
		{Name: "rest-of-world", Customers: 3, Zone: "Australia/Sydney"},
	}
	if len(s.Merchants) != len(want) {
		t.Fatalf("got %+v, want %+v", s.Merchants, want)
	}
	for i, w := range want {
		if g := s.Merchants[i]; g.Name != w.Name || g.Customers != w.Customers || g.Zone != w.Zone {
			t.Errorf("merchant %d: got %+v, want %+v", i, g, w)
		}
	}
	if len(s.Owner) != 127 {
		t.Errorf("owners: got %d customers, want 127", len(s.Owner))
	}
	if s.Owner["Portugal-4"] != 2 || s.Owner["Germany-0"] != 0 || s.Owner["Atlantis-2"] != 3 {
		t.Errorf("owners: Portugal-4 → %d, Germany-0 → %d, Atlantis-2 → %d, want 2, 0, 3", s.Owner["Portugal-4"], s.Owner["Germany-0"], s.Owner["Atlantis-2"])
	}
	if _, err := SplitRetailRegions(&RetailData{}); err == nil {
		t.Error("no customers: got no error")
	}
}

// TestRetailRegionsData reads the full export (skipped without the shared
// data) and checks the split against the counts of the data README: 4,339
// buying customers, 3,921 of them in the United Kingdom, Germany 94 and
// France 87 their own merchants, every customer placed once.
func TestRetailRegionsData(t *testing.T) {
	p := os.Getenv("KAIROS_SHARED")
	if p == "" {
		p = "../../../../shared"
	}
	path := p + "/data/online_retail_full/online_retail.csv.gz"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("online_retail.csv.gz not found at %s", path)
	}
	d, err := LoadRetail(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Country) != 4339 {
		t.Errorf("customers: got %d, want 4,339", len(d.Country))
	}
	s, err := SplitRetailRegions(d)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	total := 0
	for _, m := range s.Merchants {
		sizes[m.Name] = m.Customers
		total += m.Customers
	}
	if sizes["United Kingdom"] != 3921 || sizes["Germany"] != 94 || sizes["France"] != 87 || total != 4339 || len(s.Merchants) != 11 {
		t.Errorf("split: got %v (total %d, %d merchants), want UK 3,921, Germany 94, France 87, 4,339 in 11", sizes, total, len(s.Merchants))
	}
}

// TestPrepareSplitLocalTime: two merchants' customers with the same purchase
// instants (Sundays 23:30 in London, Monday morning in Tokyo) get the same
// feature rows in UTC and different ones (day of week, hour) when each
// merchant builds them in its own zone.
func TestPrepareSplitLocalTime(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	var ev []model.Event
	for _, c := range []string{"a", "b"} {
		for w := range 4 {
			ev = append(ev, model.Event{Customer: c, Time: time.Date(2011, 3, 6+7*w, 23, 30, 0, 0, london), Kind: model.Purchase, Amount: 10, HasAmount: true})
		}
	}
	split := &Split{Owner: map[string]int{"a": 0, "b": 1}, Merchants: []SplitMerchant{{Customers: 1, Zone: "Europe/London"}, {Customers: 1, Zone: "Asia/Tokyo"}}}
	do := DataOptions{TrainCutoffs: []time.Time{time.Date(2011, 5, 1, 0, 0, 0, 0, time.UTC)}, TestCutoff: time.Date(2011, 6, 9, 0, 0, 0, 0, time.UTC)}
	for _, local := range []bool{false, true} {
		do.LocalTime = local
		d, err := PrepareSplit(ev, split, do)
		if err != nil {
			t.Fatal(err)
		}
		same := slices.Equal(d.Train[0][0].X, d.Train[1][0].X)
		if same == local {
			t.Errorf("local time %v: rows equal %v, want %v", local, same, !local)
		}
	}
}
