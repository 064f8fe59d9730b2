package fedrun

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/synth"
	"github.com/kairos-fl/kairos/store"
)

// merchants builds n synthetic merchants of the given sizes.
func merchants(t *testing.T, sizes []int, cutoffs []time.Time) []Merchant {
	t.Helper()
	schema, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []Merchant
	for i, n := range sizes {
		id := fmt.Sprintf("m%d", i)
		g, err := synth.New(synth.Config{Seed: uint64(i + 1), Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Days: 365, Customers: n,
			Merchants: []synth.Merchant{{Name: id, Zone: time.UTC, Weight: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		var evs []model.Event
		for c := range n {
			evs = append(evs, g.Customer(c).Events...)
		}
		rows, err := client.BuildRows(evs, cutoffs, time.UTC, schema)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Merchant{ID: id, Zone: "UTC", Rows: rows})
	}
	return out
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRun: three merchants, two planned rounds on SQLite. Both rounds
// publish, the ledger holds about the cap for every merchant (two planned
// rounds spend it, never more), the published model moved from version 1, and
// the audit log the run wrote verifies.
func TestRun(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoffs := []time.Time{start.AddDate(0, 8, 0), start.AddDate(0, 9, 0)}
	ms := merchants(t, []int{300, 400, 500}, cutoffs)
	st := openStore(t)
	res, err := Run(context.Background(), ms, Options{Store: st, Rounds: aggregator.RoundConfig{PlannedRounds: 2, Cutoffs: cutoffs}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 2 || len(res.RoundSeconds) != 2 || res.Dropouts != 0 || res.Store != "sqlite" {
		t.Errorf("got %d published, %d timed rounds, %d dropouts on %s; want 2, 2, 0 on sqlite", res.Published, len(res.RoundSeconds), res.Dropouts, res.Store)
	}
	if res.MaxEpsilon > 1+1e-9 || res.MaxEpsilon < 0.5 {
		t.Errorf("largest ε %v, want about the cap 1 and never above", res.MaxEpsilon)
	}
	// Version 1 has zero feature weights (hazard.New); two rounds of DP
	// updates move them.
	if !slices.ContainsFunc(res.Model.Params[res.Model.Horizon:], func(w float64) bool { return w != 0 }) {
		t.Error("published model has every feature weight 0, want the rounds to have moved them")
	}
	// Every accepted update, round and publication is audited; the log verified.
	if res.AuditEntries < 6 {
		t.Errorf("audit: %d entries verified, want at least the 6 accepted updates", res.AuditEntries)
	}
}

// TestRunDropouts: a merchant whose DP customer count (σ 50 around its 20
// customers) falls below a policy minimum of 1,000 has its first update
// refused under the policy and sends nothing after; the others' rounds still
// publish with a quorum of two, and no ledger passes the cap (a merchant that
// kept re-sending its refused count would be debited for it every round).
func TestRunDropouts(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoffs := []time.Time{start.AddDate(0, 8, 0), start.AddDate(0, 9, 0)}
	ms := merchants(t, []int{3000, 3000, 20}, cutoffs)
	res, err := Run(context.Background(), ms, Options{Store: openStore(t), MinCustomers: 1000,
		Rounds: aggregator.RoundConfig{PlannedRounds: 2, Quorum: 2, Cutoffs: cutoffs}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropouts != 1 || res.Published != 2 || res.MaxEpsilon > 1+1e-9 {
		t.Errorf("got %d dropouts, %d published rounds, largest ε %v; want 1 (the small merchant), 2, ≤ 1", res.Dropouts, res.Published, res.MaxEpsilon)
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := Run(context.Background(), nil, Options{}); err == nil || !strings.Contains(err.Error(), "no merchants") {
		t.Errorf("no merchants: got %v", err)
	}
	ms := []Merchant{{ID: "a"}}
	if _, err := Run(context.Background(), ms, Options{}); err == nil || !strings.Contains(err.Error(), "no store") {
		t.Errorf("no store: got %v", err)
	}
}
