package aggregator_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

const securePolicy = `version: 1
federation: secure
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  max_customers: 1000
  allowed_features: [all]
  retention_days: 365
aggregation:
  merge: fedavg
  min_cohort: 3
merchants:
  m1: {}
  m2: {}
  m3: {}
  m4: {}
  m5: {}
  m6: {}
`

var secureMerchants = []string{"m1", "m2", "m3", "m4", "m5", "m6"}

func secureConfig() aggregator.RoundConfig {
	return aggregator.RoundConfig{
		SecureAggregation: true, SecureStageTimeout: time.Minute, Deadline: time.Hour, Quorum: 1,
		PlannedRounds: 5, SamplingRate: 0.5, LearningRate: 0.5, Server: aggregator.ServerFedAvg, ServerLR: 1,
	}
}

// inProcessAPI is a merchant's view of the current Service, answering
// refusals as the HTTP API's problems would be.
type inProcessAPI struct {
	svc      *atomic.Pointer[aggregator.Service]
	merchant string
	// sent records every envelope the merchant uploads.
	sent func(env []byte)
}

func (a inProcessAPI) SecureStatus(ctx context.Context, round string) (protocol.SecureStatus, error) {
	st, err := a.svc.Load().SecureStatus(ctx, a.merchant, round)
	return st, problem(err)
}

func (a inProcessAPI) SubmitSecure(ctx context.Context, round string, env []byte) (protocol.SecureReceipt, error) {
	if a.sent != nil {
		a.sent(env)
	}
	rc, err := a.svc.Load().SubmitSecure(ctx, a.merchant, env)
	return rc, problem(err)
}

func problem(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, aggregator.ErrAudit):
		return &apiclient.Problem{Status: 503, Type: apiclient.TypeUnavailable, Detail: err.Error()}
	case errors.Is(err, aggregator.ErrRoundClosed):
		return &apiclient.Problem{Status: 409, Type: apiclient.TypeRoundClosed, Detail: err.Error()}
	case errors.Is(err, aggregator.ErrNotFound):
		return &apiclient.Problem{Status: 404, Type: apiclient.TypeNotFound, Detail: err.Error()}
	case errors.Is(err, protocol.ErrSecureStage):
		return &apiclient.Problem{Status: 409, Type: apiclient.TypeSecureStage, Detail: err.Error()}
	case errors.Is(err, aggregator.ErrConflict):
		return &apiclient.Problem{Status: 409, Type: apiclient.TypeConflict, Detail: err.Error()}
	case errors.Is(err, dp.ErrBudgetExhausted):
		return &apiclient.Problem{Status: 403, Type: apiclient.TypeBudgetExhausted, Detail: err.Error()}
	case errors.Is(err, protocol.ErrInvalidUpdate):
		return &apiclient.Problem{Status: 400, Type: apiclient.TypeInvalidUpdate, Detail: err.Error()}
	}
	return fmt.Errorf("transient: %w", err) // retried, as a transport error is
}

// testLog writes a participant's log lines to the test's log.
type testLog struct{ t testing.TB }

func (w testLog) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// secureRun is one secure round played in process.
type secureRun struct {
	f       *fed
	svc     atomic.Pointer[aggregator.Service]
	replica *replica
	round   protocol.Round
	inputs  map[string][]uint32 // each merchant's encoding, as it masked it
	plan    secureplan.Round
	results map[string]client.SecureResult
	// envelopes are every sealed message the merchants sent.
	envelopes [][]byte
	mu        sync.Mutex
}

// playSecure runs round 2 (round 1 opens before anyone is enrolled and
// fails) with six merchants encoding known contributions without noise: m6
// drops out after sharing its keys, m3 after its masked input was accepted
// (the complete graph's threshold of 3 of 5 neighbours holds both).
// With restart, the Service is replaced by a new one on the same database at
// every stage change, as a kill -9 and restart would.
func playSecure(t *testing.T, b backend, restart bool, logger *slog.Logger) *secureRun {
	t.Helper()
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	f := newFedPolicy(t, b, secureConfig(), p)
	f.logger = logger
	sr := &secureRun{f: f, inputs: map[string][]uint32{}, results: map[string]client.SecureResult{}}
	sr.replica = f.start(t)
	sr.svc.Store(sr.replica.svc)
	f.enrol(t, sr.replica, secureMerchants...)
	if err := sr.replica.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if sr.round, err = sr.replica.svc.CurrentRound(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if st, err := sr.replica.svc.SecureStatus(ctx, "m1", sr.round.ID); err != nil || st.Stage != protocol.StageAdvertise {
		t.Fatalf("secure status %+v, %v; want the advertise stage", st, err)
	}
	if sr.round.ID != "round-000002" || sr.round.Plan.Secure == nil || len(sr.round.Plan.Secure.Merchants) != 6 {
		t.Fatalf("round %s with secure plan %+v, want round-000002 with all six merchants", sr.round.ID, sr.round.Plan.Secure)
	}
	if sr.plan, err = secureplan.Decode(sr.round.Plan.Secure); err != nil {
		t.Fatalf("round %s: %v (%s)", sr.round.ID, err, sr.round.Plan.Secure.Encoding)
	}
	if got := sr.round.Plan.Secure.MinSurvivors; got < 3 {
		t.Fatalf("min survivors %d below the policy's min_cohort 3", got)
	}
	base, err := hazard.Unmarshal(sr.round.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errDrop := errors.New("m6 leaves after sharing")
	for i, m := range secureMerchants {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		round, err := sr.svc.Load().CurrentRound(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		part := &client.SecureParticipant{
			API: inProcessAPI{svc: &sr.svc, merchant: m, sent: func(env []byte) {
				sr.mu.Lock()
				sr.envelopes = append(sr.envelopes, env)
				sr.mu.Unlock()
			}},
			Merchant: &keys.Merchant{ID: m, Signing: f.merchant[m]}, Round: round,
			Now: f.clock.Now, Poll: 2 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
			Input: func(ctx context.Context, plan secureplan.Round) ([]uint32, error) {
				rng := rand.New(rand.NewPCG(uint64(i), 77))
				var contrib [][]float64
				for range 20 + 10*i {
					g := make([]float64, len(base.Params))
					for j := range g {
						g[j] = rng.NormFloat64() * 0.3
					}
					c, err := plan.Contribution(g)
					if err != nil {
						return nil, err
					}
					contrib = append(contrib, c)
				}
				x, err := distributed.EncodeWithoutNoise(ctx, contrib, plan.Params)
				sr.mu.Lock()
				sr.inputs[m] = x
				sr.mu.Unlock()
				return x, err
			},
		}
		if m == "m6" {
			part.BeforeMask = func(secureplan.Round) error { return errDrop }
		}
		if m == "m3" {
			part.Hook = func(point string) {
				if point == client.HookSecureMasked {
					cancel() // killed after masking
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := part.Run(pctx)
			switch {
			case m == "m6" && errors.Is(err, errDrop), m == "m3" && errors.Is(err, context.Canceled):
			case err != nil:
				t.Errorf("%s: %v", m, err)
			}
			sr.mu.Lock()
			sr.results[m] = res
			sr.mu.Unlock()
		}()
	}
	// Tick; move the clock past a stage's deadline when nothing happens.
	deadline := time.Now().Add(40 * time.Second)
	last, quiet := protocol.SecureStage(""), time.Now()
	restarts := 0
	for {
		if err := sr.svc.Load().Tick(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := sr.svc.Load().SecureStatus(ctx, "m1", sr.round.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State.Terminal() {
			break
		}
		switch {
		case st.Stage != last:
			last, quiet = st.Stage, time.Now()
			t.Logf("stage %s", st.Stage)
			if restart {
				// As a kill: the old replica's audit writer and store go away.
				sr.replica.log.Close()
				sr.replica.store.Close()
				sr.replica = f.start(t)
				sr.svc.Store(sr.replica.svc)
				restarts++
			}
		case (st.Stage == protocol.StageMask || st.Stage == protocol.StageUnmask) && time.Since(quiet) > 300*time.Millisecond:
			// Only m6 (mask) and m3 (unmask) are missing by design: close
			// the stage at its deadline.
			f.clock.Add(61 * time.Second)
			quiet = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("round still in stage %s, state %s, deadline %s, clock %s", st.Stage, st.State, st.StageDeadline, f.clock.Now())
		}
		time.Sleep(3 * time.Millisecond)
	}
	wg.Wait()
	if restart && restarts < 3 {
		// One per stage seen; a stage that passes between two polls is not seen.
		t.Errorf("%d restarts, want one at each stage change (at least three of the four)", restarts)
	}
	return sr
}

// TestSecureRoundDropouts: the published aggregate is exactly the sum of the
// masked inputs (m1–m5: m3 dropped after masking, so its input is in; m6
// before, so it is out, its pairwise masks removed with its key's shares),
// and the published model is the base plus the step that sum gives; each
// masker was debited one ddgauss release, m6 nothing.
// Run with and without a restart of the aggregator at every stage, on every
// store.
func TestSecureRoundDropouts(t *testing.T) {
	for _, restart := range []bool{false, true} {
		for _, b := range backends(t) { // a fresh database each
			t.Run(fmt.Sprintf("%s/restart=%v", b.name, restart), func(t *testing.T) {
				ctx := context.Background()
				sr := playSecure(t, b, restart, nil)
				svc := sr.svc.Load()
				bits := sr.plan.Params.Bits
				want := make([]uint32, sr.plan.Params.PaddedDim())
				for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
					for j, w := range sr.inputs[m] {
						want[j] = (want[j] + w) & (1<<bits - 1)
					}
				}
				var rec aggregator.SecureRoundRecord
				err := sr.replica.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) (err error) {
					rec, err = tx.SecureRound(ctx, sr.round.ID, aggregator.LockNone)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if rec.Stage != protocol.StageDone {
					t.Fatalf("secure stage %s (%s), want done", rec.Stage, rec.Reason)
				}
				got := make([]uint32, len(rec.Result)/4)
				for i := range got {
					got[i] = binary.BigEndian.Uint32(rec.Result[4*i:])
				}
				if !slices.Equal(got, want) {
					t.Fatalf("unmasked sum differs from the survivors' sum mod 2^%d:\ngot  %v\nwant %v", bits, got[:4], want[:4])
				}
				// The published step, recomputed from the survivors' sum.
				sum, err := distributed.DecodeSum(want, sr.plan.Params)
				if err != nil {
					t.Fatal(err)
				}
				grad, customers := sum[:len(sum)-1], sum[len(sum)-1]/sr.plan.CountScale
				if wantN := float64(20 + 30 + 40 + 50 + 60); math.Abs(customers-wantN) > 1 {
					t.Errorf("count coordinate gives %.3f customers, want %v (no noise)", customers, wantN)
				}
				v1, err := svc.Model(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				v2, err := svc.Model(ctx, 2)
				if err != nil {
					t.Fatalf("no version 2 published: %v", err)
				}
				m1, _ := hazard.Unmarshal(v1.Model, "")
				m2, _ := hazard.Unmarshal(v2.Model, "")
				for j := range m1.Params {
					step := -0.5 * grad[j] / customers
					if d := m2.Params[j] - m1.Params[j]; math.Abs(d-step) > 1e-9*(1+math.Abs(step)) {
						t.Fatalf("parameter %d moved by %v, want %v", j, d, step)
					}
				}
				if len(v2.Contributions) != 5 || slices.ContainsFunc(v2.Contributions, func(c protocol.Contribution) bool { return c.Merchant == "m6" }) {
					t.Errorf("contributions %+v, want m1–m5", v2.Contributions)
				}
				budgets, err := svc.Budgets(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, bg := range budgets {
					wantReleases := 1
					if bg.Merchant == "m6" {
						wantReleases = 0
					}
					if bg.Releases != wantReleases || (wantReleases == 1) != (bg.Epsilon > 0) || bg.Epsilon > bg.Cap {
						t.Errorf("%s: %d releases, ε %v (cap %v); want %d", bg.Merchant, bg.Releases, bg.Epsilon, bg.Cap, wantReleases)
					}
				}
				// The ledger's ε is the accountant's for one ddgauss release.
				l, _ := dp.NewLedger(dp.AccountantOptions{})
				if err := l.Add(sr.plan.Release); err != nil {
					t.Fatal(err)
				}
				eps, _, err := l.Epsilon(1e-6)
				if err != nil {
					t.Fatal(err)
				}
				if rc := sr.results["m1"].Receipt; rc == nil || math.Abs(rc.Epsilon-eps) > 1e-9 {
					t.Errorf("m1's receipt %+v, want ε %v", rc, eps)
				}
				if sr.results["m1"].Outcome != client.OutcomeAccepted {
					t.Errorf("m1 outcome %q, want accepted", sr.results["m1"].Outcome)
				}
				sr.f.verifyAudit(t, sr.replica)
				acts := auditActions(t, sr.replica.store)
				// A restart between an audit append and the outbox row's
				// delete appends that record again (at least once).
				if n := acts["round.secure.message ok"]; n < 6+6+5+4 || (!restart && n != 6+6+5+4) || acts["round.publish ok"] != 1 {
					t.Errorf("audit actions %v: want 21 accepted messages (6 keys, 6 shares, 5 masked, 4 unmask) and one publish", acts)
				}
			})
		}
	}
}
