package aggregator

import (
	"context"
	"fmt"
	"slices"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// MaxStatusRounds is the most rounds Status returns.
const MaxStatusRounds = 500

// Status returns the limit most recent rounds (newest first) with the
// number of updates each accepted, and every enrolled merchant with its part
// in the live round (the newest round, when it is not terminal) and its
// budget as Budgets reports it. Rounds and merchants come from one snapshot
// of the store; the budgets are read right after it.
func (s *Service) Status(ctx context.Context, limit int) (protocol.FederationStatus, error) {
	if limit < 1 || limit > MaxStatusRounds {
		return protocol.FederationStatus{}, fmt.Errorf("federation status: limit %d outside 1..%d", limit, MaxStatusRounds)
	}
	var (
		rounds    []RoundRecord
		accepted  []int
		submitted []string // merchants with an update in the live round
		merchants []Merchant
	)
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		rounds, accepted, submitted = nil, nil, nil
		if rounds, err = tx.RecentRounds(ctx, limit); err != nil {
			return err
		}
		for i, r := range rounds {
			if i == 0 && !r.State.Terminal() {
				us, err := tx.RoundUpdates(ctx, r.ID)
				if err != nil {
					return err
				}
				for _, u := range us {
					submitted = append(submitted, u.Merchant)
				}
				accepted = append(accepted, len(us))
				continue
			}
			n, _, err := tx.CountUpdates(ctx, r.ID)
			if err != nil {
				return err
			}
			accepted = append(accepted, n)
		}
		merchants, err = tx.Merchants(ctx)
		return err
	})
	if err != nil {
		return protocol.FederationStatus{}, fmt.Errorf("federation status: %w", err)
	}
	// The budgets as GET /v1/budgets reports them: ledger heads and the
	// policy's caps.
	budgets, err := s.Budgets(ctx)
	if err != nil {
		return protocol.FederationStatus{}, fmt.Errorf("federation status: %w", err)
	}
	out := protocol.FederationStatus{At: s.now().UTC(), Rounds: make([]protocol.RoundSummary, len(rounds)),
		Merchants: make([]protocol.MerchantStatus, 0, len(merchants))}
	for i, r := range rounds {
		out.Rounds[i] = protocol.RoundSummary{
			ID: r.ID, Seq: r.Seq, State: r.State, OpenedAt: r.OpenedAt.UTC(), Deadline: r.Deadline.UTC(), ClosedAt: r.ClosedAt.UTC(),
			Quorum: r.Quorum, Selected: len(r.Selected), Accepted: accepted[i], BaseVersion: r.BaseVersion,
			Evaluation: r.Plan.EvaluationOnly(), Reason: r.Reason,
		}
	}
	var live *RoundRecord
	if len(rounds) > 0 && !rounds[0].State.Terminal() {
		live = &rounds[0]
	}
	for _, m := range merchants {
		ms := protocol.MerchantStatus{ID: m.ID, Region: m.Region, EnrolledAt: m.EnrolledAt.UTC()}
		switch {
		case m.Revoked:
			ms.State = protocol.MerchantRevoked
		case m.Stopped != "":
			ms.State, ms.Stopped = protocol.MerchantStopped, m.Stopped
		case live == nil:
			ms.State = protocol.MerchantIdle
		case slices.Contains(submitted, m.ID):
			ms.State = protocol.MerchantSubmitted
		case slices.Contains(live.Selected, m.ID):
			ms.State = protocol.MerchantWaiting
		default:
			ms.State = protocol.MerchantNotSelected
		}
		if i := slices.IndexFunc(budgets, func(b Budget) bool { return b.Merchant == m.ID }); i >= 0 {
			b := budgets[i]
			ms.Epsilon, ms.Releases, ms.EpsilonCap, ms.Delta = b.Epsilon, b.Releases, b.Cap, b.Delta
		}
		out.Merchants = append(out.Merchants, ms)
	}
	return out, nil
}
