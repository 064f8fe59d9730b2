package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
)

// ScenarioRetailRegions is the name of the split made by SplitRetailRegions.
const ScenarioRetailRegions = "retail-regions"

// RetailRegionMin is the number of customers from which a country is a
// merchant of its own in SplitRetailRegions; smaller countries join their region.
const RetailRegionMin = 50

// retailRegions places every country of the Online Retail export that is
// smaller than RetailRegionMin in a regional merchant, with the time zone the
// region declares (the zone of its largest member). A country not listed
// joins "rest-of-world".
var retailRegions = []struct {
	Name, Zone string
	Countries  []string
}{
	{"iberia", "Europe/Madrid", []string{"Spain", "Portugal"}},
	{"benelux", "Europe/Brussels", []string{"Belgium", "Netherlands"}},
	{"alpine", "Europe/Zurich", []string{"Switzerland", "Austria"}},
	{"nordics", "Europe/Helsinki", []string{"Finland", "Norway", "Denmark", "Sweden", "Iceland"}},
	{"southern-europe", "Europe/Rome", []string{"Italy", "Cyprus", "Greece", "Malta"}},
	{"ireland-channel-islands", "Europe/Jersey", []string{"Channel Islands", "EIRE"}},
	{"central-eastern-europe", "Europe/Warsaw", []string{"Poland", "Lithuania", "Czech Republic", "European Community", "Unspecified"}},
	{"rest-of-world", "Australia/Sydney", []string{"Australia", "Japan", "Canada", "USA", "Israel", "United Arab Emirates", "Bahrain", "Singapore", "Lebanon", "Saudi Arabia", "Brazil", "RSA"}},
}

// countryZones are the zones of the countries large enough to be merchants of
// their own in the full export.
var countryZones = map[string]string{
	"United Kingdom": "Europe/London", "Germany": "Europe/Berlin", "France": "Europe/Paris",
}

// RetailData is the full Online Retail export read for the retail-regions
// scenario: one purchase per invoice, and each customer's country.
type RetailData struct {
	Events []model.Event
	// Country is the country of each customer's first purchase line.
	Country map[string]string
}

// LoadRetail reads the full Online Retail export (online_retail.csv.gz) as
// purchases: one per non-cancelled invoice of a known customer, its lines
// summed (ingest.InvoiceMerger). The invoice times are the shop's UK wall
// clock, read in Europe/London so that they are true instants, which each
// merchant then sees in its own zone. Bad rows are skipped up to 1%.
func LoadRetail(ctx context.Context, path string) (*RetailData, error) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		return nil, fmt.Errorf("load retail: %w", err)
	}
	f, err := ingest.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load retail: %w", err)
	}
	defer f.Close()
	var m ingest.InvoiceMerger
	d := &RetailData{Country: map[string]string{}}
	_, err = ingest.ReadOnlineRetail(ctx, f, path, ingest.Options{OnError: ingest.Skip, MaxInvalidShare: 0.01, Location: london},
		func(ev model.Event, l ingest.RetailLine) error {
			if _, ok := d.Country[ev.Customer]; !ok {
				d.Country[ev.Customer] = l.Country
			}
			return m.Add(ev, l)
		})
	if err != nil {
		return nil, fmt.Errorf("load retail: %w", err)
	}
	d.Events = make([]model.Event, 0, m.Len())
	if err := m.Flush(func(ev model.Event, _ ingest.RetailLine) error {
		d.Events = append(d.Events, ev)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("load retail: %w", err)
	}
	if len(d.Events) == 0 {
		return nil, fmt.Errorf("load retail %s: no purchases", path)
	}
	return d, nil
}

// RetailCutoffs are retail-regions' cutoffs: those of the suite's
// online-retail-full protocol (training the first of every month 2011-05 …
// 2011-10, test 2011-11-09), or with validation one month earlier (training
// 2011-04 … 2011-09, test 2011-10-09, whose label window ends before the test
// cutoff).
func RetailCutoffs(validation bool) (train []time.Time, test time.Time) {
	d := func(m time.Month, day int) time.Time { return time.Date(2011, m, day, 0, 0, 0, 0, time.UTC) }
	if validation {
		return []time.Time{d(4, 1), d(5, 1), d(6, 1), d(7, 1), d(8, 1), d(9, 1)}, d(10, 9)
	}
	return []time.Time{d(5, 1), d(6, 1), d(7, 1), d(8, 1), d(9, 1), d(10, 1)}, d(11, 9)
}

// SplitRetailRegions splits the customers of the full Online Retail export by
// country: a country with at least RetailRegionMin customers (United Kingdom,
// Germany, France) is a merchant; the others join a regional merchant
// (retailRegions: Iberia, Benelux, Alpine, Nordics, Southern Europe, Ireland
// and the Channel Islands, Central and Eastern Europe with the unnamed
// countries, rest of world). Each merchant declares the time zone of its
// country or region. Merchants are ordered by name; a region without
// customers is left out. The split is fixed: it has no seed.
func SplitRetailRegions(d *RetailData) (*Split, error) {
	customers := map[string]int{}
	for _, c := range d.Country {
		customers[c]++
	}
	region := map[string]int{}
	for i, r := range retailRegions {
		for _, c := range r.Countries {
			region[c] = i
		}
	}
	merchantOf := func(country string) (name, zone string) {
		if customers[country] >= RetailRegionMin {
			z, ok := countryZones[country]
			if !ok {
				z = "UTC"
			}
			return country, z
		}
		r, ok := region[country]
		if !ok {
			r = len(retailRegions) - 1
		}
		return retailRegions[r].Name, retailRegions[r].Zone
	}
	zones := map[string]string{}
	members := map[string][]string{}
	for cust, country := range d.Country {
		name, zone := merchantOf(country)
		zones[name] = zone
		members[name] = append(members[name], cust)
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	slices.Sort(names)
	s := &Split{Name: ScenarioRetailRegions, Owner: map[string]int{}}
	for i, n := range names {
		if _, err := time.LoadLocation(zones[n]); err != nil {
			return nil, fmt.Errorf("split %s: merchant %s: %w", ScenarioRetailRegions, n, err)
		}
		s.Merchants = append(s.Merchants, SplitMerchant{Name: n, Customers: len(members[n]), Zone: zones[n]})
		for _, c := range members[n] {
			s.Owner[c] = i
		}
	}
	if len(s.Merchants) == 0 {
		return nil, fmt.Errorf("split %s: no customers", ScenarioRetailRegions)
	}
	return s, nil
}
