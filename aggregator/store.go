package aggregator

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
)

// Store is the persistence the aggregator needs. Every read and write runs in a
// transaction callback; fn may run more than once (a backend reruns it after a
// serialization failure or deadlock), so it must not have side effects outside
// the transaction other than recording its results.
type Store interface {
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// MarkAudited is Tx.MarkAudited alone in a transaction of its own, which
	// a backend may send in one round trip and commit without waiting for
	// durability (a lost mark only makes Tick write the audit entry again).
	MarkAudited(ctx context.Context, id string) error
}

// Lock is the row lock a read takes.
type Lock int

// Row locks. On SQLite every write transaction already holds the database's
// single write lock, so the modes only matter on PostgreSQL.
const (
	LockNone   Lock = iota // plain read
	LockShare              // SELECT … FOR SHARE: blocks writers of the row
	LockUpdate             // SELECT … FOR UPDATE: exclusive
)

// Tx is one store transaction. Methods return errors matching ErrNotFound for a
// missing row and ErrConflict for a duplicate key or a failed conditional write.
type Tx interface {
	// InsertMerchant stores a new merchant and its empty budget row (ErrConflict if the id exists).
	InsertMerchant(ctx context.Context, m Merchant) error
	// Merchant returns one merchant.
	Merchant(ctx context.Context, id string) (Merchant, error)
	// Merchants returns every merchant ordered by id.
	Merchants(ctx context.Context) ([]Merchant, error)
	// SetMerchantStopped records why merchant id stopped and when ("" and
	// the zero time resume it).
	SetMerchantStopped(ctx context.Context, id, reason string, at time.Time) error
	// SetMerchantSecureDropouts replaces merchant id's record of recent
	// secure rounds it dropped out of before masking (round seqs), the
	// last round seq it is left out of secure cohorts for (0: none), how
	// many times it has been left out (as forgiven) and how many secure
	// rounds it has masked in since its last dropout (counted only while
	// exclusions > 0).
	SetMerchantSecureDropouts(ctx context.Context, id string, dropouts []int64, excludedUntil int64, exclusions, clean int) error

	// InsertRound stores a new round; false (and no error) if its seq exists.
	InsertRound(ctx context.Context, r RoundRecord) (bool, error)
	// Round returns the round with id, taking lock on its row.
	Round(ctx context.Context, id string, lock Lock) (RoundRecord, error)
	// RoundState returns round id's state and deadline without locking.
	RoundState(ctx context.Context, id string) (protocol.RoundState, time.Time, error)
	// LatestRound returns the round with the highest seq (ErrNotFound when none).
	LatestRound(ctx context.Context) (RoundRecord, error)
	// RecentRounds returns at most limit rounds, the highest seq first.
	RecentRounds(ctx context.Context, limit int) ([]RoundRecord, error)
	// ClaimRounds returns the rounds not in a terminal state whose rows it
	// could lock FOR UPDATE at once (SKIP LOCKED), in seq order.
	ClaimRounds(ctx context.Context) ([]RoundRecord, error)
	// RoundCounts returns how many rounds are in each state.
	RoundCounts(ctx context.Context) (map[protocol.RoundState]int, error)
	// SetRoundState moves round id from state from to state to, recording
	// reason and the time; ErrConflict when the round is not in from.
	SetRoundState(ctx context.Context, id string, from, to protocol.RoundState, reason string, at time.Time) error

	// InsertUpdate stores an accepted update (ErrConflict when the merchant
	// already has an update in the round, or the envelope is stored).
	InsertUpdate(ctx context.Context, u UpdateRecord) error
	// UpdateByEnvelope returns the update stored for the envelope hash.
	UpdateByEnvelope(ctx context.Context, envelopeSHA256 []byte) (UpdateRecord, error)
	// UpdateFor returns merchant's update in round.
	UpdateFor(ctx context.Context, round, merchant string) (UpdateRecord, error)
	// RoundUpdates returns the round's updates ordered by merchant.
	RoundUpdates(ctx context.Context, round string) ([]UpdateRecord, error)
	// CountUpdates returns how many updates the round holds, and how many of
	// them have a durable audit entry.
	CountUpdates(ctx context.Context, round string) (all, audited int, err error)
	// MarkAudited records that update id's audit entry is durable. It runs
	// alone in its transaction, which a backend may commit without waiting for
	// durability: a lost mark only makes Tick write the audit entry again.
	MarkAudited(ctx context.Context, id string) error
	// UnauditedUpdates returns accepted updates whose audit entry is not yet recorded.
	UnauditedUpdates(ctx context.Context) ([]UpdateRecord, error)
	// InsertNonce records a merchant's envelope nonce; false if it was seen before.
	InsertNonce(ctx context.Context, merchant string, nonce []byte, at time.Time) (bool, error)
	// PruneNonces forgets nonces seen before t and returns how many.
	PruneNonces(ctx context.Context, before time.Time) (int64, error)

	// InsertOutbox stores an audit record (JSON) to append after commit
	// (ErrConflict if the id exists).
	InsertOutbox(ctx context.Context, id string, record []byte, at time.Time) error
	// Outbox returns the outbox records created before t, oldest first.
	Outbox(ctx context.Context, before time.Time) ([]OutboxRecord, error)
	// DeleteOutbox removes an outbox record once its audit entry is durable.
	// Like MarkAudited it runs alone and may commit without waiting for
	// durability: a lost delete only makes Tick append the record again.
	DeleteOutbox(ctx context.Context, id string) error

	// LockBudget returns the merchant's budget head row, locked FOR UPDATE.
	LockBudget(ctx context.Context, merchant string) (BudgetHead, error)
	// AdvanceBudget writes next as the merchant's budget head if the stored
	// version is still prevVersion (ErrConflict otherwise); next.Version must
	// be prevVersion+1.
	AdvanceBudget(ctx context.Context, next BudgetHead, prevVersion int64) error
	// Budgets returns every merchant's budget head ordered by merchant.
	Budgets(ctx context.Context) ([]BudgetHead, error)
	// Ledger returns the merchant's ledger rows in seq order.
	Ledger(ctx context.Context, merchant string) ([]LedgerRow, error)
	// InsertLedger appends a ledger row (ErrConflict if (merchant, seq) exists).
	InsertLedger(ctx context.Context, r LedgerRow) error

	// StartAcceptance begins an update's acceptance: it locks the merchant's
	// budget head row FOR UPDATE and then, in this order, looks up the update
	// stored for the envelope, reads the merchant, records the nonce, looks
	// up the merchant's update in the round and, if LockCollecting, locks the
	// round FOR SHARE if it is collecting, and if WithLedger reads the
	// merchant's ledger rows — in one round trip where the backend can.
	// ErrNotFound when the merchant or its budget row is missing.
	StartAcceptance(ctx context.Context, c AcceptanceCheck) (AcceptanceState, error)
	// FinishAcceptance stores an accepted update, its ledger rows and the
	// merchant's next budget head (as AdvanceBudget: ErrConflict unless the
	// stored version is still prevVersion), in one round trip where the
	// backend can.
	FinishAcceptance(ctx context.Context, u UpdateRecord, ledger []LedgerRow, next BudgetHead, prevVersion int64) error

	// InsertModel stores a model version; false (and no error) if the version exists.
	InsertModel(ctx context.Context, m ModelRecord) (bool, error)
	// Model returns one model version.
	Model(ctx context.Context, version int) (ModelRecord, error)
	// Models returns every model version ordered by version, without model bytes.
	Models(ctx context.Context) ([]ModelRecord, error)
	// ModelsAfter returns at most limit model versions above after, ordered
	// by version, without model bytes: one page of GET /v1/models.
	ModelsAfter(ctx context.Context, after int64, limit int) ([]ModelRecord, error)
	// ActiveVersion returns the active model version (ErrNotFound before the first).
	ActiveVersion(ctx context.Context) (int, error)
	// SetActiveVersion makes version the active one.
	SetActiveVersion(ctx context.Context, version int) error
	// SetModelWithdrawn records that a rollback withdrew version at time at,
	// by the rollback whose audit outbox id is by, whose audit entry is seq
	// (0: not appended yet); the zero time restores it. ErrNotFound if there
	// is no such version.
	SetModelWithdrawn(ctx context.Context, version int, at time.Time, by string, seq int64) error
	// SetWithdrawnSeq records seq, the audit entry of the rollback whose
	// outbox id is by, on every version it withdrew.
	SetWithdrawnSeq(ctx context.Context, by string, seq int64) error
	// RevokeToken records that the API token jti is refused until expiresAt
	// (revoking again keeps the later expiry).
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// SetModelMetrics replaces the metrics of a model version (the only field
	// of a version that changes after it is published: its federated
	// evaluation arrives in a later round); ErrNotFound if there is none.
	SetModelMetrics(ctx context.Context, version int, metrics map[string]float64) error

	// CampaignState returns the retraining schedule's single row, locked FOR
	// UPDATE (the zero state before the first campaign).
	CampaignState(ctx context.Context) (CampaignState, error)
	// SetCampaignState replaces the retraining schedule's row.
	SetCampaignState(ctx context.Context, c CampaignState) error

	// SecureTx holds the secure-aggregation rounds' state (secure.go).
	SecureTx
}

// Merchant is an enrolled merchant.
type Merchant struct {
	ID        string
	Region    string
	TimeZone  string
	PublicKey ed25519.PublicKey
	Revoked   bool
	// Stopped is why the merchant said it sends no more updates (empty:
	// it takes part); rounds do not wait for a stopped merchant.
	Stopped string
	// StoppedAt is when the stop took effect (zero while it takes part,
	// and for stops stored before it was recorded).
	StoppedAt  time.Time
	EnrolledAt time.Time
	// SecureDropouts are the seqs of the recent secure rounds the merchant
	// dropped out of before masking (securedropout.go).
	SecureDropouts []int64
	// SecureExcludedUntil is the last round seq the merchant is left out of
	// secure cohorts for, after repeated dropouts (0: none).
	SecureExcludedUntil int64
	// SecureExclusions is how many times the merchant has been left out of
	// secure cohorts; a readmission keeps it, so each repeat lasts longer.
	// It halves after SecureExclusionForgiveRounds clean rounds.
	SecureExclusions int
	// SecureCleanRounds is how many secure rounds the merchant has masked
	// in since its last dropout before masking (kept while
	// SecureExclusions > 0).
	SecureCleanRounds int
}

// RoundRecord is a persisted round.
type RoundRecord struct {
	ID          string
	Seq         int64
	State       protocol.RoundState
	OpenedAt    time.Time
	Deadline    time.Time
	Quorum      int
	Selected    []string // merchant ids sampled for the round, sorted
	BaseVersion int
	// Plan holds the round's shared plan; NoiseMultiplier, ClipNorm and Delta
	// are filled per merchant from its policy when the round is served.
	Plan     protocol.TrainingPlan
	Reason   string // why the round failed, or what closed it
	ClosedAt time.Time
}

// UpdateRecord is an accepted update.
type UpdateRecord struct {
	ID             string
	Round          string
	Merchant       string
	EnvelopeSHA256 []byte
	Nonce          []byte
	Delta          []float64
	Release        protocol.Release
	Customers      protocol.NoisyCount
	Epsilon        float64 // the merchant's cumulative ε after this update
	AcceptedAt     time.Time
	Audited        bool
	// Evaluation is the DP evaluation of the round's base model, when the
	// round's plan asked for one.
	Evaluation *protocol.Evaluation
}

// BudgetHead is the per-merchant ledger head row: the lock target of every
// debit, and a cache of the cumulative ε (recomputed from the ledger rows on
// every debit).
type BudgetHead struct {
	Merchant    string
	Version     int64
	Epsilon     float64
	Releases    int
	LastRelease time.Time
}

// LedgerRow is one release debited from a merchant's budget.
type LedgerRow struct {
	Merchant string
	Seq      int64 // 1-based per merchant
	Release  dp.Release
	Round    string
	Update   string
	Epsilon  float64 // cumulative ε at the policy δ after this row
	At       time.Time
}

// AcceptanceCheck is what StartAcceptance reads and records.
type AcceptanceCheck struct {
	Merchant       string
	EnvelopeSHA256 []byte
	Nonce          []byte
	At             time.Time // when the nonce was seen
	Round          string
	// LockCollecting asks for Round's FOR SHARE lock if it is collecting.
	LockCollecting bool
	// WithLedger asks for the merchant's ledger rows too.
	WithLedger bool
}

// AcceptanceState is what StartAcceptance found.
type AcceptanceState struct {
	Budget      BudgetHead    // locked FOR UPDATE
	Duplicate   *UpdateRecord // the update stored for the envelope, if any
	Merchant    Merchant
	FreshNonce  bool        // the nonce was not seen before (now recorded)
	HasUpdate   bool        // the merchant already has an update in Round
	RoundLocked bool        // Round is collecting and locked FOR SHARE
	Ledger      []LedgerRow // with WithLedger: the merchant's ledger rows in seq order
}

// OutboxRecord is an audit record waiting to be appended to the audit log.
type OutboxRecord struct {
	ID        string
	Record    []byte // JSON of an audit.Record
	CreatedAt time.Time
}

// ModelRecord is a stored model version with the server optimizer state it
// was produced with.
type ModelRecord struct {
	protocol.ModelVersion
	// WithdrawnBy is the audit outbox id of the rollback that withdrew the
	// version (empty unless Withdrawn).
	WithdrawnBy string
	// Optimizer is the FedAdam state (JSON) after this version's step.
	Optimizer []byte
}
