package aggregator_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

// dropoutPolicy has four merchants and min_cohort 3; with sample_fraction
// ¾ every secure cohort is exactly min_cohort.
const dropoutPolicy = `version: 1
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
`

// TestSecureRepeatDropoutExcluded (privacy.md §16, round 7): m4, a hostile
// merchant, joins every secure round it is sampled into and drops out before
// masking. At a cohort of exactly min_cohort each such round failed, for as
// long as m4 stayed enrolled, at no cost to it. Now its third dropout (with
// no masked input between, within secure_dropout_window rounds) leaves it out
// of secure cohorts for secure_exclusion_rounds rounds, in which the honest
// merchants' rounds succeed, and then readmits it; one audit entry each.
func TestSecureRepeatDropoutExcluded(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			p, err := policies.Parse("dropout.yaml", []byte(dropoutPolicy))
			if err != nil {
				t.Fatal(err)
			}
			cfg := secureConfig()
			cfg.SampleFraction, cfg.PlannedRounds = 0.75, 20
			cfg.SecureExclusionRounds = 2
			f := newFedPolicy(t, b, cfg, p)
			rep := f.start(t)
			var svc atomic.Pointer[aggregator.Service]
			svc.Store(rep.svc)
			f.enrol(t, rep, "m1", "m2", "m3", "m4")
			if err := rep.svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			var dropouts, excludedUntil int64 // m4's dropouts so far; the last round seq it is excluded for
			var excludedRounds, readmittedIn int
			for range 16 {
				round, err := rep.svc.CurrentRound(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				if round.Plan.Secure == nil {
					t.Fatalf("round %s has no secure plan", round.ID)
				}
				cohort := round.Plan.Secure.Merchants
				if len(cohort) != 3 {
					t.Fatalf("round %s cohort %v, want 3 merchants (min_cohort)", round.ID, cohort)
				}
				hostile := slices.Contains(cohort, "m4")
				if excludedUntil != 0 && round.Seq <= excludedUntil && hostile {
					t.Fatalf("round %s (seq %d) samples m4, excluded through seq %d", round.ID, round.Seq, excludedUntil)
				}
				if excludedUntil != 0 && round.Seq <= excludedUntil {
					excludedRounds++
				}
				state := playDropoutRound(t, f, &svc, round)
				switch {
				case hostile && state != protocol.RoundFailed:
					t.Fatalf("round %s with m4 dropping out: %s, want failed (cohort at min_cohort)", round.ID, state)
				case !hostile && state != protocol.RoundPublished:
					t.Fatalf("round %s of honest merchants %v: %s, want published", round.ID, cohort, state)
				}
				if excludedUntil != 0 && round.Seq == excludedUntil {
					readmittedIn = int(round.Seq)
					excludedUntil = 0
				}
				if hostile {
					dropouts++
					if dropouts%3 == 0 {
						excludedUntil = round.Seq + 2
					}
				}
				if readmittedIn != 0 && hostile && dropouts > 3 {
					break // sampled again after its readmission
				}
			}
			if dropouts <= 3 || readmittedIn == 0 || excludedRounds != 2 {
				t.Fatalf("m4 dropped out of %d rounds, readmitted after round seq %d, excluded from %d rounds; want it excluded from 2 rounds after its third, readmitted and sampled again", dropouts, readmittedIn, excludedRounds)
			}
			got := auditActions(t, rep.store)
			if got["merchant.secure.exclude ok"] != 1 || got["merchant.secure.readmit ok"] != 1 {
				t.Errorf("audit: %d exclusions, %d readmissions; want one each (%v)", got["merchant.secure.exclude ok"], got["merchant.secure.readmit ok"], got)
			}
			f.verifyAudit(t, rep)
		})
	}
}

// playDropoutRound plays secure round r with in-process clients for its
// cohort, m4 dropping out before masking, and returns the round's final
// state.
func playDropoutRound(t *testing.T, f *fed, svc *atomic.Pointer[aggregator.Service], r protocol.Round) protocol.RoundState {
	t.Helper()
	return playSecureRound(t, f, svc, r, true)
}

// playSecureRound is playDropoutRound with m4 dropping out only if drop.
func playSecureRound(t *testing.T, f *fed, svc *atomic.Pointer[aggregator.Service], r protocol.Round, drop bool) protocol.RoundState {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, err := hazard.Unmarshal(r.Model, "")
	if err != nil {
		t.Fatal(err)
	}
	errDrop := errors.New("m4 leaves before masking")
	var wg sync.WaitGroup
	var mu sync.Mutex
	masked := 0
	var hostileDone atomic.Bool
	cohort := r.Plan.Secure.Merchants
	for i, m := range cohort {
		round, err := svc.Load().CurrentRound(ctx, m)
		if err != nil || round.ID != r.ID || !round.Selected {
			t.Fatalf("%s: current round %s (selected %v), %v; want %s", m, round.ID, round.Selected, err, r.ID)
		}
		part := &client.SecureParticipant{
			API: inProcessAPI{svc: svc, merchant: m, t: t, accepted: func(stage protocol.SecureStage, _ []byte) {
				if stage == protocol.StageMask {
					mu.Lock()
					masked++
					mu.Unlock()
				}
			}},
			Merchant: &keys.Merchant{ID: m, Signing: f.merchant[m]}, Round: round,
			Now: f.clock.Now, Poll: 2 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
			Input: func(ctx context.Context, plan secureplan.Round) ([]uint32, error) {
				rng := rand.New(rand.NewPCG(uint64(i), 77))
				contrib := make([][]float64, 30)
				for k := range contrib {
					g := make([]float64, len(base.Params))
					for j := range g {
						g[j] = rng.NormFloat64() * 0.3
					}
					if contrib[k], err = plan.Contribution(g); err != nil {
						return nil, err
					}
				}
				return distributed.EncodeWithoutNoise(ctx, contrib, plan.Params)
			},
		}
		if m == "m4" && drop {
			part.BeforeMask = func(secureplan.Round) error { return errDrop }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := part.Run(ctx)
			if m == "m4" && drop {
				hostileDone.Store(true)
				if !errors.Is(err, errDrop) && ctx.Err() == nil {
					t.Errorf("m4: %v, want its dropout", err)
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	honest := len(cohort)
	if drop && slices.Contains(cohort, "m4") {
		honest--
	}
	// A guard, not a timing: the stages advance on the test's clock.
	guard := time.Now().Add(40 * time.Second)
	for {
		if err := svc.Load().Tick(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := svc.Load().SecureStatus(ctx, cohort[0], r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State.Terminal() {
			if st.State == protocol.RoundPublished || st.State == protocol.RoundFailed {
				cancel() // honest clients of a failed round stop polling
				return st.State
			}
			t.Fatalf("round %s ended %s: %s", r.ID, st.State, st.Reason)
		}
		mu.Lock()
		stalled := hostileDone.Load() && st.Stage == protocol.StageMask && masked == honest
		mu.Unlock()
		if stalled {
			f.clock.Add(61 * time.Second) // only m4's masked input is missing: close the stage
		}
		if time.Now().After(guard) {
			t.Fatalf("round %s still in stage %s", r.ID, st.Stage)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// TestSecureRepeatOffenderEscalates (privacy.md §16, round 8): a merchant
// readmitted after an exclusion got a clean record, so it could fail another
// secure_dropout_limit rounds and be excluded for the same
// secure_exclusion_rounds again, for ever: with the defaults 3 rounds in
// every 23 it could be sampled into. Now each exclusion of the same merchant
// lasts twice the one before, remembered across readmissions and bounded by
// secure_exclusion_max_rounds: here 2, then 4, then 5 (the bound) rounds.
func TestSecureRepeatOffenderEscalates(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			p, err := policies.Parse("dropout.yaml", []byte(dropoutPolicy))
			if err != nil {
				t.Fatal(err)
			}
			cfg := secureConfig()
			cfg.SampleFraction, cfg.PlannedRounds = 0.75, 60
			cfg.SecureExclusionRounds, cfg.SecureExclusionMaxRounds = 2, 5
			f := newFedPolicy(t, b, cfg, p)
			rep := f.start(t)
			var svc atomic.Pointer[aggregator.Service]
			svc.Store(rep.svc)
			f.enrol(t, rep, "m1", "m2", "m3", "m4")
			if err := rep.svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			// Each exclusion's length, computed here: 2, doubled per repeat, at most 5.
			wantLengths := []int{2, 4, 5}
			var dropouts, excludedUntil int64
			var lengths []int // rounds m4 was left out of, per exclusion
			readmitted := 0
			for range 60 {
				round, err := rep.svc.CurrentRound(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				if round.Plan.Secure == nil {
					t.Fatalf("round %s has no secure plan", round.ID)
				}
				hostile := slices.Contains(round.Plan.Secure.Merchants, "m4")
				excluded := excludedUntil != 0 && round.Seq <= excludedUntil
				if excluded && hostile {
					t.Fatalf("round %s (seq %d) samples m4, excluded through seq %d (exclusion %d, want %d rounds)", round.ID, round.Seq, excludedUntil, len(lengths), wantLengths[len(lengths)-1])
				}
				if excluded {
					lengths[len(lengths)-1]++
				}
				state := playDropoutRound(t, f, &svc, round)
				if hostile != (state == protocol.RoundFailed) {
					t.Fatalf("round %s (m4 sampled: %v): %s", round.ID, hostile, state)
				}
				if excludedUntil != 0 && round.Seq == excludedUntil {
					excludedUntil = 0
					readmitted++
				}
				// Readmitted exactly when its exclusion ends, neither later nor earlier.
				if got := auditActions(t, rep.store)["merchant.secure.readmit ok"]; got != readmitted {
					t.Fatalf("after round seq %d: %d readmissions of m4, want %d (exclusions %v of %v)", round.Seq, got, readmitted, lengths, wantLengths)
				}
				if hostile {
					dropouts++
					if dropouts%3 == 0 {
						if len(lengths) == len(wantLengths) {
							break
						}
						excludedUntil = round.Seq + int64(wantLengths[len(lengths)])
						lengths = append(lengths, 0)
					}
				}
			}
			if !slices.Equal(lengths, wantLengths) {
				t.Fatalf("m4 left out of %v rounds per exclusion (%d dropouts), want %v", lengths, dropouts, wantLengths)
			}
			got := auditActions(t, rep.store)
			if got["merchant.secure.exclude ok"] != 4 || got["merchant.secure.readmit ok"] != 3 {
				t.Errorf("audit: %d exclusions, %d readmissions; want 4 and 3 (%v)", got["merchant.secure.exclude ok"], got["merchant.secure.readmit ok"], got)
			}
			f.verifyAudit(t, rep)
		})
	}
}

// TestSecureExclusionsForgiven (privacy.md §16, round 8 row 13): the count
// of a merchant's secure-round exclusions never decayed, so an honest
// merchant's rare outages compounded its exclusions up to
// secure_exclusion_max_rounds. Now, after secure_exclusion_forgive_rounds
// (3 here) secure rounds it masked in with no dropout between, the count
// halves, with one audit entry: m4, excluded once (2 rounds), masks in 3
// rounds, is forgiven (1 → 0), and its next exclusion lasts the base 2
// rounds again, not 4.
func TestSecureExclusionsForgiven(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			p, err := policies.Parse("dropout.yaml", []byte(dropoutPolicy))
			if err != nil {
				t.Fatal(err)
			}
			cfg := secureConfig()
			cfg.SampleFraction, cfg.PlannedRounds = 0.75, 80
			cfg.SecureExclusionRounds, cfg.SecureExclusionMaxRounds, cfg.SecureExclusionForgiveRounds = 2, 5, 3
			f := newFedPolicy(t, b, cfg, p)
			rep := f.start(t)
			var svc atomic.Pointer[aggregator.Service]
			svc.Store(rep.svc)
			f.enrol(t, rep, "m1", "m2", "m3", "m4")
			if err := rep.svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			m4 := func() aggregator.Merchant {
				t.Helper()
				ms, err := rep.svc.Merchants(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					if m.ID == "m4" {
						return m
					}
				}
				t.Fatal("m4 not enrolled")
				return aggregator.Merchant{}
			}
			// phase 0: m4 drops out until its first exclusion; 1: it is
			// excluded; 2: it masks in every round it is sampled into until
			// forgiven; 3: it drops out again until its second exclusion.
			phase, dropouts, clean := 0, 0, 0
			for range 80 {
				round, err := rep.svc.CurrentRound(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				sampled := slices.Contains(round.Plan.Secure.Merchants, "m4")
				drop := phase == 0 || phase == 3
				state := playSecureRound(t, f, &svc, round, drop)
				want := protocol.RoundPublished
				if sampled && drop {
					want = protocol.RoundFailed
				}
				if state != want {
					t.Fatalf("round %s (m4 sampled %v, dropping %v): %s", round.ID, sampled, drop, state)
				}
				m := m4()
				switch {
				case phase == 0 && sampled:
					if dropouts++; dropouts == 3 {
						if m.SecureExclusions != 1 || m.SecureExcludedUntil != round.Seq+2 {
							t.Fatalf("first exclusion: exclusions %d through %d, want 1 through %d", m.SecureExclusions, m.SecureExcludedUntil, round.Seq+2)
						}
						phase = 1
					}
				case phase == 1:
					if m.SecureExcludedUntil == 0 {
						phase = 2
					}
				case phase == 2 && sampled:
					clean++
					want := 1
					if clean == 3 {
						want, phase, dropouts = 0, 3, 0
					}
					if m.SecureExclusions != want {
						t.Fatalf("after %d clean rounds: exclusions %d, want %d", clean, m.SecureExclusions, want)
					}
					if got := auditActions(t, rep.store)["merchant.secure.forgive ok"]; got != 1-want {
						t.Fatalf("after %d clean rounds: %d forgive entries, want %d", clean, got, 1-want)
					}
				case phase == 3 && sampled:
					if dropouts++; dropouts == 3 {
						if m.SecureExclusions != 1 || m.SecureExcludedUntil != round.Seq+2 {
							t.Fatalf("exclusion after forgiveness: exclusions %d through %d, want 1 through %d (the base 2 rounds)", m.SecureExclusions, m.SecureExcludedUntil, round.Seq+2)
						}
						if got := auditActions(t, rep.store)["merchant.secure.forgive ok"]; got != 1 {
							t.Errorf("%d forgive entries, want 1", got)
						}
						f.verifyAudit(t, rep)
						return
					}
				}
			}
			t.Fatalf("80 rounds and m4 still in phase %d (%d dropouts, %d clean rounds)", phase, dropouts, clean)
		})
	}
}
