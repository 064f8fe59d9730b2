package client

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// SecureAPI is what a secure round needs of the aggregator (*apiclient.Client).
type SecureAPI interface {
	SecureStatus(ctx context.Context, roundID string) (protocol.SecureStatus, error)
	SubmitSecure(ctx context.Context, roundID string, envelope []byte) (protocol.SecureReceipt, error)
}

var _ SecureAPI = (*apiclient.Client)(nil)

// Crash points of a secure round (Options.Hook).
const (
	// HookSecureMasked: the masked input was accepted, before the
	// consistency stage.
	HookSecureMasked = "secure-masked"
	// HookSecureAttested: the attestation of the unmask request was
	// accepted, before the unmask stage.
	HookSecureAttested = "secure-attested"
)

// Outcomes of a secure round, besides OutcomeAccepted (the merchant's masked
// input went into the sum and it answered the unmask request).
const (
	// OutcomeDropped: the round moved past a stage before this merchant's
	// message for it (too slow, or restarted mid-round): it is a dropout,
	// and its masks are removed with its neighbours' shares.
	OutcomeDropped = "dropped"
	// OutcomeFailed: the round failed (too few merchants); nothing was unmasked.
	OutcomeFailed = "failed"
	// OutcomeUnmaskRefused: this merchant refused the aggregator's unmask
	// request — one that could expose an input, or that too few of its
	// neighbours attested (the aggregator sent different requests to
	// different merchants) — and revealed no share.
	OutcomeUnmaskRefused = "unmask-refused"
	// OutcomeKeysRefused: a neighbour's keys, as the aggregator relayed
	// them, did not carry that neighbour's signature (checked with the
	// pinned peer keys, else with the keys the aggregator reports): the
	// aggregator may have put keys of its own in their place. This merchant
	// sent no share and no masked input.
	OutcomeKeysRefused = "keys-refused"
	// OutcomeAbandoned: the round did not end within the client's bound
	// (Options.SecureRoundTimeout), so the client left it. If the masked
	// input was sent by then, its release stays in the local ledger (it was
	// debited before it left): the aggregator may still unmask the sum it
	// is in, with the neighbours' shares, as it may for any merchant that
	// drops out after masking.
	OutcomeAbandoned = "abandoned"
)

// DefaultSecureRoundTimeout is how long a client stays in one secure round
// by default. An honest round has five stages of at most the aggregator's
// secure_stage_timeout each (1 minute by default) and a deadline of six;
// an aggregator restart gives the open stage one more. An hour leaves ten
// times that, and bounds what an aggregator that never moves a round on
// takes from the merchant: the client would otherwise wait in it for ever.
const DefaultSecureRoundTimeout = time.Hour

// ErrPeerKeys is wrapped by the refusal of a neighbour's relayed keys.
var ErrPeerKeys = errors.New("neighbour's keys refused")

// SecureParticipant takes part in one secure-aggregation round for a
// merchant: it runs the client side of SecAgg+ (aggregator/secagg), sealing
// and signing each stage's message to the aggregator as an update is sealed,
// and polling the round's status for the aggregator's messages.
type SecureParticipant struct {
	API      SecureAPI
	Merchant *keys.Merchant
	Round    protocol.Round
	// Input returns the merchant's encoding for the round (its clipped,
	// noised, quantised gradient sum); called once, after the key exchange.
	Input func(ctx context.Context, plan secureplan.Round) ([]uint32, error)
	// BeforeMask runs before the masked input is sent: the local ledger's
	// debit, made durable first (plan.Release).
	BeforeMask func(plan secureplan.Round) error
	Now        func() time.Time
	Rand       io.Reader
	Poll       time.Duration
	Backoff    Backoff
	Hook       func(point string)
	Logger     *slog.Logger
	// WithoutConsistencyCheck answers the unmask request without its
	// neighbours' attestations, as clients did before the consistency
	// stage. It exists only for the test that shows the attack the check
	// stops (aggregator's TestSecureSplitRequests); the runner never sets it.
	WithoutConsistencyCheck bool
	// PeerKeys, when not nil, are the cohort's Ed25519 signing keys by
	// merchant id from a source the aggregator does not control (the
	// client's secure.peer_keys): each neighbour's advert must verify with
	// its key here, and a neighbour missing from it is refused. When nil,
	// adverts are checked with the keys the aggregator reports
	// (SecureStatus.Signers), whose fingerprints are logged: that stops an
	// aggregator that relays keys it did not get signed, not one that also
	// lies about the signing keys (docs/privacy.md §14a).
	PeerKeys map[string]ed25519.PublicKey
	// WithoutAdvertCheck uses the neighbours' keys without checking their
	// signatures, as clients did before adverts were signed. It exists only
	// for the test that shows the attack the check stops (aggregator's
	// TestSecureKeySubstitution); the runner never sets it.
	WithoutAdvertCheck bool

	rng *mathrand.Rand
}

// SecureResult is how a merchant's secure round ended.
type SecureResult struct {
	Outcome string
	Reason  string
	// Receipt is the aggregator's answer to the masked input (its ε after
	// the round's debit), when it was accepted.
	Receipt *protocol.SecureReceipt
	// Debited reports whether BeforeMask ran (the local ledger holds the release).
	Debited bool
}

// Run plays the round to its end for this merchant.
func (p *SecureParticipant) Run(ctx context.Context) (SecureResult, error) {
	var res SecureResult
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Rand == nil {
		p.Rand = crand.Reader
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Backoff.Initial <= 0 {
		p.Backoff = Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	}
	var seed [32]byte
	if _, err := io.ReadFull(crand.Reader, seed[:]); err != nil {
		return res, err
	}
	p.rng = mathrand.New(mathrand.NewChaCha8(seed))
	plan, err := secureplan.Decode(p.Round.Plan.Secure)
	if err != nil {
		return res, fmt.Errorf("secure round %s: %w", p.Round.ID, err)
	}
	id := secureplan.ID(p.Round.Plan.Secure, p.Merchant.ID)
	if id == 0 {
		return res, fmt.Errorf("secure round %s: %s is not in the cohort", p.Round.ID, p.Merchant.ID)
	}
	if p.WithoutConsistencyCheck {
		plan.Config.Consistency = false
	}
	c, err := secagg.NewClient(plan.Config, id, nil)
	if err != nil {
		return res, fmt.Errorf("secure round %s: %w", p.Round.ID, err)
	}
	end := func(err error) (SecureResult, error) {
		var st *stageEnd
		switch {
		case errors.As(err, &st):
			res.Outcome, res.Reason = st.outcome, st.reason
			p.Logger.Warn("secure round ended early", "round", p.Round.ID, "outcome", st.outcome, "reason", st.reason)
			return res, nil
		case errors.Is(err, ErrPeerKeys):
			res.Outcome, res.Reason = OutcomeKeysRefused, err.Error()
			p.Logger.Error("refused the neighbours' keys the aggregator relayed; no share was sent", "round", p.Round.ID, "reason", err)
			return res, nil
		case errors.Is(err, secagg.ErrRefused):
			res.Outcome, res.Reason = OutcomeUnmaskRefused, err.Error()
			p.Logger.Error("refused the aggregator's unmask request; no share was sent", "round", p.Round.ID, "reason", err)
			return res, nil
		case err != nil:
			return res, fmt.Errorf("secure round %s: %w", p.Round.ID, err)
		}
		return res, nil
	}

	adv, err := c.Advertise()
	if err != nil {
		return end(err)
	}
	secureplan.SignAdvert(p.Merchant.Signing, p.Round.Recipient, p.Round.ID, p.Round.Plan.Secure, p.Merchant.ID, &adv)
	if _, err := p.send(ctx, protocol.StageAdvertise, adv); err != nil {
		return end(err)
	}
	st, err := p.await(ctx, protocol.StageShare)
	if err != nil {
		return end(err)
	}
	var keysMsg secagg.KeysMsg
	if err := keysMsg.UnmarshalBinary(st.Message); err != nil {
		return end(fmt.Errorf("keys from the aggregator: %w", err))
	}
	if !p.WithoutAdvertCheck {
		if err := p.checkPeers(keysMsg, st.Signers); err != nil {
			return end(err)
		}
	}
	shares, err := c.Share(keysMsg)
	if err != nil {
		return end(err)
	}
	if _, err := p.send(ctx, protocol.StageShare, shares); err != nil {
		return end(err)
	}
	input, err := p.Input(ctx, plan)
	if err != nil {
		return end(err)
	}
	if st, err = p.await(ctx, protocol.StageMask); err != nil {
		return end(err)
	}
	var delivery secagg.DeliveryMsg
	if err := delivery.UnmarshalBinary(st.Message); err != nil {
		return end(fmt.Errorf("shares from the aggregator: %w", err))
	}
	if p.BeforeMask != nil {
		if err := p.BeforeMask(plan); err != nil {
			return end(err)
		}
		res.Debited = true
	}
	masked, err := c.Mask(delivery, input)
	if err != nil {
		return end(err)
	}
	rc, err := p.send(ctx, protocol.StageMask, masked)
	if err != nil {
		return end(err)
	}
	res.Receipt = &rc
	p.hook(HookSecureMasked)
	// Consistency: attest the unmask request this merchant was sent, to its
	// neighbours; the aggregator cannot forge their attestations.
	if st, err = p.await(ctx, protocol.StageConsistency); err != nil {
		return end(err)
	}
	var req secagg.UnmaskRequest
	if err := req.UnmarshalBinary(st.Message); err != nil {
		return end(fmt.Errorf("unmask request: %w", err))
	}
	att, err := c.Attest(req) // refuses a request that could expose one input
	if err != nil {
		return end(err)
	}
	if _, err := p.send(ctx, protocol.StageConsistency, att); err != nil {
		return end(err)
	}
	p.hook(HookSecureAttested)
	// Unmask: answer only the request attested here and by Threshold
	// neighbours (UnmaskConsistent refuses anything else).
	if st, err = p.await(ctx, protocol.StageUnmask); err != nil {
		return end(err)
	}
	var cons secagg.ConsistencyMsg
	if err := cons.UnmarshalBinary(st.Message); err != nil {
		return end(fmt.Errorf("attestations from the aggregator: %w", err))
	}
	var asked secagg.UnmaskRequest
	if err := asked.UnmarshalBinary(st.Request); err != nil {
		return end(fmt.Errorf("unmask request: %w", err))
	}
	var resp secagg.UnmaskResponse
	if p.WithoutConsistencyCheck {
		resp, err = c.Unmask(asked)
	} else {
		resp, err = c.UnmaskConsistent(asked, cons)
	}
	if err != nil {
		return end(err)
	}
	if _, err := p.send(ctx, protocol.StageUnmask, resp); err != nil {
		return end(err)
	}
	if st, err = p.await(ctx, protocol.StageDone); err != nil {
		return end(err)
	}
	res.Outcome = OutcomeAccepted
	return res, nil
}

// checkPeers verifies each relayed neighbour's keys against its signature,
// with its pinned key (PeerKeys) or, without pinned keys, the one the
// aggregator reports (signers); any failure is ErrPeerKeys.
func (p *SecureParticipant) checkPeers(k secagg.KeysMsg, signers map[string][]byte) error {
	merchants := p.Round.Plan.Secure.Merchants
	source := "aggregator"
	if p.PeerKeys != nil {
		source = "pinned"
	}
	used := make([]string, 0, len(k.Peers))
	for _, peer := range k.Peers {
		if peer.ID < 1 || int(peer.ID) > len(merchants) {
			return fmt.Errorf("%w: keys of secagg id %d, outside the cohort", ErrPeerKeys, peer.ID)
		}
		merchant := merchants[peer.ID-1]
		var key ed25519.PublicKey
		if p.PeerKeys != nil {
			key = p.PeerKeys[merchant]
		} else {
			key = signers[merchant]
		}
		if key == nil {
			return fmt.Errorf("%w: no %s signing key for neighbour %s", ErrPeerKeys, source, merchant)
		}
		if err := secureplan.VerifyAdvert(key, p.Round.Recipient, p.Round.ID, p.Round.Plan.Secure, merchant, peer.ID, peer.CPub, peer.SPub, peer.Sig); err != nil {
			return fmt.Errorf("%w: %w (%s key)", ErrPeerKeys, err, source)
		}
		used = append(used, merchant+"="+keys.KeyID(key))
	}
	// Without pinned keys, the fingerprints are what a later audit compares
	// with the enrolled keys (and with the aggregator's audit entry).
	p.Logger.Info("neighbours' keys verified", "round", p.Round.ID, "source", source, "signing_keys", strings.Join(used, ","))
	return nil
}

func (p *SecureParticipant) hook(point string) {
	if p.Hook != nil {
		p.Hook(point)
	}
}

// stageEnd is a round that went on without this merchant, or failed.
type stageEnd struct{ outcome, reason string }

func (e *stageEnd) Error() string { return e.outcome + ": " + e.reason }

var stageOrder = map[protocol.SecureStage]int{
	protocol.StageAdvertise: 1, protocol.StageShare: 2, protocol.StageMask: 3, protocol.StageConsistency: 4, protocol.StageUnmask: 5, protocol.StageDone: 6,
}

// await polls the round's status until it reaches stage want with a message
// for this merchant (or, for StageDone, reaches it). A round past want, or
// failed, ends the merchant's part.
func (p *SecureParticipant) await(ctx context.Context, want protocol.SecureStage) (protocol.SecureStatus, error) {
	failures := 0
	for {
		st, err := p.API.SecureStatus(ctx, p.Round.ID)
		wait := p.Poll
		switch {
		case err == nil:
			failures = 0
			switch {
			case st.Stage == protocol.StageFailed:
				return st, &stageEnd{OutcomeFailed, st.Reason}
			case st.Stage == protocol.StageDone && want == protocol.StageDone && !st.State.Terminal():
				// The sum is out; published or refused by the norm check next.
			case stageOrder[st.Stage] > stageOrder[want]:
				return st, &stageEnd{OutcomeDropped, fmt.Sprintf("the round reached stage %s while this merchant waited for %s", st.Stage, want)}
			case st.Stage == want && (want == protocol.StageDone || len(st.Message) > 0):
				return st, nil
			case st.Stage == want:
				return st, &stageEnd{OutcomeDropped, fmt.Sprintf("the aggregator has no %s message for this merchant", want)}
			}
		case ctx.Err() != nil:
			return st, ctx.Err()
		case retryable(err):
			wait = p.Backoff.wait(failures, p.rng)
			failures++
			p.Logger.Warn("secure round status failed; retrying", "round", p.Round.ID, "err", err, "wait", wait)
		default:
			return st, fmt.Errorf("status of stage %s: %w", want, err)
		}
		if err := sleep(ctx, wait); err != nil {
			return st, err
		}
	}
}

// send seals m as the merchant's message for stage and uploads it until the
// aggregator answers for good; the same envelope is sent again after a
// transient failure (a restarted aggregator answers it as a duplicate).
func (p *SecureParticipant) send(ctx context.Context, stage protocol.SecureStage, m encoding.BinaryMarshaler) (protocol.SecureReceipt, error) {
	body, err := m.MarshalBinary()
	if err != nil {
		return protocol.SecureReceipt{}, err
	}
	payload, err := json.Marshal(protocol.SecureMessage{Version: protocol.Version, Round: p.Round.ID, Merchant: p.Merchant.ID, Stage: stage, Body: body})
	if err != nil {
		return protocol.SecureReceipt{}, err
	}
	rcpt, err := keys.ParseRecipient(p.Round.Recipient)
	if err != nil {
		return protocol.SecureReceipt{}, fmt.Errorf("aggregator recipient: %w", err)
	}
	h := seal.Header{MerchantID: p.Merchant.ID, Round: p.Round.ID, ModelVersion: strconv.Itoa(p.Round.BaseVersion), CreatedAt: p.Now().UTC()}
	env, err := seal.Seal(p.Rand, h, payload, p.Merchant.Signing, rcpt)
	if err != nil {
		return protocol.SecureReceipt{}, fmt.Errorf("seal %s message: %w", stage, err)
	}
	for attempt := 0; ; attempt++ {
		rc, err := p.API.SubmitSecure(ctx, p.Round.ID, env)
		if err == nil {
			return rc, nil
		}
		if ctx.Err() != nil {
			return rc, ctx.Err()
		}
		var prob *apiclient.Problem
		if errors.As(err, &prob) && !prob.Temporary() {
			switch prob.Type {
			case apiclient.TypeSecureStage, apiclient.TypeConflict, apiclient.TypeRoundClosed:
				return rc, &stageEnd{OutcomeDropped, prob.Detail}
			case apiclient.TypeBudgetExhausted:
				return rc, fmt.Errorf("%w: %w", ErrFederationBudget, err)
			}
			return rc, fmt.Errorf("%s message refused: %w", stage, err)
		}
		if attempt%5 == 4 {
			// A round that went on, or ended, without this message needs it no more.
			if st, serr := p.API.SecureStatus(ctx, p.Round.ID); serr == nil && (st.State.Terminal() || st.Stage == protocol.StageFailed || stageOrder[st.Stage] > stageOrder[stage]) {
				return rc, &stageEnd{OutcomeDropped, fmt.Sprintf("the round reached stage %s (%s) while the %s message failed: %v", st.Stage, st.State, stage, err)}
			}
		}
		wait := p.Backoff.wait(attempt, p.rng)
		p.Logger.Warn("secure message upload failed; retrying", "round", p.Round.ID, "stage", stage, "err", err, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return rc, err
		}
	}
}

// joinSecure takes part in a secure round: the runner's counterpart of join.
// The local ledger is debited with the round's release (dp.DDGauss at the
// plan's min_cohort) and saved before the masked input leaves; the round is
// recorded in the state whatever its outcome, so it is never joined twice.
func (r *Runner) joinSecure(ctx context.Context, round protocol.Round) error {
	sapi, ok := r.opt.API.(SecureAPI)
	if !ok {
		return fmt.Errorf("round %s runs secure aggregation, which this API client does not speak", round.ID)
	}
	plan, err := secureplan.Decode(round.Plan.Secure)
	if err != nil {
		return fmt.Errorf("round %s: %w", round.ID, err)
	}
	if _, err := r.checkCap([]dp.Release{plan.Release}); err != nil {
		return err
	}
	base, err := hazard.Unmarshal(round.Model, "")
	if err != nil {
		return fmt.Errorf("round %s: base model: %w", round.ID, err)
	}
	st := r.opt.State
	var epsAfter float64
	p := &SecureParticipant{
		API: sapi, Merchant: r.opt.Merchant, Round: round, Now: r.opt.Now, Rand: r.opt.Rand,
		Poll: r.opt.PollInterval, Backoff: r.opt.Backoff, Hook: r.opt.Hook, Logger: r.opt.Logger, PeerKeys: r.opt.PeerKeys,
		Input: func(ctx context.Context, plan secureplan.Round) ([]uint32, error) {
			r.progress(StageFeatures, round.ID)
			rows, err := r.features(round.Plan.Cutoffs, base.Schema)
			if err != nil && !errors.Is(err, train.ErrNoCustomers) {
				return nil, err
			}
			r.progress(StageTrain, round.ID)
			return SecureInput(ctx, base, rows, plan, false)
		},
		BeforeMask: func(plan secureplan.Round) error {
			eps, err := r.checkCap([]dp.Release{plan.Release})
			if err != nil {
				return err
			}
			epsAfter = eps
			st.Releases = append(st.Releases, plan.Release)
			st.Delta = r.opt.Delta
			return r.opt.Store.Save(st)
		},
	}
	if planned := 6 * round.Plan.Secure.StageTimeout; planned > r.opt.SecureRoundTimeout {
		r.opt.Logger.Warn("the aggregator's secure stages may outlast this client's bound on a round; raise secure.round_timeout", "round", round.ID, "stage_timeout", round.Plan.Secure.StageTimeout, "round_timeout", r.opt.SecureRoundTimeout)
	}
	r.progress(StageUpload, round.ID)
	rctx, cancel := context.WithTimeout(ctx, r.opt.SecureRoundTimeout)
	defer cancel()
	res, err := p.Run(rctx)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		return r.abandonSecure(round, res, epsAfter)
	}
	if err != nil {
		if errors.Is(err, ErrFederationBudget) {
			if ferr := r.recordSecure(round, OutcomeRefused, err.Error(), epsAfter); ferr != nil {
				return ferr
			}
		}
		return err
	}
	if res.Receipt != nil {
		r.opt.Logger.Info("secure round done", "round", round.ID, "outcome", res.Outcome, "epsilon", res.Receipt.Epsilon, "epsilon_cap", res.Receipt.EpsilonCap)
	}
	r.joined++
	return r.recordSecure(round, res.Outcome, res.Reason, epsAfter)
}

// abandonSecure records a secure round the client left at its bound, and
// counts it as joined: the runner goes back to polling for the next round.
func (r *Runner) abandonSecure(round protocol.Round, res SecureResult, eps float64) error {
	reason := fmt.Sprintf("the round did not end within %s (client secure.round_timeout); nothing was debited", r.opt.SecureRoundTimeout)
	if res.Debited {
		reason = fmt.Sprintf("the round did not end within %s (client secure.round_timeout) after the local debit: the masked input may be in the aggregator's sum, and its release stays in the local ledger", r.opt.SecureRoundTimeout)
	}
	r.opt.Logger.Warn("secure round abandoned", "round", round.ID, "reason", reason)
	r.joined++
	return r.recordSecure(round, OutcomeAbandoned, reason, eps)
}

func (r *Runner) recordSecure(round protocol.Round, outcome, reason string, eps float64) error {
	st := r.opt.State
	st.Rounds = append(st.Rounds, RoundRecord{
		Round: round.ID, Seq: round.Seq, BaseVersion: round.BaseVersion, Outcome: outcome, Reason: reason,
		LocalEpsilon: eps, At: r.opt.Now().UTC(),
	})
	st.Prune()
	if err := r.opt.Store.Save(st); err != nil {
		return fmt.Errorf("round %s: %w", round.ID, err)
	}
	return nil
}

// SecureInput is a merchant's encoding for a secure round: each customer
// Poisson-sampled at the release's rate contributes its loss gradient at
// base (secureplan.Contribution: clipped, with the count coordinate), and
// the contributions are encoded with the merchant's share of the discrete
// Gaussian noise (distributed.Encode; without it when noiseless, for tests of
// the exact sum). The sampling and the noise come from crypto/rand. A
// merchant without customers encodes noise alone.
func SecureInput(ctx context.Context, base *hazard.Model, rows []feature.Row, plan secureplan.Round, noiseless bool) ([]uint32, error) {
	var seed [32]byte
	if _, err := io.ReadFull(crand.Reader, seed[:]); err != nil {
		return nil, err
	}
	sampler := mathrand.New(mathrand.NewChaCha8(seed))
	grad := make([]float64, len(base.Params))
	var contrib [][]float64
	for _, g := range train.GroupByCustomer(rows) {
		if sampler.Float64() >= plan.Release.Q {
			continue
		}
		clear(grad)
		if _, err := base.CustomerLoss(g, grad); err != nil {
			return nil, fmt.Errorf("secure input: %w", err)
		}
		if dp.CheckFinite(grad) != nil {
			continue // whether a merchant sends never depends on one customer
		}
		c, err := plan.Contribution(grad)
		if err != nil {
			return nil, err
		}
		contrib = append(contrib, c)
	}
	encode := distributed.Encode
	if noiseless {
		encode = distributed.EncodeWithoutNoise
	}
	return encode(ctx, contrib, plan.Params)
}
