package aggregator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

// refusals are the sentinels of a submission refused for what it is (audited
// as denied), as opposed to failures of the aggregator.
var refusals = []error{
	ErrNotFound, ErrConflict, ErrRoundClosed, ErrPolicy, ErrNotSelected,
	dp.ErrBudgetExhausted, protocol.ErrInvalidUpdate, protocol.ErrSecureStage,
	seal.ErrMalformed, seal.ErrTooLarge, seal.ErrMissingSignature, seal.ErrUnknownSigner,
	seal.ErrRevokedSigner, seal.ErrBadSignature, seal.ErrRoundMismatch, seal.ErrStale,
	seal.ErrRecipientKind, seal.ErrReplay, seal.ErrDecrypt, seal.ErrDigestMismatch,
}

// Submit accepts merchantID's sealed update (the merchant identity comes from
// the caller's credentials). On success the update, its two ledger rows (the
// DP-SGD release and the customer count) and the merchant's new budget head
// were committed in one transaction, and the audit entry is durable. The exact
// same envelope submitted again returns the first receipt with Duplicate set
// and debits nothing.
//
// A refusal after the payload was decrypted still debits the releases it
// declares (accountRefused): the aggregator has seen them.
func (s *Service) Submit(ctx context.Context, merchantID string, envelope []byte) (protocol.Receipt, error) {
	r, u, seen, err := s.submit(ctx, merchantID, envelope)
	if err != nil {
		rec := audit.Record{
			Actor: "merchant:" + merchantID, Action: "round.update.accept", Object: "round/" + u.Round,
			Outcome: outcomeOf(err), Reason: err.Error(), Identifiers: map[string]string{"merchant": merchantID},
		}
		if seen != nil && rec.Outcome == audit.OutcomeDenied {
			details, aerr := s.accountRefused(ctx, merchantID, seen)
			if aerr != nil {
				// Not recorded: answer as a failure, so that the merchant sends it again.
				err = fmt.Errorf("submit: account the releases of a refused update (%w): %w", err, aerr)
				rec.Outcome, rec.Reason = audit.OutcomeError, err.Error()
			}
			rec.Details = details
		}
		if seen == nil && rec.Outcome == audit.OutcomeDenied && !s.admitRefusal(ctx, merchantID, err) {
			return protocol.Receipt{}, err
		}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			s.log.Error("audit refused update", "merchant", merchantID, "err", aerr)
		}
		return protocol.Receipt{}, err
	}
	if !u.Audited {
		if err := s.auditAccepted(ctx, u); err != nil {
			return protocol.Receipt{}, fmt.Errorf("submit: %w", err)
		}
	}
	return r, nil
}

// auditAccepted appends the acceptance entry of u and then marks u audited.
// Only audited updates are merged.
func (s *Service) auditAccepted(ctx context.Context, u UpdateRecord) error {
	rec := audit.Record{
		Actor: "merchant:" + u.Merchant, Action: "round.update.accept", Object: "round/" + u.Round, Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"merchant": u.Merchant},
		Details: map[string]string{
			"update":           u.ID,
			"epsilon":          strconv.FormatFloat(u.Epsilon, 'g', 10, 64),
			"noise_multiplier": strconv.FormatFloat(u.Release.NoiseMultiplier, 'g', 10, 64),
			"sampling_rate":    strconv.FormatFloat(u.Release.SamplingRate, 'g', 10, 64),
			"steps":            strconv.Itoa(u.Release.Steps),
			"count_sigma":      strconv.FormatFloat(u.Customers.Sigma, 'g', 10, 64),
		},
	}
	if u.Evaluation != nil {
		rec.Details["evaluation_sigma"] = strconv.FormatFloat(u.Evaluation.Sigma, 'g', 10, 64)
		rec.Details["evaluation_cutoff"] = u.Evaluation.Cutoff.UTC().Format(time.RFC3339)
	}
	if err := s.appendAudit(ctx, rec); err != nil {
		return err
	}
	if err := s.store.MarkAudited(context.WithoutCancel(ctx), u.ID); err != nil {
		// The entry is durable; Tick will find the update unmarked and audit it again.
		s.log.Error("mark update audited", "update", u.ID, "err", err)
	}
	return nil
}

// seenPayload is a decrypted update: whatever happens to it, the aggregator
// has seen the DP values it declares.
type seenPayload struct {
	id     string // "r-" and 32 hex digits of the payload's SHA-256
	round  string // the envelope's (authenticated) round
	update protocol.Update
}

func (s *Service) submit(ctx context.Context, merchantID string, envelope []byte) (protocol.Receipt, UpdateRecord, *seenPayload, error) {
	var none UpdateRecord
	if len(envelope) > s.maxEnv {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w: %d bytes > %d", seal.ErrTooLarge, len(envelope), s.maxEnv)
	}
	// From the policy read to the commit: a reload waits for this
	// acceptance, which is judged on the policy read here.
	s.acceptMu.RLock()
	defer s.acceptMu.RUnlock()
	mp, err := s.pol().Merchant(merchantID)
	if err != nil {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w: %w", ErrPolicy, err)
	}
	sum := sha256.Sum256(envelope)
	hdr, err := seal.ParseHeader(envelope)
	if err != nil {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w", err)
	}
	none.Round = hdr.Round

	merchant, err := s.merchant(ctx, merchantID)
	switch {
	case errors.Is(err, ErrNotFound):
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w: merchant %s is not enrolled", seal.ErrUnknownSigner, merchantID)
	case err != nil:
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w", err)
	}
	now := s.now().UTC()

	// Signature before decryption (seal.Open's order); the nonce is checked
	// against the store inside the transaction below. What the signed header
	// shows will be refused is refused before decryption (precheck, run
	// where seal.Open asks about the nonce, its last check before
	// decrypting), so that the aggregator does not see the DP values of an
	// update it would refuse anyway; a refusal after decryption debits them
	// (Submit).
	var pre error
	hdr, payload, err := seal.Open(envelope, seal.OpenOptions{
		Identity: s.keys.Identity,
		Signers:  signerOf(merchantID, merchant),
		Round:    hdr.Round,
		SeenNonce: func(string, [seal.NonceSize]byte) bool {
			pre = s.precheck(ctx, hdr, merchantID, mp, sum, now)
			return pre != nil // stops Open before it decrypts
		},
		Now:                now,
		MaxSkew:            s.maxSkew,
		MaxSize:            s.maxEnv,
		RequirePostQuantum: s.pq,
	})
	if pre != nil {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w", pre)
	}
	if errors.Is(err, seal.ErrStale) {
		// The exact envelope accepted before is answered as before, whatever its age.
		var dup UpdateRecord
		derr := s.store.InTx(ctx, func(tx Tx) (err error) {
			dup, err = tx.UpdateByEnvelope(ctx, sum[:])
			return err
		})
		if derr == nil && dup.Merchant == merchantID {
			return s.receipt(dup, mp, true), dup, nil, nil
		}
	}
	if err != nil {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w", err)
	}
	var up protocol.Update
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&up); err != nil {
		return protocol.Receipt{}, none, nil, fmt.Errorf("submit: %w: payload: %w", protocol.ErrInvalidUpdate, err)
	}
	psum := sha256.Sum256(payload)
	seen := &seenPayload{id: "r-" + hex.EncodeToString(psum[:16]), round: hdr.Round, update: up}
	if dec.More() {
		return protocol.Receipt{}, none, seen, fmt.Errorf("submit: %w: payload: trailing data", protocol.ErrInvalidUpdate)
	}
	switch {
	case up.Merchant != merchantID:
		return protocol.Receipt{}, none, seen, fmt.Errorf("submit: %w: payload names merchant %q", protocol.ErrInvalidUpdate, up.Merchant)
	case up.Round != hdr.Round:
		return protocol.Receipt{}, none, seen, fmt.Errorf("submit: %w: payload names round %q, envelope %q", protocol.ErrInvalidUpdate, up.Round, hdr.Round)
	case strconv.Itoa(up.BaseVersion) != hdr.ModelVersion:
		return protocol.Receipt{}, none, seen, fmt.Errorf("submit: %w: payload base version %d, envelope %q", protocol.ErrInvalidUpdate, up.BaseVersion, hdr.ModelVersion)
	}

	var (
		rec       UpdateRecord
		duplicate bool
		summary   ledgerSummary // the merchant's ledger after this debit
	)
	// A cached round before its deadline is locked in StartAcceptance's round
	// trip if it is collecting; otherwise lockRound reads and locks it.
	cached, fast := s.cachedRound(up.Round)
	fast = fast && now.Before(cached.Deadline)
	// The ledger rows are read along unless a summary of them is cached (and
	// then read alone only if the summary turns out stale).
	summarized := s.acct.has(merchantID)
	err = s.store.InTx(ctx, func(tx Tx) error {
		rec, duplicate, summary = UpdateRecord{}, false, ledgerSummary{}
		st, err := tx.StartAcceptance(ctx, AcceptanceCheck{
			Merchant: merchantID, EnvelopeSHA256: sum[:], Nonce: hdr.Nonce[:], At: now, Round: up.Round, LockCollecting: fast,
			WithLedger: !summarized,
		})
		if err != nil {
			return err
		}
		head := st.Budget
		// An identical envelope racing this one may have committed meanwhile.
		if st.Duplicate != nil {
			rec, duplicate = *st.Duplicate, true
			return nil
		}
		m := st.Merchant
		if m.Revoked {
			s.forgetMerchant(merchantID)
			return fmt.Errorf("%w: %s", seal.ErrRevokedSigner, merchantID)
		}
		if !bytes.Equal(m.PublicKey, merchant.PublicKey) {
			s.forgetMerchant(merchantID)
			return fmt.Errorf("%w: signing key changed during submission", seal.ErrUnknownSigner)
		}
		if !st.FreshNonce {
			return fmt.Errorf("%w: nonce %x", seal.ErrReplay, hdr.Nonce)
		}
		rr := cached
		if st.RoundLocked {
			rr.State = protocol.RoundCollecting
		} else if rr, err = s.lockRound(ctx, tx, up.Round, now); err != nil {
			return err
		}
		if err := s.checkRound(rr, &up, merchantID, now); err != nil {
			return err
		}
		if st.HasUpdate {
			return fmt.Errorf("%w: merchant %s already has an update in round %s", ErrConflict, merchantID, rr.ID)
		}
		base, err := s.baseModel(ctx, tx, rr.BaseVersion)
		if err != nil {
			return err
		}
		if up.SchemaHash != base.Schema.Hash {
			return fmt.Errorf("%w: schema hash %q, round's model has %q", protocol.ErrInvalidUpdate, up.SchemaHash, base.Schema.Hash)
		}
		plan, err := s.merchantPlan(rr.Plan, mp)
		if err != nil {
			return err
		}
		if err := up.Validate(len(base.Params), plan); err != nil {
			return err
		}
		if err := checkRelease(&up, plan, mp); err != nil {
			return err
		}
		if err := checkReusedCount(ctx, tx, &up); err != nil {
			return err
		}
		if err := checkEvaluation(ctx, tx, &up, rr, mp); err != nil {
			return err
		}
		groups, ok := s.acct.summary(merchantID, head.Version)
		if !ok {
			rows := st.Ledger
			if summarized {
				if rows, err = tx.Ledger(ctx, merchantID); err != nil {
					return err
				}
			}
			if len(rows) != head.Releases {
				return fmt.Errorf("ledger of %s has %d rows, its head says %d", merchantID, len(rows), head.Releases)
			}
			if groups, err = summarize(rows); err != nil {
				return err
			}
		}
		releases := updateReleases(&up)
		eps, after, err := s.acct.debit(groups, releases, mp)
		if err != nil {
			return err
		}
		epsAll := eps[len(eps)-1]
		summary = ledgerSummary{version: head.Version + 1, groups: after}
		rec = UpdateRecord{
			ID: updateID(sum), Round: rr.ID, Merchant: merchantID, EnvelopeSHA256: sum[:], Nonce: hdr.Nonce[:],
			Delta: up.Delta, Release: up.Release, Customers: up.Customers, Epsilon: epsAll, AcceptedAt: now.Truncate(time.Millisecond),
			Evaluation: up.Evaluation,
		}
		rows := make([]LedgerRow, len(releases))
		for i, rel := range releases {
			rows[i] = LedgerRow{Merchant: merchantID, Seq: int64(head.Releases + i + 1), Release: rel, Round: rr.ID, Update: rec.ID, Epsilon: eps[i], At: rec.AcceptedAt}
		}
		if err := tx.FinishAcceptance(ctx, rec, rows, BudgetHead{
			Merchant: merchantID, Version: head.Version + 1, Epsilon: epsAll, Releases: head.Releases + len(releases), LastRelease: rec.AcceptedAt,
		}, head.Version); err != nil {
			return err
		}
		if rr.State == protocol.RoundOpen {
			return tx.SetRoundState(ctx, rr.ID, protocol.RoundOpen, protocol.RoundCollecting, "", now)
		}
		return nil
	})
	if err != nil {
		return protocol.Receipt{}, none, seen, fmt.Errorf("submit: %w", err)
	}
	if !duplicate {
		s.acct.remember(merchantID, summary)
		s.noteAccepted(rec.Round, merchantID, hdr.Nonce)
	}
	return s.receipt(rec, mp, duplicate), rec, nil, nil
}

// merchant returns an enrolled merchant, from a cache of the store's rows.
// The cache only speeds up the signature check before the transaction; the
// transaction re-reads the row and refuses a revoked merchant or a changed key.
func (s *Service) merchant(ctx context.Context, id string) (Merchant, error) {
	s.mu.Lock()
	m, ok := s.merchants[id]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		m, err = tx.Merchant(ctx, id)
		return err
	})
	if err != nil {
		return m, err
	}
	s.mu.Lock()
	s.merchants[id] = m
	s.mu.Unlock()
	return m, nil
}

func (s *Service) forgetMerchant(id string) {
	s.mu.Lock()
	delete(s.merchants, id)
	s.mu.Unlock()
}

// lockRound reads round id and locks its row: FOR UPDATE while the round is
// still open (this submission may move it to collecting), FOR SHARE after
// that, so submissions to a collecting round run in parallel but never
// alongside Tick's state change, which takes FOR UPDATE.
//
// A round past its deadline or no longer accepting is refused before any
// lock is taken, so that late submissions cannot keep Tick (which skips
// locked rows) from closing it.
//
// A round's id, deadline, sample, base version and plan never change, so
// lockRound caches them per Service: a later submission to the round before
// its deadline then takes its FOR SHARE lock in StartAcceptance with a small
// query that locks nothing unless the round is collecting, instead of
// reading and decoding the whole row here.
func (s *Service) lockRound(ctx context.Context, tx Tx, id string, now time.Time) (RoundRecord, error) {
	state, deadline, err := tx.RoundState(ctx, id)
	if err != nil {
		return RoundRecord{}, err
	}
	if state != protocol.RoundOpen && state != protocol.RoundCollecting || !now.Before(deadline) {
		return RoundRecord{}, fmt.Errorf("%w: round %s is %s, deadline %s", ErrRoundClosed, id, state, deadline.Format(time.RFC3339))
	}
	lock := LockShare
	if state == protocol.RoundOpen {
		lock = LockUpdate
	}
	rr, err := tx.Round(ctx, id, lock)
	if err != nil {
		return rr, err
	}
	if rr.State == protocol.RoundOpen && lock != LockUpdate {
		return rr, fmt.Errorf("round %s reopened: %w", id, ErrConflict)
	}
	s.cacheRound(rr)
	return rr, nil
}

// maxCachedRounds bounds the round cache; submissions go to the latest round
// or two.
const maxCachedRounds = 16

// cachedRound returns the immutable fields of round id if cached (State,
// Reason and ClosedAt are zero).
func (s *Service) cachedRound(id string) (RoundRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rr, ok := s.rounds[id]
	return rr, ok
}

func (s *Service) cacheRound(rr RoundRecord) {
	rr.State, rr.Reason, rr.ClosedAt = "", "", time.Time{}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rounds) >= maxCachedRounds {
		clear(s.rounds)
		clear(s.accepted)
	}
	s.rounds[rr.ID] = rr
}

// noteAccepted records that merchant's update in round, sealed with nonce,
// was accepted here.
func (s *Service) noteAccepted(round, merchant string, nonce [seal.NonceSize]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rounds[round]; !ok {
		return // only alongside a cached round, and cleared with it
	}
	if s.accepted[round] == nil {
		s.accepted[round] = map[string][seal.NonceSize]byte{}
	}
	s.accepted[round][merchant] = nonce
}

// acceptedHere returns the nonce of merchant's update in round if this
// Service accepted it.
func (s *Service) acceptedHere(round, merchant string) ([seal.NonceSize]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.accepted[round][merchant]
	return n, ok
}

func (s *Service) checkRound(rr RoundRecord, up *protocol.Update, merchantID string, now time.Time) error {
	switch {
	case rr.State != protocol.RoundOpen && rr.State != protocol.RoundCollecting:
		return fmt.Errorf("%w: round %s is %s", ErrRoundClosed, rr.ID, rr.State)
	case !now.Before(rr.Deadline):
		return fmt.Errorf("%w: round %s closed at %s", ErrRoundClosed, rr.ID, rr.Deadline.Format(time.RFC3339))
	case !containsString(rr.Selected, merchantID):
		return fmt.Errorf("%w: %s in round %s", ErrNotSelected, merchantID, rr.ID)
	case rr.Plan.Secure != nil:
		return fmt.Errorf("%w: round %s runs secure aggregation: its stage messages go to /v1/rounds/%s/secure, no plain update is taken", ErrPolicy, rr.ID, rr.ID)
	case up.BaseVersion != rr.BaseVersion:
		return fmt.Errorf("%w: update trained from version %d, round %s from %d", ErrConflict, up.BaseVersion, rr.ID, rr.BaseVersion)
	}
	return nil
}

// checkReusedCount accepts a customer count sent again (ReleasedIn set) only if
// it is exactly the count of the merchant's accepted update in that round,
// which released it (and was debited for it); a count that differs, or names
// a round without such an update, is refused, since it would be a new release
// nobody paid for.
func checkReusedCount(ctx context.Context, tx Tx, up *protocol.Update) error {
	c := up.Customers
	if c.ReleasedIn == "" {
		return nil
	}
	if c.ReleasedIn == up.Round {
		return fmt.Errorf("%w: customer count claims to be released in its own round %s", protocol.ErrInvalidUpdate, up.Round)
	}
	prev, err := tx.UpdateFor(ctx, c.ReleasedIn, up.Merchant)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: customer count claims release in round %s, where %s has no accepted update", protocol.ErrInvalidUpdate, c.ReleasedIn, up.Merchant)
	}
	if err != nil {
		return err
	}
	if p := prev.Customers; p.ReleasedIn != "" || p.Value != c.Value || p.Sigma != c.Sigma {
		return fmt.Errorf("%w: customer count %v (σ %v) differs from the count released in round %s", protocol.ErrInvalidUpdate, c.Value, c.Sigma, c.ReleasedIn)
	}
	return nil
}

// checkEvaluation refuses an evaluation histogram that the merchant's released
// customer count makes implausible (fedeval.TotalRange): in a training round
// the count sent with the update, in an evaluation-only round the one its
// latest training update sent; a merchant that never sent one is held to its
// plausible number of customers (the policy's max_customers, else 1/δ).
func checkEvaluation(ctx context.Context, tx Tx, up *protocol.Update, rr RoundRecord, mp policies.MerchantPolicy) error {
	e := up.Evaluation
	if e == nil {
		return nil
	}
	count, known := up.Customers, true
	if rr.Plan.EvaluationOnly() {
		var err error
		if count, known, err = releasedCount(ctx, tx, up.Merchant, rr.Seq); err != nil {
			return err
		}
	}
	if !known {
		count = protocol.NoisyCount{Value: mp.PlausibleCustomers()}
	}
	rng := fedeval.TotalRange(count, known, len(e.Counts), e.Sigma)
	if math.IsInf(rng.Hi, 0) || math.IsInf(rng.MinCell, 0) {
		// So much noise that every histogram is plausible: the check would
		// pass anything, and the noise sum overflow.
		return fmt.Errorf("%w: evaluation: noise σ %v per cell leaves no bound on the counts (%d cells)", ErrPolicy, e.Sigma, len(e.Counts))
	}
	if err := fedeval.CheckPlausible(e, rng); err != nil {
		what := fmt.Sprintf("released customer count %.1f (σ %v)", count.Value, count.Sigma)
		if !known {
			what = fmt.Sprintf("no released count, at most %.0f customers", count.Value)
		}
		return fmt.Errorf("%w: evaluation: %w (%s, histogram σ %v per cell)", ErrPolicy, err, what, e.Sigma)
	}
	return nil
}

// countLookback bounds how many rounds back releasedCount looks: one indexed
// read per round, inside the acceptance transaction.
const countLookback = 64

// releasedCount returns the customer count of merchant's latest accepted
// training update in the countLookback rounds before seq, and whether there
// is one (a merchant without one is held to its plausible number of
// customers instead).
func releasedCount(ctx context.Context, tx Tx, merchant string, seq int64) (protocol.NoisyCount, bool, error) {
	for s := seq - 1; s >= max(1, seq-countLookback); s-- {
		u, err := tx.UpdateFor(ctx, roundID(s), merchant)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return protocol.NoisyCount{}, false, err
		case u.Customers.Sigma > 0:
			return u.Customers, true, nil
		}
	}
	return protocol.NoisyCount{}, false, nil
}

// updateReleases are the mechanisms an update declares, in ledger order: the
// DP-SGD steps and the customer count (unless the round only evaluates, or the
// count was released before: Customers.ReleasedIn), then the evaluation
// histogram (sensitivity 1, so its noise multiplier is its σ).
func updateReleases(up *protocol.Update) []dp.Release {
	var rs []dp.Release
	if up.Release.Steps > 0 {
		rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: up.Release.SamplingRate, Z: up.Release.NoiseMultiplier, Steps: up.Release.Steps})
		if up.Customers.ReleasedIn == "" {
			rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: up.Customers.Sigma, Steps: 1})
		}
	}
	if up.Evaluation != nil {
		rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: up.Evaluation.Sigma, Steps: 1})
	}
	return rs
}

// checkRelease compares the declared DP parameters with the merchant's plan and policy.
func checkRelease(up *protocol.Update, plan protocol.TrainingPlan, mp policies.MerchantPolicy) error {
	if plan.EvaluationOnly() {
		// Validate checked the evaluation's noise against the plan; the policy's
		// minimum number of customers applies to the (noisy) histogram total.
		var n float64
		for _, c := range up.Evaluation.Counts {
			n += c
		}
		if n < float64(mp.MinCustomersPerUpdate) {
			return fmt.Errorf("%w: evaluation over %.1f customers (DP), below the policy minimum %d", ErrPolicy, n, mp.MinCustomersPerUpdate)
		}
		return nil
	}
	r := up.Release
	switch {
	case r.NoiseMultiplier < plan.NoiseMultiplier*(1-1e-9) || r.NoiseMultiplier < mp.MinNoiseMultiplier:
		return fmt.Errorf("%w: noise multiplier %v below the plan's %v (policy minimum %v)", ErrPolicy, r.NoiseMultiplier, plan.NoiseMultiplier, mp.MinNoiseMultiplier)
	case math.Abs(r.ClipNorm-mp.ClipNorm) > 1e-12*mp.ClipNorm:
		return fmt.Errorf("%w: clip norm %v, policy says %v", ErrPolicy, r.ClipNorm, mp.ClipNorm)
	case r.SamplingRate > plan.SamplingRate*(1+1e-12):
		return fmt.Errorf("%w: sampling rate %v above the plan's %v", ErrPolicy, r.SamplingRate, plan.SamplingRate)
	case r.Steps > plan.Steps:
		return fmt.Errorf("%w: %d steps, the plan allows %d", ErrPolicy, r.Steps, plan.Steps)
	case up.Customers.Sigma < plan.CountNoise*(1-1e-9):
		return fmt.Errorf("%w: customer count noise σ %v below the plan's %v", ErrPolicy, up.Customers.Sigma, plan.CountNoise)
	case up.Customers.Value < float64(mp.MinCustomersPerUpdate):
		return fmt.Errorf("%w: DP customer count %.1f below the policy minimum %d", ErrPolicy, up.Customers.Value, mp.MinCustomersPerUpdate)
	case up.Customers.Value > plausibleCount(mp, up.Customers.Sigma):
		return fmt.Errorf("%w: DP customer count %.6g is implausible: above %.0f customers (the policy's max_customers, else 1/δ) by more than %d× its noise σ %v",
			ErrPolicy, up.Customers.Value, mp.PlausibleCustomers(), plausibleSigmas, up.Customers.Sigma)
	}
	return nil
}

// plausibleSigmas is how many standard deviations of its noise a DP count
// may stray from what is plausible: an honest count passes 6σ with
// probability 1 − 1e-9.
const plausibleSigmas = 6

// plausibleCount is the largest DP count an update of merchant mp may send
// with noise σ: its plausible number of customers plus plausibleSigmas·σ.
func plausibleCount(mp policies.MerchantPolicy, sigma float64) float64 {
	return mp.PlausibleCustomers() + plausibleSigmas*sigma
}

// baseModel returns the parsed model of version v (cached: versions are immutable).
func (s *Service) baseModel(ctx context.Context, tx Tx, v int) (*hazard.Model, error) {
	s.mu.Lock()
	m, ok := s.models[v]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	rec, err := tx.Model(ctx, v)
	if err != nil {
		return nil, err
	}
	if m, err = hazard.Unmarshal(rec.Model, rec.SchemaHash); err != nil {
		return nil, fmt.Errorf("model %d: %w", v, err)
	}
	s.mu.Lock()
	s.models[v] = m
	s.mu.Unlock()
	return m, nil
}

func (s *Service) receipt(u UpdateRecord, mp policies.MerchantPolicy, duplicate bool) protocol.Receipt {
	return protocol.Receipt{
		UpdateID: u.ID, Round: u.Round, Merchant: u.Merchant, Epsilon: u.Epsilon, Delta: mp.Delta,
		EpsilonCap: mp.EpsilonCap, AcceptedAt: u.AcceptedAt, Duplicate: duplicate,
	}
}

// updateID names an update by its envelope: "u-" and 32 hex digits of its SHA-256.
func updateID(sum [sha256.Size]byte) string { return "u-" + hex.EncodeToString(sum[:16]) }

func containsString(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// signerOf gives seal.Open the one key an envelope posted by merchantID may
// be signed with: that merchant's, unless it is revoked.
func signerOf(merchantID string, merchant Merchant) func(string) (ed25519.PublicKey, error) {
	return func(id string) (ed25519.PublicKey, error) {
		switch {
		case id != merchantID:
			return nil, fmt.Errorf("%w: envelope signed as %q by merchant %q", seal.ErrUnknownSigner, id, merchantID)
		case merchant.Revoked:
			return nil, fmt.Errorf("%w: %s", seal.ErrRevokedSigner, id)
		}
		return merchant.PublicKey, nil
	}
}
