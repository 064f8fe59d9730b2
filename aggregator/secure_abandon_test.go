package aggregator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// hostileRounds plays an aggregator that opens secure round after secure
// round selecting its merchant, takes its advert and fails the round before
// anyone masks: each round a copy of a real secure round under a new id.
type hostileRounds struct {
	base protocol.Round
	mu   sync.Mutex
	n    int // the current round's number
}

func (h *hostileRounds) id() string { return fmt.Sprintf("hostile-%06d", h.n) }

func (h *hostileRounds) CurrentRound(context.Context) (protocol.Round, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.base
	r.ID, r.Seq = h.id(), int64(1000+h.n)
	return r, nil
}

func (h *hostileRounds) SubmitUpdate(context.Context, string, []byte) (protocol.Receipt, error) {
	return protocol.Receipt{}, errors.New("hostileRounds: no plain update")
}

func (h *hostileRounds) SubmitSecure(_ context.Context, round string, _ []byte) (protocol.SecureReceipt, error) {
	return protocol.SecureReceipt{Round: round, Merchant: "m1", Stage: protocol.StageAdvertise}, nil
}

func (h *hostileRounds) SecureStatus(_ context.Context, round string) (protocol.SecureStatus, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if round == h.id() {
		h.n++ // the next poll for a round finds a new one
	}
	return protocol.SecureStatus{Round: round, State: protocol.RoundFailed, Stage: protocol.StageFailed, Reason: "too few merchants"}, nil
}

// TestStateBoundedUnderFailedSecureRounds: an aggregator that opens secure
// rounds selecting a merchant and fails each before masking (nothing
// debited) grew the client's state.json by one record per round, rewritten
// whole at every save, for as long as it kept it up. Records of such quiet
// rounds are now kept for the latest MaxQuietRounds and counted by outcome
// beyond: the file stays the same size over 200 more rounds. What the
// records protect holds: a round that released something (here one with a
// receipt and a local ε) is never pruned and never joined again, and the
// latest quiet rounds are refused as joined too.
func TestStateBoundedUnderFailedSecureRounds(t *testing.T) {
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	f := newFedPolicy(t, sqliteBackend(t), secureConfig(), p)
	rep := f.start(t)
	f.enrol(t, rep, secureMerchants...)
	if err := rep.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	base, err := rep.svc.CurrentRound(ctx, "m1")
	if err != nil || base.Plan.Secure == nil || !base.Selected {
		t.Fatalf("current round %+v, %v; want a secure round selecting m1", base, err)
	}
	h := &hostileRounds{base: base}

	dir := t.TempDir()
	store, state, err := client.OpenState(dir, "m1")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	released := client.RoundRecord{Round: "round-000001", Seq: 1, Outcome: client.OutcomeAccepted,
		Receipt: &protocol.Receipt{Round: "round-000001", Merchant: "m1", Epsilon: 0.25, EpsilonCap: 1}, LocalEpsilon: 0.25, At: f.clock.Now()}
	state.Rounds = append(state.Rounds, released)
	run, err := client.NewRunner(client.Options{
		API: h, Merchant: &keys.Merchant{ID: "m1", Signing: f.merchant["m1"]},
		Store: store, State: state, EpsilonCap: 10, Delta: 1e-6, Now: f.clock.Now, PollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	const first, more = 100, 200
	if n, err := run.Run(ctx, first); err != nil || n != first {
		t.Fatalf("Run: %d rounds, %v; want %d", n, err, first)
	}
	after := size()
	if n, err := run.Run(ctx, more); err != nil || n != more {
		t.Fatalf("Run: %d rounds, %v; want %d", n, err, more)
	}
	// The only growth allowed: the pruned count's digits ("36" → "236").
	if got := size(); got > after+8 {
		t.Errorf("state.json: %d bytes after %d failed rounds, %d after %d more; want the same size", after, first, got, more)
	}
	saved, err := client.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(saved.Rounds), 1+client.MaxQuietRounds; got != want {
		t.Errorf("saved rounds: %d, want %d (the released one and the latest %d failed)", got, want, client.MaxQuietRounds)
	}
	if got, want := saved.PrunedRounds[client.OutcomeFailed], first+more-client.MaxQuietRounds; got != want {
		t.Errorf("pruned failed rounds: %d, want %d", got, want)
	}
	if got, want := saved.RoundsJoined(), 1+first+more; got != want {
		t.Errorf("rounds joined: %d, want %d", got, want)
	}
	if rec, ok := saved.Joined(released.Round); !ok || rec.LocalEpsilon != 0.25 || rec.Receipt == nil {
		t.Errorf("the released round's record: %+v, %v; want kept whole", rec, ok)
	}
	latest := fmt.Sprintf("hostile-%06d", first+more-1)
	oldest := fmt.Sprintf("hostile-%06d", first+more-client.MaxQuietRounds)
	for _, id := range []string{latest, oldest} {
		if rec, ok := saved.Joined(id); !ok || rec.Outcome != client.OutcomeFailed {
			t.Errorf("round %s: %+v, %v; want recorded failed", id, rec, ok)
		}
	}
	if _, ok := saved.Joined("hostile-000000"); ok {
		t.Error("the first failed round is still recorded")
	}
}
