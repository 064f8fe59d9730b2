package sim

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestSplitCDNOW100(t *testing.T) {
	ev := cdnowEvents(t)
	sp, err := SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	customers := map[string]bool{}
	for _, e := range ev {
		customers[e.Customer] = true
	}
	// Every customer is placed exactly once, and the merchants' counts agree
	// with the owner map.
	if got, want := len(sp.Owner), len(customers); got != want {
		t.Fatalf("customers placed: got %d, want %d", got, want)
	}
	if len(sp.Merchants) != CDNOW100Merchants {
		t.Fatalf("merchants: got %d, want %d", len(sp.Merchants), CDNOW100Merchants)
	}
	counts := make([]int, len(sp.Merchants))
	for _, m := range sp.Owner {
		counts[m]++
	}
	sizes := make([]int, len(sp.Merchants))
	for m, sm := range sp.Merchants {
		if counts[m] != sm.Customers {
			t.Errorf("merchant %d: owner map holds %d customers, report says %d", m, counts[m], sm.Customers)
		}
		sizes[m] = sm.Customers
	}
	// Sizes: log-normal, median about 100, the largest a few thousand.
	slices.Sort(sizes)
	median, largest := (sizes[49]+sizes[50])/2, sizes[99]
	t.Logf("sizes: min %d, median %d, largest %d", sizes[0], median, largest)
	if median < 70 || median > 150 {
		t.Errorf("median size: got %d, want about 100 (70..150)", median)
	}
	if largest < 1500 || largest > 6000 {
		t.Errorf("largest merchant: got %d, want a few thousand (1500..6000)", largest)
	}
	// Non-IID: the mean total-variation distance between a merchant's strata
	// and the population's is far above that of an IID split with the same
	// sizes (the customers dealt out in a seeded random order).
	strata := make([]int, cdnowStrata)
	ids, of, err := cdnowStrataOf(ev, CDNOW100Merchants)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range of {
		strata[s]++
	}
	meanTV := func(merchantStrata [][]int) float64 {
		var tv float64
		for _, ms := range merchantStrata {
			n := 0
			for _, c := range ms {
				n += c
			}
			var d float64
			for s, c := range ms {
				d += math.Abs(float64(c)/float64(n) - float64(strata[s])/float64(len(ids)))
			}
			tv += d / 2
		}
		return tv / float64(len(merchantStrata))
	}
	var split, iid [][]int
	perm := rand.New(rand.NewPCG(9, 9)).Perm(len(ids))
	k := 0
	for _, sm := range sp.Merchants {
		split = append(split, sm.Strata)
		row := make([]int, cdnowStrata)
		for range sm.Customers {
			row[of[perm[k]]]++
			k++
		}
		iid = append(iid, row)
	}
	got, base := meanTV(split), meanTV(iid)
	t.Logf("mean total-variation distance to the population's strata: %.3f (IID split of the same sizes %.3f)", got, base)
	if got < base+0.3 {
		t.Errorf("mean TV distance %.3f, want ≥ the IID split's %.3f + 0.3 (non-IID)", got, base)
	}
	// Deterministic by seed; another seed gives another split.
	again, err := SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(sp.Owner, again.Owner) {
		t.Error("seed 1 twice: the owner maps differ")
	}
	other, err := SplitCDNOW100(ev, 2)
	if err != nil {
		t.Fatal(err)
	}
	if maps.Equal(sp.Owner, other.Owner) {
		t.Error("seeds 1 and 2: the same owner map")
	}
	zones := map[string]bool{}
	for _, sm := range sp.Merchants {
		zones[sm.Zone] = true
	}
	if len(zones) < 4 {
		t.Errorf("time zones declared: got %d distinct, want several", len(zones))
	}
}

// TestSplitCDNOWMerchants checks the 5- and 20-merchant splits: every CDNOW
// customer placed exactly once, every merchant non-empty, deterministic by seed;
// and that cdnow-100 is still the split it was before SplitCDNOW took n (the
// digest of its owner map for seed 1 was taken from the code before the change).
func TestSplitCDNOWMerchants(t *testing.T) {
	ev := cdnowEvents(t)
	customers := map[string]bool{}
	for _, e := range ev {
		customers[e.Customer] = true
	}
	for _, n := range []int{5, 20} {
		sp, err := SplitCDNOW(ev, n, 1)
		if err != nil {
			t.Fatalf("%d merchants: %v", n, err)
		}
		if want := fmt.Sprintf("cdnow-%d", n); sp.Name != want {
			t.Errorf("%d merchants: name %q, want %q", n, sp.Name, want)
		}
		if len(sp.Merchants) != n {
			t.Fatalf("%d merchants: got %d", n, len(sp.Merchants))
		}
		if got, want := len(sp.Owner), len(customers); got != want {
			t.Errorf("%d merchants: customers placed %d, want %d", n, got, want)
		}
		counts := make([]int, n)
		for id, m := range sp.Owner {
			if !customers[id] {
				t.Errorf("%d merchants: placed %q, not a CDNOW customer", n, id)
			}
			if m < 0 || m >= n {
				t.Fatalf("%d merchants: customer %s owned by merchant %d", n, id, m)
			}
			counts[m]++
		}
		sizes := make([]int, n)
		total := 0
		for m, sm := range sp.Merchants {
			strata := 0
			for _, c := range sm.Strata {
				strata += c
			}
			if counts[m] == 0 || counts[m] != sm.Customers || strata != sm.Customers {
				t.Errorf("%d merchants: merchant %d: owner map %d, customers %d, strata sum %d", n, m, counts[m], sm.Customers, strata)
			}
			sizes[m] = sm.Customers
			total += sm.Customers
		}
		if total != len(customers) {
			t.Errorf("%d merchants: sizes sum to %d, want %d", n, total, len(customers))
		}
		slices.Sort(sizes)
		t.Logf("cdnow-%d sizes: %v", n, sizes)
		again, err := SplitCDNOW(ev, n, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(sp.Owner, again.Owner) {
			t.Errorf("%d merchants, seed 1 twice: the owner maps differ", n)
		}
		other, err := SplitCDNOW(ev, n, 2)
		if err != nil {
			t.Fatal(err)
		}
		if maps.Equal(sp.Owner, other.Owner) {
			t.Errorf("%d merchants, seeds 1 and 2: the same owner map", n)
		}
	}
	sp, err := SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, id := range slices.Sorted(maps.Keys(sp.Owner)) {
		fmt.Fprintf(h, "%s %d\n", id, sp.Owner[id])
	}
	if got, want := fmt.Sprintf("%x", h.Sum(nil)), "a7c8e56fb553ef0766dace40789a224dee5a954b7abda5006da69bad05036511"; got != want {
		t.Errorf("cdnow-100, seed 1: owner-map digest %s, want %s (the split before SplitCDNOW took n)", got, want)
	}
	if _, err := SplitCDNOW(ev, 0, 1); err == nil || !strings.Contains(err.Error(), "0 merchants") {
		t.Errorf("0 merchants: got error %v, want one naming 0 merchants", err)
	}
}

// TestPrepareSplit: every row lands with the merchant the split names for its
// customer, the test rows are the last cutoff's, and the shares are the
// merchants' customer fractions.
func TestPrepareSplit(t *testing.T) {
	ev := cdnowEvents(t)
	split, err := SplitCDNOW(ev, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := PrepareSplit(ev, split, DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for i, m := range split.Merchants {
		sum += d.Shares[i]
		if want := float64(m.Customers) / float64(len(split.Owner)); math.Abs(d.Shares[i]-want) > 1e-12 {
			t.Errorf("merchant %d: share %v, want %v", i, d.Shares[i], want)
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("shares sum to %v, want 1", sum)
	}
	trainCutoffs, _ := ReferenceCutoffs()
	test := len(trainCutoffs) // the test cutoff's index follows the training cutoffs
	for i, r := range d.Test {
		if r.Cutoff != test || d.TestMerchant[i] != split.Owner[r.Customer] {
			t.Fatalf("test row %d: cutoff %d merchant %d, want %d and %d", i, r.Cutoff, d.TestMerchant[i], test, split.Owner[r.Customer])
		}
	}
	for m, rows := range d.Train {
		for _, r := range rows {
			if r.Cutoff == test || split.Owner[r.Customer] != m {
				t.Fatalf("merchant %d holds a row of customer %s (merchant %d) at cutoff %d", m, r.Customer, split.Owner[r.Customer], r.Cutoff)
			}
		}
	}
	if _, err := PrepareSplit(ev, &Split{Merchants: split.Merchants, Owner: map[string]int{}}, DataOptions{}); err == nil || !strings.Contains(err.Error(), "has no merchant") {
		t.Errorf("split without owners: got %v, want an error naming a customer without merchant", err)
	}
}
