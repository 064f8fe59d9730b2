package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
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
	// sent records every envelope the merchant uploads; accepted every
	// stage message the aggregator accepted.
	sent     func(env []byte)
	accepted func(stage protocol.SecureStage, env []byte)
	// rewrite, when set, replaces the envelope about to be sent.
	rewrite func(env []byte) []byte
	// deviate, when set, rewrites the aggregator's answer to a status
	// request: a malicious aggregator's messages to this merchant.
	deviate func(t testing.TB, merchant string, st protocol.SecureStatus) protocol.SecureStatus
	t       testing.TB
}

func (a inProcessAPI) SecureStatus(ctx context.Context, round string) (protocol.SecureStatus, error) {
	st, err := a.svc.Load().SecureStatus(ctx, a.merchant, round)
	if err == nil && a.deviate != nil {
		st = a.deviate(a.t, a.merchant, st)
	}
	return st, problem(err)
}

func (a inProcessAPI) SubmitSecure(ctx context.Context, round string, env []byte) (protocol.SecureReceipt, error) {
	if a.rewrite != nil {
		env = a.rewrite(env)
	}
	if a.sent != nil {
		a.sent(env)
	}
	rc, err := a.svc.Load().SubmitSecure(ctx, a.merchant, env)
	if err == nil && a.accepted != nil {
		a.accepted(rc.Stage, env) // a duplicate too: the first answer may have been lost
	}
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
	// envelopes are every sealed message the merchants sent; accepted
	// holds each merchant's accepted envelope of each stage.
	envelopes [][]byte
	accepted  map[protocol.SecureStage]map[string][]byte
	mu        sync.Mutex
}

// playSecure runs round 2 (round 1 opens before anyone is enrolled and
// fails) with six merchants encoding known contributions without noise: m6
// drops out after sharing its keys, m3 after its masked input was accepted
// (the complete graph's threshold of 3 of 5 neighbours holds both).
// With restart, the Service is replaced by a new one on the same database at
// every stage change, as a kill -9 and restart would.
// playOpts vary playSecure: restart at every stage, the services' logger,
// and tamper, which alters a merchant's encoding before it is masked.
type playOpts struct {
	restart bool
	logger  *slog.Logger
	tamper  func(merchant string, x []uint32)
	// invalidMask has m6 send a malformed masked input (one word short)
	// instead of none: refused, m6 is a dropout all the same.
	invalidMask bool
	// attestThenDrop has m3 leave after its attestation was accepted, in the
	// unmask stage, instead of after masking (in the consistency stage).
	attestThenDrop bool
	// split plays a malicious aggregator (splitRequests) against six
	// merchants that all stay; withoutCheck has them answer the unmask
	// request without the consistency check.
	split, withoutCheck bool
	// substitute plays a malicious aggregator that hands m1 keys of its own
	// for its neighbours (keySubstitution) against six merchants that all
	// stay; pinned gives every merchant the cohort's enrolled signing keys
	// (SecureParticipant.PeerKeys), withoutAdvertCheck has them use the
	// relayed keys unchecked (the control).
	substitute                 *keySubstitution
	pinned, withoutAdvertCheck bool
	// reload, when set, is a policy document the service reloads once the
	// round reaches stage reloadAt.
	reload   string
	reloadAt protocol.SecureStage
	// atReload, when set, runs once at stage reloadAt, after the reload.
	atReload func(t *testing.T, sr *secureRun)
}

func playSecure(t *testing.T, b backend, o playOpts) *secureRun {
	t.Helper()
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	f := newFedPolicy(t, b, secureConfig(), p)
	f.logger = o.logger
	restart := o.restart
	sr := &secureRun{f: f, inputs: map[string][]uint32{}, results: map[string]client.SecureResult{}, accepted: map[protocol.SecureStage]map[string][]byte{}}
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
	allStay := o.split || o.substitute != nil
	var pinned map[string]ed25519.PublicKey
	if o.pinned {
		pinned = map[string]ed25519.PublicKey{}
		for _, m := range secureMerchants {
			pinned[m] = f.merchant[m].Public().(ed25519.PublicKey)
		}
	}
	if o.substitute != nil {
		o.substitute.start(t, sr)
	}
	for i, m := range secureMerchants {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		round, err := sr.svc.Load().CurrentRound(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		part := &client.SecureParticipant{
			API: inProcessAPI{svc: &sr.svc, merchant: m, t: t, sent: func(env []byte) {
				sr.mu.Lock()
				sr.envelopes = append(sr.envelopes, env)
				sr.mu.Unlock()
			}, accepted: func(stage protocol.SecureStage, env []byte) {
				sr.mu.Lock()
				if sr.accepted[stage] == nil {
					sr.accepted[stage] = map[string][]byte{}
				}
				sr.accepted[stage][m] = env
				sr.mu.Unlock()
			}},
			Merchant: &keys.Merchant{ID: m, Signing: f.merchant[m]}, Round: round,
			Now: f.clock.Now, Poll: 2 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
			WithoutConsistencyCheck: o.withoutCheck, WithoutAdvertCheck: o.withoutAdvertCheck, PeerKeys: pinned,
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
				if err == nil && o.tamper != nil {
					o.tamper(m, x)
				}
				sr.mu.Lock()
				sr.inputs[m] = x
				sr.mu.Unlock()
				return x, err
			},
		}
		if o.split {
			api := part.API.(inProcessAPI)
			api.deviate = splitRequests
			part.API = api
		}
		if o.substitute != nil {
			api := part.API.(inProcessAPI)
			api.deviate = o.substitute.deviate
			part.API = api
			if m == "m1" {
				part.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testLog{t}, o.substitute), nil))
			}
		}
		if m == "m6" && !o.invalidMask && !allStay {
			part.BeforeMask = func(secureplan.Round) error { return errDrop }
		}
		if m == "m6" && o.invalidMask {
			var masking atomic.Bool
			part.BeforeMask = func(secureplan.Round) error { masking.Store(true); return nil }
			api := part.API.(inProcessAPI)
			api.rewrite = func(env []byte) []byte {
				if !masking.Load() {
					return env
				}
				body, _ := secagg.MaskedMsg{From: 6, Words: make([]uint32, sr.plan.Config.Length-1)}.MarshalBinary()
				payload, _ := json.Marshal(protocol.SecureMessage{Version: protocol.Version, Round: round.ID, Merchant: m, Stage: protocol.StageMask, Body: body})
				return f.seal(t, protocol.Update{Merchant: m, Round: round.ID, BaseVersion: round.BaseVersion}, func(o *sealOpts) { o.payload = payload })
			}
			part.API = api
		}
		if m == "m3" && !allStay {
			leave := client.HookSecureMasked
			if o.attestThenDrop {
				leave = client.HookSecureAttested
			}
			part.Hook = func(point string) {
				if point == leave {
					cancel() // killed after masking, or after attesting
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := part.Run(pctx)
			switch {
			case m == "m6" && errors.Is(err, errDrop), m == "m3" && errors.Is(err, context.Canceled),
				m == "m6" && o.invalidMask && apiclient.IsProblem(err, apiclient.TypeInvalidUpdate),
				// The live server refuses an answer to a request it did not send.
				o.split && o.withoutCheck && apiclient.IsProblem(err, apiclient.TypeInvalidUpdate),
				// Boxes m1 sealed to the substituted keys do not open.
				o.substitute != nil && m != "m1" && err != nil && strings.Contains(err.Error(), ": mask: "):
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
	last := protocol.SecureStage("")
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
		if o.reload != "" && st.Stage == o.reloadAt {
			p, err := policies.Parse("reload.yaml", []byte(o.reload))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sr.svc.Load().Reload(ctx, "admin:ops", p, f.cfg); err != nil {
				t.Fatal(err)
			}
			o.reload = ""
			if o.atReload != nil {
				o.atReload(t, sr)
			}
		}
		switch {
		case st.Stage != last:
			last = st.Stage
			t.Logf("stage %s", st.Stage)
			if restart {
				// As a kill: the old replica's audit writer and store go away.
				sr.replica.log.Close()
				sr.replica.store.Close()
				sr.replica = f.start(t)
				sr.svc.Store(sr.replica.svc)
				restarts++
			}
		case (o.split && st.Stage == protocol.StageUnmask || o.substitute != nil) && sr.settled(st.Stage) == len(secureMerchants):
			// Every merchant answered or gave up, in a round the aggregator
			// cannot finish: close its stage at the deadline.
			f.clock.Add(61 * time.Second)
		case sr.waitsOnDropout(st.Stage, o.attestThenDrop):
			// Only m6 (mask) or m3 too (consistency, or unmask when it
			// attested) are missing, by design: close the stage at its
			// deadline.
			f.clock.Add(61 * time.Second)
		}
		if time.Now().After(deadline) {
			t.Fatalf("round still in stage %s, state %s, deadline %s, clock %s", st.Stage, st.State, st.StageDeadline, f.clock.Now())
		}
		time.Sleep(3 * time.Millisecond)
	}
	wg.Wait()
	if restart && restarts < 4 {
		// One per stage seen; a stage that passes between two polls is not seen.
		t.Errorf("%d restarts, want one at each stage change (at least four of the five)", restarts)
	}
	return sr
}

// settled is the number of merchants whose participant returned or whose
// message for stage was accepted.
func (sr *secureRun) settled(stage protocol.SecureStage) int {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	n := len(sr.results)
	for m := range sr.accepted[stage] {
		if _, done := sr.results[m]; !done {
			n++
		}
	}
	return n
}

// waitsOnDropout reports whether stage has every message but the planned
// dropouts': five masked inputs (not m6's), then four attestations (not
// m3's, killed after masking) or, when m3 leaves after attesting, five
// attestations and four unmask answers. (The unmask stage waits only for the
// attesters, so without attestThenDrop it closes on its own.)
func (sr *secureRun) waitsOnDropout(stage protocol.SecureStage, attestThenDrop bool) bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	n := len(sr.accepted[stage])
	switch stage {
	case protocol.StageMask:
		return n == len(secureMerchants)-1
	case protocol.StageConsistency:
		return !attestThenDrop && n == len(secureMerchants)-2 || attestThenDrop && n == len(secureMerchants)-1
	case protocol.StageUnmask:
		return attestThenDrop && n == len(secureMerchants)-2
	}
	return false
}

// TestSecureRoundDropouts: the published aggregate is exactly the sum of the
// masked inputs (m1–m5: m3 dropped after masking, so its input is in; m6
// before, so it is out, its pairwise masks removed with its key's shares),
// and the published model is the base plus the step that sum gives; each
// masker was debited one ddgauss release, m6 nothing.
// Run with and without a restart of the aggregator at every stage (the
// consistency stage included), with m3 leaving after it attested, and with
// m6 sending a malformed masked input (refused, so a dropout all the same),
// on every store.
func TestSecureRoundDropouts(t *testing.T) {
	for _, o := range []playOpts{{}, {restart: true}, {attestThenDrop: true}, {restart: true, attestThenDrop: true}, {invalidMask: true}} {
		restart := o.restart
		for _, b := range backends(t) { // a fresh database each
			t.Run(fmt.Sprintf("%s/restart=%v/attested=%v/invalid=%v", b.name, restart, o.attestThenDrop, o.invalidMask), func(t *testing.T) {
				ctx := context.Background()
				sr := playSecure(t, b, o)
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
					t.Errorf("m1 outcome %q (%s), want accepted", sr.results["m1"].Outcome, sr.results["m1"].Reason)
				}
				// An accepted message sent again after the round published (its
				// answer lost to a restart) is a duplicate, not a refusal that
				// would make its sender a dropout.
				if rc, err := svc.SubmitSecure(ctx, "m1", sr.accepted[protocol.StageUnmask]["m1"]); err != nil || !rc.Duplicate {
					t.Errorf("m1's unmask message again after the round published: %+v, %v; want a duplicate", rc, err)
				}
				if restart {
					// A replica killed between a commit and its audit append
					// leaves the record in the outbox, which Tick appends
					// once it is 30 s old (repairAfter).
					sr.f.clock.Add(31 * time.Second)
					if err := svc.Tick(ctx); err != nil {
						t.Fatal(err)
					}
				}
				sr.f.verifyAudit(t, sr.replica)
				acts := auditActions(t, sr.replica.store)
				// A restart between an audit append and the outbox row's
				// delete appends that record again (at least once).
				if o.invalidMask && acts["round.secure.message denied"] != 1 {
					t.Errorf("audit actions %v: want m6's malformed masked input denied", acts)
				}
				attests := 4 // m1, m2, m4, m5: m3 left before attesting
				if o.attestThenDrop {
					attests = 5
				}
				if n, want := acts["round.secure.message ok"], 6+6+5+attests+4; n < want || (!restart && n != want) || acts["round.publish ok"] != 1 {
					t.Errorf("audit actions %v: want %d accepted messages (6 keys, 6 shares, 5 masked, %d attestations, 4 unmask) and one publish", acts, want, attests)
				}
				if acts["round.secure.consistency ok"] != 1 || acts["round.secure.unmask ok"] != 1 {
					t.Errorf("audit actions %v: want the consistency and unmask stages opened once each", acts)
				}
				if got, want := sr.results["m3"].Outcome, ""; got != want {
					t.Errorf("m3 (killed) outcome %q, want none", got)
				}
			})
		}
	}
}

// TestSecureNormCheck: m2 inflates its encoding (a quarter of the modulus
// added to every word) before masking it. The aggregator cannot see whose
// input is out of range, but the unmasked sum's norm is far above what an
// honest cohort reaches: the round fails unpublished, and the merchants that
// masked were still debited (their noise shares were released).
func TestSecureNormCheck(t *testing.T) {
	b := sqliteBackend(t)
	sr := playSecure(t, b, playOpts{tamper: inflateM2})
	ctx := context.Background()
	svc := sr.svc.Load()
	if sr.plan.Params.Bits != 32 {
		t.Logf("modulus 2^%d", sr.plan.Params.Bits)
	}
	st, err := svc.SecureStatus(ctx, "m1", sr.round.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != protocol.RoundFailed || st.Stage != protocol.StageFailed || !strings.Contains(st.Reason, "norm") {
		t.Fatalf("round %s: %+v, want failed by the norm check", sr.round.ID, st)
	}
	if _, err := svc.Model(ctx, 2); !errors.Is(err, aggregator.ErrNotFound) {
		t.Errorf("version 2: %v, want none published", err)
	}
	if got := sr.results["m1"].Outcome; got != client.OutcomeFailed {
		t.Errorf("m1's outcome %q, want failed", got)
	}
	budgets, err := svc.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bg := range budgets {
		if want := map[bool]int{true: 0, false: 1}[bg.Merchant == "m6"]; bg.Releases != want {
			t.Errorf("%s: %d releases, want %d", bg.Merchant, bg.Releases, want)
		}
	}
}

// checkPublishedBound checks that the norm bound version v names in its
// merge description is, to its 6 digits, the one docs/privacy.md §14a gives
// for survivors m1–m5 with perMerchant plausible customers each: K = qN +
// 10√(qN) + 10 sampled customers, q = 0.5 (secureConfig), each at most γ·Δ₂,
// plus the survivors' noise below √(γ²σ²·5)·(√128 + 10), 128 the padded
// dimension.
func checkPublishedBound(t *testing.T, sr *secureRun, v protocol.ModelVersion, perMerchant float64) {
	t.Helper()
	const survivors, q = 5, 0.5
	qn := q * survivors * perMerchant
	k := qn + 10*math.Sqrt(qn) + 10
	p := sr.plan.Params
	s2, _ := p.LocalVariance.Float64()
	want := k*p.Gamma*p.NormBound() + p.Gamma*math.Sqrt(s2*survivors)*(math.Sqrt(128)+10)
	var got float64
	i := strings.Index(v.Merge, "norm≤")
	if i < 0 {
		t.Fatalf("merge %q names no bound", v.Merge)
	}
	if _, err := fmt.Sscanf(v.Merge[i+len("norm≤"):], "%g", &got); err != nil {
		t.Fatalf("merge %q: %v", v.Merge, err)
	}
	if math.Abs(got-want) > 1e-5*want {
		t.Errorf("bound %.6g, want %.6g (K = %.1f customers)", got, want, k)
	}
}

// TestSecureNormBoundLegacyRound: a round whose stored customers are empty,
// as a round planned before they were stored reads (the column's default),
// is bounded with the policy in force at publish, as before: after a reload
// to max_customers 1, K = 0.5·5 + 10√2.5 + 10. SQLite, whose file the test
// can write behind the service.
func TestSecureNormBoundLegacyRound(t *testing.T) {
	lowered := strings.Replace(securePolicy, "  min_customers_per_update: 100\n  max_customers: 1000\n", "  min_customers_per_update: 1\n  max_customers: 1\n", 1)
	b := sqliteBackend(t)
	sr := playSecure(t, b, playOpts{reload: lowered, reloadAt: protocol.StageConsistency, atReload: func(t *testing.T, sr *secureRun) {
		db, err := sql.Open("sqlite", filepath.Join(b.dir, "kairos.db")+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec(`UPDATE fed_secure_rounds SET plausible_customers = '' WHERE round_id = ?`, sr.round.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%d secure rounds cleared, want 1", n)
		}
	}})
	v2, err := sr.svc.Load().Model(context.Background(), 2)
	if err != nil {
		t.Fatalf("no version 2 published: %v", err)
	}
	checkPublishedBound(t, sr, v2, 1)
}

// inflateM2 is a playOpts.tamper: m2 adds a quarter of the 2^32 modulus to
// every word of its encoding, an out-of-range input only the sum's norm shows.
func inflateM2(m string, x []uint32) {
	if m == "m2" {
		for j := range x {
			x[j] = (x[j] + 1<<30) & (1<<32 - 1)
		}
	}
}

// TestSecureBudgetRefused: with the budget planned for one round, the second
// round's masked inputs would pass every merchant's cap: each is refused
// (budget exhausted, audited as denied, nothing debited), every merchant is
// a dropout, and the round fails without unmasking anything.
func TestSecureBudgetRefused(t *testing.T) {
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	cfg := secureConfig()
	cfg.PlannedRounds = 1
	f := newFedPolicy(t, sqliteBackend(t), cfg, p)
	r := f.start(t)
	var svc atomic.Pointer[aggregator.Service]
	svc.Store(r.svc)
	f.enrol(t, r, secureMerchants...)
	outcomes := map[string][]string{}
	var errs []error
	for range 2 {
		if err := r.svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var round protocol.Round
		for _, m := range secureMerchants {
			if round, err = r.svc.CurrentRound(ctx, m); err != nil {
				t.Fatal(err)
			}
			part := &client.SecureParticipant{
				API: inProcessAPI{svc: &svc, merchant: m}, Merchant: &keys.Merchant{ID: m, Signing: f.merchant[m]},
				Round: round, Now: f.clock.Now, Poll: 2 * time.Millisecond,
				Input: func(ctx context.Context, plan secureplan.Round) ([]uint32, error) {
					return distributed.Encode(ctx, nil, plan.Params)
				},
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := part.Run(ctx)
				mu.Lock()
				defer mu.Unlock()
				outcomes[m] = append(outcomes[m], res.Outcome)
				if err != nil {
					errs = append(errs, err)
				}
			}()
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := r.svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := r.svc.SecureStatus(ctx, "m1", round.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.State.Terminal() {
				break
			}
			if st.Stage == protocol.StageMask && len(errs) == len(secureMerchants) {
				f.clock.Add(61 * time.Second) // every masked input refused: close the stage
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %s stuck: %+v", round.ID, st)
			}
			time.Sleep(2 * time.Millisecond)
		}
		wg.Wait()
	}
	for _, m := range secureMerchants {
		if got := outcomes[m]; len(got) != 2 || got[0] != client.OutcomeAccepted {
			t.Errorf("%s: outcomes %v, want accepted then refused", m, got)
		}
	}
	if len(errs) != len(secureMerchants) {
		t.Fatalf("%d errors, want one budget refusal per merchant: %v", len(errs), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, client.ErrFederationBudget) {
			t.Errorf("error %v, want the federation budget", err)
		}
	}
	budgets, err := r.svc.Budgets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bg := range budgets {
		if bg.Releases != 1 || bg.Epsilon > bg.Cap {
			t.Errorf("%s: %d releases, ε %v of %v; want the first round's debit only", bg.Merchant, bg.Releases, bg.Epsilon, bg.Cap)
		}
	}
	if n := auditActions(t, r.store)["round.secure.message denied"]; n != len(secureMerchants) {
		t.Errorf("%d denied secure messages audited, want %d", n, len(secureMerchants))
	}
	if st, _ := r.svc.SecureStatus(ctx, "m1", "round-000003"); st.State != protocol.RoundFailed {
		t.Errorf("round 3: %+v, want failed", st)
	}
}

// TestSecureRestartExtendsStage: an aggregator that was down past the
// deadline of the stage in progress gives that stage a full
// secure_stage_timeout from its restart, for the merchants to reconnect:
// their messages are still accepted and the round goes on, where the stored
// deadline alone would have failed it at the first tick (too few merchants
// advertised keys).
func TestSecureRestartExtendsStage(t *testing.T) {
	ctx := context.Background()
	f, r, round, plan := openSecureRound(t)
	st, err := r.svc.SecureStatus(ctx, "m1", round.ID)
	if err != nil || st.Stage != protocol.StageAdvertise {
		t.Fatalf("status %+v, %v; want the advertise stage", st, err)
	}
	stored := st.StageDeadline
	// Down for 90 s, from 50 s into the 60 s stage.
	f.clock.Add(50 * time.Second)
	r.log.Close()
	r.store.Close()
	f.clock.Add(90 * time.Second)
	r = f.start(t)
	restarted := f.clock.Now()
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = r.svc.SecureStatus(ctx, "m1", round.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := restarted.Add(time.Minute); st.Stage != protocol.StageAdvertise || !st.StageDeadline.Equal(want) {
		t.Fatalf("after the restart: %+v; want the advertise stage until %s (stored %s)", st, want, stored)
	}
	f.clock.Add(30 * time.Second)
	for i, m := range secureMerchants {
		c, err := secagg.NewClient(plan.Config, uint32(i+1), nil)
		if err != nil {
			t.Fatal(err)
		}
		adv, err := c.Advertise()
		if err != nil {
			t.Fatal(err)
		}
		secureplan.SignAdvert(f.merchant[m], round.Recipient, round.ID, round.Plan.Secure, m, &adv)
		if _, err := r.svc.SubmitSecure(ctx, m, sealAdvert(t, f, round, m, adv)); err != nil {
			t.Fatalf("%s's keys 30 s after the restart: %v", m, err)
		}
	}
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = r.svc.SecureStatus(ctx, "m1", round.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Stage != protocol.StageShare {
		t.Errorf("after every merchant advertised: %+v; want the share stage", st)
	}
}

// TestSecureUnrestorableStateFails: a secure round whose stored protocol
// state no longer replays (here a snapshot cut short; in a deployment, a
// round in its unmask stage stored before the consistency stage existed)
// fails at the next tick, unmasking nothing, with the reason; before, every
// tick of the service failed on it.
func TestSecureUnrestorableStateFails(t *testing.T) {
	_, r, round, _ := openSecureRound(t)
	storeAndTickUnrestorable(t, r, round, func(snap []byte) []byte { return snap[:len(snap)-1] }, "does not restore")
}

// storeAndTickUnrestorable replaces round's stored protocol state with
// rewrite's and checks that the next tick fails the round with a reason
// containing reason, opens the next one, and that the tick after passes.
func storeAndTickUnrestorable(t *testing.T, r *replica, round protocol.Round, rewrite func(snap []byte) []byte, reason string) {
	t.Helper()
	ctx := context.Background()
	err := r.store.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) error {
		sr, err := tx.SecureRound(ctx, round.ID, aggregator.LockUpdate)
		if err != nil {
			return err
		}
		sr.Server = rewrite(sr.Server)
		return tx.UpdateSecureRound(ctx, sr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatalf("tick over an unrestorable secure round: %v", err)
	}
	st, err := r.svc.SecureStatus(ctx, "m1", round.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != protocol.RoundFailed || st.Stage != protocol.StageFailed || !strings.Contains(st.Reason, reason) {
		t.Fatalf("round %s: %+v; want failed, %s", round.ID, st, reason)
	}
	if next, err := r.svc.CurrentRound(ctx, "m1"); err != nil || next.ID == round.ID {
		t.Errorf("current round %s, %v; want the next one open", next.ID, err)
	}
	if err := r.svc.Tick(ctx); err != nil {
		t.Errorf("the tick after: %v", err)
	}
}

// TestSecureReloadDuringRound: a reload lands in the consistency stage, after
// m3's masked input was accepted (m3 then leaves, so the sum holds it).
// Removing m3 from the policy: before, publishSecure looked up every
// masker's policy (norm bound, contributions) and failed on m3 on every tick,
// the round stuck in aggregating. m3's input cannot be taken out of the sum,
// so the round now fails, naming m3, with nothing published and every
// masker's debit standing. Lowering m3's cap below any plan instead changes
// nothing the published step needs: version 2 from m1–m5. Both stores.
func TestSecureReloadDuringRound(t *testing.T) {
	removed := strings.Replace(securePolicy, "  m3: {}\n", "", 1)
	lowered := strings.Replace(securePolicy, "  m3: {}\n", "  m3: {epsilon_cap: 0.001}\n", 1)
	if removed == securePolicy || lowered == securePolicy {
		t.Fatal("policy edits did not apply")
	}
	for _, b := range backends(t) { // a fresh database each
		t.Run(b.name+"/removed", func(t *testing.T) {
			ctx := context.Background()
			sr := playSecure(t, b, playOpts{reload: removed, reloadAt: protocol.StageConsistency})
			svc := sr.svc.Load()
			st, err := svc.SecureStatus(ctx, "m1", sr.round.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != protocol.RoundFailed || !strings.Contains(st.Reason, "m3, no longer in the policy") {
				t.Fatalf("round %s: %+v, want failed naming m3", sr.round.ID, st)
			}
			if _, err := svc.Model(ctx, 2); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("version 2: %v, want none published", err)
			}
			if next, err := svc.CurrentRound(ctx, "m1"); err != nil || next.ID == sr.round.ID {
				t.Errorf("current round %q, %v: want the next one open", next.ID, err)
			}
			budgets, err := svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, bg := range budgets {
				if want := map[bool]int{true: 0, false: 1}[bg.Merchant == "m6"]; bg.Releases != want {
					t.Errorf("%s: %d releases, want %d", bg.Merchant, bg.Releases, want)
				}
				seen++
			}
			if seen < 4 {
				t.Errorf("budgets %+v: want m1, m2, m4, m5 at least", budgets)
			}
			sr.f.verifyAudit(t, sr.replica)
			if acts := auditActions(t, sr.replica.store); acts["round.fail error"] != 2 || acts["round.publish ok"] != 0 {
				t.Errorf("audit actions %v: want rounds 1 and 2 failed, no publish", acts)
			}
		})
	}
	for _, b := range backends(t) {
		t.Run(b.name+"/lowered", func(t *testing.T) {
			sr := playSecure(t, b, playOpts{reload: lowered, reloadAt: protocol.StageConsistency})
			v2, err := sr.svc.Load().Model(context.Background(), 2)
			if err != nil {
				t.Fatalf("no version 2 published: %v", err)
			}
			if len(v2.Contributions) != 5 || slices.ContainsFunc(v2.Contributions, func(c protocol.Contribution) bool { return c.Merchant == "m6" }) {
				t.Errorf("contributions %+v, want m1–m5", v2.Contributions)
			}
			sr.f.verifyAudit(t, sr.replica)
		})
	}
}

// TestSecureNormBoundFromPlan: the norm check at publish bounds the sum with
// the plausible customers the round was planned with (max_customers 1000
// for each merchant), not with the policy a reload put in force between
// masking and publishing. Lowered: every merchant's max_customers goes to 1
// (min_customers_per_update with it, which the policy requires); the round
// must publish, and with the plan's bound, computed by hand from the
// survivors' planned 5 × 1000 customers (3,196), where the reloaded policy
// gave K = 0.5·5 + 10√2.5 + 10 ≈ 28 customers and a bound of 215, which
// this honest sum (count coordinate 200 × 0.5, noiseless encodings) happens
// to pass only because the bound's noise margin is counted regardless.
// Raised: max_customers goes to 10^9; before, m2's inflated encoding
// (TestSecureNormCheck's) was published under the reloaded bound; the round
// must fail on the norm. Both stores.
func TestSecureNormBoundFromPlan(t *testing.T) {
	lowered := strings.Replace(securePolicy, "  min_customers_per_update: 100\n  max_customers: 1000\n", "  min_customers_per_update: 1\n  max_customers: 1\n", 1)
	raised := strings.Replace(securePolicy, "  max_customers: 1000\n", "  max_customers: 1000000000\n", 1)
	if lowered == securePolicy || raised == securePolicy {
		t.Fatal("policy edits did not apply")
	}
	for _, b := range backends(t) { // a fresh database each
		t.Run(b.name+"/lowered", func(t *testing.T) {
			ctx := context.Background()
			sr := playSecure(t, b, playOpts{reload: lowered, reloadAt: protocol.StageConsistency})
			v2, err := sr.svc.Load().Model(ctx, 2)
			if err != nil {
				st, _ := sr.svc.Load().SecureStatus(ctx, "m1", sr.round.ID)
				t.Fatalf("no version 2 published (%v): round %s %s: %s", err, sr.round.ID, st.State, st.Reason)
			}
			// Survivors m1–m5, 1000 customers each when planned.
			checkPublishedBound(t, sr, v2, 1000)
			sr.f.verifyAudit(t, sr.replica)
		})
	}
	for _, b := range backends(t) { // a fresh database each
		t.Run(b.name+"/raised", func(t *testing.T) {
			ctx := context.Background()
			sr := playSecure(t, b, playOpts{reload: raised, reloadAt: protocol.StageConsistency, tamper: inflateM2})
			svc := sr.svc.Load()
			st, err := svc.SecureStatus(ctx, "m1", sr.round.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != protocol.RoundFailed || !strings.Contains(st.Reason, "norm") {
				t.Fatalf("round %s: %+v, want failed by the norm check", sr.round.ID, st)
			}
			if _, err := svc.Model(ctx, 2); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("version 2: %v, want none published", err)
			}
		})
	}
}
