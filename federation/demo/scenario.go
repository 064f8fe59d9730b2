package demo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kairos-fl/kairos/client/train/sim"
)

// The demo's draw from the cdnow-100 split: so many merchants of each size
// bucket (sim.SizeBuckets), taken in the split's order, and the largest ones.
const (
	demoSmall   = 4  // customers in [MinCustomers, 100)
	demoMedium  = 3  // [100, 300)
	demoLarge   = 1  // [300, 1000)
	demoLargest = 2  // the split's largest merchants (≥ 1000 for seed 1)
	demoFloor   = 60 // MinCustomers
)

// MinCustomers is the fewest customers a demo merchant holds. Each client
// releases its customer count once with Gaussian noise σ = CountNoise, and the
// aggregator refuses an update whose noisy count is below the policy's minimum
// of 1 (which stops that client); at 60 customers that is 5.9 σ away.
const MinCustomers = demoFloor

// CountNoise is the σ of each merchant's DP customer count in the demo's plan
// (the reference plan's 50 would put a merchant of 60 customers below one
// customer one time in six).
const CountNoise = 10

// Pick chooses the demo's merchants from a cdnow-100 split (indices into
// split.Merchants, in the split's order): the first demoSmall merchants with
// MinCustomers to 99 customers, the first demoMedium with 100 to 299, the
// first demoLarge with 300 to 999, and the demoLargest largest merchants.
func Pick(split *sim.Split) ([]int, error) {
	var picked []int
	take := func(lo, hi, n int) error {
		got := 0
		for i, m := range split.Merchants {
			if got == n {
				break
			}
			if m.Customers >= lo && m.Customers < hi && !slices.Contains(picked, i) {
				picked = append(picked, i)
				got++
			}
		}
		if got < n {
			return fmt.Errorf("pick demo merchants: %d with %d to %d customers, want %d", got, lo, hi-1, n)
		}
		return nil
	}
	bySize := make([]int, len(split.Merchants))
	for i := range bySize {
		bySize[i] = i
	}
	slices.SortStableFunc(bySize, func(a, b int) int { return split.Merchants[b].Customers - split.Merchants[a].Customers })
	if len(bySize) < demoLargest {
		return nil, fmt.Errorf("pick demo merchants: %d merchants, want at least %d", len(bySize), demoLargest)
	}
	largest := bySize[:demoLargest]
	picked = append(picked, largest...)
	for _, r := range []struct{ lo, hi, n int }{{demoFloor, 100, demoSmall}, {100, 300, demoMedium}, {300, 1000, demoLarge}} {
		if err := take(r.lo, r.hi, r.n); err != nil {
			return nil, err
		}
	}
	slices.Sort(picked)
	return picked, nil
}

// Subset is the split restricted to the merchants picked (re-indexed in that
// order); customers of other merchants belong to none.
func Subset(split *sim.Split, picked []int) *sim.Split {
	sub := &sim.Split{Name: split.Name + "-demo", Seed: split.Seed, Owner: map[string]int{}}
	index := map[int]int{}
	for k, i := range picked {
		index[i] = k
		sub.Merchants = append(sub.Merchants, split.Merchants[i])
	}
	for c, i := range split.Owner {
		if k, ok := index[i]; ok {
			sub.Owner[c] = k
		}
	}
	return sub
}

// WriteShards writes each merchant's orders, the lines of the CDNOW file
// (src) whose customer it owns, under the file's header, to paths[m]. A
// merchant's file is then what its client reads: its own orders only. Lines
// end in "\n" (CDNOW's "\r\n" loses its "\r"; the reader takes both).
func WriteShards(src string, split *sim.Split, paths []string) error {
	if len(paths) != len(split.Merchants) {
		return fmt.Errorf("write shards: %d paths for %d merchants", len(paths), len(split.Merchants))
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("write shards: %w", err)
	}
	defer f.Close()
	bufs := make([]bytes.Buffer, len(paths))
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			for m := range bufs {
				bufs[m].Write(text)
				bufs[m].WriteByte('\n')
			}
			continue
		}
		fields := strings.Fields(string(text))
		if len(fields) == 0 {
			continue
		}
		if m, ok := split.Owner[fields[0]]; ok {
			bufs[m].Write(text)
			bufs[m].WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("write shards: %s line %d: %w", src, line, err)
	}
	for m, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("write shards: %w", err)
		}
		if err := os.WriteFile(p, bufs[m].Bytes(), 0o600); err != nil {
			return fmt.Errorf("write shards: %w", err)
		}
	}
	return nil
}
