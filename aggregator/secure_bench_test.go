package aggregator_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/policies"
)

// BenchmarkSecureRound times whole secure rounds through the real Service on
// SQLite: n merchants in this process (each a client.SecureParticipant
// polling every millisecond, encoding 50 random contributions with its noise
// share) and a loop calling Tick, from the round's opening to its
// publication. One op is one round.
func BenchmarkSecureRound(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("merchants=%d", n), func(b *testing.B) {
			ctx := context.Background()
			var pol strings.Builder
			pol.WriteString(strings.Split(securePolicy, "merchants:")[0] + "merchants:\n")
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("m%d", i+1)
				fmt.Fprintf(&pol, "  %s: {}\n", ids[i])
			}
			p, err := policies.Parse("bench.yaml", []byte(pol.String()))
			if err != nil {
				b.Fatal(err)
			}
			cfg := secureConfig()
			cfg.PlannedRounds = 100 // the budget outlasts the benchmark's rounds (run it with -benchtime ≤ 100x)
			f := newFedPolicy(b, sqliteBackend(b), cfg, p)
			r := f.start(b)
			var svc atomic.Pointer[aggregator.Service]
			svc.Store(r.svc)
			f.enrol(b, r, ids...)
			if err := r.svc.Tick(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				var round protocol.Round
				for _, m := range ids {
					if round, err = r.svc.CurrentRound(ctx, m); err != nil {
						b.Fatal(err)
					}
					part := &client.SecureParticipant{
						API: inProcessAPI{svc: &svc, merchant: m}, Merchant: &keys.Merchant{ID: m, Signing: f.merchant[m]},
						Round: round, Now: f.clock.Now, Poll: time.Millisecond,
						Input: func(ctx context.Context, plan secureplan.Round) ([]uint32, error) {
							contrib := make([][]float64, 50)
							for k := range contrib {
								g := make([]float64, plan.Params.Dim-1)
								for j := range g {
									g[j] = 0.01 * float64((k+j)%7-3)
								}
								if contrib[k], err = plan.Contribution(g); err != nil {
									return nil, err
								}
							}
							return distributed.Encode(ctx, contrib, plan.Params)
						},
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if res, err := part.Run(ctx); err != nil || res.Outcome != client.OutcomeAccepted {
							b.Errorf("%s: %+v, %v", m, res, err)
						}
					}()
				}
				for {
					if err := r.svc.Tick(ctx); err != nil {
						b.Fatal(err)
					}
					st, err := r.svc.SecureStatus(ctx, ids[0], round.ID)
					if err != nil {
						b.Fatal(err)
					}
					if st.State.Terminal() {
						if st.State != protocol.RoundPublished {
							b.Fatalf("round %s %s: %s", round.ID, st.State, st.Reason)
						}
						break
					}
					time.Sleep(time.Millisecond)
				}
				wg.Wait()
			}
		})
	}
}
