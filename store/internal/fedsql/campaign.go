package fedsql

import (
	"context"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
)

const (
	sqlCampaignState = `SELECT campaign, phase, reason, opened_at_ms, trained_at_start, shift_ms,
	baseline_version, baseline_auc, baseline_at_ms, last_eval_at_ms, eval_seq, updated_at_ms
	FROM fed_campaign WHERE singleton = 1`
	sqlSetCampaignState = `UPDATE fed_campaign SET campaign = ?, phase = ?, reason = ?, opened_at_ms = ?,
	trained_at_start = ?, shift_ms = ?, baseline_version = ?, baseline_auc = ?, baseline_at_ms = ?,
	last_eval_at_ms = ?, eval_seq = ?, updated_at_ms = ? WHERE singleton = 1`
)

// CampaignState implements aggregator.Tx.
func (t *Tx) CampaignState(ctx context.Context) (aggregator.CampaignState, error) {
	var c aggregator.CampaignState
	var campaign, opened, start, shift, bv, bat, last, seq, updated int64
	err := t.one(ctx, sqlCampaignState+t.lock(aggregator.LockUpdate), func(r Rows) error {
		return r.Scan(&campaign, &c.Phase, &c.Reason, &opened, &start, &shift, &bv, &c.BaselineAUC, &bat, &last, &seq, &updated)
	})
	if err != nil {
		return aggregator.CampaignState{}, fmt.Errorf("campaign state: %w", err)
	}
	c.Campaign, c.OpenedAt, c.TrainedAtStart, c.Shift = int(campaign), fromMS(opened), int(start), time.Duration(shift)*time.Millisecond
	c.BaselineVersion, c.BaselineAt, c.LastEvalAt, c.EvalSeq, c.UpdatedAt = int(bv), fromMS(bat), fromMS(last), seq, fromMS(updated)
	return c, nil
}

// SetCampaignState implements aggregator.Tx.
func (t *Tx) SetCampaignState(ctx context.Context, c aggregator.CampaignState) error {
	n, err := t.exec(ctx, sqlSetCampaignState, int64(c.Campaign), c.Phase, c.Reason, ms(c.OpenedAt), int64(c.TrainedAtStart),
		c.Shift.Milliseconds(), int64(c.BaselineVersion), c.BaselineAUC, ms(c.BaselineAt), ms(c.LastEvalAt), c.EvalSeq, ms(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("set campaign state: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("set campaign state: %w: no campaign row (migration 0009 not applied?)", aggregator.ErrNotFound)
	}
	return nil
}
