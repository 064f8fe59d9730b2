package aggregator_test

import (
	"context"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestStatus follows a round through Service.Status: the live round's
// accepted count and each merchant's part in it, then the same round failed
// (quorum missed) under its successor, and ε as the submitter's receipt
// reported it.
func TestStatus(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFed(t, b, aggregator.RoundConfig{Deadline: time.Minute, Quorum: 2})
			r := f.start(t)
			f.enrol(t, r, "m1", "m2", "m3")
			tick(t, r) // round 2 samples all three
			rc, err := f.submitHonest(t, r, "m1")
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.svc.Status(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Rounds) != 2 {
				t.Fatalf("rounds: got %d, want 2 (round 1 replaced at the first tick, round 2 live)", len(st.Rounds))
			}
			live := st.Rounds[0]
			if live.Seq != 2 || live.State != protocol.RoundCollecting || live.Accepted != 1 || live.Selected != 3 || live.Quorum != 2 || !live.ClosedAt.IsZero() {
				t.Errorf("live round: got %+v, want seq 2 collecting, 1 of 3 accepted, quorum 2, not closed", live)
			}
			if st.Rounds[1].Seq != 1 || !st.Rounds[1].State.Terminal() || st.Rounds[1].Accepted != 0 {
				t.Errorf("round 1: got %+v, want seq 1 terminal with no update", st.Rounds[1])
			}
			want := map[string]string{"m1": protocol.MerchantSubmitted, "m2": protocol.MerchantWaiting, "m3": protocol.MerchantWaiting}
			for _, m := range st.Merchants {
				if m.State != want[m.ID] {
					t.Errorf("merchant %s: got state %q, want %q", m.ID, m.State, want[m.ID])
				}
				if m.EpsilonCap != 1 || m.Delta != 1e-6 {
					t.Errorf("merchant %s: got cap %v δ %v, want the policy's 1 and 1e-6", m.ID, m.EpsilonCap, m.Delta)
				}
			}
			if len(st.Merchants) != 3 || st.Merchants[0].ID != "m1" || st.Merchants[0].Epsilon != rc.Epsilon || st.Merchants[0].Releases == 0 {
				t.Errorf("merchants: got %+v, want m1 first with the receipt's ε %v", st.Merchants, rc.Epsilon)
			}

			f.clock.Add(time.Minute)
			tick(t, r) // quorum missed: round 2 fails, round 3 opens
			st, err = r.svc.Status(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Rounds) != 2 || st.Rounds[0].Seq != 3 || st.Rounds[0].Accepted != 0 ||
				st.Rounds[1].State != protocol.RoundFailed || st.Rounds[1].Accepted != 1 || st.Rounds[1].ClosedAt.IsZero() || st.Rounds[1].Reason == "" {
				t.Errorf("after the deadline: got %+v, want round 3 live and round 2 failed with 1 update, closed, a reason", st.Rounds)
			}
			if st.Merchants[0].State != protocol.MerchantWaiting {
				t.Errorf("m1 in round 3: got %q, want waiting", st.Merchants[0].State)
			}
			if err := r.svc.StopMerchant(ctx, "m2", protocol.MerchantStop{Reason: "local cap reached"}); err != nil {
				t.Fatal(err)
			}
			if st, err = r.svc.Status(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if m := st.Merchants[1]; m.ID != "m2" || m.State != protocol.MerchantStopped || m.Stopped != "local cap reached" {
				t.Errorf("m2 after it stopped: got %+v, want stopped with its reason", m)
			}
			for _, limit := range []int{0, aggregator.MaxStatusRounds + 1} {
				if _, err := r.svc.Status(ctx, limit); err == nil {
					t.Errorf("Status(%d): got no error", limit)
				}
			}
		})
	}
}
