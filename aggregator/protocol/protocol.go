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
}

// ErrInvalidUpdate is wrapped by every error Validate returns.
var ErrInvalidUpdate = errors.New("invalid update")

// Validate checks the update's shape and finiteness against the expected parameter
// count. It does not check the DP parameters against a policy; the aggregator does.
func (u *Update) Validate(numParams int) error {
	switch {
	case u.Version != Version:
		return fmt.Errorf("%w: protocol version %d, want %d", ErrInvalidUpdate, u.Version, Version)
	case u.Round == "":
		return fmt.Errorf("%w: missing round", ErrInvalidUpdate)
	case u.Merchant == "":
		return fmt.Errorf("%w: missing merchant", ErrInvalidUpdate)
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
	Version       int                `json:"version"`
	Round         string             `json:"round,omitempty"` // empty for the initial model
	Parent        int                `json:"parent"`
	PublishedAt   time.Time          `json:"published_at"`
	Contributions []Contribution     `json:"contributions"`
	PolicyHash    string             `json:"policy_hash"`
	SchemaHash    string             `json:"schema_hash"`
	Merge         string             `json:"merge"` // fedavg | median | trimmed_mean, plus the server optimizer
	Metrics       map[string]float64 `json:"metrics,omitempty"`
	Active        bool               `json:"active"` // the version served by default (rollback moves it)
	Model         json.RawMessage    `json:"model,omitempty"`
}
