package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
)

// ReloadFollowInterval is how often a serving aggregator looks for reloads
// that another replica installed (FollowReloads): a policy reloaded on one
// replica is in force on the others within about this long.
const ReloadFollowInterval = 2 * time.Second

// followerActor is the actor of the reloads FollowReloads makes. Entries by
// it are never followed, so replicas whose files differ cannot reload each
// other back and forth.
const followerActor = "system:replica"

// FollowReloads installs the configuration of the latest config.reload
// another replica made since the last call (or since New): replicas share
// the database and the audit log but each holds the policy in memory, so a
// reload sent to one (POST /v1/config:reload, SIGHUP) would leave a merchant
// or partner the operator removed served by the others. It re-reads this
// replica's files (they are the same files, or copies, on every replica) with
// the Reload of the Options, audited as any reload, by system:replica. When
// the files give a policy other than the one the entry names, that policy is
// installed all the same (the files are the operator's word) and the
// mismatch is returned.
func (a *Aggregator) FollowReloads(ctx context.Context) error {
	a.followMu.Lock()
	defer a.followMu.Unlock()
	want, next, err := a.nextFollowedReload(ctx)
	if err != nil {
		return err
	}
	if want == "" || want == a.Service.Policy().Hash() {
		a.followAfter = next
		return nil
	}
	if a.reload == nil {
		return fmt.Errorf("follow reload to policy %s: %w", want, ErrNoReload)
	}
	out, err := a.reload(ctx, a.Service, followerActor)
	if err != nil {
		if errors.Is(err, aggregator.ErrPolicy) {
			// Refused (and audited) for this replica's files: retrying
			// every interval would audit the same refusal for ever.
			a.followAfter = next
		}
		// Otherwise (the store or the audit log unavailable) the next
		// call tries again.
		return fmt.Errorf("follow reload to policy %s: %w", want, err)
	}
	a.followAfter = next
	if out.PolicyHash != want {
		return fmt.Errorf("follow reload: this replica's policy file gives %s, another replica installed %s: the replicas' files differ", out.PolicyHash, want)
	}
	a.log.Info("followed a reload made on another replica", "policy_hash", want)
	return nil
}

// nextFollowedReload reads the audit log after the cursor and returns the
// policy hash of the last successful config.reload an operator made ("" when
// none) and the cursor past what it read, which the caller keeps once it has
// acted on the entry.
func (a *Aggregator) nextFollowedReload(ctx context.Context) (want string, next uint64, err error) {
	next = a.followAfter
	// Every entry up to the head read now is in the pages read below, so
	// the cursor may move past it even when no reload was found: otherwise
	// each look would scan again everything since the last reload.
	head, err := a.auditSrc.AuditHead(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("follow reloads: %w", err)
	}
	for {
		page, err := compliance.QueryAudit(ctx, a.auditSrc, compliance.AuditFilter{
			After: next, Action: "config.reload", Limit: compliance.MaxAuditLimit})
		if err != nil {
			return "", 0, fmt.Errorf("follow reloads: %w", err)
		}
		for _, e := range page.Entries {
			next = max(next, e.Seq)
			if e.Outcome == string(audit.OutcomeOK) && e.Actor != followerActor && e.Details["policy_hash"] != "" {
				want = e.Details["policy_hash"]
			}
		}
		if page.Next == 0 {
			return want, max(next, head.Seq), nil
		}
		next = max(next, page.Next)
	}
}

// followReloads runs FollowReloads every ReloadFollowInterval until ctx
// ends, logging its failures.
func (a *Aggregator) followReloads(ctx context.Context) {
	t := time.NewTicker(ReloadFollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.FollowReloads(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("replica: following a reload failed", "err", err)
			}
		}
	}
}
