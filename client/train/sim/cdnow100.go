package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// ScenarioCDNOW100 is the name of the split made by SplitCDNOW100.
const ScenarioCDNOW100 = "cdnow-100"

// ScenarioCDNOW20 and ScenarioCDNOW5 are the names of the splits SplitCDNOW
// makes with 20 and 5 merchants: the same construction, fewer and larger
// merchants, against which cdnow-100's federated cost is compared.
const (
	ScenarioCDNOW20 = "cdnow-20"
	ScenarioCDNOW5  = "cdnow-5"
)

// CDNOW100Merchants is the number of merchants of ScenarioCDNOW100.
const CDNOW100Merchants = 100

// CDNOWScenarioMerchants returns the number of merchants of a cdnow-N scenario
// name (ScenarioCDNOW100, ScenarioCDNOW20, ScenarioCDNOW5), or false.
func CDNOWScenarioMerchants(name string) (int, bool) {
	switch name {
	case ScenarioCDNOW100:
		return CDNOW100Merchants, true
	case ScenarioCDNOW20:
		return 20, true
	case ScenarioCDNOW5:
		return 5, true
	}
	return 0, false
}

// Strata of SplitCDNOW100: 3 cohorts × 3 spend tiers × 2 early-repeat classes.
const cdnowStrata = 18

// scenarioZones are the time zones merchants declare, drawn uniformly.
var scenarioZones = []string{
	"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
	"Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney",
}

// SplitMerchant is one merchant of a split.
type SplitMerchant struct {
	// Name names the merchant where the split has names (retail-regions).
	Name string `json:"name,omitempty"`
	// Customers is the number of customers the merchant holds.
	Customers int `json:"customers"`
	// Zone is the time zone the merchant declares (IANA name).
	Zone string `json:"zone"`
	// Strata[s] is the number of its customers in stratum s.
	Strata []int `json:"strata"`
}

// Split assigns the customers of an event log to merchants.
type Split struct {
	Name string
	Seed uint64
	// Owner maps a customer id to its merchant's index.
	Owner     map[string]int
	Merchants []SplitMerchant
}

// SplitCDNOW100 splits the CDNOW customers over 100 merchants, deterministically
// for a seed:
//
//   - sizes: 100 draws of a log-normal with median 100 and σ = 1.3 (at least 5),
//     scaled to the number of customers (CDNOW's 23,570 give a median near 100
//     and a largest merchant of a few thousand);
//   - strata: every customer falls in one of 18 strata fixed by its first three
//     months, all before the first training cutoff (1997-07-01): the month of its
//     first purchase (January, February, March 1997), the tercile of its
//     first-day spend, and whether it bought again within 90 days;
//   - non-IID: each merchant wants 3 distinct strata with weights uniform on
//     (0, 1) (normalised), plus 2% of the population mixture so that every
//     stratum can be placed; the matrix of merchant sizes × mixtures is scaled
//     (Sinkhorn) until its margins are the sizes and the strata's populations,
//     rounded per stratum by largest remainder, and each stratum's customers
//     (sorted, then shuffled) are dealt out in those numbers;
//   - each merchant declares one of 8 time zones, drawn uniformly. The in-process
//     simulation builds features in UTC: CDNOW has dates, not times, so a date
//     is the same local day in every zone.
func SplitCDNOW100(events []model.Event, seed uint64) (*Split, error) {
	return SplitCDNOW(events, CDNOW100Merchants, seed)
}

// SplitCDNOW splits the CDNOW customers over n merchants (at least 1) by the
// construction of SplitCDNOW100, named "cdnow-n". Only the sizes' median scales:
// it is 100·100/n before the sizes are scaled to the number of customers, so the
// shape (σ = 1.3) is the same and every customer is still placed exactly once.
// A log-normal's mean is e^(σ²/2) ≈ 2.3 times its median, so the median merchant
// holds about 23,570/(2.3·n) customers: about 100 for cdnow-100, 500 for cdnow-20
// and 2,000 for cdnow-5, where the few draws decide (seed 1: 625 and 3,271, and
// cdnow-5's largest holds 12,615). The floor of 5 customers stays. The random
// stream is the one of SplitCDNOW100, so n = 100 gives the same split for the
// same seed.
func SplitCDNOW(events []model.Event, n int, seed uint64) (*Split, error) {
	name := fmt.Sprintf("cdnow-%d", n)
	if n < 1 {
		return nil, fmt.Errorf("split %s: %d merchants, want at least 1", name, n)
	}
	ids, strata, err := cdnowStrataOf(events, n)
	if err != nil {
		return nil, fmt.Errorf("split %s: %w", name, err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x63646e6f77313030))
	sizes := logNormalSizes(rng, n, len(ids), 100*float64(CDNOW100Merchants)/float64(n), 1.3, 5)
	supply := make([]float64, cdnowStrata)
	for _, s := range strata {
		supply[s]++
	}
	// Wanted mixtures.
	mix := make([][]float64, n)
	for m := range mix {
		mix[m] = make([]float64, cdnowStrata)
		var sum float64
		for _, s := range rng.Perm(cdnowStrata)[:3] {
			w := rng.Float64()
			mix[m][s], sum = w, sum+w
		}
		for s := range mix[m] {
			mix[m][s] = 0.98*mix[m][s]/sum + 0.02*supply[s]/float64(len(ids))
		}
	}
	quota := placeStrata(sizes, supply, mix)
	sp := &Split{Name: name, Seed: seed, Owner: make(map[string]int, len(ids)), Merchants: make([]SplitMerchant, n)}
	for m := range sp.Merchants {
		sp.Merchants[m] = SplitMerchant{Zone: scenarioZones[rng.IntN(len(scenarioZones))], Strata: make([]int, cdnowStrata)}
	}
	byStratum := make([][]string, cdnowStrata)
	for i, id := range ids {
		byStratum[strata[i]] = append(byStratum[strata[i]], id)
	}
	for s, members := range byStratum {
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		k := 0
		for m := range n {
			for range quota[m][s] {
				sp.Owner[members[k]] = m
				k++
			}
			sp.Merchants[m].Strata[s] = quota[m][s]
			sp.Merchants[m].Customers += quota[m][s]
		}
	}
	for m, sm := range sp.Merchants {
		if sm.Customers == 0 {
			return nil, fmt.Errorf("split %s: merchant %d got no customers", name, m)
		}
	}
	return sp, nil
}

// cdnowStrataOf returns the customers (sorted) and each one's stratum; it wants
// at least merchants customers with purchases.
func cdnowStrataOf(events []model.Event, merchants int) ([]string, []int, error) {
	type first struct {
		day    time.Time
		spend  float64
		repeat bool
	}
	days := map[string]map[time.Time]float64{}
	for _, e := range events {
		if e.Kind != model.Purchase {
			continue
		}
		d := e.Time.UTC().Truncate(model.Day)
		if days[e.Customer] == nil {
			days[e.Customer] = map[time.Time]float64{}
		}
		days[e.Customer][d] += e.Amount
	}
	if len(days) < merchants {
		return nil, nil, fmt.Errorf("%d customers with purchases, want at least %d", len(days), merchants)
	}
	ids := make([]string, 0, len(days))
	info := map[string]first{}
	for id, ds := range days {
		ids = append(ids, id)
		var f first
		for d, a := range ds {
			if f.day.IsZero() || d.Before(f.day) {
				f.day, f.spend = d, a
			}
		}
		for d := range ds {
			if d.After(f.day) && !d.After(f.day.Add(90*model.Day)) {
				f.repeat = true
			}
		}
		info[id] = f
	}
	slices.Sort(ids)
	spends := make([]float64, len(ids))
	var t0 time.Time
	for i, id := range ids {
		spends[i] = info[id].spend
		if d := info[id].day; t0.IsZero() || d.Before(t0) {
			t0 = d
		}
	}
	sorted := slices.Clone(spends)
	slices.Sort(sorted)
	t1, t2 := sorted[len(sorted)/3], sorted[2*len(sorted)/3]
	strata := make([]int, len(ids))
	for i, id := range ids {
		f := info[id]
		// Cohort: months since the earliest first purchase, capped at the third.
		y0, m0, _ := t0.Date()
		y, mo, _ := f.day.Date()
		cohort := min(max((y-y0)*12+int(mo-m0), 0), 2)
		tier := 0
		if f.spend >= t2 {
			tier = 2
		} else if f.spend >= t1 {
			tier = 1
		}
		rep := 0
		if f.repeat {
			rep = 1
		}
		strata[i] = (cohort*3+tier)*2 + rep
	}
	return ids, strata, nil
}

// logNormalSizes draws n sizes exp(ln(median) + σ·N(0,1)), at least floor, and
// scales them to sum exactly to total (the largest absorbs the rounding).
func logNormalSizes(rng *rand.Rand, n, total int, median, sigma float64, floor int) []float64 {
	raw := make([]float64, n)
	var sum float64
	for i := range raw {
		raw[i] = math.Max(median*math.Exp(sigma*rng.NormFloat64()), float64(floor))
		sum += raw[i]
	}
	sizes := make([]float64, n)
	var got float64
	big := 0
	for i, r := range raw {
		sizes[i] = math.Max(math.Round(r*float64(total)/sum), float64(floor))
		got += sizes[i]
		if sizes[i] > sizes[big] {
			big = i
		}
	}
	sizes[big] += float64(total) - got
	return sizes
}

// placeStrata returns integer counts quota[m][s] with row sums near sizes and
// column sums exactly supply, shaped like sizes[m]·mix[m][s] (Sinkhorn scaling,
// then largest remainder per stratum).
func placeStrata(sizes, supply []float64, mix [][]float64) [][]int {
	n, k := len(sizes), len(supply)
	w := make([][]float64, n)
	for m := range w {
		w[m] = make([]float64, k)
		for s := range k {
			w[m][s] = sizes[m] * mix[m][s]
		}
	}
	for range 500 {
		for s := range k {
			var c float64
			for m := range n {
				c += w[m][s]
			}
			for m := range n {
				w[m][s] *= supply[s] / c
			}
		}
		for m := range n {
			var r float64
			for s := range k {
				r += w[m][s]
			}
			for s := range k {
				w[m][s] *= sizes[m] / r
			}
		}
	}
	quota := make([][]int, n)
	for m := range quota {
		quota[m] = make([]int, k)
	}
	for s := range k {
		left := int(supply[s])
		rem := make([]int, n)
		for m := range n {
			quota[m][s] = int(math.Floor(w[m][s]))
			left -= quota[m][s]
			rem[m] = m
		}
		slices.SortStableFunc(rem, func(a, b int) int {
			fa, fb := w[a][s]-math.Floor(w[a][s]), w[b][s]-math.Floor(w[b][s])
			switch {
			case fa > fb:
				return -1
			case fa < fb:
				return 1
			}
			return 0
		})
		for i := 0; left > 0; i = (i + 1) % n {
			quota[rem[i]][s]++
			left--
		}
	}
	return quota
}

// PrepareSplit builds the rows of events for the merchants of split, as Prepare
// does for a split by shares (DataOptions.Shares is ignored; Data.Shares are the
// merchants' fractions of the customers).
func PrepareSplit(events []model.Event, split *Split, opt DataOptions) (*Data, error) {
	if split == nil || len(split.Merchants) == 0 {
		return nil, errors.New("prepare split: no merchants")
	}
	shares := make([]float64, len(split.Merchants))
	var total float64
	for _, m := range split.Merchants {
		total += float64(m.Customers)
	}
	for i, m := range split.Merchants {
		shares[i] = float64(m.Customers) / total
	}
	var locs []*time.Location
	if opt.LocalTime {
		for i, m := range split.Merchants {
			loc, err := time.LoadLocation(m.Zone)
			if err != nil {
				return nil, fmt.Errorf("prepare split: merchant %d: %w", i, err)
			}
			locs = append(locs, loc)
		}
	}
	d, err := prepareRows(events, opt, shares, locs, func(customer string) (int, bool) {
		m, ok := split.Owner[customer]
		return m, ok
	})
	if err != nil {
		return nil, fmt.Errorf("prepare split: %w", err)
	}
	return d, nil
}
