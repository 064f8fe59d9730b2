package aggregator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

// SubmitSecure accepts merchantID's sealed message for a stage of a secure
// round. The envelope is opened as an update's is (signature by the
// merchant's enrolled key, then decryption with the aggregator's identity);
// the message is checked and handed to the round's protocol server, whose new
// state is stored with the record of the message in one transaction. The
// masked input (stage mask) is debited from the merchant's ledger — the
// round's dp.DDGauss release — in that transaction too, and refused, like an
// update, when it would pass the cap: the merchant is then a dropout, its
// masks removed with its neighbours' key shares. The exact same envelope sent
// again is answered as before (Duplicate).
func (s *Service) SubmitSecure(ctx context.Context, merchantID string, envelope []byte) (protocol.SecureReceipt, error) {
	rc, round, ps, err := s.submitSecure(ctx, merchantID, envelope)
	if err != nil {
		rec := audit.Record{
			Actor: "merchant:" + merchantID, Action: "round.secure.message", Object: "round/" + round, Outcome: outcomeOf(err),
			Reason: err.Error(), Identifiers: map[string]string{"merchant": merchantID},
		}
		if rec.Outcome == audit.OutcomeDenied && !s.admitRefusal(ctx, merchantID, err) {
			return protocol.SecureReceipt{}, err
		}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			s.log.Error("audit refused secure message", "merchant", merchantID, "err", aerr)
		}
		return protocol.SecureReceipt{}, err
	}
	if err := s.flush(ctx, ps); err != nil {
		return protocol.SecureReceipt{}, fmt.Errorf("submit secure: %w", err)
	}
	return rc, nil
}

func (s *Service) submitSecure(ctx context.Context, merchantID string, envelope []byte) (protocol.SecureReceipt, string, []staged, error) {
	var rc protocol.SecureReceipt
	if len(envelope) > s.maxEnv {
		return rc, "", nil, fmt.Errorf("submit secure: %w: %d bytes > %d", seal.ErrTooLarge, len(envelope), s.maxEnv)
	}
	// As for an update (submit): a reload waits for the masked input's debit,
	// judged on the policy read here and in debitSecure.
	s.acceptMu.RLock()
	defer s.acceptMu.RUnlock()
	mp, err := s.secureMerchantPolicy(merchantID)
	if err != nil {
		return rc, "", nil, fmt.Errorf("submit secure: %w", err)
	}
	hdr, err := seal.ParseHeader(envelope)
	if err != nil {
		return rc, "", nil, fmt.Errorf("submit secure: %w", err)
	}
	merchant, err := s.merchant(ctx, merchantID)
	switch {
	case errors.Is(err, ErrNotFound):
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w: merchant %s is not enrolled", seal.ErrUnknownSigner, merchantID)
	case err != nil:
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w", err)
	}
	now := s.now().UTC()
	sum := sha256.Sum256(envelope)
	_, payload, err := seal.Open(envelope, seal.OpenOptions{
		Identity:           s.keys.Identity,
		Signers:            signerOf(merchantID, merchant),
		Round:              hdr.Round,
		SeenNonce:          func(string, [seal.NonceSize]byte) bool { return false }, // recorded in the transaction
		Now:                now,
		MaxSkew:            s.maxSkew,
		MaxSize:            s.maxEnv,
		RequirePostQuantum: s.pq,
	})
	if err != nil {
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w", err)
	}
	var msg protocol.SecureMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w: payload: %w", protocol.ErrInvalidUpdate, err)
	}
	if err := msg.Validate(); err != nil {
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w", err)
	}
	switch {
	case dec.More():
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w: payload: trailing data", protocol.ErrInvalidUpdate)
	case msg.Merchant != merchantID:
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w: payload names merchant %q", protocol.ErrInvalidUpdate, msg.Merchant)
	case msg.Round != hdr.Round:
		return rc, hdr.Round, nil, fmt.Errorf("submit secure: %w: payload names round %q, envelope %q", protocol.ErrInvalidUpdate, msg.Round, hdr.Round)
	}
	rc = protocol.SecureReceipt{Round: msg.Round, Merchant: merchantID, Stage: msg.Stage}
	var ps []staged
	err = s.store.InTx(ctx, func(tx Tx) error {
		rc.Duplicate, rc.Epsilon, rc.Delta, rc.EpsilonCap, ps = false, 0, 0, 0, nil
		// The round's row first, exclusively, as Tick takes it (then the
		// secure row): one lock order, and a round's messages in series.
		r, err := tx.Round(ctx, msg.Round, LockUpdate)
		if err != nil {
			return err
		}
		if r.Plan.Secure == nil {
			return fmt.Errorf("%w: round %s does not run secure aggregation", ErrPolicy, r.ID)
		}
		id := secureplan.ID(r.Plan.Secure, merchantID)
		if id == 0 {
			return fmt.Errorf("%w: %s in round %s", ErrNotSelected, merchantID, r.ID)
		}
		prev, err := tx.SecureMessage(ctx, r.ID, merchantID, msg.Stage)
		switch {
		case err == nil && bytes.Equal(prev.EnvelopeSHA256, sum[:]):
			rc.Duplicate = true
			if msg.Stage != protocol.StageMask {
				return nil
			}
			// Answered as before: with the ε of the debit it made.
			rows, err := tx.Ledger(ctx, merchantID)
			if err != nil {
				return err
			}
			for _, l := range rows {
				if l.Update == secureDebitID(sum) {
					rc.Epsilon, rc.Delta, rc.EpsilonCap = l.Epsilon, mp.Delta, mp.EpsilonCap
				}
			}
			return nil
		case err == nil:
			return fmt.Errorf("%w: %s already sent its %s message in round %s", ErrConflict, merchantID, msg.Stage, r.ID)
		case !errors.Is(err, ErrNotFound):
			return err
		case r.State.Terminal():
			// After the duplicate check: a merchant whose accepted message's
			// answer was lost (an aggregator restart) resends it, and the
			// round may have ended meanwhile.
			return fmt.Errorf("%w: round %s is %s", ErrRoundClosed, r.ID, r.State)
		}
		fresh, err := tx.InsertNonce(ctx, merchantID, hdr.Nonce[:], now)
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("%w: nonce %x", seal.ErrReplay, hdr.Nonce)
		}
		sr, _, srv, err := loadSecure(ctx, tx, r, LockUpdate)
		if err != nil {
			return err
		}
		if sr.Stage != msg.Stage {
			return fmt.Errorf("%w: round %s is in stage %s, the message is for %s", protocol.ErrSecureStage, r.ID, sr.Stage, msg.Stage)
		}
		if !now.Before(sr.StageDeadline) {
			return fmt.Errorf("%w: stage %s of round %s closed at %s", protocol.ErrSecureStage, sr.Stage, r.ID, sr.StageDeadline.Format(time.RFC3339))
		}
		details := map[string]string{"stage": string(msg.Stage), "bytes": strconv.Itoa(len(msg.Body))}
		if msg.Stage == protocol.StageAdvertise {
			// Checked against the key enrolled now (the row, not the cache):
			// the neighbours check the same signature before sharing.
			enrolled, err := tx.Merchant(ctx, merchantID)
			if err != nil {
				return err
			}
			if err := s.checkAdvert(r, merchantID, id, enrolled.PublicKey, msg.Body); err != nil {
				return err
			}
			details["signing_key"] = keys.KeyID(enrolled.PublicKey)
		}
		if msg.Stage == protocol.StageMask {
			plan, err := secureplan.Decode(r.Plan.Secure)
			if err != nil {
				return err
			}
			eps, err := s.debitSecure(ctx, tx, r, merchantID, plan.Release, sum, now)
			if err != nil {
				return err
			}
			rc.Epsilon, rc.Delta, rc.EpsilonCap = eps, mp.Delta, mp.EpsilonCap
			details["epsilon"] = strconv.FormatFloat(eps, 'g', 10, 64)
			details["mechanism"] = string(dp.DDGauss)
			details["min_cohort"] = strconv.Itoa(plan.Release.Cohort)
		}
		if err := applySecure(srv, id, msg); err != nil {
			return err
		}
		if err := saveSecure(ctx, tx, &sr, srv, now); err != nil {
			return err
		}
		if err := tx.InsertSecureMessage(ctx, SecureMessageRecord{Round: r.ID, Merchant: merchantID, Stage: msg.Stage, EnvelopeSHA256: sum[:], AcceptedAt: now}); err != nil {
			return err
		}
		if r.State == protocol.RoundOpen {
			if err := tx.SetRoundState(ctx, r.ID, protocol.RoundOpen, protocol.RoundCollecting, "", now); err != nil {
				return err
			}
		}
		rec := audit.Record{
			Actor: "merchant:" + merchantID, Action: "round.secure.message", Object: "round/" + r.ID, Outcome: audit.OutcomeOK,
			Identifiers: map[string]string{"merchant": merchantID}, Details: details,
		}
		p, err := stage(ctx, tx, "secure/"+r.ID+"/"+string(msg.Stage)+"/"+merchantID, rec, now)
		ps = []staged{p}
		return err
	})
	if err != nil {
		return protocol.SecureReceipt{}, msg.Round, nil, fmt.Errorf("submit secure: %w", err)
	}
	return rc, msg.Round, ps, nil
}

// checkAdvert refuses an advert whose signature (secureplan.AdvertStatement)
// does not verify with merchant's enrolled key pub: the key its neighbours
// are told to check it with when they hold no pinned key of their own.
func (s *Service) checkAdvert(r RoundRecord, merchant string, id uint32, pub ed25519.PublicKey, body []byte) error {
	var m secagg.AdvertiseMsg
	if err := m.UnmarshalBinary(body); err != nil {
		return fmt.Errorf("%w: %s message: %w", protocol.ErrInvalidUpdate, protocol.StageAdvertise, err)
	}
	if len(m.Sig) == 0 {
		return fmt.Errorf("%w: %s message of %s without a signature of its keys", protocol.ErrInvalidUpdate, protocol.StageAdvertise, merchant)
	}
	if err := secureplan.VerifyAdvert(pub, s.keys.Recipient, r.ID, r.Plan.Secure, merchant, id, m.CPub, m.SPub, m.Sig); err != nil {
		return fmt.Errorf("%w: %s message: %w", protocol.ErrInvalidUpdate, protocol.StageAdvertise, err)
	}
	return nil
}

// applySecure decodes msg's body for its stage and hands it to srv; the
// message must come from id. A protocol refusal is an invalid update.
func applySecure(srv *secagg.Server, id uint32, msg protocol.SecureMessage) error {
	var from uint32
	var err error
	switch msg.Stage {
	case protocol.StageAdvertise:
		from, err = decodeApply(msg.Body, id, func(m secagg.AdvertiseMsg) uint32 { return m.From }, srv.AddAdvertise)
	case protocol.StageShare:
		from, err = decodeApply(msg.Body, id, func(m secagg.SharesMsg) uint32 { return m.From }, srv.AddShares)
	case protocol.StageMask:
		from, err = decodeApply(msg.Body, id, func(m secagg.MaskedMsg) uint32 { return m.From }, srv.AddMasked)
	case protocol.StageConsistency:
		from, err = decodeApply(msg.Body, id, func(m secagg.AttestMsg) uint32 { return m.From }, srv.AddAttest)
	case protocol.StageUnmask:
		from, err = decodeApply(msg.Body, id, func(m secagg.UnmaskResponse) uint32 { return m.From }, srv.AddUnmask)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s message: %w", protocol.ErrInvalidUpdate, msg.Stage, err)
	case from != id:
		return fmt.Errorf("%w: %s message from secagg id %d, the merchant's is %d", protocol.ErrInvalidUpdate, msg.Stage, from, id)
	}
	return nil
}

// decodeApply decodes body as a T and, when it comes from id, hands it to
// add; it returns the sender the message names.
func decodeApply[T any, P interface {
	*T
	encoding.BinaryUnmarshaler
}](body []byte, id uint32, sender func(T) uint32, add func(T) error) (uint32, error) {
	var m T
	if err := P(&m).UnmarshalBinary(body); err != nil {
		return 0, err
	}
	if from := sender(m); from != id {
		return from, nil
	}
	return id, add(m)
}

// debitSecure debits merchant's ledger with rel for round r and returns its
// ε after; dp.ErrBudgetExhausted past the cap.
func (s *Service) debitSecure(ctx context.Context, tx Tx, r RoundRecord, merchant string, rel dp.Release, sum [sha256.Size]byte, now time.Time) (float64, error) {
	mp, err := s.secureMerchantPolicy(merchant)
	if err != nil {
		return 0, err
	}
	head, err := tx.LockBudget(ctx, merchant)
	if err != nil {
		return 0, err
	}
	rows, err := tx.Ledger(ctx, merchant)
	if err != nil {
		return 0, err
	}
	if len(rows) != head.Releases {
		return 0, fmt.Errorf("ledger of %s has %d rows, its head says %d", merchant, len(rows), head.Releases)
	}
	groups, err := summarize(rows)
	if err != nil {
		return 0, err
	}
	eps, _, err := s.acct.debit(groups, []dp.Release{rel}, mp)
	if err != nil {
		return 0, err
	}
	at := now.Truncate(time.Millisecond)
	if err := tx.InsertLedger(ctx, LedgerRow{
		Merchant: merchant, Seq: int64(head.Releases + 1), Release: rel, Round: r.ID,
		Update: secureDebitID(sum), Epsilon: eps[0], At: at,
	}); err != nil {
		return 0, err
	}
	if err := tx.AdvanceBudget(ctx, BudgetHead{Merchant: merchant, Version: head.Version + 1, Epsilon: eps[0], Releases: head.Releases + 1, LastRelease: at}, head.Version); err != nil {
		return 0, err
	}
	return eps[0], nil
}

// secureDebitID names a masked input's ledger debit by its envelope: "s-"
// and 32 hex digits of its SHA-256.
func secureDebitID(sum [sha256.Size]byte) string { return "s-" + hex.EncodeToString(sum[:16]) }

// SecureStatus returns where secure round roundID stands for merchantID and
// the aggregator's message to it in the current stage.
func (s *Service) SecureStatus(ctx context.Context, merchantID, roundID string) (protocol.SecureStatus, error) {
	var st protocol.SecureStatus
	err := s.store.InTx(ctx, func(tx Tx) error {
		r, err := tx.Round(ctx, roundID, LockNone)
		if err != nil {
			return err
		}
		if r.Plan.Secure == nil {
			return fmt.Errorf("%w: round %s does not run secure aggregation", ErrNotFound, r.ID)
		}
		id := secureplan.ID(r.Plan.Secure, merchantID)
		if id == 0 {
			return fmt.Errorf("%w: %s in round %s", ErrNotSelected, merchantID, r.ID)
		}
		sr, _, srv, err := loadSecure(ctx, tx, r, LockNone)
		if err != nil {
			return err
		}
		st = protocol.SecureStatus{Round: r.ID, State: r.State, Stage: sr.Stage, StageDeadline: sr.StageDeadline, Reason: sr.Reason}
		if r.State == protocol.RoundFailed {
			// Failed before the sum was out, or after (the norm check).
			st.Stage, st.Reason = protocol.StageFailed, r.Reason
		}
		if _, err := tx.SecureMessage(ctx, r.ID, merchantID, sr.Stage); err == nil {
			st.Sent = true
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if srv == nil || st.Stage == protocol.StageFailed {
			return nil
		}
		var m interface{ MarshalBinary() ([]byte, error) }
		switch sr.Stage {
		case protocol.StageShare:
			if k, err := srv.KeysFor(id); err == nil {
				m = k
				if st.Signers, err = advertSigners(ctx, tx, r, k); err != nil {
					return err
				}
			}
		case protocol.StageMask:
			if d, err := srv.DeliveryFor(id); err == nil {
				m = d
			}
		case protocol.StageConsistency:
			if req := srv.Request(); slices.Contains(req.Survivors, id) {
				m = req
			}
		case protocol.StageUnmask:
			// The attestations addressed to it, for an attester only, with
			// the request it attested.
			if c, err := srv.ConsistencyFor(id); err == nil {
				m = c
				if st.Request, err = srv.Request().MarshalBinary(); err != nil {
					return err
				}
			}
		}
		if m != nil {
			st.Message, err = m.MarshalBinary()
		}
		return err
	})
	if err != nil {
		return protocol.SecureStatus{}, fmt.Errorf("secure status: %w", err)
	}
	return st, nil
}

// advertSigners are the enrolled signing keys of the merchants whose keys k
// relays, by merchant id: what a client without pinned peer keys checks the
// adverts' signatures with (and logs the fingerprints of).
func advertSigners(ctx context.Context, tx Tx, r RoundRecord, k secagg.KeysMsg) (map[string][]byte, error) {
	out := make(map[string][]byte, len(k.Peers))
	for _, p := range k.Peers {
		id := r.Plan.Secure.Merchants[p.ID-1]
		m, err := tx.Merchant(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("signing key of %s: %w", id, err)
		}
		out[id] = m.PublicKey
	}
	return out, nil
}
