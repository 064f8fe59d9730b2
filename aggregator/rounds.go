package aggregator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
)

// repairAfter is how long an accepted update may wait for its submitter to
// record the audit entry before Tick records it instead.
const repairAfter = 30 * time.Second

// roundID names the round with sequence number seq.
func roundID(seq int64) string { return fmt.Sprintf("round-%06d", seq) }

// openRound inserts round seq, sampling its merchants, with the active model
// as base. It returns nil if another replica opened it first.
func (s *Service) openRound(ctx context.Context, tx Tx, seq int64, now time.Time) (*RoundRecord, error) {
	if s.rc().MaxRounds > 0 && seq > int64(s.rc().MaxRounds) {
		return nil, nil
	}
	base, err := tx.ActiveVersion(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := tx.Merchants(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range ms {
		// A merchant excluded after repeated dropouts before masking
		// (securedropout.go) is not sampled into secure rounds.
		if !m.Revoked && m.Stopped == "" && (!s.rc().SecureAggregation || !secureExcluded(m, seq)) {
			ids = append(ids, m.ID)
		}
	}
	r := RoundRecord{
		ID: roundID(seq), Seq: seq, State: protocol.RoundOpen, OpenedAt: now.Truncate(time.Millisecond),
		Deadline: now.Add(s.rc().Deadline).Truncate(time.Millisecond), Quorum: s.rc().Quorum,
		Selected: sample(ids, s.rc().SampleFraction, s.rc().Quorum, s.rc().Seed, seq), BaseVersion: base,
		Plan: protocol.TrainingPlan{
			Cutoffs: slices.Clone(s.rc().Cutoffs), Steps: s.rc().StepsPerRound, SamplingRate: s.rc().SamplingRate,
			LearningRate: s.rc().LearningRate, L2: s.rc().L2, CountNoise: s.rc().CountNoise,
		},
	}
	if ret, on := s.retraining(); on {
		// Campaign mode (campaign.go): rounds open only inside a campaign or
		// for a scheduled evaluation.
		if open, err := s.planCampaignRound(ctx, tx, &r, ids, ret); err != nil || !open {
			return nil, err
		}
	} else if s.rc().Evaluation != nil {
		if err := s.planEvaluation(ctx, tx, &r, ids); err != nil {
			return nil, err
		}
	}
	var secure *SecureRoundRecord
	if s.rc().SecureAggregation {
		var err error
		if secure, err = s.planSecure(ctx, tx, &r, now); err != nil {
			return nil, err
		}
	}
	ok, err := tx.InsertRound(ctx, r)
	if err != nil || !ok {
		return nil, err
	}
	if secure != nil {
		if err := tx.InsertSecureRound(ctx, *secure); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// planEvaluation sets round r's evaluation plan (RoundConfig.Evaluation):
// none, one along with training, or an evaluation-only round of the active
// version, sampling every merchant of ids.
func (s *Service) planEvaluation(ctx context.Context, tx Tx, r *RoundRecord, ids []string) error {
	vs, err := tx.Models(ctx)
	if err != nil {
		return err
	}
	trained, baseEvaluated := 0, false // published training versions; whether the base has metrics
	for _, v := range vs {
		if v.Round != "" {
			trained++
		}
		if v.Version == r.BaseVersion {
			baseEvaluated = len(v.Metrics) > 0
		}
	}
	if !baseEvaluated && r.Seq > 1 {
		// An evaluation-only round of this base that failed (quorum missed)
		// is not repeated: merchants who could not join would keep every
		// following round from training.
		prev, err := tx.Round(ctx, roundID(r.Seq-1), LockNone)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		baseEvaluated = err == nil && prev.State == protocol.RoundFailed && prev.Plan.EvaluationOnly() && prev.BaseVersion == r.BaseVersion
	}
	var only bool
	if r.Plan.Evaluation, only = s.rc().evaluationPlan(trained, baseEvaluated); only {
		// The evaluation of the trained model: no training, every merchant.
		r.Plan.Steps = 0
		r.Selected = sample(ids, 1, s.rc().Quorum, s.rc().Seed, r.Seq)
	}
	return nil
}

// sample draws max(⌈fraction·n⌉, min(quorum, n)) of ids (sorted) with a
// generator seeded by (seed, seq) alone, so a round's sample can be recomputed
// by anyone who knows the seed; the result is sorted.
func sample(ids []string, fraction float64, quorum int, seed uint64, seq int64) []string {
	n := len(ids)
	k := max(int(math.Ceil(fraction*float64(n)-1e-9)), min(quorum, n))
	out := slices.Clone(ids)
	slices.Sort(out)
	if k >= n {
		return out
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	rng := rand.New(rand.NewPCG(seed, binary.BigEndian.Uint64(b[:])^0x6b6169726f73))
	rng.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	out = out[:k]
	slices.Sort(out)
	return out
}

// transition is a round state change Tick made, for the audit log.
type transition struct {
	round  RoundRecord
	action string
	reason string
	actor  string // SystemActor when empty
	// merchant, when set, is the merchant the entry is about (a secure
	// exclusion or readmission): in its details and its staging key.
	merchant string
}

// Tick advances every round that is due: a round whose deadline passed or to
// which every sampled merchant has sent an update moves to aggregating if at
// least Quorum audited updates arrived, else to failed (and the next round
// opens); an aggregating round is merged and published as a new model
// version, and the next round opens. Each step claims the round's row with
// FOR UPDATE SKIP LOCKED, so replicas calling Tick together never process
// one round twice. Tick also records the audit entries of accepted updates
// whose submitter died before it could. With a retraining policy it then
// advances the campaign schedule (campaign.go).
func (s *Service) Tick(ctx context.Context) error {
	if err := s.tickRounds(ctx); err != nil {
		return err
	}
	return s.campaignTick(ctx)
}

func (s *Service) tickRounds(ctx context.Context) error {
	if err := s.repairAudit(ctx); err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	s.flushRefusals(ctx)
	if err := s.drainOutbox(ctx); err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	// seal.Open refuses envelopes older than MaxSkew, so a nonce record older
	// than twice that can never match a fresh envelope again.
	err := s.store.InTx(ctx, func(tx Tx) error {
		_, err := tx.PruneNonces(ctx, s.now().Add(-2*s.maxSkew))
		return err
	})
	if err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	var closed []staged
	aggregating := false
	err = s.store.InTx(ctx, func(tx Tx) error {
		closed, aggregating = nil, false
		rounds, err := tx.ClaimRounds(ctx)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for _, r := range rounds {
			ts, err := s.advance(ctx, tx, r, now)
			if err != nil {
				return err
			}
			ps, err := s.stageTransitions(ctx, tx, ts, now)
			if err != nil {
				return err
			}
			closed = append(closed, ps...)
			aggregating = aggregating || r.State == protocol.RoundAggregating ||
				slices.ContainsFunc(ts, func(t transition) bool { return t.round.State == protocol.RoundAggregating })
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	if !aggregating {
		return s.flushTick(ctx, closed, nil)
	}
	// Merge in a second transaction, so that "aggregating" is a durable state
	// a restarted aggregator resumes from.
	var published []staged
	err = s.store.InTx(ctx, func(tx Tx) error {
		published = nil
		rounds, err := tx.ClaimRounds(ctx)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		for _, r := range rounds {
			if r.State != protocol.RoundAggregating {
				continue
			}
			ts, err := s.publish(ctx, tx, r, now)
			if err != nil {
				return err
			}
			ps, err := s.stageTransitions(ctx, tx, ts, now)
			if err != nil {
				return err
			}
			published = append(published, ps...)
		}
		return nil
	})
	if err != nil {
		published = nil
	}
	if ferr := s.flushTick(ctx, closed, published); ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	return nil
}

func (s *Service) flushTick(ctx context.Context, lists ...[]staged) error {
	for _, ps := range lists {
		if err := s.flush(ctx, ps); err != nil {
			return fmt.Errorf("tick: %w", err)
		}
	}
	return nil
}

// stageTransitions writes the audit records of round transitions to the outbox.
func (s *Service) stageTransitions(ctx context.Context, tx Tx, ts []transition, now time.Time) ([]staged, error) {
	out := make([]staged, 0, len(ts))
	for _, t := range ts {
		outcome := audit.OutcomeOK
		if t.action == "round.fail" {
			outcome = audit.OutcomeError
		}
		rec := roundRecord(t.round, t.action, outcome, t.reason)
		if t.actor != "" {
			rec.Actor = t.actor
		}
		key := "round/" + t.round.ID + "/" + t.action
		if t.merchant != "" {
			rec.Details["merchant"] = t.merchant
			key += "/" + t.merchant
		}
		p, err := stage(ctx, tx, key, rec, now)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// advance handles an open or collecting round.
func (s *Service) advance(ctx context.Context, tx Tx, r RoundRecord, now time.Time) ([]transition, error) {
	if r.State != protocol.RoundOpen && r.State != protocol.RoundCollecting {
		return nil, nil
	}
	if r.Plan.Secure != nil {
		return s.advanceSecure(ctx, tx, r, now)
	}
	all, audited, err := tx.CountUpdates(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	expired := !now.Before(r.Deadline)
	everyone := len(r.Selected) > 0 && audited == len(r.Selected)
	if len(r.Selected) == 0 && all == 0 {
		// Opened when no merchant could be sampled (none enrolled, or all
		// stopped or revoked): start over once there is one.
		ms, err := tx.Merchants(ctx)
		if err != nil {
			return nil, err
		}
		if !expired && !slices.ContainsFunc(ms, func(m Merchant) bool { return !m.Revoked && m.Stopped == "" }) {
			return nil, nil
		}
		return s.fail(ctx, tx, r, "no merchants were enrolled when the round opened", now)
	}
	early := ""
	if !expired && !everyone {
		// Close early when no one is left to wait for: the remaining
		// sampled merchants have all stopped or been revoked.
		stopped, why, err := remainingStopped(ctx, tx, r)
		if err != nil || !stopped {
			return nil, err
		}
		early = "; closed before the deadline, the others stopped (" + why + ")"
	}
	switch {
	case audited >= r.Quorum:
		reason := fmt.Sprintf("%d of %d sampled merchants sent updates", audited, len(r.Selected)) + early
		if err := tx.SetRoundState(ctx, r.ID, r.State, protocol.RoundAggregating, reason, now); err != nil {
			return nil, err
		}
		r.State = protocol.RoundAggregating
		return []transition{{round: r, action: "round.aggregate", reason: reason}}, nil
	default:
		return s.fail(ctx, tx, r, fmt.Sprintf("quorum not met: %d audited updates (%d accepted), quorum %d", audited, all, r.Quorum)+early, now)
	}
}

// fail moves r to failed and opens the next round.
func (s *Service) fail(ctx context.Context, tx Tx, r RoundRecord, reason string, now time.Time) ([]transition, error) {
	if err := tx.SetRoundState(ctx, r.ID, r.State, protocol.RoundFailed, reason, now); err != nil {
		return nil, err
	}
	r.State, r.Reason = protocol.RoundFailed, reason
	out := []transition{{round: r, action: "round.fail", reason: reason}}
	next, err := s.openRound(ctx, tx, r.Seq+1, now)
	if err != nil {
		return nil, err
	}
	if next != nil {
		out = append(out, transition{round: *next, action: "round.open"})
	}
	return out, nil
}

// publish merges an aggregating round's audited updates into a new model
// version, makes it active and opens the next round. A merge that fails on
// the updates fails the round instead.
func (s *Service) publish(ctx context.Context, tx Tx, r RoundRecord, now time.Time) ([]transition, error) {
	if r.Plan.Secure != nil {
		return s.publishSecure(ctx, tx, r, now)
	}
	updates, err := tx.RoundUpdates(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	updates = slices.DeleteFunc(updates, func(u UpdateRecord) bool { return !u.Audited })
	// A reload may have removed a contributor from the policy since its update
	// was accepted, or lowered its cap below any plan: the merge needs every
	// contributor's policy and plan (norm bound, weights), so its update is
	// left out (it stays debited) rather than failing publish on every tick.
	var gone []string
	updates = slices.DeleteFunc(updates, func(u UpdateRecord) bool {
		mp, err := s.pol().Merchant(u.Merchant)
		if err == nil && !r.Plan.EvaluationOnly() {
			_, err = s.merchantPlan(r.Plan, mp)
		}
		if err != nil {
			gone = append(gone, u.Merchant)
		}
		return err != nil
	})
	goneNote := ""
	if len(gone) > 0 {
		goneNote = fmt.Sprintf("left out the updates of %s (no longer in the policy, or no plan fits its cap)", strings.Join(gone, ", "))
		if len(updates) < r.Quorum {
			return s.failAggregating(ctx, tx, r, fmt.Sprintf("quorum not met: %d updates from merchants in the policy, quorum %d; %s", len(updates), r.Quorum, goneNote), now)
		}
	}
	evalNote, err := s.recordEvaluation(ctx, tx, r, updates)
	if err != nil {
		return nil, err
	}
	evalNote = joinNotes(evalNote, goneNote)
	if r.Plan.EvaluationOnly() {
		reason := evalNote
		if err := tx.SetRoundState(ctx, r.ID, protocol.RoundAggregating, protocol.RoundPublished, reason, now); err != nil {
			return nil, err
		}
		r.State, r.Reason = protocol.RoundPublished, reason
		return s.openNext(ctx, tx, r, "round.publish", reason, now)
	}
	baseRec, err := tx.Model(ctx, r.BaseVersion)
	if err != nil {
		return nil, err
	}
	base, err := hazard.Unmarshal(baseRec.Model, baseRec.SchemaHash)
	if err != nil {
		return nil, fmt.Errorf("publish %s: base model %d: %w", r.ID, r.BaseVersion, err)
	}
	agg := s.pol().Aggregation()
	bound, err := s.normBound(r, updates, len(base.Params))
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", r.ID, err)
	}
	mopt := merge.Options{Method: string(agg.Merge), TrimFraction: agg.TrimFraction, NormBound: bound}
	deltas := make([][]float64, len(updates))
	var weights []float64
	if !s.rc().EqualWeights {
		weights = make([]float64, len(updates))
	}
	contrib := make([]protocol.Contribution, len(updates))
	for i, u := range updates {
		deltas[i] = u.Delta
		mp, err := s.pol().Merchant(u.Merchant)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", r.ID, err)
		}
		if weights != nil {
			// The DP count, never the raw one; clamped so noise cannot zero or
			// negate a merchant, and no count weighs more than the merchant's
			// plausible number of customers.
			weights[i] = min(max(u.Customers.Value, 1), mp.PlausibleCustomers())
		}
		contrib[i] = protocol.Contribution{Merchant: u.Merchant, Epsilon: u.Epsilon, Delta: mp.Delta, Weight: 1 / float64(len(updates))}
	}
	if weights != nil && (mopt.Method == "" || mopt.Method == merge.MethodFedAvg) {
		// The shares FedAvg uses: no merchant above the policy's share of the weight.
		if weights, err = merge.CapShares(weights, agg.WeightShareCap()); err != nil {
			return s.failAggregating(ctx, tx, r, fmt.Sprintf("merge weights: %v", err), now)
		}
		for i := range contrib {
			contrib[i].Weight = weights[i]
		}
	}
	combined, err := merge.Combine(deltas, weights, mopt)
	if err != nil {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("merge: %v", err), now)
	}
	desc := mopt.Method
	if desc == "" {
		desc = merge.MethodFedAvg
	}
	desc += fmt.Sprintf(" norm≤%.6g", bound)
	if weights != nil && (mopt.Method == "" || mopt.Method == merge.MethodFedAvg) {
		desc += fmt.Sprintf(" share≤%g", agg.WeightShareCap())
	}
	return s.step(ctx, tx, r, baseRec, base, combined, contrib, desc, now, func(version int) string {
		reason := fmt.Sprintf("version %d from %d updates", version, len(updates))
		if evalNote != "" {
			reason += "; " + evalNote
		}
		return reason
	})
}

// joinNotes joins the non-empty notes of a round's reason with "; ".
func joinNotes(notes ...string) string {
	return strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; ")
}

// step applies the server optimizer to the round's combined update,
// publishes the result as the next model version, makes it active and opens
// the next round; reason gives the round's reason for the new version.
func (s *Service) step(ctx context.Context, tx Tx, r RoundRecord, baseRec ModelRecord, base *hazard.Model, combined []float64,
	contrib []protocol.Contribution, desc string, now time.Time, reason func(version int) string) ([]transition, error) {
	params := slices.Clone(base.Params)
	optState := baseRec.Optimizer
	srv, err := merge.NewServer(s.rc().serverOptions(), optState)
	if err != nil {
		return nil, fmt.Errorf("publish %s: optimizer state of version %d: %w", r.ID, r.BaseVersion, err)
	}
	if err := srv.Step(params, combined); err != nil {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("server step: %v", err), now)
	}
	if optState, err = srv.State(); err != nil {
		return nil, err
	}
	desc += " + " + srv.String()
	next := *base
	next.Params = params
	modelJSON, err := next.MarshalJSON()
	if err != nil {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("encode model: %v", err), now)
	}
	versions, err := tx.Models(ctx)
	if err != nil {
		return nil, err
	}
	version := versions[len(versions)-1].Version + 1
	ok, err := tx.InsertModel(ctx, ModelRecord{ModelVersion: protocol.ModelVersion{
		Version: version, Round: r.ID, Parent: r.BaseVersion, PublishedAt: now.Truncate(time.Millisecond),
		Contributions: contrib, PolicyHash: s.pol().Hash(), SchemaHash: base.Schema.Hash, Merge: desc,
		Model: modelJSON,
	}, Optimizer: optState})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("publish %s: version %d: %w", r.ID, version, ErrConflict)
	}
	why := reason(version)
	// A version trained from a withdrawn one is withdrawn with it, by the
	// same rollback (withdraw.go).
	if i := slices.IndexFunc(versions, func(m ModelRecord) bool { return m.Version == r.BaseVersion }); i >= 0 && versions[i].Withdrawn {
		b := versions[i]
		if err := tx.SetModelWithdrawn(ctx, version, b.WithdrawnAt, b.WithdrawnBy, b.WithdrawnSeq); err != nil {
			return nil, err
		}
		why += fmt.Sprintf("; withdrawn: it trained from version %d, which a rollback withdrew", r.BaseVersion)
	}
	// Only rounds and rollbacks move the active version, and a round opens
	// on the active one: another active version now is an operator's
	// rollback during the round. The version is published (its updates were
	// accepted and debited) but not made active, which would undo the
	// rollback and serve a descendant of the version the operator withdrew.
	active, err := tx.ActiveVersion(ctx)
	if err != nil {
		return nil, err
	}
	if active == r.BaseVersion {
		if err := tx.SetActiveVersion(ctx, version); err != nil {
			return nil, err
		}
	} else {
		why += fmt.Sprintf("; not made active: version %d was made active (rollback) while the round trained from %d", active, r.BaseVersion)
	}
	if err := tx.SetRoundState(ctx, r.ID, protocol.RoundAggregating, protocol.RoundPublished, why, now); err != nil {
		return nil, err
	}
	r.State, r.Reason = protocol.RoundPublished, why
	return s.openNext(ctx, tx, r, "round.publish", why, now)
}

// normBound is the L2 bound every update of round r is scaled down to before
// the merge: the policy's norm_bound, else the aggregator's configured one,
// else the bound derived from the plan (derivedNormBound) for the merchant of
// updates whose plan allows the largest update.
func (s *Service) normBound(r RoundRecord, updates []UpdateRecord, params int) (float64, error) {
	if b := s.pol().Aggregation().NormBound; b > 0 {
		return b, nil
	}
	if s.rc().NormBound > 0 {
		return s.rc().NormBound, nil
	}
	var bound float64
	for _, u := range updates {
		mp, err := s.pol().Merchant(u.Merchant)
		if err != nil {
			return 0, fmt.Errorf("norm bound: %w", err)
		}
		plan, err := s.merchantPlan(r.Plan, mp)
		if err != nil {
			return 0, fmt.Errorf("norm bound: %w", err)
		}
		bound = max(bound, derivedNormBound(plan, mp.MinCustomersPerUpdate, params))
	}
	return bound, nil
}

// derivedNormBound is the L2 norm of Steps plain DP-SGD steps at the plan's
// learning rate, each the sum of a mean clipped gradient (norm at most C) and
// the step's noise at its typical norm z·C·√d/(q·m) for d parameters at the
// fewest customers m an update may count: LR·Steps·C·(1 + z·√d/(q·m)). An
// honest update seldom reaches it (its noise is divided by its real count,
// and its clipped gradients rarely align over the steps); the bound keeps one
// merchant's update from outweighing the others by its size.
func derivedNormBound(plan protocol.TrainingPlan, minCustomers, params int) float64 {
	m := float64(max(minCustomers, 1))
	noise := plan.NoiseMultiplier * math.Sqrt(float64(params)) / (plan.SamplingRate * m)
	return plan.LearningRate * float64(plan.Steps) * plan.ClipNorm * (1 + noise)
}

// openNext records r's transition (action) and opens the next round.
func (s *Service) openNext(ctx context.Context, tx Tx, r RoundRecord, action, reason string, now time.Time) ([]transition, error) {
	out := []transition{{round: r, action: action, reason: reason}}
	nr, err := s.openRound(ctx, tx, r.Seq+1, now)
	if err != nil {
		return nil, err
	}
	if nr != nil {
		out = append(out, transition{round: *nr, action: "round.open"})
	}
	return out, nil
}

// evaluationSEReplicates is the number of bootstrap replicates behind the
// standard errors stored with a federated evaluation.
const evaluationSEReplicates = 400

// recordEvaluation sums the evaluation histograms of a round's updates, if its
// plan asked for them, and stores the metrics they give on the round's base
// version (replacing earlier ones). It returns a note for the round's reason;
// metrics that the noise leaves undefined are noted, not stored.
func (s *Service) recordEvaluation(ctx context.Context, tx Tx, r RoundRecord, updates []UpdateRecord) (string, error) {
	if r.Plan.Evaluation == nil {
		return "", nil
	}
	var evals []protocol.Evaluation
	var from []string
	for _, u := range updates {
		if u.Evaluation != nil {
			evals = append(evals, *u.Evaluation)
			from = append(from, u.Merchant)
		}
	}
	if len(evals) == 0 {
		return "no evaluations", nil
	}
	// Everything from here to the metrics is arithmetic on accepted
	// histograms: a failure is what they say (undefined metrics, a noise sum
	// that overflows), noted in the round's reason. Returned as an error it
	// would fail publish on every tick and stop the federation, on the word
	// of one merchant.
	undefined := func(err error) (string, error) {
		return fmt.Sprintf("evaluation of version %d from %d merchants undefined: %v", r.BaseVersion, len(evals), err), nil
	}
	evals, capped, err := capEvaluations(evals, from, s.pol().Aggregation().WeightShareCap())
	if err != nil {
		return undefined(err)
	}
	counts, sigma, err := fedeval.Sum(evals)
	if err != nil {
		return undefined(err)
	}
	m, err := fedeval.Compute(counts)
	if err != nil {
		return undefined(err)
	}
	se, err := fedeval.StandardErrors(counts, sigma, evaluationSEReplicates, uint64(r.Seq))
	if err != nil {
		return undefined(err)
	}
	metrics := m.MetricsMap(&se)
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		if v := metrics[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			// Noise so large that its spread overflows: no number to store.
			return undefined(fmt.Errorf("%s = %v", k, v))
		}
	}
	if lo, hi, ok := leaveOneOutAUC(evals, from, s.pol().Aggregation().WeightShareCap()); ok {
		metrics["auc_30_loo_min"], metrics["auc_30_loo_max"] = lo, hi
	}
	metrics["merchants"] = float64(len(evals))
	metrics["noise_sigma"] = sigma
	metrics["round_seq"] = float64(r.Seq)
	metrics["cutoff_unix"] = float64(r.Plan.Evaluation.Cutoff.Unix())
	if err := tx.SetModelMetrics(ctx, r.BaseVersion, metrics); err != nil {
		return "", err
	}
	note := fmt.Sprintf("evaluation of version %d from %d merchants: AUC@30 %.4f ± %.4f", r.BaseVersion, len(evals), m.AUC30, se.AUC30)
	if capped != "" {
		note += "; " + capped
	}
	return note, nil
}

// leaveOneOutAUC returns the lowest and highest AUC@30 of the evaluation
// with any one merchant's histogram left out (the others capped as in the
// whole), for the retraining decision: one merchant's histograms, however
// plausible, then cannot on their own move the baseline up or an evaluation
// down. ok is false with fewer than two merchants or when no subset gives a
// finite AUC; a subset whose AUC is undefined is passed over.
func leaveOneOutAUC(evals []protocol.Evaluation, merchants []string, maxShare float64) (lo, hi float64, ok bool) {
	if len(evals) < 2 {
		return 0, 0, false
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for j := range evals {
		rest := slices.Delete(slices.Clone(evals), j, j+1)
		names := slices.Delete(slices.Clone(merchants), j, j+1)
		capped, _, err := capEvaluations(rest, names, maxShare)
		if err != nil {
			continue
		}
		counts, _, err := fedeval.Sum(capped)
		if err != nil {
			continue
		}
		m, err := fedeval.Compute(counts)
		if err != nil || math.IsNaN(m.AUC30) || math.IsInf(m.AUC30, 0) {
			continue
		}
		lo, hi, ok = min(lo, m.AUC30), max(hi, m.AUC30), true
	}
	return lo, hi, ok
}

// capEvaluations scales down the histogram of any merchant holding more than
// maxShare of the customers evaluated (the histograms' totals, each at least
// 1) to that share, as FedAvg caps a merchant's weight (merge.CapShares): one
// merchant cannot outweigh the rest of the federation's evaluation either. A
// scaled histogram's σ scales with it. It returns the histograms and a note
// naming the scaled merchants ("" when none was).
func capEvaluations(evals []protocol.Evaluation, merchants []string, maxShare float64) ([]protocol.Evaluation, string, error) {
	totals := make([]float64, len(evals))
	for i, e := range evals {
		for _, c := range e.Counts {
			totals[i] += c
		}
		totals[i] = max(totals[i], 1)
	}
	shares, err := merge.CapShares(totals, maxShare)
	if err != nil {
		return nil, "", err
	}
	// Keep every uncapped histogram as it is: scale by the share ratio
	// relative to the least reduced one.
	ratio := make([]float64, len(evals))
	var top float64
	var sum float64
	for _, t := range totals {
		sum += t
	}
	for i, t := range totals {
		ratio[i] = shares[i] / (t / sum)
		top = max(top, ratio[i])
	}
	out := make([]protocol.Evaluation, len(evals))
	var notes []string
	for i, e := range evals {
		out[i] = e
		f := ratio[i] / top
		if f >= 1-1e-12 {
			continue
		}
		out[i].Counts = make([]float64, len(e.Counts))
		for j, c := range e.Counts {
			out[i].Counts[j] = f * c
		}
		out[i].Sigma = f * e.Sigma
		notes = append(notes, fmt.Sprintf("%s's histogram scaled by %.4g to %g of the customers", merchants[i], f, maxShare))
	}
	return out, strings.Join(notes, ", "), nil
}

func (s *Service) failAggregating(ctx context.Context, tx Tx, r RoundRecord, reason string, now time.Time) ([]transition, error) {
	r.State = protocol.RoundAggregating
	return s.fail(ctx, tx, r, reason, now)
}

// repairAudit records the audit entries of accepted updates whose submitter
// stopped between commit and audit.
func (s *Service) repairAudit(ctx context.Context) error {
	var us []UpdateRecord
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		us, err = tx.UnauditedUpdates(ctx)
		return err
	})
	if err != nil {
		return err
	}
	cutoff := s.now().Add(-repairAfter)
	for _, u := range us {
		if u.AcceptedAt.After(cutoff) {
			continue
		}
		if err := s.auditAccepted(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// roundRecord is the audit record of a round transition.
func roundRecord(r RoundRecord, action string, outcome audit.Outcome, reason string) audit.Record {
	rec := audit.Record{
		Actor: SystemActor, Action: action, Object: "round/" + r.ID, Outcome: outcome, Reason: reason,
		Details: map[string]string{
			"seq": strconv.FormatInt(r.Seq, 10), "state": string(r.State), "base_version": strconv.Itoa(r.BaseVersion),
			"selected": strconv.Itoa(len(r.Selected)), "quorum": strconv.Itoa(r.Quorum),
		},
	}
	if action == "round.open" {
		rec.Details["deadline"] = r.Deadline.Format(time.RFC3339)
	}
	return rec
}

// Run calls Tick every TickInterval until ctx ends; errors are logged, not fatal.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.rc().TickInterval)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("aggregator tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
