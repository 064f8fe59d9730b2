package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzFlagLists: the comma-separated list flags (aggregator init --cutoffs,
// bench federation --clients, eval --dp-sweep and --privacy-audit) never
// panic, and what they accept is one value per item, as written: increasing
// dates, positive integers, positive ε values (no NaN).
func FuzzFlagLists(f *testing.F) {
	f.Add("1997-07-01,1997-09-01, 1998-01-01")
	f.Add("1,2,4")
	f.Add("0.5,1,inf")
	f.Add("NaN,-0,1e309")
	f.Add("1997-09-01,1997-07-01")
	f.Add(",")
	f.Fuzz(func(t *testing.T, v string) {
		items := strings.Split(v, ",")
		if ds, err := parseDates(v); err == nil {
			if len(ds) != len(items) {
				t.Fatalf("parseDates(%q): %d dates for %d items", v, len(ds), len(items))
			}
			for i, d := range ds {
				if d.Format(time.DateOnly) != strings.TrimSpace(items[i]) {
					t.Fatalf("parseDates(%q): date %d is %s", v, i, d.Format(time.DateOnly))
				}
				if i > 0 && !d.After(ds[i-1]) {
					t.Fatalf("parseDates(%q): dates do not increase at %d", v, i)
				}
			}
		}
		if ns, err := parseInts(v); err == nil {
			if len(ns) != len(items) {
				t.Fatalf("parseInts(%q): %d values for %d items", v, len(ns), len(items))
			}
			for _, n := range ns {
				if n < 1 {
					t.Fatalf("parseInts(%q): %d", v, n)
				}
			}
		}
		if es, err := parseEpsilons("--flag", v); err == nil {
			if len(es) != len(items) {
				t.Fatalf("parseEpsilons(%q): %d values for %d items", v, len(es), len(items))
			}
			for _, e := range es {
				if !(e > 0) || math.IsNaN(e) {
					t.Fatalf("parseEpsilons(%q): %v", v, e)
				}
			}
		} else if !strings.HasPrefix(err.Error(), "--flag: ") {
			t.Fatalf("parseEpsilons(%q): error %q does not name the flag", v, err)
		}
	})
}
