package aggregator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/policies"
)

// precheck refuses, before the envelope is decrypted, what its header alone
// shows will be refused: a round that does not exist, whose deadline passed,
// that did not sample the merchant, that trains from another model version,
// or in which this Service already accepted the merchant's update. The
// round's immutable fields come from the round cache when it holds them; its
// state is read (roundEnded): a round cancelled before its deadline (by an
// operator, or by a rollback that withdrew its base) is refused here, at no
// charge. The state is checked again, and an update accepted by another
// replica, after decryption, inside the acceptance transaction. The exact
// envelope of an accepted update is let through, to be answered as a
// duplicate.
//
// A merchant whose ledger already spends more than its cap (mp) is refused
// too: no release can fit (pastCap), and an update decrypted only to be
// refused would be debited past the cap.
func (s *Service) precheck(ctx context.Context, hdr seal.Header, merchantID string, mp policies.MerchantPolicy, sum [sha256.Size]byte, now time.Time) error {
	rr, ok := s.cachedRound(hdr.Round)
	if !ok {
		err := s.store.InTx(ctx, func(tx Tx) (err error) {
			rr, err = tx.Round(ctx, hdr.Round, LockNone)
			return err
		})
		switch {
		case errors.Is(err, ErrNotFound):
			return fmt.Errorf("%w: round %q", ErrNotFound, hdr.Round)
		case err != nil:
			return err
		}
		s.cacheRound(rr)
	}
	var refusal error
	nonce, accepted := s.acceptedHere(rr.ID, merchantID)
	switch {
	case !now.Before(rr.Deadline):
		refusal = fmt.Errorf("%w: round %s closed at %s", ErrRoundClosed, rr.ID, rr.Deadline.Format(time.RFC3339))
	case !containsString(rr.Selected, merchantID):
		refusal = fmt.Errorf("%w: %s in round %s", ErrNotSelected, merchantID, rr.ID)
	case hdr.ModelVersion != strconv.Itoa(rr.BaseVersion):
		refusal = fmt.Errorf("%w: envelope for model version %s, round %s trains from %d", ErrConflict, hdr.ModelVersion, rr.ID, rr.BaseVersion)
	case accepted && nonce == hdr.Nonce:
		refusal = fmt.Errorf("%w: nonce %x", seal.ErrReplay, hdr.Nonce)
	case accepted:
		refusal = fmt.Errorf("%w: merchant %s already has an update in round %s", ErrConflict, merchantID, rr.ID)
	default:
		ended, closed, err := s.roundEnded(ctx, rr.ID)
		if err != nil {
			return err
		}
		if closed {
			refusal = fmt.Errorf("%w: round %s is %s (%s)", ErrRoundClosed, rr.ID, ended.State, ended.Reason)
			break
		}
		eps, past, err := s.pastCap(ctx, merchantID, mp)
		if err != nil {
			return err
		}
		if past {
			refusal = fmt.Errorf("budget check: the ledger of %s already spends ε %.6g at δ %g, above its cap %.6g, so no release fits: %w", merchantID, eps, mp.Delta, mp.EpsilonCap, dp.ErrBudgetExhausted)
		}
	}
	if refusal == nil {
		return nil
	}
	var dup UpdateRecord
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		dup, err = tx.UpdateByEnvelope(ctx, sum[:])
		return err
	})
	if err == nil && dup.Merchant == merchantID {
		return nil
	}
	return refusal
}

// roundEnded returns round id's state and reason, and whether it no longer
// takes updates though its deadline has not passed (cancelled by an
// operator, or by a rollback that withdrew its base version; closed early).
// One small read while the round takes updates: a refusal here costs the
// merchant nothing, where one after decryption is debited.
func (s *Service) roundEnded(ctx context.Context, id string) (RoundRecord, bool, error) {
	var r RoundRecord
	err := s.store.InTx(ctx, func(tx Tx) error {
		state, _, err := tx.RoundState(ctx, id)
		if err != nil || state == protocol.RoundOpen || state == protocol.RoundCollecting {
			r = RoundRecord{ID: id, State: state}
			return err
		}
		r, err = tx.Round(ctx, id, LockNone)
		return err
	})
	if err != nil {
		return r, false, err
	}
	return r, r.State != protocol.RoundOpen && r.State != protocol.RoundCollecting, nil
}

// pastCap returns the ε at mp's δ of merchant's ledger and whether it is
// already above mp's cap by more than dp.FilterTolerance. Every release adds
// a non-negative RDP at every order, so the ε of a ledger only grows with its
// rows: then the acceptance's debit is certain to refuse whatever the update
// declares. The ledger is the accountant's summary if it holds one (of some
// version: a lower bound of the stored ledger), else the stored rows.
func (s *Service) pastCap(ctx context.Context, merchant string, mp policies.MerchantPolicy) (float64, bool, error) {
	groups, ok := s.acct.latest(merchant)
	if !ok {
		var rows []LedgerRow
		err := s.store.InTx(ctx, func(tx Tx) (err error) {
			rows, err = tx.Ledger(ctx, merchant)
			return err
		})
		if err != nil {
			return 0, false, err
		}
		if groups, err = summarize(rows); err != nil {
			return 0, false, err
		}
	}
	if len(groups) == 0 {
		return 0, false, nil
	}
	eps, err := s.acct.epsilon(groups, mp.Delta)
	if err != nil {
		return 0, false, err
	}
	return eps, eps > mp.EpsilonCap*(1+dp.FilterTolerance), nil
}

// accountRefused debits merchantID's ledger with the releases a refused,
// decrypted update declares (seenReleases), since the aggregator has seen
// them whatever it thinks of the update; the merchant's client debited them
// when it sealed the update. The cap is not applied: a release already seen
// is recorded even past it. The rows name the payload ("r-" and its hash) as
// their update, so the same payload refused again — even sealed in another
// envelope — is debited once; and a payload the merchant already has
// accepted in the round is not debited again. The returned details are for
// the refusal's audit entry.
func (s *Service) accountRefused(ctx context.Context, merchantID string, seen *seenPayload) (map[string]string, error) {
	mp, err := s.pol().Merchant(merchantID)
	if err != nil {
		return nil, fmt.Errorf("account refused update: %w", err)
	}
	var (
		details map[string]string
		summary ledgerSummary
		debited bool
	)
	err = s.store.InTx(ctx, func(tx Tx) error {
		details, summary, debited = map[string]string{"payload": seen.id}, ledgerSummary{}, false
		head, err := tx.LockBudget(ctx, merchantID)
		if err != nil {
			return err
		}
		rows, err := tx.Ledger(ctx, merchantID)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(rows, func(r LedgerRow) bool { return r.Update == seen.id }) {
			details["debited"] = "before"
			return nil
		}
		prev, err := tx.UpdateFor(ctx, seen.round, merchantID)
		switch {
		case err == nil && samePayload(prev, &seen.update):
			details["debited"] = "with accepted update " + prev.ID
			return nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
		declared, unaccountable, err := s.seenReleases(ctx, tx, merchantID, &seen.update)
		if err != nil {
			return err
		}
		groups, err := summarize(rows)
		if err != nil {
			return err
		}
		// A valid release whose ε the accountant cannot compute (noise so
		// small that every order's RDP overflows) is unaccountable too.
		var releases []dp.Release
		for _, r := range declared {
			eps, _, err := s.acct.compose(groups, append(slices.Clone(releases), r), mp.Delta)
			if err == nil && math.IsInf(eps[len(eps)-1], 0) {
				err = errors.New("ε is unbounded")
			}
			if err != nil {
				unaccountable = append(unaccountable, fmt.Sprintf("release (q %v, z %v, %d steps): %v", r.Q, r.Z, r.Steps, err))
				continue
			}
			releases = append(releases, r)
		}
		if len(unaccountable) > 0 {
			details["unaccountable"] = strings.Join(unaccountable, "; ")
		}
		if len(releases) == 0 {
			details["debited"] = "nothing"
			return nil
		}
		eps, after, err := s.acct.compose(groups, releases, mp.Delta)
		if err != nil {
			return err
		}
		at := s.now().UTC().Truncate(time.Millisecond)
		for i, rel := range releases {
			if err := tx.InsertLedger(ctx, LedgerRow{
				Merchant: merchantID, Seq: int64(head.Releases + i + 1), Release: rel, Round: seen.round,
				Update: seen.id, Epsilon: eps[i], At: at,
			}); err != nil {
				return err
			}
		}
		next := BudgetHead{Merchant: merchantID, Version: head.Version + 1, Epsilon: eps[len(eps)-1], Releases: head.Releases + len(releases), LastRelease: at}
		if err := tx.AdvanceBudget(ctx, next, head.Version); err != nil {
			return err
		}
		summary, debited = ledgerSummary{version: next.Version, groups: after}, true
		details["debited"] = strconv.Itoa(len(releases)) + " releases"
		details["epsilon"] = strconv.FormatFloat(next.Epsilon, 'g', 10, 64)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("account refused update: %w", err)
	}
	if debited {
		s.acct.remember(merchantID, summary)
	}
	return details, nil
}

// seenReleases are the releases a decrypted update declares, in ledger
// order: its DP-SGD steps, its customer count unless it is exactly a count
// the merchant released before (checkReusedCount), and its evaluation
// histogram. A declaration that is no valid mechanism (no noise, a rate
// outside (0, 1], …) cannot be given an ε and is returned among
// unaccountable, for the audit entry.
func (s *Service) seenReleases(ctx context.Context, tx Tx, merchantID string, up *protocol.Update) (releases []dp.Release, unaccountable []string, err error) {
	add := func(what string, r dp.Release) {
		if err := r.Validate(); err != nil {
			unaccountable = append(unaccountable, what+": "+err.Error())
			return
		}
		releases = append(releases, r)
	}
	if r := up.Release; r != (protocol.Release{}) {
		add("DP-SGD", dp.Release{Mechanism: dp.Gaussian, Q: r.SamplingRate, Z: r.NoiseMultiplier, Steps: r.Steps})
	}
	if c := up.Customers; c != (protocol.NoisyCount{}) {
		reused := false
		if c.ReleasedIn != "" {
			own := *up
			own.Merchant = merchantID
			err := checkReusedCount(ctx, tx, &own)
			if err != nil && !errors.Is(err, protocol.ErrInvalidUpdate) {
				return nil, nil, err
			}
			reused = err == nil
		}
		if !reused {
			add("customer count", dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: c.Sigma, Steps: 1})
		}
	}
	if e := up.Evaluation; e != nil {
		add("evaluation", dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: e.Sigma, Steps: 1})
	}
	return releases, unaccountable, nil
}

// samePayload reports whether accepted update u carries exactly the DP values
// of up (the same payload sealed in another envelope).
func samePayload(u UpdateRecord, up *protocol.Update) bool {
	if !slices.Equal(u.Delta, up.Delta) || u.Release != up.Release || u.Customers != up.Customers {
		return false
	}
	a, b := u.Evaluation, up.Evaluation
	if a == nil || b == nil {
		return a == b
	}
	return a.Cutoff.Equal(b.Cutoff) && a.Sigma == b.Sigma && slices.Equal(a.Counts, b.Counts)
}
