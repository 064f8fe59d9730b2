package aggregator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/policies"
)

// settings are what Reload replaces: the policy and the round configuration
// (defaults applied). Both are read-only once stored.
type settings struct {
	policy *policies.Policy
	rounds *RoundConfig
}

// pol is the policy in force.
func (s *Service) pol() *policies.Policy { return s.settings.Load().policy }

// rc is the round configuration in force.
func (s *Service) rc() *RoundConfig { return s.settings.Load().rounds }

// Policy returns the policy in force (the last one Reload installed).
func (s *Service) Policy() *policies.Policy { return s.pol() }

// Reload installs a new policy and round configuration on behalf of actor
// without a restart. Rounds opened from then on use them; the open round
// keeps the plan it was opened with (CancelRound ends it early). It waits
// for the acceptances in flight on this Service, which were judged on the
// policy it replaces, to commit; every acceptance after it returns is judged
// on the new policy (acceptMu). Merchants
// already enrolled stay enrolled; one the new policy no longer names is
// refused at its next request. The reload is audited (config.reload, with
// the new and the previous policy hash) whether it succeeds or not; reloads
// run one at a time, so the policy in force is the last entry's.
func (s *Service) Reload(ctx context.Context, actor string, p *policies.Policy, rounds RoundConfig) (protocol.Reload, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.settings.Load()
	rec := audit.Record{
		Actor: actor, Action: "config.reload", Object: "policy", Outcome: audit.OutcomeOK,
		Details: map[string]string{"previous_policy_hash": prev.policy.Hash()},
	}
	var cfg RoundConfig
	err := func() error {
		if p == nil {
			return fmt.Errorf("reload: %w: no policy", ErrPolicy)
		}
		rec.Details["policy_hash"] = p.Hash()
		var err error
		if cfg, err = rounds.WithDefaults(); err != nil {
			return fmt.Errorf("reload: %w: %w", ErrPolicy, err)
		}
		if _, err := policySchema(p); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		if err := checkModes(&cfg, p); err != nil {
			return fmt.Errorf("reload: %w: %w", ErrPolicy, err)
		}
		rec.Details["merchants"] = strconv.Itoa(len(p.Merchants()))
		rec.Details["partners"] = strconv.Itoa(len(p.Partners()))
		rec.Details["cutoffs"] = strconv.Itoa(len(cfg.Cutoffs))
		return nil
	}()
	if err != nil {
		rec.Outcome, rec.Reason = outcomeOf(err), err.Error()
	}
	if err == nil {
		// Acceptances in flight were judged on the policy in force: they
		// commit before it is replaced (and before the reload's entry), and
		// none starts until it is.
		if !s.acceptMu.TryLock() {
			s.log.Debug("config.reload waits for acceptances in flight")
			s.acceptMu.Lock()
		}
		defer s.acceptMu.Unlock()
	}
	// The entry first: a configuration in force without its entry would be an
	// unaudited change, so an audit log that cannot take it refuses the reload.
	if aerr := s.appendAudit(ctx, rec); aerr != nil {
		return protocol.Reload{}, fmt.Errorf("reload: %w", aerr)
	}
	if err != nil {
		return protocol.Reload{}, err
	}
	s.mu.Lock()
	s.settings.Store(&settings{policy: p, rounds: &cfg})
	clear(s.noise) // calibrated under the previous caps and plan
	s.mu.Unlock()
	return protocol.Reload{
		PolicyHash: p.Hash(), PreviousPolicyHash: prev.policy.Hash(),
		Merchants: len(p.Merchants()), Partners: len(p.Partners()),
		Note: "rounds opened from now on use the new configuration; cancel the open round to apply it at once",
	}, nil
}

// maxAuditReason bounds the reason of every audit record the service
// appends (appendAudit): reasons quote what callers sent (a refused
// update's payload, a configuration file's error), and the log keeps them
// forever, so the start of the cause is enough.
const maxAuditReason = 1024

// boundReason cuts reason to maxAuditReason bytes at a character boundary,
// marking the cut with "…".
func boundReason(reason string) string {
	if len(reason) <= maxAuditReason {
		return reason
	}
	return strings.ToValidUTF8(reason[:maxAuditReason], "") + "…"
}

// loggable returns s with NUL and invalid bytes replaced by U+FFFD, the
// text the audit log accepts (audit.ValidText). Callers check the text they
// take from others; this is the last resort that keeps an entry from being
// refused after the action it records took effect.
func loggable(s string) string {
	if audit.ValidText(s) {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// loggableRecord is rec with every text field loggable and its reason
// bounded (appendAudit).
func loggableRecord(rec audit.Record) audit.Record {
	rec.Actor, rec.Action, rec.Object = loggable(rec.Actor), loggable(rec.Action), loggable(rec.Object)
	rec.Reason = boundReason(loggable(rec.Reason))
	fix := func(m map[string]string, values bool) map[string]string {
		clean := true
		for k, v := range m {
			clean = clean && audit.ValidText(k) && (!values || audit.ValidText(v))
		}
		if clean { // the usual case: no copy on the acceptance path
			return m
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			if values {
				v = loggable(v)
			}
			out[loggable(k)] = v
		}
		return out
	}
	if rec.Details != nil {
		rec.Details = fix(rec.Details, true)
	}
	if rec.Identifiers != nil {
		rec.Identifiers = fix(rec.Identifiers, false) // values are stored as HMACs
	}
	return rec
}

// RefuseReload audits a reload that failed before a policy could be handed
// to Reload (the configuration or policy file did not read or parse), so
// that every refused reload leaves a config.reload entry as Reload's own
// refusals do; the policy and rounds in force stay. It returns cause wrapped
// in ErrPolicy, or the audit failure.
func (s *Service) RefuseReload(ctx context.Context, actor string, cause error) error {
	if cause == nil {
		cause = errors.New("no reason given")
	}
	err := fmt.Errorf("reload: %w: %w", ErrPolicy, cause)
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rec := audit.Record{
		Actor: actor, Action: "config.reload", Object: "policy", Outcome: outcomeOf(err), Reason: err.Error(), // bounded by appendAudit
		Details: map[string]string{"previous_policy_hash": s.pol().Hash()},
	}
	if aerr := s.appendAudit(ctx, rec); aerr != nil {
		return fmt.Errorf("reload: %w", aerr)
	}
	return err
}

// CancelRound fails round id (the latest round when id is empty) on behalf
// of actor and opens the next round with the configuration in force. Only an
// open or collecting round can be cancelled: updates already accepted in it
// stay debited from their merchants' budgets and are not merged. Audited as
// round.cancel.
func (s *Service) CancelRound(ctx context.Context, actor, id, reason string) (protocol.RoundState, error) {
	reason = strings.TrimSpace(reason)
	why := "cancelled by " + actor
	if reason != "" {
		why += ": " + reason
	}
	var ps []staged
	var next protocol.RoundState
	err := s.store.InTx(ctx, func(tx Tx) error {
		if !audit.ValidText(reason) {
			// It becomes the round's reason and its audit entries' reason.
			return fmt.Errorf("%w: reason %q is not UTF-8 text without NUL", ErrPolicy, reason)
		}
		ps, next = nil, ""
		var r RoundRecord
		var err error
		if id == "" {
			if r, err = tx.LatestRound(ctx); err != nil {
				return err
			}
			if r, err = tx.Round(ctx, r.ID, LockUpdate); err != nil {
				return err
			}
		} else if r, err = tx.Round(ctx, id, LockUpdate); err != nil {
			return err
		}
		if r.State != protocol.RoundOpen && r.State != protocol.RoundCollecting {
			return fmt.Errorf("%w: round %s is %s; only an open or collecting round can be cancelled", ErrConflict, r.ID, r.State)
		}
		ps, next, err = s.cancel(ctx, tx, r, actor, why, s.now().UTC())
		return err
	})
	if err != nil {
		err = fmt.Errorf("cancel round %s: %w", orLatest(id), err)
		rec := audit.Record{Actor: actor, Action: "round.cancel", Object: "round/" + orLatest(id), Outcome: outcomeOf(err), Reason: err.Error()}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			return "", fmt.Errorf("cancel round %s: %w", orLatest(id), aerr)
		}
		return "", err
	}
	if err := s.flush(ctx, ps); err != nil {
		return "", fmt.Errorf("cancel round %s: %w", orLatest(id), err)
	}
	return next, nil
}

// cancel fails the open or collecting round r (locked FOR UPDATE in tx) on
// behalf of actor, giving why as its reason, opens the next round on the
// active version and stages the entries (round.cancel, round.open). It
// returns the entries and the next round's state ("" when none opened).
func (s *Service) cancel(ctx context.Context, tx Tx, r RoundRecord, actor, why string, now time.Time) ([]staged, protocol.RoundState, error) {
	if err := tx.SetRoundState(ctx, r.ID, r.State, protocol.RoundFailed, why, now); err != nil {
		return nil, "", err
	}
	r.State, r.Reason = protocol.RoundFailed, why
	ts, err := s.openNext(ctx, tx, r, "round.cancel", why, now)
	if err != nil {
		return nil, "", err
	}
	ts[0].actor = actor
	var next protocol.RoundState
	if len(ts) > 1 {
		next = ts[1].round.State
	}
	ps, err := s.stageTransitions(ctx, tx, ts, now)
	return ps, next, err
}

func orLatest(id string) string {
	if id == "" {
		return "latest"
	}
	return id
}

// MinStoppedFor is how long a stopped merchant stays stopped before a
// request for the current round resumes it. Stop and resume are real
// changes, each audited, so a merchant alternating them wrote an entry per
// request into a log never pruned; with it, at most a stop and a resume a
// minute. An honest client stops when its own cap is reached and asks
// again only once restarted with a higher one.
const MinStoppedFor = time.Minute

// StopMerchant records that merchantID sends no more updates and why (its
// own privacy cap is reached, say): a round whose remaining sampled
// merchants have all stopped or been revoked closes without waiting for its
// deadline. A stopped merchant that sends an update again is still accepted.
// Audited as merchant.stop, with the merchant's own cap when it gives one
// (details local_epsilon_cap and local_delta).
func (s *Service) StopMerchant(ctx context.Context, merchantID string, stop protocol.MerchantStop) error {
	reason := strings.TrimSpace(stop.Reason)
	if reason == "" {
		reason = "stopped"
	}
	rec := audit.Record{
		Actor: "merchant:" + merchantID, Action: "merchant.stop", Object: "merchant", Outcome: audit.OutcomeOK,
		Reason: reason, Identifiers: map[string]string{"merchant": merchantID},
	}
	var err error
	switch {
	case !audit.ValidText(reason):
		// It is stored with the merchant and goes into the reason of a round
		// it closes early, and into their audit entries.
		err = fmt.Errorf("%w: reason %q is not UTF-8 text without NUL", ErrPolicy, reason)
	case stop.LocalEpsilonCap < 0 || math.IsInf(stop.LocalEpsilonCap, 0) || math.IsNaN(stop.LocalEpsilonCap):
		err = fmt.Errorf("stop merchant %s: %w: local ε cap %v", merchantID, ErrPolicy, stop.LocalEpsilonCap)
	case stop.LocalDelta < 0 || stop.LocalDelta >= 1 || math.IsNaN(stop.LocalDelta):
		err = fmt.Errorf("stop merchant %s: %w: local δ %v outside [0, 1)", merchantID, ErrPolicy, stop.LocalDelta)
	case stop.LocalEpsilonCap > 0:
		rec.Details = map[string]string{"local_epsilon_cap": strconv.FormatFloat(stop.LocalEpsilonCap, 'g', -1, 64)}
		if stop.LocalDelta > 0 {
			rec.Details["local_delta"] = strconv.FormatFloat(stop.LocalDelta, 'g', -1, 64)
		}
	}
	var ps []staged
	if err == nil {
		// The entry is staged with the change (the outbox): a stop that took
		// effect is audited even if the log cannot take the entry right now.
		err = s.store.InTx(ctx, func(tx Tx) error {
			ps = nil
			m, err := tx.Merchant(ctx, merchantID)
			if err != nil {
				return err
			}
			if m.Stopped != "" {
				// Stopped already: nothing changes, so nothing is audited
				// (each call was an entry in a log that is never pruned).
				return nil
			}
			if err := tx.SetMerchantStopped(ctx, merchantID, reason, s.now()); err != nil {
				return err
			}
			p, err := stage(ctx, tx, "merchant.stop/"+merchantID+"/"+randomSuffix(), rec, s.now().UTC())
			ps = []staged{p}
			return err
		})
	}
	if err != nil {
		err = fmt.Errorf("stop merchant %s: %w", merchantID, err)
		rec.Outcome, rec.Reason = outcomeOf(err), err.Error()
		// A refusal changed nothing and costs nothing to send: it shares the
		// merchant's window with its refused submissions.
		if rec.Outcome == audit.OutcomeDenied && !s.admitRefusal(ctx, merchantID, err) {
			return err
		}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			return fmt.Errorf("stop merchant %s: %w", merchantID, aerr)
		}
		return err
	}
	if err := s.flush(ctx, ps); err != nil {
		return fmt.Errorf("stop merchant %s: %w", merchantID, err)
	}
	return nil
}

// remainingStopped reports whether every sampled merchant of r that has not
// sent an audited update has stopped or been revoked, and names them.
func remainingStopped(ctx context.Context, tx Tx, r RoundRecord) (bool, string, error) {
	updates, err := tx.RoundUpdates(ctx, r.ID)
	if err != nil {
		return false, "", err
	}
	sent := map[string]bool{}
	for _, u := range updates {
		if u.Audited {
			sent[u.Merchant] = true
		}
	}
	var why []string
	for _, id := range r.Selected {
		if sent[id] {
			continue
		}
		m, err := tx.Merchant(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			why = append(why, id+": not enrolled")
		case err != nil:
			return false, "", err
		case m.Revoked:
			why = append(why, id+": revoked")
		case m.Stopped != "":
			why = append(why, id+": "+m.Stopped)
		default:
			return false, "", nil
		}
	}
	return len(why) > 0, strings.Join(why, "; "), nil
}
