package report

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/policies"
)

// Sources are what a report is gathered from. `kairos compliance report`
// and GET /v1/report both fill one and call Gather, so the file and the
// HTTP answer cannot differ.
type Sources struct {
	// Store holds the federation tables: ledgers and the model registry.
	Store aggregator.Store
	// Audit is the audit log to verify (usually the same store).
	Audit audit.Source
	// Policy is the policy in force: caps, δ, its hash and federation name.
	Policy *policies.Policy
	// CheckpointKey verifies the audit log's signed checkpoints.
	CheckpointKey ed25519.PublicKey
	// Source says where the data came from, without credentials.
	Source string
	// Now stamps the report; time.Now when nil.
	Now func() time.Time
}

// Gather reads every budget, the model registry and the policy history, and
// verifies the audit log. A log that fails verification is not an error: the
// report says so (Audit.OK false, Audit.Failure naming the first bad entry or
// checkpoint). Errors are failures to read.
func Gather(ctx context.Context, src Sources) (Report, error) {
	if src.Store == nil || src.Audit == nil || src.Policy == nil {
		return Report{}, errors.New("gather report: store, audit log and policy are required")
	}
	now := src.Now
	if now == nil {
		now = time.Now
	}
	r := Report{Generated: now().UTC(), Source: src.Source, Federation: src.Policy.Federation(), PolicyHash: src.Policy.Hash()}
	var err error
	if r.Budgets, err = compliance.LoadBudgets(ctx, src.Store, src.Policy); err != nil {
		return Report{}, fmt.Errorf("gather report: %w", err)
	}
	if r.Models, err = compliance.LoadModels(ctx, src.Store); err != nil {
		return Report{}, fmt.Errorf("gather report: %w", err)
	}
	r.Policies = compliance.PolicyHistory(r.Models, r.PolicyHash)
	if r.Policy, err = policyView(src.Policy); err != nil {
		return Report{}, fmt.Errorf("gather report: %w", err)
	}
	var caps map[string]localCap
	if r.Actions, r.Events, r.EventsDropped, caps, err = activity(ctx, src.Audit); err != nil {
		return Report{}, fmt.Errorf("gather report: %w", err)
	}
	applyLocalCaps(r.Budgets, caps)
	res, verr := audit.Verify(ctx, src.Audit, src.CheckpointKey)
	r.Audit = Verification{OK: verr == nil, Entries: res.Entries, Checkpoints: res.Checkpoints, Head: res.Head.String()}
	if res.Entries > res.LastCheckpointSeq {
		r.Audit.Unpinned = res.Entries - res.LastCheckpointSeq
	}
	if ve, ok := errors.AsType[*audit.VerifyError](verr); ok {
		r.Audit.Failure = ve.Error()
	} else if verr != nil {
		return Report{}, fmt.Errorf("gather report: verify audit log: %w", verr)
	}
	return r, nil
}
