package aggregator_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
)

// runnerAPI is a merchant's client.API over the in-process Service, with
// the secure calls of inProcessAPI.
type runnerAPI struct {
	inProcessAPI
}

func (a runnerAPI) CurrentRound(ctx context.Context) (protocol.Round, error) {
	r, err := a.svc.Load().CurrentRound(ctx, a.merchant)
	return r, problem(err)
}

func (a runnerAPI) SubmitUpdate(context.Context, string, []byte) (protocol.Receipt, error) {
	return protocol.Receipt{}, errors.New("runnerAPI: a secure federation takes no plain update")
}

// TestRunnerAbandonsStalledSecureRound: an aggregator that never moves a
// secure round past a stage (a hostile one; here the real Service, whose
// clock never reaches the stage deadline and whose other merchants never
// send) held the merchant's client in the round until its context ended,
// polling every PollInterval, never joining another round. The runner now
// gives a secure round Options.SecureRoundTimeout: past it the round is
// recorded as abandoned with nothing debited (no masked input left), and
// the runner goes back to polling; the next round is joined (here
// abandoned the same way, since the aggregator stalls it too).
func TestRunnerAbandonsStalledSecureRound(t *testing.T) {
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	f := newFedPolicy(t, sqliteBackend(t), secureConfig(), p)
	rep := f.start(t)
	var svc atomic.Pointer[aggregator.Service]
	svc.Store(rep.svc)
	api := runnerAPI{inProcessAPI{svc: &svc, merchant: "m1", t: t}}
	f.enrol(t, rep, secureMerchants...)
	if err := rep.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := rep.svc.CurrentRound(ctx, "m1")
	if err != nil || first.Plan.Secure == nil || !first.Selected {
		t.Fatalf("current round %+v, %v; want a secure round selecting m1", first, err)
	}

	dir := t.TempDir()
	store, state, err := client.OpenState(dir, "m1")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waits := 0 // times the runner went back to polling after the first round
	run, err := client.NewRunner(client.Options{
		API: api, Merchant: &keys.Merchant{ID: "m1", Signing: f.merchant["m1"]},
		Store: store, State: state, EpsilonCap: 10, Delta: 1e-6, Now: f.clock.Now,
		PollInterval: 2 * time.Millisecond, SecureRoundTimeout: 100 * time.Millisecond,
		Progress: func(pr client.Progress) {
			if pr.Stage != client.StageWait || pr.Joined != 1 {
				return
			}
			// Back to polling after the first round: the aggregator fails it
			// at its deadline and opens the next one, which it stalls too.
			waits++
			for range 10 {
				f.clock.Add(time.Hour)
				if err := rep.svc.Tick(ctx); err != nil {
					t.Error(err)
					return
				}
				if r, err := rep.svc.CurrentRound(ctx, "m1"); err == nil && r.ID != first.ID && r.Selected && !r.State.Terminal() {
					return
				}
			}
			t.Error("no second secure round selecting m1")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A guard, not a timing: the client used to wait here until it ended.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := run.Run(rctx, 2)
	if err != nil || n != 2 {
		t.Fatalf("Run: %d rounds, %v; want 2 rounds, both abandoned, no error", n, err)
	}
	if waits != 1 {
		t.Fatalf("the runner went back to polling %d times after the first round, want once", waits)
	}
	if len(state.Rounds) != 2 {
		t.Fatalf("state records %d rounds, want 2: %+v", len(state.Rounds), state.Rounds)
	}
	for i, rec := range state.Rounds {
		if rec.Outcome != client.OutcomeAbandoned || rec.LocalEpsilon != 0 {
			t.Errorf("round %d (%s): outcome %q, local ε %v; want %q, 0", i, rec.Round, rec.Outcome, rec.LocalEpsilon, client.OutcomeAbandoned)
		}
	}
	if state.Rounds[0].Round != first.ID || state.Rounds[1].Round == first.ID {
		t.Errorf("rounds recorded %s, %s; want %s then another", state.Rounds[0].Round, state.Rounds[1].Round, first.ID)
	}
	if len(state.Releases) != 0 {
		t.Errorf("local ledger holds %d releases, want none (no masked input was sent)", len(state.Releases))
	}
	saved, err := client.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Rounds) != 2 || saved.Rounds[1].Outcome != client.OutcomeAbandoned {
		t.Errorf("saved state: %+v, want both rounds recorded abandoned", saved.Rounds)
	}
	// The aggregator holds m1's advert of the second round and nothing more.
	st, err := rep.svc.SecureStatus(ctx, "m1", state.Rounds[1].Round)
	if err != nil || st.Stage != protocol.StageAdvertise || !st.Sent {
		t.Errorf("second round's status for m1: %+v, %v; want stage advertise with m1's advert", st, err)
	}
}
