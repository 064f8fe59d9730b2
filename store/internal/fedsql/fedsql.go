// Package fedsql implements the aggregator's store transaction (aggregator.Tx)
// once, in SQL that SQLite and PostgreSQL both run, over a small query
// interface each backend adapts its transaction to. The dialects differ only in
// placeholders and row locks: PostgreSQL takes FOR SHARE, FOR UPDATE and FOR
// UPDATE SKIP LOCKED where the aggregator asks for them; SQLite has no row
// locks, but every write transaction there holds the database's single write
// lock from its first statement (BEGIN IMMEDIATE), which serialises the same
// critical sections.
package fedsql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier runs statements inside one transaction.
type Querier interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, q string, args ...any) (int64, error)
	// Query runs a query.
	Query(ctx context.Context, q string, args ...any) (Rows, error)
	// Batch runs stmts in order, stopping at the first error, in one round
	// trip where the backend can (a pgx batch inside the transaction).
	Batch(ctx context.Context, stmts []Statement) error
	// IsUniqueViolation reports whether err is a unique or primary key violation.
	IsUniqueViolation(err error) bool
}

// Statement is one statement of a Batch. Scan, if set, is called for every
// row the statement returns; otherwise it is executed and Affected, if set,
// gets the number of rows it affected.
type Statement struct {
	SQL      string
	Args     []any
	Scan     func(Rows) error
	Affected func(int64) error
}

// Dialect says how a backend spells what differs.
type Dialect struct {
	// Numbered placeholders ($1, $2, …) instead of "?".
	Numbered bool
	// RowLocks enables FOR SHARE / FOR UPDATE / SKIP LOCKED clauses.
	RowLocks bool
	// AsyncCommit marks MarkAudited's transaction as not needing a
	// synchronous WAL flush (PostgreSQL's SET LOCAL synchronous_commit = off).
	AsyncCommit bool
	// Revoke spells the revocation of token jti until expiresAt (the backends
	// store the expiry in different types); revoking again keeps the later expiry.
	Revoke func(jti string, expiresAt time.Time) (string, []any)
	// JSONB: JSON columns are jsonb (read as col::text, searched with
	// jsonb_each_text) instead of TEXT searched with json_each.
	JSONB bool
	// Arrays: a batch of rows may go as array parameters in one statement
	// (unnest) instead of one statement per row.
	Arrays bool
}

// Tx implements aggregator.Tx.
type Tx struct {
	q Querier
	d Dialect
}

var _ aggregator.Tx = (*Tx)(nil)

// New returns the aggregator transaction over q.
func New(q Querier, d Dialect) *Tx { return &Tx{q: q, d: d} }

// bind rewrites "?" placeholders for the dialect.
func (t *Tx) bind(q string) string { return t.d.Bind(q) }

// Bind rewrites the "?" placeholders of q for the dialect. No statement of
// the stores has a "?" inside a literal.
func (d Dialect) Bind(q string) string {
	if !d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (t *Tx) lock(l aggregator.Lock) string {
	if !t.d.RowLocks {
		return ""
	}
	switch l {
	case aggregator.LockShare:
		return " FOR SHARE"
	case aggregator.LockUpdate:
		return " FOR UPDATE"
	}
	return ""
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	n, err := t.q.Exec(ctx, t.bind(q), args...)
	if err != nil && t.q.IsUniqueViolation(err) {
		return 0, fmt.Errorf("%w: %w", aggregator.ErrConflict, err)
	}
	return n, err
}

// batch binds and runs stmts as one Querier.Batch.
func (t *Tx) batch(ctx context.Context, stmts []Statement) error {
	for i := range stmts {
		stmts[i].SQL = t.bind(stmts[i].SQL)
	}
	err := t.q.Batch(ctx, stmts)
	if err != nil && t.q.IsUniqueViolation(err) {
		return fmt.Errorf("%w: %w", aggregator.ErrConflict, err)
	}
	return err
}

// query runs q and calls scan for every row.
func (t *Tx) query(ctx context.Context, q string, scan func(Rows) error, args ...any) error {
	rows, err := t.q.Query(ctx, t.bind(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// one runs q expecting exactly one row; ErrNotFound when there is none.
func (t *Tx) one(ctx context.Context, q string, scan func(Rows) error, args ...any) error {
	found := false
	err := t.query(ctx, q, func(r Rows) error {
		found = true
		return scan(r)
	}, args...)
	if err != nil {
		return err
	}
	if !found {
		return aggregator.ErrNotFound
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func mustJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// --- merchants ---

const merchantCols = `id, region, time_zone, public_key, revoked, enrolled_at_ms, stopped, stopped_at_ms`

// merchantReadCols are merchantCols and the secure-dropout record, which an
// insert leaves at its defaults (none, not excluded).
const merchantReadCols = merchantCols + `, secure_dropouts, secure_excluded_until, secure_exclusions, secure_clean_rounds`

func scanMerchant(r Rows) (aggregator.Merchant, error) {
	var m aggregator.Merchant
	var revoked, at, stoppedAt int64
	var pub []byte
	var dropouts string
	if err := r.Scan(&m.ID, &m.Region, &m.TimeZone, &pub, &revoked, &at, &m.Stopped, &stoppedAt, &dropouts, &m.SecureExcludedUntil, &m.SecureExclusions, &m.SecureCleanRounds); err != nil {
		return m, err
	}
	for f := range strings.SplitSeq(dropouts, ",") {
		if f == "" {
			continue
		}
		seq, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return m, fmt.Errorf("merchant %s: secure dropouts %q: %w", m.ID, dropouts, err)
		}
		m.SecureDropouts = append(m.SecureDropouts, seq)
	}
	m.StoppedAt = fromMS(stoppedAt)
	m.PublicKey = append([]byte(nil), pub...)
	m.Revoked = revoked != 0
	m.EnrolledAt = fromMS(at)
	return m, nil
}

// InsertMerchant implements aggregator.Tx.
func (t *Tx) InsertMerchant(ctx context.Context, m aggregator.Merchant) error {
	n, err := t.exec(ctx, `INSERT INTO fed_merchants (`+merchantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		m.ID, m.Region, m.TimeZone, []byte(m.PublicKey), b2i(m.Revoked), ms(m.EnrolledAt), m.Stopped, ms(m.StoppedAt))
	if err != nil {
		return fmt.Errorf("insert merchant: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("insert merchant %s: %w", m.ID, aggregator.ErrConflict)
	}
	if _, err := t.exec(ctx, `INSERT INTO fed_budgets (merchant, version, epsilon, releases, last_release_ms) VALUES (?, 0, 0, 0, 0)`, m.ID); err != nil {
		return fmt.Errorf("insert budget: %w", err)
	}
	return nil
}

// Merchant implements aggregator.Tx.
func (t *Tx) Merchant(ctx context.Context, id string) (aggregator.Merchant, error) {
	var m aggregator.Merchant
	err := t.one(ctx, `SELECT `+merchantReadCols+` FROM fed_merchants WHERE id = ?`, func(r Rows) (err error) {
		m, err = scanMerchant(r)
		return err
	}, id)
	if err != nil {
		return m, fmt.Errorf("merchant %s: %w", id, err)
	}
	return m, nil
}

// Merchants implements aggregator.Tx.
func (t *Tx) Merchants(ctx context.Context) ([]aggregator.Merchant, error) {
	var ms []aggregator.Merchant
	err := t.query(ctx, `SELECT `+merchantReadCols+` FROM fed_merchants ORDER BY id`, func(r Rows) error {
		m, err := scanMerchant(r)
		ms = append(ms, m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	return ms, nil
}

// SetMerchantSecureDropouts implements aggregator.Tx.
func (t *Tx) SetMerchantSecureDropouts(ctx context.Context, id string, dropouts []int64, excludedUntil int64, exclusions, clean int) error {
	fs := make([]string, len(dropouts))
	for i, seq := range dropouts {
		fs[i] = strconv.FormatInt(seq, 10)
	}
	n, err := t.exec(ctx, `UPDATE fed_merchants SET secure_dropouts = ?, secure_excluded_until = ?, secure_exclusions = ?, secure_clean_rounds = ? WHERE id = ?`, strings.Join(fs, ","), excludedUntil, exclusions, clean, id)
	if err != nil {
		return fmt.Errorf("set merchant %s secure dropouts: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("set merchant %s secure dropouts: %w", id, aggregator.ErrNotFound)
	}
	return nil
}

// SetMerchantStopped implements aggregator.Tx.
func (t *Tx) SetMerchantStopped(ctx context.Context, id, reason string, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE fed_merchants SET stopped = ?, stopped_at_ms = ? WHERE id = ?`, reason, ms(at), id)
	if err != nil {
		return fmt.Errorf("set merchant %s stopped: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("set merchant %s stopped: %w", id, aggregator.ErrNotFound)
	}
	return nil
}

// --- rounds ---

const roundCols = `seq, id, state, opened_at_ms, deadline_ms, quorum, selected, base_version, plan, reason, closed_at_ms`

func scanRound(r Rows) (aggregator.RoundRecord, error) {
	var rr aggregator.RoundRecord
	var state, selected, plan string
	var opened, deadline, closed, quorum, base int64
	if err := r.Scan(&rr.Seq, &rr.ID, &state, &opened, &deadline, &quorum, &selected, &base, &plan, &rr.Reason, &closed); err != nil {
		return rr, err
	}
	rr.State = protocol.RoundState(state)
	rr.OpenedAt, rr.Deadline, rr.ClosedAt = fromMS(opened), fromMS(deadline), fromMS(closed)
	rr.Quorum, rr.BaseVersion = int(quorum), int(base)
	if err := json.Unmarshal([]byte(selected), &rr.Selected); err != nil {
		return rr, fmt.Errorf("round %s: selected: %w", rr.ID, err)
	}
	if err := json.Unmarshal([]byte(plan), &rr.Plan); err != nil {
		return rr, fmt.Errorf("round %s: plan: %w", rr.ID, err)
	}
	return rr, nil
}

// InsertRound implements aggregator.Tx.
func (t *Tx) InsertRound(ctx context.Context, r aggregator.RoundRecord) (bool, error) {
	sel, err := mustJSON(r.Selected)
	if err != nil {
		return false, fmt.Errorf("insert round: %w", err)
	}
	plan, err := mustJSON(r.Plan)
	if err != nil {
		return false, fmt.Errorf("insert round: %w", err)
	}
	n, err := t.exec(ctx, `INSERT INTO fed_rounds (`+roundCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.Seq, r.ID, string(r.State), ms(r.OpenedAt), ms(r.Deadline), int64(r.Quorum), sel, int64(r.BaseVersion), plan, r.Reason, ms(r.ClosedAt))
	if err != nil {
		return false, fmt.Errorf("insert round: %w", err)
	}
	return n == 1, nil
}

// Round implements aggregator.Tx.
func (t *Tx) Round(ctx context.Context, id string, lock aggregator.Lock) (aggregator.RoundRecord, error) {
	var rr aggregator.RoundRecord
	err := t.one(ctx, `SELECT `+roundCols+` FROM fed_rounds WHERE id = ?`+t.lock(lock), func(r Rows) (err error) {
		rr, err = scanRound(r)
		return err
	}, id)
	if err != nil {
		return rr, fmt.Errorf("round %s: %w", id, err)
	}
	return rr, nil
}

// RoundState implements aggregator.Tx.
func (t *Tx) RoundState(ctx context.Context, id string) (protocol.RoundState, time.Time, error) {
	var state string
	var deadline int64
	err := t.one(ctx, `SELECT state, deadline_ms FROM fed_rounds WHERE id = ?`, func(r Rows) error {
		return r.Scan(&state, &deadline)
	}, id)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("round %s: %w", id, err)
	}
	return protocol.RoundState(state), fromMS(deadline), nil
}

// LatestRound implements aggregator.Tx.
func (t *Tx) LatestRound(ctx context.Context) (aggregator.RoundRecord, error) {
	var rr aggregator.RoundRecord
	err := t.one(ctx, `SELECT `+roundCols+` FROM fed_rounds ORDER BY seq DESC LIMIT 1`, func(r Rows) (err error) {
		rr, err = scanRound(r)
		return err
	})
	if err != nil {
		return rr, fmt.Errorf("latest round: %w", err)
	}
	return rr, nil
}

// RecentRounds implements aggregator.Tx.
func (t *Tx) RecentRounds(ctx context.Context, limit int) ([]aggregator.RoundRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("recent rounds: limit %d < 1", limit)
	}
	var rs []aggregator.RoundRecord
	err := t.query(ctx, `SELECT `+roundCols+` FROM fed_rounds ORDER BY seq DESC LIMIT ?`, func(r Rows) error {
		rr, err := scanRound(r)
		rs = append(rs, rr)
		return err
	}, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("recent rounds: %w", err)
	}
	return rs, nil
}

// ClaimRounds implements aggregator.Tx.
func (t *Tx) ClaimRounds(ctx context.Context) ([]aggregator.RoundRecord, error) {
	q := `SELECT ` + roundCols + ` FROM fed_rounds WHERE state IN ('open', 'collecting', 'aggregating') ORDER BY seq`
	if t.d.RowLocks {
		q += ` FOR UPDATE SKIP LOCKED`
	}
	var rs []aggregator.RoundRecord
	err := t.query(ctx, q, func(r Rows) error {
		rr, err := scanRound(r)
		rs = append(rs, rr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim rounds: %w", err)
	}
	return rs, nil
}

// RoundCounts implements aggregator.Tx.
func (t *Tx) RoundCounts(ctx context.Context) (map[protocol.RoundState]int, error) {
	out := map[protocol.RoundState]int{}
	err := t.query(ctx, `SELECT state, count(*) FROM fed_rounds GROUP BY state`, func(r Rows) error {
		var state string
		var n int64
		if err := r.Scan(&state, &n); err != nil {
			return err
		}
		out[protocol.RoundState(state)] = int(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("round counts: %w", err)
	}
	return out, nil
}

// SetRoundState implements aggregator.Tx.
func (t *Tx) SetRoundState(ctx context.Context, id string, from, to protocol.RoundState, reason string, at time.Time) error {
	closed := int64(0)
	if to.Terminal() {
		closed = ms(at)
	}
	n, err := t.exec(ctx, `UPDATE fed_rounds SET state = ?, reason = ?, closed_at_ms = ? WHERE id = ? AND state = ?`,
		string(to), reason, closed, id, string(from))
	if err != nil {
		return fmt.Errorf("set round %s state: %w", id, err)
	}
	if n != 1 {
		return fmt.Errorf("set round %s state %s → %s: %w", id, from, to, aggregator.ErrConflict)
	}
	return nil
}

// --- updates ---

const updateCols = `id, round_id, merchant, envelope_sha256, nonce, delta, release, customers, epsilon, accepted_at_ms, audited, evaluation`

func scanUpdate(r Rows) (aggregator.UpdateRecord, error) {
	var u aggregator.UpdateRecord
	var env, nonce []byte
	var delta, rel, cust, eval string
	var at, audited int64
	if err := r.Scan(&u.ID, &u.Round, &u.Merchant, &env, &nonce, &delta, &rel, &cust, &u.Epsilon, &at, &audited, &eval); err != nil {
		return u, err
	}
	u.EnvelopeSHA256 = append([]byte(nil), env...)
	u.Nonce = append([]byte(nil), nonce...)
	u.AcceptedAt = fromMS(at)
	u.Audited = audited != 0
	if err := json.Unmarshal([]byte(delta), &u.Delta); err != nil {
		return u, fmt.Errorf("update %s: delta: %w", u.ID, err)
	}
	if err := json.Unmarshal([]byte(rel), &u.Release); err != nil {
		return u, fmt.Errorf("update %s: release: %w", u.ID, err)
	}
	if err := json.Unmarshal([]byte(cust), &u.Customers); err != nil {
		return u, fmt.Errorf("update %s: customers: %w", u.ID, err)
	}
	if eval != "" {
		u.Evaluation = new(protocol.Evaluation)
		if err := json.Unmarshal([]byte(eval), u.Evaluation); err != nil {
			return u, fmt.Errorf("update %s: evaluation: %w", u.ID, err)
		}
	}
	return u, nil
}

// updateArgs are u's values in updateCols order.
func updateArgs(u aggregator.UpdateRecord) ([]any, error) {
	delta, err := mustJSON(u.Delta)
	if err != nil {
		return nil, err
	}
	rel, err := mustJSON(u.Release)
	if err != nil {
		return nil, err
	}
	cust, err := mustJSON(u.Customers)
	if err != nil {
		return nil, err
	}
	eval := ""
	if u.Evaluation != nil {
		if eval, err = mustJSON(u.Evaluation); err != nil {
			return nil, err
		}
	}
	return []any{u.ID, u.Round, u.Merchant, u.EnvelopeSHA256, u.Nonce, delta, rel, cust, u.Epsilon, ms(u.AcceptedAt), b2i(u.Audited), eval}, nil
}

const insertUpdate = `INSERT INTO fed_updates (` + updateCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// InsertUpdate implements aggregator.Tx.
func (t *Tx) InsertUpdate(ctx context.Context, u aggregator.UpdateRecord) error {
	args, err := updateArgs(u)
	if err != nil {
		return fmt.Errorf("insert update: %w", err)
	}
	if _, err = t.exec(ctx, insertUpdate, args...); err != nil {
		return fmt.Errorf("insert update: %w", err)
	}
	return nil
}

func (t *Tx) updateWhere(ctx context.Context, what, where string, args ...any) (aggregator.UpdateRecord, error) {
	var u aggregator.UpdateRecord
	err := t.one(ctx, `SELECT `+updateCols+` FROM fed_updates WHERE `+where, func(r Rows) (err error) {
		u, err = scanUpdate(r)
		return err
	}, args...)
	if err != nil {
		return u, fmt.Errorf("%s: %w", what, err)
	}
	return u, nil
}

// UpdateByEnvelope implements aggregator.Tx.
func (t *Tx) UpdateByEnvelope(ctx context.Context, sum []byte) (aggregator.UpdateRecord, error) {
	return t.updateWhere(ctx, "update by envelope", `envelope_sha256 = ?`, sum)
}

// UpdateFor implements aggregator.Tx.
func (t *Tx) UpdateFor(ctx context.Context, round, merchant string) (aggregator.UpdateRecord, error) {
	return t.updateWhere(ctx, "update of "+merchant+" in "+round, `round_id = ? AND merchant = ?`, round, merchant)
}

func (t *Tx) updates(ctx context.Context, q string, args ...any) ([]aggregator.UpdateRecord, error) {
	var us []aggregator.UpdateRecord
	err := t.query(ctx, `SELECT `+updateCols+` FROM fed_updates WHERE `+q, func(r Rows) error {
		u, err := scanUpdate(r)
		us = append(us, u)
		return err
	}, args...)
	return us, err
}

// RoundUpdates implements aggregator.Tx.
func (t *Tx) RoundUpdates(ctx context.Context, round string) ([]aggregator.UpdateRecord, error) {
	us, err := t.updates(ctx, `round_id = ? ORDER BY merchant`, round)
	if err != nil {
		return nil, fmt.Errorf("updates of %s: %w", round, err)
	}
	return us, nil
}

// UnauditedUpdates implements aggregator.Tx.
func (t *Tx) UnauditedUpdates(ctx context.Context) ([]aggregator.UpdateRecord, error) {
	us, err := t.updates(ctx, `audited = 0 ORDER BY accepted_at_ms, id`)
	if err != nil {
		return nil, fmt.Errorf("unaudited updates: %w", err)
	}
	return us, nil
}

// CountUpdates implements aggregator.Tx.
func (t *Tx) CountUpdates(ctx context.Context, round string) (all, audited int, err error) {
	var a, b int64
	err = t.one(ctx, `SELECT count(*), coalesce(sum(audited), 0) FROM fed_updates WHERE round_id = ?`, func(r Rows) error {
		return r.Scan(&a, &b)
	}, round)
	if err != nil {
		return 0, 0, fmt.Errorf("count updates of %s: %w", round, err)
	}
	return int(a), int(b), nil
}

// MarkAudited implements aggregator.Tx. The aggregator calls it alone in its
// transaction, after the audit entry is durable; losing the mark in a crash
// only makes Tick write the entry again, so with AsyncCommit the commit does
// not wait for a WAL flush.
func (t *Tx) MarkAudited(ctx context.Context, id string) error {
	if t.d.AsyncCommit {
		if _, err := t.exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return fmt.Errorf("mark update %s audited: %w", id, err)
		}
	}
	if _, err := t.exec(ctx, `UPDATE fed_updates SET audited = 1 WHERE id = ?`, id); err != nil {
		return fmt.Errorf("mark update %s audited: %w", id, err)
	}
	return nil
}

// InsertNonce implements aggregator.Tx.
func (t *Tx) InsertNonce(ctx context.Context, merchant string, nonce []byte, at time.Time) (bool, error) {
	n, err := t.exec(ctx, `INSERT INTO fed_nonces (merchant, nonce, seen_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, merchant, nonce, ms(at))
	if err != nil {
		return false, fmt.Errorf("insert nonce: %w", err)
	}
	return n == 1, nil
}

// PruneNonces implements aggregator.Tx.
func (t *Tx) PruneNonces(ctx context.Context, before time.Time) (int64, error) {
	n, err := t.exec(ctx, `DELETE FROM fed_nonces WHERE seen_at_ms < ?`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("prune nonces: %w", err)
	}
	return n, nil
}

// --- audit outbox ---

// InsertOutbox implements aggregator.Tx.
func (t *Tx) InsertOutbox(ctx context.Context, id string, record []byte, at time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO fed_audit_outbox (id, record, created_at_ms) VALUES (?, ?, ?)`, id, string(record), ms(at)); err != nil {
		return fmt.Errorf("insert audit outbox %s: %w", id, err)
	}
	return nil
}

// Outbox implements aggregator.Tx.
func (t *Tx) Outbox(ctx context.Context, before time.Time) ([]aggregator.OutboxRecord, error) {
	var out []aggregator.OutboxRecord
	err := t.query(ctx, `SELECT id, record, created_at_ms FROM fed_audit_outbox WHERE created_at_ms < ? ORDER BY created_at_ms, id`, func(r Rows) error {
		var o aggregator.OutboxRecord
		var rec string
		var at int64
		if err := r.Scan(&o.ID, &rec, &at); err != nil {
			return err
		}
		o.Record, o.CreatedAt = []byte(rec), fromMS(at)
		out = append(out, o)
		return nil
	}, ms(before))
	if err != nil {
		return nil, fmt.Errorf("audit outbox: %w", err)
	}
	return out, nil
}

// DeleteOutbox implements aggregator.Tx (see MarkAudited on AsyncCommit).
func (t *Tx) DeleteOutbox(ctx context.Context, id string) error {
	if t.d.AsyncCommit {
		if _, err := t.exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return fmt.Errorf("delete audit outbox %s: %w", id, err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM fed_audit_outbox WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete audit outbox %s: %w", id, err)
	}
	return nil
}

// --- budgets and ledger ---

const budgetCols = `merchant, version, epsilon, releases, last_release_ms`

func scanBudget(r Rows) (aggregator.BudgetHead, error) {
	var b aggregator.BudgetHead
	var releases, last int64
	if err := r.Scan(&b.Merchant, &b.Version, &b.Epsilon, &releases, &last); err != nil {
		return b, err
	}
	b.Releases, b.LastRelease = int(releases), fromMS(last)
	return b, nil
}

// LockBudget implements aggregator.Tx.
func (t *Tx) LockBudget(ctx context.Context, merchant string) (aggregator.BudgetHead, error) {
	var b aggregator.BudgetHead
	err := t.one(ctx, `SELECT `+budgetCols+` FROM fed_budgets WHERE merchant = ?`+t.lock(aggregator.LockUpdate), func(r Rows) (err error) {
		b, err = scanBudget(r)
		return err
	}, merchant)
	if err != nil {
		return b, fmt.Errorf("lock budget of %s: %w", merchant, err)
	}
	return b, nil
}

// AdvanceBudget implements aggregator.Tx.
func (t *Tx) AdvanceBudget(ctx context.Context, next aggregator.BudgetHead, prevVersion int64) error {
	n, err := t.exec(ctx, `UPDATE fed_budgets SET version = ?, epsilon = ?, releases = ?, last_release_ms = ? WHERE merchant = ? AND version = ?`,
		next.Version, next.Epsilon, int64(next.Releases), ms(next.LastRelease), next.Merchant, prevVersion)
	if err != nil {
		return fmt.Errorf("advance budget of %s: %w", next.Merchant, err)
	}
	if n != 1 {
		return fmt.Errorf("advance budget of %s from version %d: %w", next.Merchant, prevVersion, aggregator.ErrConflict)
	}
	return nil
}

// Budgets implements aggregator.Tx.
func (t *Tx) Budgets(ctx context.Context) ([]aggregator.BudgetHead, error) {
	var bs []aggregator.BudgetHead
	err := t.query(ctx, `SELECT `+budgetCols+` FROM fed_budgets ORDER BY merchant`, func(r Rows) error {
		b, err := scanBudget(r)
		bs = append(bs, b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	return bs, nil
}

const sqlLedger = `SELECT merchant, seq, release, round_id, update_id, epsilon, at_ms FROM fed_ledger WHERE merchant = ? ORDER BY seq`

func scanLedger(r Rows) (aggregator.LedgerRow, error) {
	var l aggregator.LedgerRow
	var rel string
	var at int64
	if err := r.Scan(&l.Merchant, &l.Seq, &rel, &l.Round, &l.Update, &l.Epsilon, &at); err != nil {
		return l, err
	}
	l.At = fromMS(at)
	if err := json.Unmarshal([]byte(rel), &l.Release); err != nil {
		return l, fmt.Errorf("row %d: %w", l.Seq, err)
	}
	return l, nil
}

// Ledger implements aggregator.Tx.
func (t *Tx) Ledger(ctx context.Context, merchant string) ([]aggregator.LedgerRow, error) {
	var rows []aggregator.LedgerRow
	err := t.query(ctx, sqlLedger, func(r Rows) error {
		l, err := scanLedger(r)
		rows = append(rows, l)
		return err
	}, merchant)
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", merchant, err)
	}
	return rows, nil
}

// InsertLedger implements aggregator.Tx.
func (t *Tx) InsertLedger(ctx context.Context, l aggregator.LedgerRow) error {
	rel, err := mustJSON(l.Release)
	if err != nil {
		return fmt.Errorf("insert ledger row: %w", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO fed_ledger (merchant, seq, release, round_id, update_id, epsilon, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		l.Merchant, l.Seq, rel, l.Round, l.Update, l.Epsilon, ms(l.At)); err != nil {
		return fmt.Errorf("insert ledger row: %w", err)
	}
	return nil
}

// --- acceptance ---

// StartAcceptance implements aggregator.Tx in one Batch.
func (t *Tx) StartAcceptance(ctx context.Context, c aggregator.AcceptanceCheck) (aggregator.AcceptanceState, error) {
	var st aggregator.AcceptanceState
	budget, merchant := false, false
	stmts := []Statement{
		{SQL: `SELECT ` + budgetCols + ` FROM fed_budgets WHERE merchant = ?` + t.lock(aggregator.LockUpdate), Args: []any{c.Merchant},
			Scan: func(r Rows) (err error) { budget = true; st.Budget, err = scanBudget(r); return err }},
		{SQL: `SELECT ` + updateCols + ` FROM fed_updates WHERE envelope_sha256 = ?`, Args: []any{c.EnvelopeSHA256},
			Scan: func(r Rows) error {
				u, err := scanUpdate(r)
				st.Duplicate = &u
				return err
			}},
		{SQL: `SELECT ` + merchantReadCols + ` FROM fed_merchants WHERE id = ?`, Args: []any{c.Merchant},
			Scan: func(r Rows) (err error) { merchant = true; st.Merchant, err = scanMerchant(r); return err }},
		{SQL: `INSERT INTO fed_nonces (merchant, nonce, seen_at_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, Args: []any{c.Merchant, c.Nonce, ms(c.At)},
			Affected: func(n int64) error { st.FreshNonce = n == 1; return nil }},
		{SQL: `SELECT 1 FROM fed_updates WHERE round_id = ? AND merchant = ?`, Args: []any{c.Round, c.Merchant},
			Scan: func(r Rows) error { st.HasUpdate = true; var one int64; return r.Scan(&one) }},
	}
	if c.LockCollecting {
		stmts = append(stmts, Statement{SQL: `SELECT 1 FROM fed_rounds WHERE id = ? AND state = ?` + t.lock(aggregator.LockShare), Args: []any{c.Round, string(protocol.RoundCollecting)},
			Scan: func(r Rows) error { st.RoundLocked = true; var one int64; return r.Scan(&one) }})
	}
	if c.WithLedger {
		stmts = append(stmts, Statement{SQL: sqlLedger, Args: []any{c.Merchant}, Scan: func(r Rows) error {
			l, err := scanLedger(r)
			st.Ledger = append(st.Ledger, l)
			return err
		}})
	}
	if err := t.batch(ctx, stmts); err != nil {
		return st, fmt.Errorf("start acceptance for %s: %w", c.Merchant, err)
	}
	switch {
	case !budget:
		return st, fmt.Errorf("lock budget of %s: %w", c.Merchant, aggregator.ErrNotFound)
	case !merchant:
		return st, fmt.Errorf("merchant %s: %w", c.Merchant, aggregator.ErrNotFound)
	}
	return st, nil
}

// FinishAcceptance implements aggregator.Tx in one Batch.
func (t *Tx) FinishAcceptance(ctx context.Context, u aggregator.UpdateRecord, ledger []aggregator.LedgerRow, next aggregator.BudgetHead, prevVersion int64) error {
	args, err := updateArgs(u)
	if err != nil {
		return fmt.Errorf("insert update: %w", err)
	}
	stmts := []Statement{{SQL: insertUpdate, Args: args}}
	for _, l := range ledger {
		rel, err := mustJSON(l.Release)
		if err != nil {
			return fmt.Errorf("insert ledger row: %w", err)
		}
		stmts = append(stmts, Statement{SQL: `INSERT INTO fed_ledger (merchant, seq, release, round_id, update_id, epsilon, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			Args: []any{l.Merchant, l.Seq, rel, l.Round, l.Update, l.Epsilon, ms(l.At)}})
	}
	advanced := false
	stmts = append(stmts, Statement{SQL: `UPDATE fed_budgets SET version = ?, epsilon = ?, releases = ?, last_release_ms = ? WHERE merchant = ? AND version = ?`,
		Args:     []any{next.Version, next.Epsilon, int64(next.Releases), ms(next.LastRelease), next.Merchant, prevVersion},
		Affected: func(n int64) error { advanced = n == 1; return nil }})
	if err := t.batch(ctx, stmts); err != nil {
		return fmt.Errorf("store update %s: %w", u.ID, err)
	}
	if !advanced {
		return fmt.Errorf("advance budget of %s from version %d: %w", next.Merchant, prevVersion, aggregator.ErrConflict)
	}
	return nil
}

// --- models ---

const modelCols = `version, round_id, parent, published_at_ms, contributions, policy_hash, schema_hash, merge, metrics`

// modelReadCols are modelCols and the withdrawal a rollback records later
// (migration 0014), which InsertModel leaves at its defaults.
const modelReadCols = modelCols + `, withdrawn_at_ms, withdrawn_by, withdrawn_seq`

func scanModel(r Rows, withBlobs bool) (aggregator.ModelRecord, error) {
	var m aggregator.ModelRecord
	var version, parent, at, wat int64
	var contrib, metrics, model, opt string
	dest := []any{&version, &m.Round, &parent, &at, &contrib, &m.PolicyHash, &m.SchemaHash, &m.Merge, &metrics, &wat, &m.WithdrawnBy, &m.WithdrawnSeq}
	if withBlobs {
		dest = append(dest, &model, &opt)
	}
	if err := r.Scan(dest...); err != nil {
		return m, err
	}
	m.Version, m.Parent, m.PublishedAt = int(version), int(parent), fromMS(at)
	if wat != 0 {
		m.Withdrawn, m.WithdrawnAt = true, fromMS(wat)
	}
	if err := json.Unmarshal([]byte(contrib), &m.Contributions); err != nil {
		return m, fmt.Errorf("model %d: contributions: %w", version, err)
	}
	if err := json.Unmarshal([]byte(metrics), &m.Metrics); err != nil {
		return m, fmt.Errorf("model %d: metrics: %w", version, err)
	}
	if withBlobs {
		m.Model = json.RawMessage(model)
		m.Optimizer = []byte(opt)
	}
	return m, nil
}

// InsertModel implements aggregator.Tx.
func (t *Tx) InsertModel(ctx context.Context, m aggregator.ModelRecord) (bool, error) {
	contrib, err := mustJSON(m.Contributions)
	if err != nil {
		return false, fmt.Errorf("insert model: %w", err)
	}
	metrics, err := mustJSON(m.Metrics)
	if err != nil {
		return false, fmt.Errorf("insert model: %w", err)
	}
	n, err := t.exec(ctx, `INSERT INTO fed_models (`+modelCols+`, model, optimizer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		int64(m.Version), m.Round, int64(m.Parent), ms(m.PublishedAt), contrib, m.PolicyHash, m.SchemaHash, m.Merge, metrics, string(m.Model), string(m.Optimizer))
	if err != nil {
		return false, fmt.Errorf("insert model: %w", err)
	}
	return n == 1, nil
}

// Model implements aggregator.Tx.
func (t *Tx) Model(ctx context.Context, version int) (aggregator.ModelRecord, error) {
	var m aggregator.ModelRecord
	err := t.one(ctx, `SELECT `+modelReadCols+`, model, optimizer FROM fed_models WHERE version = ?`, func(r Rows) (err error) {
		m, err = scanModel(r, true)
		return err
	}, int64(version))
	if err != nil {
		return m, fmt.Errorf("model %d: %w", version, err)
	}
	return m, nil
}

// Models implements aggregator.Tx.
func (t *Tx) Models(ctx context.Context) ([]aggregator.ModelRecord, error) {
	var out []aggregator.ModelRecord
	err := t.query(ctx, `SELECT `+modelReadCols+` FROM fed_models ORDER BY version`, func(r Rows) error {
		m, err := scanModel(r, false)
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	return out, nil
}

// ModelsAfter implements aggregator.Tx.
func (t *Tx) ModelsAfter(ctx context.Context, after int64, limit int) ([]aggregator.ModelRecord, error) {
	var out []aggregator.ModelRecord
	err := t.query(ctx, `SELECT `+modelReadCols+` FROM fed_models WHERE version > ? ORDER BY version LIMIT ?`, func(r Rows) error {
		m, err := scanModel(r, false)
		out = append(out, m)
		return err
	}, after, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("models after %d: %w", after, err)
	}
	return out, nil
}

// ActiveVersion implements aggregator.Tx.
func (t *Tx) ActiveVersion(ctx context.Context) (int, error) {
	var v int64
	err := t.one(ctx, `SELECT version FROM fed_active WHERE singleton = 1`, func(r Rows) error { return r.Scan(&v) })
	if err != nil {
		return 0, fmt.Errorf("active version: %w", err)
	}
	return int(v), nil
}

// RevokeToken implements aggregator.Tx.
func (t *Tx) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if t.d.Revoke == nil {
		return errors.New("revoke token: this store cannot record revocations")
	}
	q, args := t.d.Revoke(jti, expiresAt)
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// SetModelMetrics implements aggregator.Tx.
func (t *Tx) SetModelMetrics(ctx context.Context, version int, metrics map[string]float64) error {
	js, err := mustJSON(metrics)
	if err != nil {
		return fmt.Errorf("set metrics of model %d: %w", version, err)
	}
	n, err := t.exec(ctx, `UPDATE fed_models SET metrics = ? WHERE version = ?`, js, int64(version))
	if err != nil {
		return fmt.Errorf("set metrics of model %d: %w", version, err)
	}
	if n != 1 {
		return fmt.Errorf("set metrics of model %d: %w", version, aggregator.ErrNotFound)
	}
	return nil
}

// SetModelWithdrawn implements aggregator.Tx.
func (t *Tx) SetModelWithdrawn(ctx context.Context, version int, at time.Time, by string, seq int64) error {
	var atMS int64
	if !at.IsZero() {
		atMS = ms(at)
	}
	n, err := t.exec(ctx, `UPDATE fed_models SET withdrawn_at_ms = ?, withdrawn_by = ?, withdrawn_seq = ? WHERE version = ?`, atMS, by, seq, int64(version))
	if err != nil {
		return fmt.Errorf("withdraw model %d: %w", version, err)
	}
	if n != 1 {
		return fmt.Errorf("withdraw model %d: %w", version, aggregator.ErrNotFound)
	}
	return nil
}

// SetWithdrawnSeq implements aggregator.Tx.
func (t *Tx) SetWithdrawnSeq(ctx context.Context, by string, seq int64) error {
	if _, err := t.exec(ctx, `UPDATE fed_models SET withdrawn_seq = ? WHERE withdrawn_by = ? AND withdrawn_at_ms <> 0`, seq, by); err != nil {
		return fmt.Errorf("record the seq of withdrawal %s: %w", by, err)
	}
	return nil
}

// SetActiveVersion implements aggregator.Tx.
func (t *Tx) SetActiveVersion(ctx context.Context, version int) error {
	if _, err := t.exec(ctx, `INSERT INTO fed_active (singleton, version) VALUES (1, ?) ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`, int64(version)); err != nil {
		return fmt.Errorf("set active version %d: %w", version, err)
	}
	return nil
}

// --- secure aggregation ---

const secureRoundCols = `round_id, stage, stage_deadline_ms, server, result, reason, updated_at_ms, plausible_customers`

// InsertSecureRound implements aggregator.Tx.
func (t *Tx) InsertSecureRound(ctx context.Context, r aggregator.SecureRoundRecord) error {
	// '' rather than "null" for none, as the column's default for rounds
	// planned before it existed.
	customers := ""
	if len(r.Customers) > 0 {
		var err error
		if customers, err = mustJSON(r.Customers); err != nil {
			return fmt.Errorf("insert secure round %s: plausible customers: %w", r.Round, err)
		}
	}
	if _, err := t.exec(ctx, `INSERT INTO fed_secure_rounds (`+secureRoundCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Round, string(r.Stage), ms(r.StageDeadline), nonNil(r.Server), nonNil(r.Result), r.Reason, ms(r.UpdatedAt), customers); err != nil {
		return fmt.Errorf("insert secure round %s: %w", r.Round, err)
	}
	return nil
}

// SecureRound implements aggregator.Tx.
func (t *Tx) SecureRound(ctx context.Context, id string, lock aggregator.Lock) (aggregator.SecureRoundRecord, error) {
	var r aggregator.SecureRoundRecord
	err := t.one(ctx, `SELECT `+secureRoundCols+` FROM fed_secure_rounds WHERE round_id = ?`+t.lock(lock), func(rows Rows) error {
		var stage string
		var deadline, updated int64
		var server, result []byte
		var customers string
		if err := rows.Scan(&r.Round, &stage, &deadline, &server, &result, &r.Reason, &updated, &customers); err != nil {
			return err
		}
		if customers != "" {
			if err := json.Unmarshal([]byte(customers), &r.Customers); err != nil {
				return fmt.Errorf("plausible customers: %w", err)
			}
		}
		r.Stage, r.StageDeadline, r.UpdatedAt = protocol.SecureStage(stage), fromMS(deadline), fromMS(updated)
		r.Server, r.Result = append([]byte(nil), server...), append([]byte(nil), result...)
		return nil
	}, id)
	if err != nil {
		return r, fmt.Errorf("secure round %s: %w", id, err)
	}
	return r, nil
}

// UpdateSecureRound implements aggregator.Tx.
func (t *Tx) UpdateSecureRound(ctx context.Context, r aggregator.SecureRoundRecord) error {
	n, err := t.exec(ctx, `UPDATE fed_secure_rounds SET stage = ?, stage_deadline_ms = ?, server = ?, result = ?, reason = ?, updated_at_ms = ? WHERE round_id = ?`,
		string(r.Stage), ms(r.StageDeadline), nonNil(r.Server), nonNil(r.Result), r.Reason, ms(r.UpdatedAt), r.Round)
	if err != nil {
		return fmt.Errorf("update secure round %s: %w", r.Round, err)
	}
	if n != 1 {
		return fmt.Errorf("update secure round %s: %w", r.Round, aggregator.ErrNotFound)
	}
	return nil
}

// InsertSecureMessage implements aggregator.Tx.
func (t *Tx) InsertSecureMessage(ctx context.Context, m aggregator.SecureMessageRecord) error {
	if _, err := t.exec(ctx, `INSERT INTO fed_secure_messages (round_id, merchant, stage, envelope_sha256, accepted_at_ms) VALUES (?, ?, ?, ?, ?)`,
		m.Round, m.Merchant, string(m.Stage), m.EnvelopeSHA256, ms(m.AcceptedAt)); err != nil {
		return fmt.Errorf("insert secure message of %s in %s (%s): %w", m.Merchant, m.Round, m.Stage, err)
	}
	return nil
}

// SecureMessage implements aggregator.Tx.
func (t *Tx) SecureMessage(ctx context.Context, round, merchant string, stage protocol.SecureStage) (aggregator.SecureMessageRecord, error) {
	m := aggregator.SecureMessageRecord{Round: round, Merchant: merchant, Stage: stage}
	err := t.one(ctx, `SELECT envelope_sha256, accepted_at_ms FROM fed_secure_messages WHERE round_id = ? AND merchant = ? AND stage = ?`, func(r Rows) error {
		var sum []byte
		var at int64
		if err := r.Scan(&sum, &at); err != nil {
			return err
		}
		m.EnvelopeSHA256, m.AcceptedAt = append([]byte(nil), sum...), fromMS(at)
		return nil
	}, round, merchant, string(stage))
	if err != nil {
		return m, fmt.Errorf("secure message of %s in %s (%s): %w", merchant, round, stage, err)
	}
	return m, nil
}

// nonNil stores an empty blob rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
