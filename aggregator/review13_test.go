package aggregator_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// TestNoDecryptionPastTheCap: m1's update of one round is accepted, then an
// operator lowers its ε cap to half of what it has spent (a reload), and
// m1's client, whose own cap is higher (or whose state.json was restored
// from a backup), keeps sending an honest update every round. Each was
// decrypted, refused for the budget and, the aggregator having seen it,
// debited past the cap: the ledger grew by a DP-SGD release a round, for
// ever. A ledger already past the cap can take no release (ε only grows
// with the ledger), so the update is now refused before decryption and
// debits nothing: the ledger keeps round 1's two releases, its ε what
// dp.Epsilon gives for them. The last update goes to a second replica that
// never read m1's ledger.
func TestNoDecryptionPastTheCap(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 1})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2")
			tick(t, r)
			first := mustRound(t, r, "m1")
			rc, err := f.submitHonest(t, r, "m1")
			if err != nil {
				t.Fatal(err)
			}
			p := first.Plan
			spent, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: p.SamplingRate, Z: p.NoiseMultiplier, Steps: p.Steps},
				{Mechanism: dp.Gaussian, Q: 1, Z: p.CountNoise, Steps: 1},
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(rc.Epsilon-spent) > 1e-9*spent {
				t.Fatalf("receipt ε %v, want %v", rc.Epsilon, spent)
			}
			lowered := strings.Replace(testPolicy, "  m1: {}\n", "  m1: {epsilon_cap: "+strconv.FormatFloat(spent/2, 'g', -1, 64)+"}\n", 1)
			reloadPolicy(t, r, f, lowered)
			pol, err := policies.Parse("p.yaml", []byte(lowered))
			if err != nil {
				t.Fatal(err)
			}
			f.policy = pol
			var r2 *replica
			for i := range 3 {
				f.clock.Add(time.Minute)
				tick(t, r)
				at := r
				if i == 2 {
					r2 = f.start(t)
					at = r2
				}
				round := mustRound(t, at, "m1")
				if !round.Selected || round.ID == first.ID {
					t.Fatalf("round %d: %s selected %v, want a new round with m1", i, round.ID, round.Selected)
				}
				if _, err := f.submitHonest(t, at, "m1"); !errors.Is(err, dp.ErrBudgetExhausted) {
					t.Fatalf("round %s past the cap: got %v, want dp.ErrBudgetExhausted", round.ID, err)
				}
			}
			for _, at := range []*replica{r, r2} {
				if got := budgetOf(t, at, "m1"); got.Releases != 2 || math.Abs(got.Epsilon-spent) > 1e-9*spent {
					t.Errorf("budget of m1: %d releases ε %v, want 2 and %v (round 1's alone)", got.Releases, got.Epsilon, spent)
				}
			}
			es, err := r.store.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, e := range es {
				if e.Action != "round.update.accept" || e.Outcome != "denied" {
					continue
				}
				refused++
				if e.Details["payload"] != "" || e.Details["debited"] != "" {
					t.Errorf("refusal %d was decrypted: details %v", e.Seq, e.Details)
				}
			}
			if refused != 3 {
				t.Errorf("%d refusals audited, want 3", refused)
			}
			f.verifyAudit(t, r)
		})
	}
}
