package aggregator_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

var (
	cdnowOnce sync.Once
	cdnowData *sim.Data
	cdnowErr  error
)

// cdnow prepares CDNOW's reference split (five merchants holding 40, 25, 15,
// 12 and 8% of the customers; training cutoffs 1997-07 … 1998-01, test cutoff
// 1998-03) once per test binary; it skips when the shared data is missing.
func cdnow(t testing.TB) *sim.Data {
	t.Helper()
	dir := os.Getenv("KAIROS_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	path := filepath.Join(dir, "cdnow", "CDNOW_master.txt")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("CDNOW_master.txt not found at %s (set KAIROS_DATA)", path)
	}
	cdnowOnce.Do(func() {
		ev, err := sim.LoadCDNOW(context.Background(), path)
		if err != nil {
			cdnowErr = err
			return
		}
		cdnowData, cdnowErr = sim.Prepare(ev, sim.DataOptions{})
	})
	if cdnowErr != nil {
		t.Fatal(cdnowErr)
	}
	return cdnowData
}

// defaultPolicy is a federation of five merchants with the demo's defaults
// (policies/examples/cdnow-demo.yaml, ε = 1 at δ = 1e-6) and no aggregation
// block, so the merge is the default one: FedAvg weighted by the DP customer
// counts, with the default norm bound and weight caps.
func defaultPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	var b strings.Builder
	b.WriteString(`version: 1
federation: poison
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 3650
merchants:
`)
	for m := range sim.StandardShares {
		fmt.Fprintf(&b, "  m%d: {}\n", m)
	}
	p, err := policies.Parse("poison.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// poisonRounds is the length of the federated runs of TestPoisonedDefault.
const poisonRounds = 6

// federateCDNOW runs poisonRounds rounds of a federation of the five CDNOW
// merchants through the aggregator service: every merchant trains with
// client/train on its own customers from the round's base model, seals and
// signs its update, and submits it; attack, when set, replaces merchant
// attacker's update before sealing. It returns the final model's AUC@30 on
// the pooled test cutoff and every refusal the service answered.
func federateCDNOW(t *testing.T, d *sim.Data, attacker int, attack func(*protocol.Update)) (float64, []error) {
	t.Helper()
	ctx := context.Background()
	trainCutoffs, _ := sim.ReferenceCutoffs()
	f := newFedPolicy(t, sqliteBackend(t), aggregator.RoundConfig{
		Deadline: time.Minute, Quorum: 4, PlannedRounds: poisonRounds, MaxRounds: poisonRounds + 1, Cutoffs: trainCutoffs,
	}, defaultPolicy(t))
	init, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.initial = init
	r := f.start(t)
	ids := make([]string, len(d.Train))
	for m := range ids {
		ids[m] = fmt.Sprintf("m%d", m)
	}
	f.enrol(t, r, ids...)
	tick(t, r)
	counts := make([]*protocol.NoisyCount, len(ids))
	var refused []error
	for range poisonRounds {
		for m, id := range ids {
			round := mustRound(t, r, id)
			base, err := hazard.Unmarshal(round.Model, "")
			if err != nil {
				t.Fatal(err)
			}
			res, err := train.Local(ctx, base, d.Train[m], round.Plan, train.Options{Count: counts[m]})
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			u := protocol.Update{
				Version: protocol.Version, Round: round.ID, Merchant: id, BaseVersion: round.BaseVersion,
				SchemaHash: base.Schema.Hash, Delta: res.Delta, Release: res.Release, Customers: res.Customers,
			}
			if m == attacker && attack != nil {
				attack(&u)
			}
			if _, err := r.svc.Submit(ctx, id, f.seal(t, u)); err != nil {
				refused = append(refused, fmt.Errorf("%s in %s: %w", id, round.ID, err))
				continue
			}
			counts[m] = res.CountToReuse(round.ID)
		}
		f.clock.Add(2 * time.Minute)
		tick(t, r)
	}
	mv, err := r.svc.Model(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + poisonRounds; mv.Version != want {
		t.Fatalf("active version %d, want %d (every round published)", mv.Version, want)
	}
	final, err := hazard.Unmarshal(mv.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Evaluate(final, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attacker %d: AUC@30 %.4f after %d rounds (%s); %d refusals", attacker, sc.AUC30, poisonRounds, mv.Merge, len(refused))
	return sc.AUC30, refused
}

// TestPoisonedDefault: one of five CDNOW merchants (the largest, 40% of the
// customers) sends every round a delta whose entries are all 1e300 and a DP
// customer count of 1e300, sealed and signed like any update, under the
// default policy. The count is refused as implausible (above 1/δ by more than
// 6σ), and the final model's AUC@30 on the reference test cutoff stays within
// 0.01 of the same run in which that merchant is honest. With a count of 1/δ
// (still plausible) the update is accepted, and the derived norm bound and
// the weight-share cap keep the AUC@30 within 0.01 too.
func TestPoisonedDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two federations on CDNOW")
	}
	d := cdnow(t)
	init, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Evaluate(init, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initial model: AUC@30 %.4f", sc.AUC30)
	clean, refused := federateCDNOW(t, d, -1, nil)
	if len(refused) > 0 {
		t.Fatalf("honest run: %v", refused)
	}
	if clean < 0.8 {
		t.Fatalf("honest run AUC@30 %.4f, want ≥ 0.8 (the federation learns)", clean)
	}
	// The attack as reported: refused for its count, every round.
	poisoned, refused := federateCDNOW(t, d, 0, func(u *protocol.Update) {
		for i := range u.Delta {
			u.Delta[i] = 1e300
		}
		u.Customers = protocol.NoisyCount{Value: 1e300, Sigma: u.Customers.Sigma}
	})
	if len(refused) != poisonRounds {
		t.Errorf("%d of the attacker's %d updates refused, want all: %v", len(refused), poisonRounds, refused)
	}
	for _, err := range refused {
		if !errors.Is(err, aggregator.ErrPolicy) || !strings.Contains(err.Error(), "implausible") {
			t.Errorf("refusal %v, want ErrPolicy naming the implausible count", err)
		}
	}
	if math.Abs(poisoned-clean) >= 0.01 {
		t.Errorf("AUC@30 with the attacker %.4f, honest run %.4f: moved by %.4f, want < 0.01", poisoned, clean, poisoned-clean)
	}

	// The same delta with the largest count still plausible (1/δ): accepted,
	// its norm bounded and its weight capped at half.
	bounded, refused := federateCDNOW(t, d, 0, func(u *protocol.Update) {
		for i := range u.Delta {
			u.Delta[i] = 1e300
		}
		u.Customers = protocol.NoisyCount{Value: 1e6, Sigma: u.Customers.Sigma}
	})
	for _, err := range refused {
		// Its count, new every round, spends its own budget before the end.
		if !errors.Is(err, dp.ErrBudgetExhausted) {
			t.Errorf("plausible count refused: %v", err)
		}
	}
	if math.Abs(bounded-clean) >= 0.01 {
		t.Errorf("AUC@30 with the bounded attacker %.4f, honest run %.4f: moved by %.4f, want < 0.01", bounded, clean, bounded-clean)
	}
}
