package aggregator

import (
	"context"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// SecureTx is the part of a store transaction that persists secure rounds:
// a secure round's SecAgg+ stage is a state of the round machine, stored with
// the protocol's state in the same transaction as every message it accepts.
type SecureTx interface {
	// InsertSecureRound stores the secure state of a new round (ErrConflict if it exists).
	InsertSecureRound(ctx context.Context, r SecureRoundRecord) error
	// SecureRound returns round id's secure state, taking lock on its row.
	SecureRound(ctx context.Context, id string, lock Lock) (SecureRoundRecord, error)
	// UpdateSecureRound writes r's stage, deadline, snapshot, result and reason.
	UpdateSecureRound(ctx context.Context, r SecureRoundRecord) error
	// InsertSecureMessage records that a merchant's message for a stage was
	// accepted (ErrConflict if one was).
	InsertSecureMessage(ctx context.Context, m SecureMessageRecord) error
	// SecureMessage returns the record of merchant's message for stage in round.
	SecureMessage(ctx context.Context, round, merchant string, stage protocol.SecureStage) (SecureMessageRecord, error)
}

// SecureRoundRecord is a secure round's protocol state.
type SecureRoundRecord struct {
	Round         string
	Stage         protocol.SecureStage
	StageDeadline time.Time
	// Server is the secagg.Server snapshot: public keys, share boxes, the
	// running sum of masked inputs and the unmask shares; never an
	// individual masked input.
	Server []byte
	// Result is the unmasked sum (words modulo 2^Bits, big-endian) once the
	// stage is done: the aggregate the round publishes from.
	Result    []byte
	Reason    string
	UpdatedAt time.Time
	// Customers are the plausible customers (policy max_customers, else
	// ⌊1/δ⌋) of each merchant of the cohort, in the plan's order, when the
	// round was planned: the publish norm check bounds the sum with the
	// survivors' (secureNormBound), so that a reload during the round moves
	// neither bound nor verdict. Set at insert, never updated; empty for a
	// round planned before they were stored. Not part of the public plan:
	// a merchant's size is not its peers' business.
	Customers []float64
}

// SecureMessageRecord is an accepted secure message: who sent which stage's
// message, identified by its envelope's hash (its content is not kept).
type SecureMessageRecord struct {
	Round          string
	Merchant       string
	Stage          protocol.SecureStage
	EnvelopeSHA256 []byte
	AcceptedAt     time.Time
}
