package aggregator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/policies"
)

// Secure rounds (RoundConfig.SecureAggregation) run one DP step of the global
// model whose noise the merchants share: each sampled customer's clipped
// gradient, with a count coordinate (secureplan.Contribution), is encoded by
// its merchant with 1/min_cohort of the discrete Gaussian noise the target ε
// needs (dp/distributed), and the encodings are summed by SecAgg+
// (aggregator/secagg), so the aggregator learns the cohort's sum and nothing
// else. The round machine is the plain one (open → collecting → aggregating →
// published | failed) with the SecAgg+ stage (advertise → share → mask →
// consistency → unmask → done | failed) persisted beside it in
// fed_secure_rounds, together with the protocol state, in the transaction of
// every message it accepts. The consistency stage (secagg's consistency
// check, always on: secureplan.Decode) has each survivor attest the unmask
// request it was sent before any survivor reveals a share, so that an
// aggregator that sends different requests to different merchants gets no
// answer at all.

// secureTolerance and secureColluders size the neighbour graph
// (secagg.ChooseDegree, failure 1e-9): the share of the cohort that may drop
// out, and that may collude with the aggregator.
const (
	secureTolerance = 0.3
	secureColluders = 0.1
)

// securePlanKey identifies a distributed-DP plan by its inputs.
type securePlanKey struct {
	dim, minCohort, maxCohort, maxCustomers, steps int
	clip, q, epsilon, delta                        float64
}

// planSecure sets round r's secure plan and returns the secure round to store
// with it. A cohort too small to reach min_cohort gets a round that fails at
// its first tick: it is never run in plain mode.
func (s *Service) planSecure(ctx context.Context, tx Tx, r *RoundRecord, now time.Time) (*SecureRoundRecord, error) {
	minCohort := s.pol().Aggregation().MinCohort
	timeout := s.rc().SecureStageTimeout
	rec := &SecureRoundRecord{Round: r.ID, Stage: protocol.StageAdvertise, StageDeadline: now.Add(timeout).Truncate(time.Millisecond), UpdatedAt: now}
	// A merchant enrolled but no longer in the policy (a reload removed it)
	// cannot send a message (SubmitSecure refuses it): it is left out of the
	// cohort rather than failing the plan, and with it every tick.
	r.Selected = slices.DeleteFunc(r.Selected, func(m string) bool {
		_, err := s.pol().Merchant(m)
		return err != nil
	})
	r.Plan.Steps = 1
	r.Deadline = now.Add(6 * timeout).Truncate(time.Millisecond) // five stages and a margin
	sp := &protocol.SecurePlan{Merchants: slices.Clone(r.Selected), MinSurvivors: minCohort, StageTimeout: timeout}
	r.Plan.Secure = sp
	failNow := func(reason string) (*SecureRoundRecord, error) {
		rec.Stage, rec.Reason = protocol.StageFailed, reason
		return rec, nil
	}
	n := len(r.Selected)
	if minCohort < 2 {
		return failNow("secure aggregation needs the policy's aggregation.min_cohort ≥ 2")
	}
	if n < minCohort {
		return failNow(fmt.Sprintf("%d merchants sampled, below the policy's min_cohort %d: a secure round is never run with fewer", n, minCohort))
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	sp.Seed = hex.EncodeToString(seed[:])
	base, err := s.baseModel(ctx, tx, r.BaseVersion)
	if err != nil {
		return nil, err
	}
	key := securePlanKey{dim: len(base.Params) + 1, minCohort: minCohort, maxCohort: n, steps: s.rc().PlannedRounds, q: s.rc().SamplingRate}
	var plausible float64
	customers := make([]float64, len(r.Selected))
	for i, id := range r.Selected {
		mp, err := s.pol().Merchant(id)
		if err != nil {
			return nil, fmt.Errorf("plan secure round: %w", err)
		}
		if i > 0 && mp.ClipNorm != key.clip {
			return failNow(fmt.Sprintf("merchants %s and %s have different clip norms (%v, %v): one encoding needs one", r.Selected[0], id, key.clip, mp.ClipNorm))
		}
		key.clip = mp.ClipNorm
		if i == 0 || mp.EpsilonCap < key.epsilon {
			key.epsilon = mp.EpsilonCap
		}
		if i == 0 || mp.Delta < key.delta {
			key.delta = mp.Delta
		}
		customers[i] = mp.PlausibleCustomers()
		plausible += customers[i]
	}
	// The modulus must hold the sampled customers of the whole cohort.
	qn := key.q * plausible
	key.maxCustomers = int(math.Ceil(qn + 10*math.Sqrt(qn) + 10))
	plan, err := s.securePlan(key)
	if err != nil {
		return failNow(fmt.Sprintf("no distributed-DP plan: %v", err))
	}
	plan.Params.Seed = distributed.Seed(seed)
	degree, threshold, err := secagg.ChooseDegree(n, secureTolerance, secureColluders, 1e-9)
	if err != nil {
		// A cohort too small for the tolerance: the complete graph with a
		// threshold of a bare majority, which survives n−1−⌊(n−1)/2⌋−1 dropouts.
		degree, threshold = n-1, (n-1)/2+1
	}
	release, err := plan.Params.Release(minCohort, key.q, 1)
	if err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	if sp.Encoding, err = json.Marshal(plan.Params); err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	if sp.Release, err = json.Marshal(release); err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	sp.Degree, sp.Threshold, sp.MinSurvivors = degree, threshold, max(threshold, minCohort)
	sp.CountScale = key.clip / 2
	round, err := secureplan.Decode(sp)
	if err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	srv, err := secagg.NewServer(round.Config)
	if err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	if rec.Server, err = srv.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("plan secure round: %w", err)
	}
	rec.Customers = customers
	return rec, nil
}

// securePlan returns the distributed-DP plan for key (cached: the bisection
// costs a few hundred accountant evaluations).
func (s *Service) securePlan(key securePlanKey) (distributed.Plan, error) {
	s.mu.Lock()
	p, ok := s.securePlans[key]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := distributed.MakePlan(distributed.PlanOptions{
		Dim: key.dim, Clip: key.clip, MinCohort: key.minCohort, MaxCohort: key.maxCohort, MaxCustomers: key.maxCustomers,
		SamplingRate: key.q, Steps: key.steps, Epsilon: key.epsilon, Delta: key.delta,
	})
	if err != nil {
		return p, err
	}
	s.mu.Lock()
	s.securePlans[key] = p
	s.mu.Unlock()
	return p, nil
}

// loadSecure reads round r's secure state (locked as lock asks) and, for a
// stage in progress, restores the protocol server from it.
func loadSecure(ctx context.Context, tx Tx, r RoundRecord, lock Lock) (SecureRoundRecord, secureplan.Round, *secagg.Server, error) {
	sr, err := tx.SecureRound(ctx, r.ID, lock)
	if err != nil {
		return sr, secureplan.Round{}, nil, err
	}
	if sr.Stage == protocol.StageFailed {
		return sr, secureplan.Round{}, nil, nil
	}
	plan, err := secureplan.Decode(r.Plan.Secure)
	if err != nil {
		return sr, plan, nil, fmt.Errorf("secure round %s: %w", r.ID, err)
	}
	srv, err := secagg.RestoreServer(plan.Config, sr.Server)
	if err != nil {
		return sr, plan, nil, fmt.Errorf("secure round %s: %w: %w", r.ID, errSecureState, err)
	}
	return sr, plan, srv, nil
}

// errSecureState: a secure round's stored protocol state does not replay
// under its plan (corrupt, or stored by a version whose stages differ, e.g. a
// round in its unmask stage from before the consistency stage existed).
var errSecureState = errors.New("stored protocol state does not restore")

// saveSecure writes srv's snapshot into sr and stores it.
func saveSecure(ctx context.Context, tx Tx, sr *SecureRoundRecord, srv *secagg.Server, now time.Time) error {
	snap, err := srv.MarshalBinary()
	if err != nil {
		return fmt.Errorf("secure round %s: %w", sr.Round, err)
	}
	sr.Server, sr.UpdatedAt = snap, now
	return tx.UpdateSecureRound(ctx, *sr)
}

// resumeSecure gives the stage of a secure round in progress at least one
// secure_stage_timeout from now, the aggregator's start: the merchants'
// clients lost their connection while it was down and come back on their
// own retry schedule (up to 10 s apart by default), so a stage whose stored
// deadline ran out, or nearly, while the aggregator was down would otherwise
// close at its first tick without them, dropping merchants that were only
// waiting to resend (the cause of e2e TestSecureAggregatorKilled's lost
// merchant). A stage never closes earlier than stored.
func (s *Service) resumeSecure(ctx context.Context) error {
	err := s.store.InTx(ctx, func(tx Tx) error {
		latest, err := tx.LatestRound(ctx)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		case latest.Plan.Secure == nil || latest.State.Terminal():
			return nil
		}
		// The round's row first, as Tick and SubmitSecure take it.
		r, err := tx.Round(ctx, latest.ID, LockUpdate)
		if err != nil {
			return err
		}
		if r.State != protocol.RoundOpen && r.State != protocol.RoundCollecting {
			return nil
		}
		sr, err := tx.SecureRound(ctx, r.ID, LockUpdate)
		if err != nil {
			return err
		}
		if sr.Stage == protocol.StageDone || sr.Stage == protocol.StageFailed {
			return nil
		}
		now := s.now().UTC()
		floor := now.Add(s.rc().SecureStageTimeout).Truncate(time.Millisecond)
		if !sr.StageDeadline.Before(floor) {
			return nil
		}
		s.log.Info("secure stage resumed after a start: deadline extended for the merchants to reconnect",
			"round", r.ID, "stage", sr.Stage, "stored_deadline", sr.StageDeadline, "deadline", floor)
		sr.StageDeadline, sr.UpdatedAt = floor, now
		return tx.UpdateSecureRound(ctx, sr)
	})
	if err != nil {
		return fmt.Errorf("resume secure round: %w", err)
	}
	return nil
}

// advanceSecure moves a secure round's stage on once every merchant it waits
// for has sent its message, or the stage's deadline passed: to the next
// stage, to aggregating once the sum is unmasked, or to failed when too few
// merchants are left (secagg.ErrTooFewSurvivors: fewer than min_cohort, or a
// merchant's shares out of reach). A failed secure round reveals nothing.
func (s *Service) advanceSecure(ctx context.Context, tx Tx, r RoundRecord, now time.Time) ([]transition, error) {
	sr, _, srv, err := loadSecure(ctx, tx, r, LockUpdate)
	failSecure := func(reason string) ([]transition, error) {
		sr.Stage, sr.Reason, sr.UpdatedAt = protocol.StageFailed, reason, now
		if err := tx.UpdateSecureRound(ctx, sr); err != nil {
			return nil, err
		}
		return s.fail(ctx, tx, r, "secure aggregation: "+reason, now)
	}
	switch {
	case errors.Is(err, errSecureState):
		// It will not restore at the next tick either: fail the round, which
		// unmasks nothing, rather than every tick of the service.
		return failSecure(err.Error())
	case err != nil:
		return nil, err
	}
	if sr.Stage == protocol.StageFailed {
		// Failed when planned: no merchant dropped out, but an exclusion
		// may have ended with it.
		readmit, err := s.secureReadmit(ctx, tx, r)
		if err != nil {
			return nil, err
		}
		ts, err := failSecure(sr.Reason)
		return append(readmit, ts...), err
	}
	expired := !now.Before(sr.StageDeadline)
	var waiting, got int
	switch srv.Stage() {
	case secagg.StageAdvertise:
		waiting, got = len(srv.Config().Clients), len(srv.Advertised())
	case secagg.StageShare:
		waiting, got = len(srv.Advertised()), len(srv.Shared())
	case secagg.StageMask:
		waiting, got = len(srv.Shared()), len(srv.Survivors())
	case secagg.StageConsistency:
		waiting, got = len(srv.Request().Survivors), len(srv.Attested())
	case secagg.StageUnmask:
		// Only attesters are asked: an honest merchant answers only a
		// request it attested.
		waiting, got = len(srv.Attested()), len(srv.Answered())
	default:
		return nil, nil // done: Tick's publish step takes it
	}
	if got < waiting && !expired {
		return nil, nil
	}
	// The senders of a stage before masking, for the dropout records
	// (securedropout.go) when the stage ends the part before masking.
	var senders []uint32
	premask := true
	switch srv.Stage() {
	case secagg.StageAdvertise:
		senders = slices.Clone(srv.Advertised())
	case secagg.StageShare:
		senders = slices.Clone(srv.Shared())
	case secagg.StageMask:
		senders = slices.Clone(srv.Survivors())
	default:
		premask = false
	}
	masking := srv.Stage() == secagg.StageMask
	var next protocol.SecureStage
	var reason string
	switch srv.Stage() {
	case secagg.StageAdvertise:
		next = protocol.StageShare
		var signers string
		if signers, err = advertFingerprints(ctx, tx, r, srv.Advertised()); err != nil {
			return nil, err
		}
		reason = fmt.Sprintf("%d of %d merchants advertised keys, signed by (secagg id=key id) %s", got, waiting, signers)
		err = srv.EndAdvertise()
	case secagg.StageShare:
		err, next = srv.EndShare(), protocol.StageMask
		reason = fmt.Sprintf("%d of %d merchants shared keys", got, waiting)
	case secagg.StageMask:
		var req secagg.UnmaskRequest
		req, err = srv.EndMask()
		next = protocol.StageConsistency
		reason = fmt.Sprintf("%d masked inputs; %d merchants dropped out after sharing (their masks are removed with their key shares)", len(req.Survivors), len(req.Dropouts))
	case secagg.StageConsistency:
		err, next = srv.EndConsistency(), protocol.StageUnmask
		reason = fmt.Sprintf("%d of %d survivors attested the unmask request", got, waiting)
	case secagg.StageUnmask:
		var sum []uint32
		if sum, err = srv.Result(); err == nil {
			next = protocol.StageDone
			sr.Result = binary.BigEndian.AppendUint32(nil, 0)[:0]
			for _, w := range sum {
				sr.Result = binary.BigEndian.AppendUint32(sr.Result, w)
			}
			reason = fmt.Sprintf("sum of %d masked inputs unmasked with the shares of %d survivors", len(srv.Survivors()), got)
		}
	}
	var dropouts []transition
	if premask && (masking || err != nil) {
		// The part before masking is over: who did not send dropped out.
		ts, derr := s.secureDropouts(ctx, tx, r, srv.Config(), senders, masking && err == nil)
		if derr != nil {
			return nil, derr
		}
		readmit, derr := s.secureReadmit(ctx, tx, r)
		if derr != nil {
			return nil, derr
		}
		dropouts = slices.Concat(ts, readmit)
	}
	if err != nil {
		if errors.Is(err, secagg.ErrTooFewSurvivors) || errors.Is(err, secagg.ErrTooFewShares) {
			ts, err := failSecure(err.Error())
			return append(dropouts, ts...), err
		}
		return nil, fmt.Errorf("secure round %s: %w", r.ID, err)
	}
	sr.Stage, sr.StageDeadline = next, now.Add(s.rc().SecureStageTimeout).Truncate(time.Millisecond)
	if err := saveSecure(ctx, tx, &sr, srv, now); err != nil {
		return nil, err
	}
	out := slices.Concat(dropouts, []transition{{round: r, action: "round.secure." + string(next), reason: reason}})
	if next != protocol.StageDone {
		return out, nil
	}
	if err := tx.SetRoundState(ctx, r.ID, r.State, protocol.RoundAggregating, reason, now); err != nil {
		return nil, err
	}
	r.State = protocol.RoundAggregating
	return append(out, transition{round: r, action: "round.aggregate", reason: reason}), nil
}

// advertFingerprints lists the key ids (keys.KeyID) of the enrolled signing
// keys the adverts of ids were checked with, as "id=key id" by secagg id, for
// the audit entry that closes the advertise stage: with the round's plan
// (secagg id i is its merchant i), an audit can compare them with the keys
// the merchants enrolled, and a merchant with the fingerprints its client
// logged.
func advertFingerprints(ctx context.Context, tx Tx, r RoundRecord, ids []uint32) (string, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		m, err := tx.Merchant(ctx, r.Plan.Secure.Merchants[id-1])
		if err != nil {
			return "", fmt.Errorf("secure round %s: signing key of advert %d: %w", r.ID, id, err)
		}
		parts[i] = fmt.Sprintf("%d=%s", id, keys.KeyID(m.PublicKey))
	}
	return strings.Join(parts, ","), nil
}

// publishSecure decodes an unmasked secure round's sum, checks its norm, and
// publishes the step it gives: the mean of the sampled customers' clipped
// gradients (the sum over its noisy count) times −learning rate, applied by
// the server optimizer. A sum beyond the norm an honest cohort can reach
// fails the round: some merchant sent an out-of-range encoding, and the
// aggregator cannot tell which from the sum.
func (s *Service) publishSecure(ctx context.Context, tx Tx, r RoundRecord, now time.Time) ([]transition, error) {
	sr, plan, srv, err := loadSecure(ctx, tx, r, LockUpdate)
	if err != nil {
		return nil, err
	}
	if sr.Stage != protocol.StageDone || len(sr.Result)%4 != 0 {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("secure round in stage %s with a %d-byte result", sr.Stage, len(sr.Result)), now)
	}
	words := make([]uint32, len(sr.Result)/4)
	for i := range words {
		words[i] = binary.BigEndian.Uint32(sr.Result[4*i:])
	}
	sum, err := distributed.DecodeSum(words, plan.Params)
	if err != nil {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("decode the secure sum: %v", err), now)
	}
	survivors := srv.Survivors()
	merchants := make([]string, len(survivors))
	for i, id := range survivors {
		merchants[i] = r.Plan.Secure.Merchants[id-1]
	}
	// One policy for the whole publish: a reload may land meanwhile.
	pol := s.pol()
	mps := make([]policies.MerchantPolicy, len(merchants))
	var gone []string
	for i, m := range merchants {
		if mps[i], err = pol.Merchant(m); err != nil {
			gone = append(gone, m)
		}
	}
	if len(gone) > 0 {
		// A reload removed a masker from the policy after its input was
		// accepted. Unlike a plain round's update, its input cannot be taken
		// out of the unmasked sum, and publishing would put a merchant the
		// operator cut off into the model (nor is its norm bound known): the
		// round fails, rather than failing publish on every tick. The debits
		// stand: the maskers' noise shares were released in the sum.
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("the secure sum holds the masked inputs of %s, no longer in the policy: it cannot be taken apart, so it is not published (the maskers' debits stand)", strings.Join(gone, ", ")), now)
	}
	// The bound is the round's own: the survivors' plausible customers as
	// planned, so that a reload between masking and publishing can neither
	// fail an honest sum nor pass an inflated one.
	planned := make([]float64, len(survivors))
	switch {
	case len(sr.Customers) == len(r.Plan.Secure.Merchants):
		for i, id := range survivors {
			planned[i] = sr.Customers[id-1]
		}
	case len(sr.Customers) == 0:
		// Planned before the plan's customers were stored: the policy in
		// force, as then.
		s.log.Warn("secure round planned without stored customers: norm bound from the policy in force", "round", r.ID)
		for i, mp := range mps {
			planned[i] = mp.PlausibleCustomers()
		}
	default:
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("secure round stores the customers of %d merchants, its plan has %d: no norm bound, not published", len(sr.Customers), len(r.Plan.Secure.Merchants)), now)
	}
	bound := secureNormBound(plan, planned)
	if n := l2norm(sum); n > bound {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("secure sum's norm %.6g above %.6g, the most an honest cohort of %d reaches: an encoding out of range; not published", n, bound, len(survivors)), now)
	}
	grad, customers, err := plan.Split(sum)
	if err != nil {
		return nil, err
	}
	baseRec, err := tx.Model(ctx, r.BaseVersion)
	if err != nil {
		return nil, err
	}
	base, err := s.baseModel(ctx, tx, r.BaseVersion)
	if err != nil {
		return nil, err
	}
	if len(grad) != len(base.Params) {
		return s.failAggregating(ctx, tx, r, fmt.Sprintf("secure sum of %d parameters, model has %d", len(grad), len(base.Params)), now)
	}
	divisor := max(customers, 1) // the noisy count can be small or negative
	combined := make([]float64, len(grad))
	for j, g := range grad {
		g /= divisor
		if j >= base.Horizon {
			g += s.rc().L2 * base.Params[j] // the ridge on the feature weights: no data, no privacy cost
		}
		combined[j] = -s.rc().LearningRate * g
	}
	heads, err := tx.Budgets(ctx)
	if err != nil {
		return nil, err
	}
	contrib := make([]protocol.Contribution, len(merchants))
	for i, m := range merchants {
		contrib[i] = protocol.Contribution{Merchant: m, Delta: mps[i].Delta, Weight: 1 / float64(len(merchants))}
		if k := slices.IndexFunc(heads, func(h BudgetHead) bool { return h.Merchant == m }); k >= 0 {
			contrib[i].Epsilon = heads[k].Epsilon
		}
	}
	desc := fmt.Sprintf("secagg+ ddgauss sum of %d merchants (min_cohort %d) norm≤%.6g", len(merchants), plan.Release.Cohort, bound)
	return s.step(ctx, tx, r, baseRec, base, combined, contrib, desc, now, func(version int) string {
		return fmt.Sprintf("version %d from the secure sum of %d merchants (%.1f sampled customers, DP)", version, len(merchants), customers)
	})
}

// secureNormBound is the largest L2 norm an honest cohort's decoded sum
// reaches but with negligible probability: at most K sampled customers, K =
// qN + 10√(qN) + 10 for N the survivors' plausible customers (customers, one
// per survivor: policy max_customers, else 1/δ, when the round was planned),
// each contributing at most γ·Δ₂ after rounding, plus the survivors' noise,
// whose norm over the padded dimension d stays below √v·(√d + 10) for the
// per-coordinate variance v = γ²·σ²·survivors (sub-Gaussian concentration).
func secureNormBound(plan secureplan.Round, customers []float64) float64 {
	var n float64
	for _, c := range customers {
		n += c
	}
	q := plan.Release.Q
	k := q*n + 10*math.Sqrt(q*n) + 10
	s2, _ := plan.Params.LocalVariance.Float64()
	v := plan.Params.Gamma * plan.Params.Gamma * s2 * float64(len(customers))
	return k*plan.Params.Gamma*plan.Params.NormBound() + math.Sqrt(v)*(math.Sqrt(float64(plan.Params.PaddedDim()))+10)
}

func l2norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// secureMerchantPolicy is the policy of a merchant of a secure round.
func (s *Service) secureMerchantPolicy(merchant string) (policies.MerchantPolicy, error) {
	mp, err := s.pol().Merchant(merchant)
	if err != nil {
		return mp, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return mp, nil
}
