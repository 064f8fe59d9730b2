package protocol

import "time"

// FederationStatus is the answer of GET /v1/federation (compliance, admin):
// the most recent rounds with their progress, newest first, and every
// enrolled merchant's state.
type FederationStatus struct {
	// At is when the status was read, by the aggregator's clock.
	At        time.Time        `json:"at"`
	Rounds    []RoundSummary   `json:"rounds"`
	Merchants []MerchantStatus `json:"merchants"`
}

// RoundSummary is one round as an operator follows it: its state, the
// updates accepted so far against its quorum and the merchants selected.
type RoundSummary struct {
	ID          string     `json:"id"`
	Seq         int64      `json:"seq"`
	State       RoundState `json:"state"`
	OpenedAt    time.Time  `json:"opened_at"`
	Deadline    time.Time  `json:"deadline"`
	ClosedAt    time.Time  `json:"closed_at,omitzero"`
	Quorum      int        `json:"quorum"`
	Selected    int        `json:"selected"`
	Accepted    int        `json:"accepted"`
	BaseVersion int        `json:"base_version"`
	// Evaluation is true for a round whose plan asks for a federated
	// evaluation only (no training steps).
	Evaluation bool `json:"evaluation,omitempty"`
	// Reason says why the round failed, or what closed it.
	Reason string `json:"reason,omitempty"`
}

// The states of a merchant in MerchantStatus.State.
const (
	MerchantRevoked     = "revoked"      // its key is revoked; it takes no part
	MerchantStopped     = "stopped"      // it said it sends no more updates (Stopped says why)
	MerchantSubmitted   = "submitted"    // its update to the live round was accepted
	MerchantWaiting     = "waiting"      // selected for the live round, no update yet
	MerchantNotSelected = "not-selected" // the live round did not sample it
	MerchantIdle        = "idle"         // no round is live
)

// MerchantStatus is one enrolled merchant's state: its part in the live
// round and its budget as the ledger head holds it (the same values as
// GET /v1/budgets).
type MerchantStatus struct {
	ID         string    `json:"id"`
	Region     string    `json:"region,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at"`
	State      string    `json:"state"`
	// Stopped is why a stopped merchant said it sends no more updates.
	Stopped    string  `json:"stopped,omitempty"`
	Epsilon    float64 `json:"epsilon"`
	EpsilonCap float64 `json:"epsilon_cap"`
	Delta      float64 `json:"delta"`
	Releases   int     `json:"releases"`
}
