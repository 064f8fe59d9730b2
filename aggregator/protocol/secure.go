package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SecurePlan is the public part of a secure-aggregation round (SecAgg+ with
// distributed discrete Gaussian noise): who is in the cohort, the neighbour
// graph's parameters and the encoding every merchant sums into. It is set in
// a round's TrainingPlan when the aggregator runs secure_aggregation.
type SecurePlan struct {
	// Seed is the round's public seed (64 hex digits): it fixes the neighbour
	// graph and the encoding's rotation and separates the round's keys.
	Seed string `json:"seed"`
	// Merchants is the cohort in SecAgg id order: Merchants[i] has id i+1.
	Merchants []string `json:"merchants"`
	// Degree and Threshold are the neighbour graph's; MinSurvivors the fewest
	// masked inputs the sum is unmasked with: never below the policy's
	// aggregation.min_cohort, whose honest noise the guarantee counts on.
	Degree       int `json:"degree"`
	Threshold    int `json:"threshold"`
	MinSurvivors int `json:"min_survivors"`
	// Encoding is the dp/distributed Params (JSON) every merchant encodes with;
	// Release is the dp.Release (JSON, mechanism ddgauss) each merchant is
	// debited per round.
	Encoding json.RawMessage `json:"encoding"`
	Release  json.RawMessage `json:"release"`
	// CountScale is the value each sampled customer puts in the last
	// coordinate of its contribution (its gradient is clipped to
	// √(C² − CountScale²)): the sum's last coordinate over CountScale is the
	// noisy number of sampled customers the aggregator divides by.
	CountScale float64 `json:"count_scale"`
	// StageTimeout is how long each stage waits for the cohort's messages.
	StageTimeout time.Duration `json:"stage_timeout"`
}

// SecureStage is a stage of a secure-aggregation round.
type SecureStage string

// The stages, in order, and the two ends.
const (
	StageAdvertise   SecureStage = "advertise"   // merchants send their two public keys
	StageShare       SecureStage = "share"       // merchants send their encrypted shares for their neighbours
	StageMask        SecureStage = "mask"        // merchants send their masked, noised, encoded gradients
	StageConsistency SecureStage = "consistency" // survivors attest the unmask request they were sent to their neighbours
	StageUnmask      SecureStage = "unmask"      // survivors that attested send the shares that remove the masks
	StageDone        SecureStage = "done"        // the sum is out (published or refused by the norm check)
	StageFailed      SecureStage = "failed"      // too few merchants to go on; nothing was unmasked
)

// SecureMessage is the payload a merchant seals (age, Ed25519 signature, as
// an update) for one stage of a secure round. Body is the SecAgg+ message of
// the stage in its binary encoding (aggregator/secagg): the merchant's keys,
// its share boxes (each encrypted to the neighbour it is for), its masked
// input, its attestation of the unmask request, or its unmask response.
type SecureMessage struct {
	Version  int         `json:"version"`
	Round    string      `json:"round"`
	Merchant string      `json:"merchant"`
	Stage    SecureStage `json:"stage"`
	Body     []byte      `json:"body"`
}

// Validate checks the message's shape.
func (m *SecureMessage) Validate() error {
	switch {
	case m.Version != Version:
		return fmt.Errorf("%w: protocol version %d, want %d", ErrInvalidUpdate, m.Version, Version)
	case m.Round == "" || m.Merchant == "":
		return fmt.Errorf("%w: secure message without round or merchant", ErrInvalidUpdate)
	case m.Stage != StageAdvertise && m.Stage != StageShare && m.Stage != StageMask && m.Stage != StageConsistency && m.Stage != StageUnmask:
		return fmt.Errorf("%w: secure message for stage %q", ErrInvalidUpdate, m.Stage)
	case len(m.Body) == 0:
		return fmt.Errorf("%w: empty secure message", ErrInvalidUpdate)
	}
	return nil
}

// SecureStatus is GET /v1/rounds/{id}/secure: where a secure round stands and
// what the aggregator has for the asking merchant in that stage.
type SecureStatus struct {
	Round string      `json:"round"`
	State RoundState  `json:"state"`
	Stage SecureStage `json:"stage"`
	// StageDeadline is when the stage closes with whoever sent by then.
	StageDeadline time.Time `json:"stage_deadline"`
	// Sent is whether the merchant's message for Stage was accepted.
	Sent bool `json:"sent"`
	// Message is the aggregator's SecAgg+ message to the merchant for Stage,
	// binary: its neighbours' keys (share), the boxes its neighbours sent it
	// (mask), the unmask request to attest (consistency), the attestations
	// its neighbours addressed to it (unmask). Empty when it has none.
	Message []byte `json:"message,omitempty"`
	// Request is the unmask request (binary) in stage unmask, beside the
	// attestations: a merchant answers it only if it is the one it attested.
	Request []byte `json:"request,omitempty"`
	// Signers are, in stage share, the enrolled Ed25519 signing keys of the
	// merchants whose keys Message relays, by merchant id: the aggregator
	// checked each advert's signature with them. A merchant with pinned
	// peer keys (its client's secure.peer_keys) checks against those
	// instead, since these come from the aggregator.
	Signers map[string][]byte `json:"signers,omitempty"`
	Reason  string            `json:"reason,omitempty"`
}

// SecureReceipt answers an accepted secure message (HTTP 202).
type SecureReceipt struct {
	Round    string      `json:"round"`
	Merchant string      `json:"merchant"`
	Stage    SecureStage `json:"stage"`
	// Epsilon is the merchant's cumulative ε after the round's debit (sent
	// with the masked input), at Delta; zero for the other stages.
	Epsilon    float64 `json:"epsilon,omitempty"`
	Delta      float64 `json:"delta,omitempty"`
	EpsilonCap float64 `json:"epsilon_cap,omitempty"`
	// Duplicate: the same envelope was accepted before.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ErrSecureStage is wrapped by refusals of a secure message sent in the
// wrong stage.
var ErrSecureStage = errors.New("secure round is not in that stage")
