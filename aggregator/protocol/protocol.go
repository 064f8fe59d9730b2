// Package protocol defines the messages merchants and the aggregator exchange in a
// federated training round: the round a merchant fetches, the update it seals, the
// receipt it gets back, and the model versions the aggregator publishes. It is a
// leaf package so that the aggregator, the HTTP API and the merchant client agree on
// one definition without importing each other.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Version is the protocol version carried in every update payload.
const Version = 1

// RoundState is a state of the round state machine:
// open → collecting → aggregating → published | failed.
type RoundState string

// The round states.
const (
	RoundOpen        RoundState = "open"        // created, accepting its first update
	RoundCollecting  RoundState = "collecting"  // at least one update accepted
	RoundAggregating RoundState = "aggregating" // deadline or quorum reached; merge in progress
	RoundPublished   RoundState = "published"   // merged model published as a new version
	RoundFailed      RoundState = "failed"      // quorum missed by the deadline, or merge failed
)

// Terminal reports whether no further transition leaves s.
func (s RoundState) Terminal() bool { return s == RoundPublished || s == RoundFailed }

// TrainingPlan is what every merchant of a round runs locally: DP-SGD with
// per-customer clipping from the round's base model. Each merchant's release for the
// round is (SamplingRate, NoiseMultiplier, Steps) and is debited from its budget.
type TrainingPlan struct {
	// Cutoffs are the training cutoffs at which the merchant builds features and labels.
	Cutoffs []time.Time `json:"cutoffs"`
	// Steps is the number of DP-SGD steps per round.
	Steps int `json:"steps"`
	// SamplingRate is q, the Poisson rate at which each customer joins a step.
	SamplingRate float64 `json:"sampling_rate"`
	// NoiseMultiplier is z = σ/C, the minimum noise the merchant must add.
	NoiseMultiplier float64 `json:"noise_multiplier"`
	// ClipNorm is C, the L2 bound of one customer's gradient.
	ClipNorm float64 `json:"clip_norm"`
	// LearningRate and L2 configure the local optimizer.
	LearningRate float64 `json:"learning_rate"`
	L2           float64 `json:"l2"`
	// Delta is the policy's δ at which ε is reported.
	Delta float64 `json:"delta"`
	// CountNoise is the Gaussian σ of the DP customer count sent with the update
	// (sensitivity 1: adding or removing a customer changes the count by one).
	CountNoise float64 `json:"count_noise"`
	// Evaluation, when set, asks the merchant to evaluate the round's base model
	// on its own customers and send a DP histogram with the update.
	Evaluation *EvaluationPlan `json:"evaluation,omitempty"`
	// Secure, when set, runs the round with secure aggregation: one DP step
	// whose noise the merchants share, summed by SecAgg+ (SecurePlan).
	Secure *SecurePlan `json:"secure,omitempty"`
}

// EvaluationOnly reports whether the plan trains nothing: Steps is 0 and the
// merchant only evaluates the base model (the round after the last planned one).
func (p TrainingPlan) EvaluationOnly() bool { return p.Steps == 0 && p.Evaluation != nil }

// Bounds on a plan's sizes. The aggregator writes the plan and the merchant's
// client runs it: the steps are CPU time (at a large noise multiplier they
// cost almost no ε, so the local ledger does not bound them), each cutoff a
// row per customer held in memory, each edge three histogram cells. Far
// above any useful plan (10 steps, a few cutoffs and 14 edges by default),
// far below what would hold a merchant's machine for ever.
const (
	MaxPlanSteps   = 10_000
	MaxPlanCutoffs = 52
	MaxEvalEdges   = 255
)

// ErrPlanTooLarge is wrapped by CheckSize's errors.
var ErrPlanTooLarge = errors.New("round plan too large")

// CheckSize refuses a plan with more steps, cutoffs or evaluation edges
// than the bounds above. The aggregator checks its round configuration with
// it and the client checks every plan it gets before it builds a feature.
func (p TrainingPlan) CheckSize() error {
	switch {
	case p.Steps > MaxPlanSteps:
		return fmt.Errorf("%w: steps %d, at most %d", ErrPlanTooLarge, p.Steps, MaxPlanSteps)
	case len(p.Cutoffs) > MaxPlanCutoffs:
		return fmt.Errorf("%w: %d cutoffs, at most %d", ErrPlanTooLarge, len(p.Cutoffs), MaxPlanCutoffs)
	case p.Evaluation != nil && len(p.Evaluation.Edges) > MaxEvalEdges:
		return fmt.Errorf("%w: evaluation with %d edges, at most %d", ErrPlanTooLarge, len(p.Evaluation.Edges), MaxEvalEdges)
	}
	return nil
}

// EvaluationPlan is a federated evaluation: every merchant scores the base
// model at Cutoff for each of its customers active before it, sorts them into
// the bins of the predicted P(purchase within 30 days) delimited by Edges, and
// counts them by outcome (EvalClasses); the counts are released with Gaussian
// noise of standard deviation Sigma per cell. One customer is in exactly one
// cell, so the histogram's L2 sensitivity under add/remove is 1 and the release
// is a Gaussian mechanism with noise multiplier Sigma.
type EvaluationPlan struct {
	Cutoff time.Time `json:"cutoff"`
	// Edges are the inner bin edges, strictly increasing in (0, 1): len(Edges)+1 bins.
	Edges []float64 `json:"edges"`
	Sigma float64   `json:"sigma"`
}

// Cells is the number of cells of the plan's histogram: EvalClasses per bin.
func (p *EvaluationPlan) Cells() int { return (len(p.Edges) + 1) * EvalClasses }

// The outcome classes of an evaluation histogram, in cell order within a bin.
const (
	EvalWithin7  = iota // first purchase within 7 days of the cutoff
	EvalWithin30        // first purchase on days 8–30
	EvalNone            // no purchase within 30 days
	EvalClasses
)

// Evaluation is a merchant's DP evaluation histogram: Counts[b*EvalClasses+c]
// is the noisy number of its customers in bin b with outcome class c.
type Evaluation struct {
	Cutoff time.Time `json:"cutoff"`
	Counts []float64 `json:"counts"`
	// Sigma is the noise actually added per cell (never below the plan's).
	Sigma float64 `json:"sigma"`
}

// Validate checks an evaluation against its plan.
func (e *Evaluation) Validate(plan *EvaluationPlan) error {
	switch {
	case plan == nil:
		return fmt.Errorf("%w: evaluation sent but the round asks for none", ErrInvalidUpdate)
	case !e.Cutoff.Equal(plan.Cutoff):
		return fmt.Errorf("%w: evaluation at %s, the round asks for %s", ErrInvalidUpdate, e.Cutoff.Format(time.RFC3339), plan.Cutoff.Format(time.RFC3339))
	case len(e.Counts) != plan.Cells():
		return fmt.Errorf("%w: evaluation has %d cells, want %d", ErrInvalidUpdate, len(e.Counts), plan.Cells())
	case !(e.Sigma >= plan.Sigma*(1-1e-9)) || math.IsInf(e.Sigma, 0):
		return fmt.Errorf("%w: evaluation noise σ %v below the plan's %v", ErrInvalidUpdate, e.Sigma, plan.Sigma)
	}
	for i, v := range e.Counts {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: evaluation count %d = %v is not finite", ErrInvalidUpdate, i, v)
		}
	}
	return nil
}

// Round is what GET /v1/rounds/current returns to a merchant.
type Round struct {
	ID          string          `json:"id"`
	Seq         int64           `json:"seq"`
	State       RoundState      `json:"state"`
	OpenedAt    time.Time       `json:"opened_at"`
	Deadline    time.Time       `json:"deadline"`
	Quorum      int             `json:"quorum"`
	Selected    bool            `json:"selected"` // whether the asking merchant was sampled for this round
	BaseVersion int             `json:"base_version"`
	Model       json.RawMessage `json:"model"` // the hazard model file of BaseVersion
	Plan        TrainingPlan    `json:"plan"`
	Recipient   string          `json:"recipient"` // the aggregator's age recipient to seal to
	PolicyHash  string          `json:"policy_hash"`
}

// Release is the differentially private mechanism a merchant ran for an update, as
// declared by the merchant and checked by the aggregator against the policy.
type Release struct {
	SamplingRate    float64 `json:"sampling_rate"`
	NoiseMultiplier float64 `json:"noise_multiplier"` // σ actually added / ClipNorm
	Steps           int     `json:"steps"`
	ClipNorm        float64 `json:"clip_norm"`
}

// NoisyCount is a count released with Gaussian noise of standard deviation Sigma
// (sensitivity 1).
type NoisyCount struct {
	Value float64 `json:"value"`
	Sigma float64 `json:"sigma"`
	// ReleasedIn, when set, names the earlier round whose accepted update
	// released this very count: sending it again is post-processing and is not
	// debited again. The aggregator checks it against that update.
	ReleasedIn string `json:"released_in,omitempty"`
}

// Update is the payload a merchant seals: the change to the base model's parameters
// produced by DP-SGD (post-processing of the private trajectory), the release that
// produced it, and a DP count of the customers it trained on.
type Update struct {
	Version     int        `json:"version"`
	Round       string     `json:"round"`
	Merchant    string     `json:"merchant"`
	BaseVersion int        `json:"base_version"`
	SchemaHash  string     `json:"schema_hash"`
	Delta       []float64  `json:"delta"`
	Release     Release    `json:"release"`
	Customers   NoisyCount `json:"customers"`
	// Evaluation is the DP evaluation of the base model the round's plan asked
	// for; in an evaluation-only round it is all there is (no delta, no release,
	// no count).
	Evaluation *Evaluation `json:"evaluation,omitempty"`
}

// ErrInvalidUpdate is wrapped by every error Validate returns.
var ErrInvalidUpdate = errors.New("invalid update")

// Validate checks the update's shape and finiteness against the expected parameter
// count and the round's plan (its evaluation included). It does not check the DP
// parameters against a policy; the aggregator does.
func (u *Update) Validate(numParams int, plan TrainingPlan) error {
	switch {
	case u.Version != Version:
		return fmt.Errorf("%w: protocol version %d, want %d", ErrInvalidUpdate, u.Version, Version)
	case u.Round == "":
		return fmt.Errorf("%w: missing round", ErrInvalidUpdate)
	case u.Merchant == "":
		return fmt.Errorf("%w: missing merchant", ErrInvalidUpdate)
	case u.Evaluation == nil && plan.Evaluation != nil:
		return fmt.Errorf("%w: the round asks for an evaluation at %s and the update has none", ErrInvalidUpdate, plan.Evaluation.Cutoff.Format(time.RFC3339))
	case u.Evaluation != nil:
		if err := u.Evaluation.Validate(plan.Evaluation); err != nil {
			return err
		}
	}
	if plan.EvaluationOnly() {
		if len(u.Delta) != 0 || u.Release != (Release{}) || u.Customers != (NoisyCount{}) {
			return fmt.Errorf("%w: an evaluation-only round takes no delta, release or count", ErrInvalidUpdate)
		}
		return nil
	}
	switch {
	case len(u.Delta) != numParams:
		return fmt.Errorf("%w: delta has %d parameters, want %d", ErrInvalidUpdate, len(u.Delta), numParams)
	case u.Release.Steps < 1:
		return fmt.Errorf("%w: release steps %d < 1", ErrInvalidUpdate, u.Release.Steps)
	case !(u.Release.SamplingRate > 0 && u.Release.SamplingRate <= 1):
		return fmt.Errorf("%w: sampling rate %v outside (0, 1]", ErrInvalidUpdate, u.Release.SamplingRate)
	case !(u.Release.NoiseMultiplier > 0) || math.IsInf(u.Release.NoiseMultiplier, 0):
		return fmt.Errorf("%w: noise multiplier %v must be positive and finite", ErrInvalidUpdate, u.Release.NoiseMultiplier)
	case !(u.Release.ClipNorm > 0) || math.IsInf(u.Release.ClipNorm, 0):
		return fmt.Errorf("%w: clip norm %v must be positive and finite", ErrInvalidUpdate, u.Release.ClipNorm)
	case math.IsNaN(u.Customers.Value) || math.IsInf(u.Customers.Value, 0) || !(u.Customers.Sigma > 0):
		return fmt.Errorf("%w: customer count %v (σ %v) must be finite with positive noise", ErrInvalidUpdate, u.Customers.Value, u.Customers.Sigma)
	}
	for i, v := range u.Delta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: delta[%d] = %v is not finite", ErrInvalidUpdate, i, v)
		}
	}
	return nil
}

// Receipt is what the aggregator returns (HTTP 202) once an update is durably
// accepted: the update, ledger row and audit entry were committed together.
type Receipt struct {
	UpdateID   string    `json:"update_id"`
	Round      string    `json:"round"`
	Merchant   string    `json:"merchant"`
	Epsilon    float64   `json:"epsilon"` // the merchant's cumulative ε after this update, at Delta
	Delta      float64   `json:"delta"`
	EpsilonCap float64   `json:"epsilon_cap"`
	AcceptedAt time.Time `json:"accepted_at"`
	// Duplicate is true when the same envelope was accepted before; nothing was debited again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Contribution is one merchant's part in a published model version.
type Contribution struct {
	Merchant string  `json:"merchant"`
	Epsilon  float64 `json:"epsilon"` // the merchant's cumulative ε at the policy δ when the version was published
	Delta    float64 `json:"delta"`
	Weight   float64 `json:"weight"`
}

// ModelVersion is an entry of the model registry.
type ModelVersion struct {
	Version       int            `json:"version"`
	Round         string         `json:"round,omitempty"` // empty for the initial model
	Parent        int            `json:"parent"`
	PublishedAt   time.Time      `json:"published_at"`
	Contributions []Contribution `json:"contributions"`
	// ContributionsRedacted: the caller's role may not see per-merchant ε
	// and weights (kept to compliance and admin, as budgets are), so
	// Contributions is empty although the version has some.
	ContributionsRedacted bool               `json:"contributions_redacted,omitempty"`
	PolicyHash            string             `json:"policy_hash"`
	SchemaHash            string             `json:"schema_hash"`
	Merge                 string             `json:"merge"` // fedavg | median | trimmed_mean, plus the server optimizer
	Metrics               map[string]float64 `json:"metrics,omitempty"`
	Active                bool               `json:"active"` // the version served by default (rollback moves it)
	// Withdrawn: a rollback withdrew the version (it was active, or on the
	// active lineage above the rollback's target, or descends from such a
	// version); it is listed but neither served nor trained from.
	Withdrawn bool `json:"withdrawn,omitempty" doc:"a rollback withdrew this version: it is listed but neither served (410) nor trained from"`
	// WithdrawnAt is when, WithdrawnSeq the seq of the rollback's audit
	// entry (0 while that entry waits to be appended).
	WithdrawnAt  time.Time       `json:"withdrawn_at,omitzero" doc:"when the rollback withdrew it"`
	WithdrawnSeq int64           `json:"withdrawn_seq,omitempty" doc:"seq of the rollback's audit entry; absent until that entry is appended"`
	Model        json.RawMessage `json:"model,omitempty"`
}
