package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
)

// Outcomes that end a Run. Callers tell them apart with errors.Is.
var (
	// ErrLocalBudget: the next round would take the local ledger past the
	// merchant's own ε cap, so the client refused to train. It wraps
	// dp.ErrBudgetExhausted.
	ErrLocalBudget = fmt.Errorf("local privacy cap reached: %w", dp.ErrBudgetExhausted)
	// ErrFederationBudget: the aggregator refused an update because the
	// merchant's federation budget is spent. It wraps dp.ErrBudgetExhausted.
	ErrFederationBudget = fmt.Errorf("federation privacy budget reached: %w", dp.ErrBudgetExhausted)
	// ErrPlanDelta: the round's plan states a δ above the merchant's own (or an
	// invalid one), so its ε would be read at a weaker guarantee than the
	// merchant's cap; the client refused to train.
	ErrPlanDelta = errors.New("round plan's δ is above the merchant's δ")
	// ErrClockSkew: the aggregator refused the update as stale or from the
	// future even after sealing it again with the current time. The sealed
	// update stays pending; fix the clock and run again.
	ErrClockSkew = errors.New("aggregator refused the update's timestamp: check this machine's clock")
)

// API is what the runner needs of the aggregator (*apiclient.Client).
type API interface {
	CurrentRound(ctx context.Context) (protocol.Round, error)
	SubmitUpdate(ctx context.Context, roundID string, envelope []byte) (protocol.Receipt, error)
}

var _ API = (*apiclient.Client)(nil)

// Backoff is the retry schedule of transient failures: the n-th wait (n from 0)
// is drawn uniformly from [d/2, d] with d = min(Max, Initial·2ⁿ).
type Backoff struct {
	Initial, Max time.Duration
	// MaxAttempts bounds the attempts of one request; 0 retries until the
	// context ends.
	MaxAttempts int
}

func (b Backoff) wait(n int, rng *mathrand.Rand) time.Duration {
	d := b.Initial << min(n, 30)
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
}

// Progress is a stage of the runner, reported to Options.Progress.
type Progress struct {
	Stage string // wait, features, train, seal, upload, done
	Round string
	// Joined is the number of rounds the client has trained for in this Run.
	Joined int
}

// Runner stages.
const (
	StageWait     = "wait"
	StageFeatures = "features"
	StageTrain    = "train"
	StageUpload   = "upload"
	StageDone     = "done"
)

// Options configure a Runner.
type Options struct {
	// API is the aggregator. Required.
	API API
	// Merchant holds the signing key. Required.
	Merchant *keys.Merchant
	// Events are the merchant's events, already pseudonymized (LoadEvents).
	Events []model.Event
	// Location is the merchant's time zone for local-time features (nil = UTC).
	Location *time.Location
	// Store and State are the open state directory and its contents. Required.
	Store *StateStore
	State *State
	// EpsilonCap is the local ε cap, at Delta. Required.
	EpsilonCap float64
	// Delta is the merchant's δ (Config.MerchantDelta; 0 = DefaultDelta): the
	// local ledger is measured at it, and a round planned at a larger δ is
	// refused with ErrPlanDelta.
	Delta float64
	// Optimizer is the local optimizer (client/train).
	Optimizer string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the source of envelope nonces (default crypto/rand).
	Rand io.Reader
	// PollInterval is the wait between round polls (default 2s).
	PollInterval time.Duration
	// Backoff is the retry schedule (default 200ms doubling to 10s, unbounded).
	Backoff Backoff
	// SecureRoundTimeout bounds the time the client spends in one secure
	// round (default DefaultSecureRoundTimeout): past it the round is
	// recorded as OutcomeAbandoned and the client polls for the next one.
	SecureRoundTimeout time.Duration
	// Logger receives progress and retries (default: discarded).
	Logger *slog.Logger
	// Progress, when set, is called at every stage.
	Progress func(Progress)
	// PeerKeys, when not nil, are the cohort's signing keys from the
	// operator (Config.PeerKeys): a secure round's neighbours' adverts are
	// checked with them (SecureParticipant.PeerKeys).
	PeerKeys map[string]ed25519.PublicKey
	// Hook, when set, is called at the crash points fault tests aim at:
	// HookSealed once the sealed update and its debit are saved and before the
	// first upload attempt, HookSubmitted once the aggregator's receipt is in
	// hand and before it is saved.
	Hook func(point string)
}

// Crash points passed to Options.Hook.
const (
	HookSealed    = "sealed"
	HookSubmitted = "submitted"
)

// Runner takes part in federated rounds for one merchant.
type Runner struct {
	opt    Options
	rng    *mathrand.Rand
	rows   map[string][]feature.Row
	joined int // rounds joined by the current Run
}

// NewRunner checks opts.
func NewRunner(opts Options) (*Runner, error) {
	switch {
	case opts.API == nil:
		return nil, errors.New("new runner: nil API")
	case opts.Merchant == nil:
		return nil, errors.New("new runner: nil merchant keys")
	case opts.Store == nil || opts.State == nil:
		return nil, errors.New("new runner: no state")
	case opts.State.Merchant != opts.Merchant.ID:
		return nil, fmt.Errorf("new runner: state is for %q, keys for %q", opts.State.Merchant, opts.Merchant.ID)
	case !(opts.EpsilonCap > 0) || math.IsInf(opts.EpsilonCap, 0):
		return nil, fmt.Errorf("new runner: ε cap %v, want finite and > 0", opts.EpsilonCap)
	case opts.PollInterval < 0:
		return nil, errors.New("new runner: negative poll interval")
	case opts.SecureRoundTimeout < 0:
		return nil, errors.New("new runner: negative secure round timeout")
	case opts.Delta != 0 && !(opts.Delta > 0 && opts.Delta < 1):
		return nil, fmt.Errorf("new runner: δ %v, want in (0, 1)", opts.Delta)
	}
	if opts.Delta == 0 {
		opts.Delta = DefaultDelta
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.SecureRoundTimeout == 0 {
		opts.SecureRoundTimeout = DefaultSecureRoundTimeout
	}
	if opts.Backoff.Initial <= 0 {
		opts.Backoff.Initial = 200 * time.Millisecond
	}
	if opts.Backoff.Max < opts.Backoff.Initial {
		opts.Backoff.Max = max(10*time.Second, opts.Backoff.Initial)
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	seed := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, seed); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	var s1, s2 uint64
	for i := range 8 {
		s1 = s1<<8 | uint64(seed[i])
		s2 = s2<<8 | uint64(seed[8+i])
	}
	return &Runner{opt: opts, rng: mathrand.New(mathrand.NewPCG(s1, s2)), rows: map[string][]feature.Row{}}, nil
}

// Run first finishes a pending upload left by an earlier run (it counts as a
// round joined by this run), then trains for new rounds until rounds rounds were
// joined in this run (0: no limit), the context ends, or a budget is reached
// (ErrLocalBudget, ErrFederationBudget). It returns the number of rounds joined
// in this run.
func (r *Runner) Run(ctx context.Context, rounds int) (int, error) {
	r.joined = 0
	if p := r.opt.State.Pending; p != nil {
		r.opt.Logger.Info("resuming the upload of a sealed update", "round", p.Round)
		if err := r.upload(ctx, p); err != nil {
			return r.joined, err
		}
		r.joined++ // the resumed round counts as one joined by this run
	}
	for rounds == 0 || r.joined < rounds {
		round, err := r.waitRound(ctx)
		if err != nil {
			return r.joined, err
		}
		if err := r.join(ctx, round); err != nil {
			return r.joined, err
		}
	}
	r.progress(StageDone, "")
	return r.joined, nil
}

func (r *Runner) hook(point string) {
	if r.opt.Hook != nil {
		r.opt.Hook(point)
	}
}

func (r *Runner) progress(stage, round string) {
	if r.opt.Progress != nil {
		r.opt.Progress(Progress{Stage: stage, Round: round, Joined: r.joined})
	}
}

// waitRound polls until a round the merchant was selected for and has not
// trained for is open.
func (r *Runner) waitRound(ctx context.Context) (protocol.Round, error) {
	r.progress(StageWait, "")
	failures := 0
	for {
		round, err := r.opt.API.CurrentRound(ctx)
		wait := r.opt.PollInterval
		switch {
		case err == nil:
			failures = 0
			_, joined := r.opt.State.Joined(round.ID)
			if round.Selected && !round.State.Terminal() && !joined {
				return round, nil
			}
		case ctx.Err() != nil:
			return protocol.Round{}, fmt.Errorf("wait for a round: %w", ctx.Err())
		case isProblemStatus(err, http.StatusNotFound):
			// no round open yet
		case retryable(err):
			wait = r.opt.Backoff.wait(failures, r.rng)
			failures++
			r.opt.Logger.Warn("fetching the current round failed; retrying", "err", err, "wait", wait)
		default:
			return protocol.Round{}, fmt.Errorf("wait for a round: %w", err)
		}
		if err := sleep(ctx, wait); err != nil {
			return protocol.Round{}, fmt.Errorf("wait for a round: %w", err)
		}
	}
}

// join trains for round, seals the update, persists it with the local debit,
// and uploads it.
func (r *Runner) join(ctx context.Context, round protocol.Round) error {
	st := r.opt.State
	plan := round.Plan
	// Before anything is built or debited: the aggregator chose these sizes.
	if err := plan.CheckSize(); err != nil {
		return fmt.Errorf("round %s: %w", round.ID, err)
	}
	if plan.Secure != nil {
		if !(plan.Delta > 0 && plan.Delta <= r.opt.Delta) {
			return fmt.Errorf("round %s: %w: plan δ %g, merchant δ %g (client config delta)", round.ID, ErrPlanDelta, plan.Delta, r.opt.Delta)
		}
		return r.joinSecure(ctx, round)
	}
	// The cap is the merchant's at its own δ. A plan at a larger δ is refused
	// outright rather than accounted at the merchant's: the aggregator would
	// report and check this merchant's ε at a δ the merchant never accepted.
	if !(plan.Delta > 0 && plan.Delta <= r.opt.Delta) {
		return fmt.Errorf("round %s: %w: plan δ %g, merchant δ %g (client config delta)", round.ID, ErrPlanDelta, plan.Delta, r.opt.Delta)
	}
	known := r.knownCount(plan)
	cost := train.Cost(plan, known != nil)
	if _, err := r.checkCap(cost); err != nil {
		return err
	}
	base, err := hazard.Unmarshal(round.Model, "")
	if err != nil {
		return fmt.Errorf("round %s: base model: %w", round.ID, err)
	}
	start := time.Now()
	var (
		res      train.Result
		releases []dp.Release
		rows     []feature.Row
	)
	if !plan.EvaluationOnly() {
		r.progress(StageFeatures, round.ID)
		// A merchant with no customer before the cutoffs trains on no rows: it
		// sends noise, the same update and debit as any other, so that taking
		// part does not say it has none.
		if rows, err = r.features(plan.Cutoffs, base.Schema); err != nil && !errors.Is(err, train.ErrNoCustomers) {
			return fmt.Errorf("round %s: %w", round.ID, err)
		}
		r.progress(StageTrain, round.ID)
		if res, err = train.Local(ctx, base, rows, plan, train.Options{Optimizer: r.opt.Optimizer, Count: known}); err != nil {
			return fmt.Errorf("round %s: %w", round.ID, err)
		}
		releases = res.Releases
	}
	var eval *protocol.Evaluation
	if plan.Evaluation != nil {
		ev, rel, err := r.evaluate(base, plan.Evaluation)
		if err != nil {
			return fmt.Errorf("round %s: %w", round.ID, err)
		}
		eval = &ev
		releases = append(releases, rel)
	}
	epsAfter, err := r.checkCap(releases)
	if err != nil {
		return err
	}
	upd := protocol.Update{
		Version: protocol.Version, Round: round.ID, Merchant: r.opt.Merchant.ID, BaseVersion: round.BaseVersion,
		SchemaHash: base.Schema.Hash, Delta: res.Delta, Release: res.Release, Customers: res.Customers, Evaluation: eval,
	}
	payload, err := json.Marshal(upd)
	if err != nil {
		return fmt.Errorf("round %s: encode update: %w", round.ID, err)
	}
	p := &Pending{
		Round: round.ID, Seq: round.Seq, BaseVersion: round.BaseVersion, Payload: payload,
		LocalEpsilon: epsAfter, SealedAt: r.opt.Now().UTC(), Recipient: round.Recipient,
	}
	if !plan.EvaluationOnly() && known == nil {
		p.Count = &CountRecord{Value: res.Customers.Value, Sigma: res.Customers.Sigma, Round: round.ID, Cutoffs: cutoffsKey(plan.Cutoffs)}
	}
	if p.Envelope, err = r.seal(p, round.Recipient); err != nil {
		return fmt.Errorf("round %s: %w", round.ID, err)
	}
	// Debit and persist the envelope before the first attempt: a crash from here
	// on resumes this upload instead of training (and spending) again.
	st.Releases = append(st.Releases, releases...)
	st.Delta = r.opt.Delta
	st.Pending = p
	if err := r.opt.Store.Save(st); err != nil {
		return fmt.Errorf("round %s: %w", round.ID, err)
	}
	r.joined++
	r.hook(HookSealed)
	r.opt.Logger.Debug("trained", "round", round.ID, "seq", round.Seq, "base_version", round.BaseVersion,
		"rows", len(rows), "loss", res.Loss, "dropped_gradients", res.Dropped, "local_epsilon", epsAfter, "took", time.Since(start).Round(time.Millisecond))
	return r.upload(ctx, p)
}

// knownCount returns the count to send again in a round under plan: the
// state's, if it was released at the plan's training cutoffs.
func (r *Runner) knownCount(plan protocol.TrainingPlan) *protocol.NoisyCount {
	c := r.opt.State.Count
	if c == nil || plan.EvaluationOnly() || c.Cutoffs != cutoffsKey(plan.Cutoffs) || c.Sigma < plan.CountNoise*(1-1e-9) {
		return nil
	}
	return &protocol.NoisyCount{Value: c.Value, Sigma: c.Sigma, ReleasedIn: c.Round}
}

// cutoffsKey identifies a list of training cutoffs.
func cutoffsKey(cutoffs []time.Time) string {
	var b strings.Builder
	for i, c := range cutoffs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// evaluate scores base on the merchant's customers at the plan's cutoff and
// releases the DP histogram (package fedeval). A merchant with no customer
// active before the cutoff releases noise alone.
func (r *Runner) evaluate(base *hazard.Model, plan *protocol.EvaluationPlan) (protocol.Evaluation, dp.Release, error) {
	if err := fedeval.CheckPlan(plan); err != nil {
		return protocol.Evaluation{}, dp.Release{}, err
	}
	counts := make([]float64, plan.Cells())
	rows, err := r.features([]time.Time{plan.Cutoff}, base.Schema)
	switch {
	case errors.Is(err, train.ErrNoCustomers):
	case err != nil:
		return protocol.Evaluation{}, dp.Release{}, fmt.Errorf("evaluation: %w", err)
	default:
		if counts, err = fedeval.Histogram(base, rows, plan.Edges); err != nil {
			return protocol.Evaluation{}, dp.Release{}, err
		}
	}
	return fedeval.Release(counts, plan)
}

// checkCap returns the local ε, at the merchant's δ, after the ledger also holds
// next, or an error wrapping ErrLocalBudget when that passes the local cap.
func (r *Runner) checkCap(next []dp.Release) (float64, error) {
	delta := r.opt.Delta
	all := append(append([]dp.Release(nil), r.opt.State.Releases...), next...)
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return 0, err
	}
	for _, rel := range all[:len(all)-1] {
		if err := l.Add(rel); err != nil {
			return 0, fmt.Errorf("local ledger: %w", err)
		}
	}
	eps, err := dp.Filter{Cap: r.opt.EpsilonCap, Delta: delta}.Check(l, all[len(all)-1])
	if errors.Is(err, dp.ErrBudgetExhausted) {
		return eps, fmt.Errorf("%w: the next round would spend ε %.4f > %.4f at δ %g", ErrLocalBudget, eps, r.opt.EpsilonCap, delta)
	}
	if err != nil {
		return 0, fmt.Errorf("local ledger: %w", err)
	}
	return eps, nil
}

func (r *Runner) seal(p *Pending, recipient string) ([]byte, error) {
	rcpt, err := keys.ParseRecipient(recipient)
	if err != nil {
		return nil, fmt.Errorf("seal update: aggregator recipient: %w", err)
	}
	h := seal.Header{MerchantID: r.opt.Merchant.ID, Round: p.Round, ModelVersion: strconv.Itoa(p.BaseVersion), CreatedAt: r.opt.Now().UTC()}
	env, err := seal.Seal(r.opt.Rand, h, p.Payload, r.opt.Merchant.Signing, rcpt)
	if err != nil {
		return nil, fmt.Errorf("seal update: %w", err)
	}
	return env, nil
}

// upload sends the pending envelope until the aggregator answers for good.
func (r *Runner) upload(ctx context.Context, p *Pending) error {
	st := r.opt.State
	r.progress(StageUpload, p.Round)
	resealed := false
	for attempt := 0; ; attempt++ {
		rc, err := r.opt.API.SubmitUpdate(ctx, p.Round, p.Envelope)
		if err == nil {
			r.hook(HookSubmitted)
			outcome := OutcomeAccepted
			if rc.Duplicate {
				outcome = OutcomeDuplicate
			}
			r.opt.Logger.Info("update accepted", "round", p.Round, "duplicate", rc.Duplicate,
				"epsilon", rc.Epsilon, "epsilon_cap", rc.EpsilonCap, "update", rc.UpdateID)
			return r.finish(p, outcome, "", &rc)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("upload round %s: %w", p.Round, ctx.Err())
		}
		var prob *apiclient.Problem
		if !errors.As(err, &prob) || prob.Temporary() {
			if r.opt.Backoff.MaxAttempts > 0 && attempt+1 >= r.opt.Backoff.MaxAttempts {
				return fmt.Errorf("upload round %s: giving up after %d attempts: %w", p.Round, attempt+1, err)
			}
			wait := r.opt.Backoff.wait(attempt, r.rng)
			if prob != nil && prob.RetryAfter > wait {
				wait = prob.RetryAfter
			}
			r.opt.Logger.Warn("upload failed; retrying", "round", p.Round, "attempt", attempt+1, "err", err, "wait", wait)
			if err := sleep(ctx, wait); err != nil {
				return fmt.Errorf("upload round %s: %w", p.Round, err)
			}
			continue
		}
		reason := strings.TrimPrefix(prob.Type, apiclient.ProblemTypeBase)
		switch prob.Type {
		case apiclient.TypeStaleEnvelope:
			if resealed {
				return fmt.Errorf("upload round %s: %w (this clock reads %s): %w", p.Round, ErrClockSkew, r.opt.Now().UTC().Format(time.RFC3339), err)
			}
			// The same payload sealed again at the current time: the release is
			// unchanged, so nothing is debited again.
			env, serr := r.seal(p, p.Recipient)
			if serr != nil {
				return fmt.Errorf("upload round %s: reseal: %w", p.Round, serr)
			}
			p.Envelope, p.SealedAt = env, r.opt.Now().UTC()
			if err := r.opt.Store.Save(st); err != nil {
				return fmt.Errorf("upload round %s: %w", p.Round, err)
			}
			resealed = true
			r.opt.Logger.Warn("update refused as stale; sealed it again at the current time", "round", p.Round)
			continue
		case apiclient.TypeRoundClosed, apiclient.TypeRoundMismatch, apiclient.TypeNotSelected, apiclient.TypeReplay, apiclient.TypeConflict:
			r.opt.Logger.Warn("update refused; its local debit stays", "round", p.Round, "reason", reason, "detail", prob.Detail)
			return r.finish(p, OutcomeRefused, reason, nil)
		case apiclient.TypeBudgetExhausted:
			if ferr := r.finish(p, OutcomeRefused, reason, nil); ferr != nil {
				return ferr
			}
			return fmt.Errorf("upload round %s: %w: %w", p.Round, ErrFederationBudget, err)
		case apiclient.TypeInvalidUpdate, apiclient.TypeInvalidEnvelope, apiclient.TypePolicyViolation, apiclient.TypeTooLarge:
			if ferr := r.finish(p, OutcomeRefused, reason, nil); ferr != nil {
				return ferr
			}
			return fmt.Errorf("upload round %s: refused: %w", p.Round, err)
		default: // authentication and anything unexpected: keep the update for a later run
			return fmt.Errorf("upload round %s: %w", p.Round, err)
		}
	}
}

// finish records the end of p's upload and clears it.
func (r *Runner) finish(p *Pending, outcome, reason string, rc *protocol.Receipt) error {
	st := r.opt.State
	if p.Count != nil && outcome != OutcomeRefused {
		st.Count = p.Count
	}
	st.Rounds = append(st.Rounds, RoundRecord{
		Round: p.Round, Seq: p.Seq, BaseVersion: p.BaseVersion, Outcome: outcome, Reason: reason,
		Receipt: rc, LocalEpsilon: p.LocalEpsilon, At: r.opt.Now().UTC(),
	})
	st.Pending = nil
	if err := r.opt.Store.Save(st); err != nil {
		return fmt.Errorf("upload round %s: %w", p.Round, err)
	}
	return nil
}

// features builds (and caches) the rows at cutoffs in schema's coordinates.
func (r *Runner) features(cutoffs []time.Time, schema feature.Schema) ([]feature.Row, error) {
	var key strings.Builder
	key.WriteString(schema.Hash)
	for _, c := range cutoffs {
		key.WriteString("|" + c.UTC().Format(time.RFC3339))
	}
	if rows, ok := r.rows[key.String()]; ok {
		return rows, nil
	}
	rows, err := BuildRows(r.opt.Events, cutoffs, r.opt.Location, schema)
	if err != nil {
		return nil, err
	}
	r.rows[key.String()] = rows
	return rows, nil
}

// BuildRows builds the point-in-time rows of events at cutoffs, restricted to
// schema's features, and checks that the result has schema's hash.
func BuildRows(events []model.Event, cutoffs []time.Time, loc *time.Location, schema feature.Schema) ([]feature.Row, error) {
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Location: loc, Allow: schema.Names})
	if err != nil {
		return nil, fmt.Errorf("build features: %w", err)
	}
	if got := b.Schema().Hash; got != schema.Hash {
		return nil, fmt.Errorf("build features: %w: local schema %s, model %s", hazard.ErrSchemaMismatch, got, schema.Hash)
	}
	for i, e := range events {
		if err := b.Add(e); err != nil {
			return nil, fmt.Errorf("build features: event %d: %w", i, err)
		}
	}
	rows := b.Rows()
	if len(rows) == 0 {
		return nil, fmt.Errorf("build features: %w", train.ErrNoCustomers)
	}
	return rows, nil
}

func retryable(err error) bool {
	var prob *apiclient.Problem
	if errors.As(err, &prob) {
		return prob.Temporary()
	}
	return true // transport errors: connection refused, reset, timeout
}

func isProblemStatus(err error, status int) bool {
	var prob *apiclient.Problem
	return errors.As(err, &prob) && prob.Status == status
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
