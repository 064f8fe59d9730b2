// Package aggregator is the federation's server side: it enrols merchants,
// runs training rounds as a persisted state machine, accepts sealed
// differentially private updates under each merchant's privacy budget, merges
// them into new model versions, and keeps the model registry.
//
// # Rounds
//
// A round moves open → collecting → aggregating → published | failed. It
// opens with a deadline, a quorum k and a sample of the enrolled merchants
// drawn from a generator seeded by (RoundConfig.Seed, round seq) and stored
// with the round (Round.Selected tells a merchant whether it was drawn). The
// first accepted update moves it to collecting. Tick closes a round when its
// deadline passes or every sampled merchant has sent an update: with at least
// k (audited) updates it becomes aggregating and, in a second transaction, is
// merged and published as a new active version; otherwise it fails. Either
// way the next round opens in the same transaction, from the active version.
// All state lives in the store, so a restarted aggregator resumes every round
// where it was, and several replicas may share one PostgreSQL database: Tick
// claims rounds with SELECT … FOR UPDATE SKIP LOCKED and every transition is a
// conditional UPDATE from the expected state, so each round is closed and
// published exactly once.
//
// # Training plan and privacy accounting
//
// Each merchant trains under its own policy (policies.MerchantPolicy): the
// round's plan carries its clip norm and δ and a noise multiplier z calibrated
// with the RDP accountant so that PlannedRounds rounds of StepsPerRound DP-SGD
// steps at sampling rate q, one Gaussian customer count at CountNoise
// (released in the merchant's first round and sent again after, naming that
// round: protocol.NoisyCount.ReleasedIn, checked against the stored update),
// and the planned evaluations (EvaluationConfig) spend exactly its ε cap at δ
// — never below the policy's minimum noise multiplier. Accepting an update
// debits a ledger row per release it makes: the DP-SGD release (q, z, steps),
// a new count (q = 1, z = σ, one step), an evaluation histogram; the ε
// after them is computed by composing the RDP curves of every ledger row the
// merchant has (dp.Filter), never by adding ε values. Rows with identical
// mechanism parameters are composed as one release with their steps summed,
// which is the same RDP curve (RDP adds over steps) at a fraction of the cost.
//
// # Accepting an update
//
// Submit verifies the envelope with seal.Open (signature against the
// merchant's enrolled key before any decryption, freshness within MaxSkew,
// size), decodes and validates the payload, and then, in one store
// transaction: locks the merchant's budget head row (FOR UPDATE; SQLite's
// single writer serialises instead), records the nonce (a replay fails on its
// primary key), checks the round (state, deadline, sampling, base version,
// schema hash, one update per merchant and round), checks the declared DP
// parameters against the plan and policy, recomputes ε over all ledger rows
// plus the two new releases and refuses with dp.ErrBudgetExhausted above the
// cap, then inserts the update and the ledger rows and advances the head row
// with a conditional UPDATE on its version. Budget enforcement therefore
// depends on the row lock and the version check, not on the isolation level.
// The reads go to the store as one batch (Tx.StartAcceptance) and the writes
// as another (Tx.FinishAcceptance), one round trip each on PostgreSQL. The ε
// recomputation uses per-step RDP curves computed once per mechanism and a
// per-merchant summary of the ledger (its mechanisms with summed steps) kept
// in memory under the head version it was read at: it is used only when that
// version equals the locked head's, which advances with every debit, so it
// is always the stored ledger; otherwise the rows are read again. A round's
// immutable fields are cached too, and a submission to a collecting round
// locks it FOR SHARE with a query that locks nothing once it has moved on.
// The cryptography runs before the transaction so the lock is held only for
// the bookkeeping; the signer key comes from a per-Service cache of merchant
// rows, and the transaction re-reads the row and refuses a revoked merchant or
// a changed key. The nonce check, which must be atomic with acceptance, runs
// inside the transaction. The exact same envelope submitted again is
// recognised by its SHA-256 (also once it is too old for the freshness check)
// and answered with the original receipt (Duplicate) without a debit. Nonce
// records older than twice MaxSkew are pruned by Tick: seal.Open refuses any
// envelope that old anyway.
//
// # Audit consistency
//
// The audit log (package audit) commits in its own group-committed
// transactions through the same store, so an audit entry cannot join the
// acceptance transaction (on SQLite it would even wait for the writer the
// transaction holds). The order is: commit the update with audited = false,
// append the "round.update.accept" entry and wait until it is durable, mark
// the update audited, and only then answer the merchant. Only audited updates
// count towards the quorum and the merge. If the aggregator dies between
// commit and audit, Tick later finds the unaudited update and appends its
// entry; if the audit write fails, Submit returns ErrAudit (no success
// answer: fail closed) and the update stays unmerged until the entry is
// written. The budget was debited at commit, which errs on the safe side: a
// debit is never missing, at worst it precedes its audit entry.
//
// Enrolments, rollbacks and round transitions use a transactional outbox:
// the audit record is inserted into fed_audit_outbox in the same transaction
// as the change, appended to the audit log after the commit, and then
// deleted; the caller gets ErrAudit if the append fails, and Tick appends
// whatever the outbox still holds after a crash or a failed append (records
// older than 30 s, so a live caller's own append is not duplicated; two
// replicas draining the same stale record at once could append it twice,
// never zero times). Refused submissions and enrolments are appended
// directly; a submission refused after its payload was decrypted first
// debits the releases the payload declares (the aggregator has seen them),
// and its entry says what was debited.
//
// # Merge and registry
//
// Publishing combines the audited updates with merge.Combine under the
// policy's merge method (fedavg, median, trimmed_mean) and a norm bound that
// is always on (the policy's norm_bound, else RoundConfig.NormBound, else one
// derived from the round's plan), with FedAvg weights from the DP customer
// counts (clamped to [1, the merchant's plausible customers], each at most
// the policy's max_weight_share of the total; EqualWeights for fixed
// weights), never from raw counts; then
// applies the server optimizer (FedAdam by default, its state stored with each
// version). Each version records its round, parent, each contributor's
// cumulative ε at the policy δ and weight, the policy hash, the schema hash
// and a description of the merge. Rollback makes an earlier version active;
// the next round trains from it.
//
// # Initial model
//
// Version 1 is hazard.Initial over the features every merchant in the
// policy may use: zero weights and a data-independent standardisation
// (hazard.FixedStandardization), so creating it costs no privacy budget.
package aggregator
