package aggregator_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
)

// TestReloadNonFiniteRoundConfigRefused (hardening review, session 18): NaN
// passed every "< 0" check of the round configuration and +Inf every "> 0"
// one, so a reload with norm_bound NaN silently fell back to the derived
// bound, an Inf server_lr made the next merged model non-finite, an l2 or
// count_noise of NaN went out in every plan. Each is now refused with
// ErrPolicy and audited; the plan of the next round is the old one.
func TestReloadNonFiniteRoundConfigRefused(t *testing.T) {
	ctx := context.Background()
	base := aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, L2: 0.001, CountNoise: 40}
	f := newFed(t, sqliteBackend(t), base)
	r := f.start(t)
	f.enrol(t, r, "m1")
	tick(t, r)
	nan, inf := math.NaN(), math.Inf(1)
	for _, tt := range []struct {
		name string
		set  func(*aggregator.RoundConfig)
	}{
		{"l2 NaN", func(c *aggregator.RoundConfig) { c.L2 = nan }},
		{"l2 +Inf", func(c *aggregator.RoundConfig) { c.L2 = inf }},
		{"norm bound NaN", func(c *aggregator.RoundConfig) { c.NormBound = nan }},
		{"norm bound +Inf", func(c *aggregator.RoundConfig) { c.NormBound = inf }},
		{"count noise +Inf", func(c *aggregator.RoundConfig) { c.CountNoise = inf }},
		{"server lr +Inf", func(c *aggregator.RoundConfig) { c.ServerLR = inf }},
		{"server tau +Inf", func(c *aggregator.RoundConfig) { c.ServerTau = inf }},
		{"learning rate NaN", func(c *aggregator.RoundConfig) { c.LearningRate = nan }},
		{"evaluation sigma +Inf", func(c *aggregator.RoundConfig) {
			c.Evaluation = &aggregator.EvaluationConfig{Cutoff: time.Date(1998, 6, 1, 0, 0, 0, 0, time.UTC), Sigma: inf}
		}},
	} {
		cfg := base
		tt.set(&cfg)
		if _, err := r.svc.Reload(ctx, "admin:ops", f.policy, cfg); !errors.Is(err, aggregator.ErrPolicy) {
			t.Errorf("reload with %s: got %v, want ErrPolicy", tt.name, err)
		}
	}
	if _, err := r.svc.CancelRound(ctx, "admin:ops", "", "open a round under the configuration in force"); err != nil {
		t.Fatal(err)
	}
	p := mustRound(t, r, "m1").Plan
	if p.L2 != base.L2 || p.CountNoise != base.CountNoise {
		t.Errorf("next plan: l2 %v count noise %v, want the configuration before the refused reloads (%v, %v)", p.L2, p.CountNoise, base.L2, base.CountNoise)
	}
	if got := auditActions(t, r.store)["config.reload denied"]; got != 9 {
		t.Errorf("config.reload denied entries: %d, want 9", got)
	}
	f.verifyAudit(t, r)
}
