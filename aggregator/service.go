package aggregator

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
)

// Errors a caller acts on (matched with errors.Is). Refusals of an envelope
// also match the crypto/seal sentinels (seal.ErrBadSignature, seal.ErrReplay,
// …), refusals of its payload protocol.ErrInvalidUpdate, and a release over the
// cap dp.ErrBudgetExhausted.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrRoundClosed = errors.New("round is not accepting updates")
	ErrPolicy      = errors.New("refused by policy")
	ErrNotSelected = errors.New("merchant not selected for this round")
	// ErrAudit means the action was committed but its audit entry could not be
	// made durable, so the caller gets no success answer (fail closed).
	ErrAudit = errors.New("audit entry not durable")
)

// Server optimizers.
const (
	ServerFedAdam = merge.ServerFedAdam // merge.Adam (Reddi et al. 2021)
	ServerFedAvg  = merge.ServerFedAvg  // θ ← θ + ServerLR·Δ
)

// SystemActor is the audit actor of what the aggregator does on its own.
const SystemActor = "system:aggregator"

// MinTickInterval is the shortest RoundConfig.TickInterval.
const MinTickInterval = 10 * time.Millisecond

// RoundConfig configures the rounds. It is the rounds section of the
// aggregator's config file (aggregator/config): the yaml tags are its keys.
// A zero value takes the default given in each field's comment.
type RoundConfig struct {
	// Deadline is how long a round collects updates (default 10 minutes).
	Deadline time.Duration `yaml:"deadline"`
	// Quorum is k, the fewest updates a round publishes with (default 1).
	Quorum int `yaml:"quorum"`
	// SampleFraction is the fraction of enrolled merchants sampled per round, in
	// (0, 1] (default 1). At least min(Quorum, n) are sampled.
	SampleFraction float64 `yaml:"sample_fraction"`
	// StepsPerRound is the number of DP-SGD steps per round (default 10).
	StepsPerRound int `yaml:"steps_per_round"`
	// PlannedRounds is the number of rounds each merchant's budget is planned
	// for: the noise multiplier is calibrated so that PlannedRounds rounds
	// (DP-SGD and customer count) spend exactly the merchant's ε cap (default 20).
	PlannedRounds int `yaml:"planned_rounds"`
	// SamplingRate is q, the Poisson rate of a customer per step (default 0.05).
	SamplingRate float64 `yaml:"sampling_rate,omitempty"`
	// LearningRate and L2 configure local training (default 0.5 and 0).
	LearningRate float64 `yaml:"learning_rate,omitempty"`
	L2           float64 `yaml:"l2,omitempty"`
	// CountNoise is σ of the DP customer count sent with every update (default 50).
	CountNoise float64 `yaml:"count_noise,omitempty"`
	// Cutoffs are the training cutoffs every merchant builds features at.
	Cutoffs []time.Time `yaml:"cutoffs,omitempty"`
	// Server is ServerFedAdam (default) or ServerFedAvg. ServerLR defaults to
	// 0.01 for FedAdam and 1 for FedAvg; ServerTau (FedAdam's τ) to 1e-3.
	Server    string  `yaml:"server,omitempty"`
	ServerLR  float64 `yaml:"server_lr,omitempty"`
	ServerTau float64 `yaml:"server_tau,omitempty"`
	// NormBound bounds every update's L2 norm before merging when the
	// policy sets no norm_bound (0: the bound derived from the round's plan).
	NormBound float64 `yaml:"norm_bound,omitempty"`
	// EqualWeights weights FedAvg equally instead of by DP customer counts.
	EqualWeights bool `yaml:"equal_weights,omitempty"`
	// MaxRounds stops opening rounds after this seq (0: no limit).
	MaxRounds int `yaml:"max_rounds,omitempty"`
	// Seed seeds client sampling; a round's sample depends only on Seed and
	// its seq, and is stored with the round.
	Seed uint64 `yaml:"seed,omitempty"`
	// TickInterval is Run's period (default 1s, at least MinTickInterval).
	TickInterval time.Duration `yaml:"tick_interval,omitempty"`
	// Evaluation, when set, has merchants evaluate models on their own
	// customers with DP histograms (package fedeval), paid from their budgets.
	Evaluation *EvaluationConfig `yaml:"evaluation,omitempty"`
	// SecureAggregation runs every round with SecAgg+ and distributed
	// discrete Gaussian noise (secure.go): the aggregator learns only the
	// cohort's sum. It needs the policy's aggregation.min_cohort.
	SecureAggregation bool `yaml:"secure_aggregation,omitempty"`
	// SecureStageTimeout is how long each stage of a secure round waits for
	// the cohort's messages (default 1 minute).
	SecureStageTimeout time.Duration `yaml:"secure_stage_timeout,omitempty"`
	// SecureDropoutLimit is how many secure rounds a merchant may drop out
	// of before masking, within SecureDropoutWindow rounds and with no masked
	// input between them, before it is left out of secure cohorts for
	// SecureExclusionRounds rounds (securedropout.go; defaults 3, 10, 20).
	// Each later exclusion of the same merchant lasts twice the one before,
	// up to SecureExclusionMaxRounds (default 16 × SecureExclusionRounds).
	// After SecureExclusionForgiveRounds secure rounds it masked in with no
	// dropout before masking (default 50), its count of exclusions halves.
	SecureDropoutLimit           int `yaml:"secure_dropout_limit,omitempty"`
	SecureDropoutWindow          int `yaml:"secure_dropout_window,omitempty"`
	SecureExclusionRounds        int `yaml:"secure_exclusion_rounds,omitempty"`
	SecureExclusionMaxRounds     int `yaml:"secure_exclusion_max_rounds,omitempty"`
	SecureExclusionForgiveRounds int `yaml:"secure_exclusion_forgive_rounds,omitempty"`
}

// DefaultSecureExclusionForgiveRounds is secure_exclusion_forgive_rounds
// when unset: a merchant that masks in this many secure rounds in a row has
// half its exclusions forgiven.
const DefaultSecureExclusionForgiveRounds = 50

// MaxSecureExclusionRounds bounds secure_exclusion_rounds,
// secure_exclusion_max_rounds and secure_exclusion_forgive_rounds: a million
// rounds is years at any tick.
const MaxSecureExclusionRounds = 1_000_000

// EvaluationConfig configures federated evaluation. A training round whose
// base model is the k-th published training version with k a multiple of
// Every (k = 0 is the initial model; none when Every is 0) asks its merchants
// for an evaluation of that base model along with their updates; and once
// PlannedRounds training versions are published, a round whose base (the
// active version) has no metrics yet is an evaluation-only round (no
// training) open to every merchant; if it misses its quorum it is not
// repeated for that version. The evaluations' releases are part of the
// budget plan: the DP-SGD noise is calibrated so that training, counts and
// evaluations together spend the cap.
type EvaluationConfig struct {
	// Cutoff is the evaluation cutoff: customers active before it, outcomes in
	// the 30 days after it. It must be at least 30 days after the last
	// training cutoff (no training label may overlap the evaluation window)
	// and at most 30 days before the data's end.
	Cutoff time.Time `yaml:"cutoff"`
	// Sigma is the Gaussian σ per histogram cell (default 10).
	Sigma float64 `yaml:"sigma,omitempty"`
	// Edges are the inner bin edges of P(within 30 days) (default fedeval.DefaultEdges).
	Edges []float64 `yaml:"edges,omitempty"`
	// Every asks for an evaluation in every Every-th training round too (0: none).
	Every int `yaml:"every,omitempty"`
}

// evaluations is the number of evaluation releases a merchant makes over the
// plan: one per Every-th of the PlannedRounds training rounds and the final one.
func (c *RoundConfig) evaluations() int {
	if c.Evaluation == nil {
		return 0
	}
	n := 1
	if e := c.Evaluation.Every; e > 0 {
		n += (c.PlannedRounds + e - 1) / e
	}
	return n
}

// evaluationPlan returns the evaluation plan of a round whose base is the
// trained-th published training version (its metrics already set or not), or
// nil, and whether the round only evaluates.
func (c *RoundConfig) evaluationPlan(trained int, baseEvaluated bool) (plan *protocol.EvaluationPlan, only bool) {
	e := c.Evaluation
	if e == nil {
		return nil, false
	}
	p := &protocol.EvaluationPlan{Cutoff: e.Cutoff, Edges: slices.Clone(e.Edges), Sigma: e.Sigma}
	switch {
	case trained >= c.PlannedRounds && !baseEvaluated:
		return p, true
	case e.Every > 0 && trained < c.PlannedRounds && trained%e.Every == 0:
		return p, false
	}
	return nil, false
}

// Options configure New.
type Options struct {
	Store  Store
	Policy *policies.Policy
	Keys   *keys.Aggregator
	Audit  *audit.Log
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	Rounds RoundConfig
	// MaxSkew bounds an envelope's creation time around Now (default 10 minutes).
	MaxSkew time.Duration
	// MaxEnvelope bounds an envelope in bytes (default 4 MiB).
	MaxEnvelope int
	// RequirePostQuantum refuses envelopes sealed to a classic X25519 recipient.
	RequirePostQuantum bool
	// InitialModel, when set, is version 1's model instead of
	// hazard.Initial over the policy's features.
	InitialModel *hazard.Model
}

// Service is the aggregator. It keeps no round state of its own: everything is
// in the store, so several Services (replicas) may share one database.
type Service struct {
	store   Store
	keys    *keys.Aggregator
	audit   *audit.Log
	now     func() time.Time
	log     *slog.Logger
	maxSkew time.Duration
	maxEnv  int
	pq      bool
	schema  feature.Schema
	initial *hazard.Model
	// settings holds the policy and round configuration, replaced as a
	// whole by Reload.
	settings atomic.Pointer[settings]
	// reloadMu serialises Reload and RefuseReload from reading the policy
	// they replace to installing the new one: two at once (a SIGHUP and an
	// API call) could otherwise leave in force the one whose entry is not
	// the last, or log a previous policy that was not the one replaced.
	reloadMu sync.Mutex
	// acceptMu orders acceptances against reloads on this process: an
	// acceptance (Submit, SubmitSecure) holds it for reading from its read
	// of the merchant's policy to its commit, Reload for writing while it
	// installs the new settings. A reload then returns only once every
	// acceptance judged on the policy it replaces has committed (or
	// failed), and every acceptance that starts after it reads the new one.
	// Other replicas follow a reload from the audit log
	// (server.ReloadFollowInterval), each with its own acceptMu.
	acceptMu sync.RWMutex

	mu     sync.Mutex
	noise  map[[3]float64]float64 // (cap, δ, min z) → calibrated z
	models map[int]*hazard.Model  // parsed base models by version
	// merchants caches enrolled merchants for the pre-transaction signature
	// check; the acceptance transaction re-reads the row.
	merchants map[string]Merchant
	// rounds caches the immutable fields of recently read rounds.
	rounds map[string]RoundRecord
	// accepted records, per cached round, the merchants whose update this
	// Service accepted in it and that update's envelope nonce, so that a
	// second one is refused before decryption (another replica's acceptance
	// is found after it).
	accepted map[string]map[string][seal.NonceSize]byte
	acct     *accountant
	// securePlans caches the distributed-DP plans of secure rounds by their inputs.
	securePlans map[securePlanKey]distributed.Plan
	// refusals bounds the audit entries of cheap refusals (throttle.go).
	refusals refusalThrottle
}

// Budget is one merchant's privacy ledger summary.
type Budget = protocol.BudgetInfo

// WithDefaults returns c with every zero field set to its default, after
// checking it: this is the one place a round configuration is validated (by
// New, Reload and the config file's loader). Errors name the field by its key
// in the config file (rounds.quorum), all of them at once.
func (c RoundConfig) WithDefaults() (RoundConfig, error) {
	c.Cutoffs = slices.Clone(c.Cutoffs)
	err := c.defaults()
	return c, err
}

func (c *RoundConfig) defaults() error {
	// Checked before the defaults fill the zeros in, so that a message names
	// what the user gave.
	var errs []error
	bad := func(key string, got any, want string) {
		errs = append(errs, fmt.Errorf("rounds.%s: must be %s (got %v; 0 or absent takes the default)", key, want, got))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if c.Deadline < 0 {
		bad("deadline", c.Deadline, "positive")
	}
	if c.Quorum < 0 {
		bad("quorum", c.Quorum, "≥ 1")
	}
	if !(c.SampleFraction >= 0 && c.SampleFraction <= 1) {
		bad("sample_fraction", c.SampleFraction, "in (0, 1]")
	}
	if c.StepsPerRound < 0 || c.StepsPerRound > protocol.MaxPlanSteps {
		bad("steps_per_round", c.StepsPerRound, fmt.Sprintf("in [1, %d] (merchants' clients refuse more)", protocol.MaxPlanSteps))
	}
	if len(c.Cutoffs) > protocol.MaxPlanCutoffs {
		errs = append(errs, fmt.Errorf("rounds.cutoffs: %d cutoffs, at most %d (merchants' clients refuse more)", len(c.Cutoffs), protocol.MaxPlanCutoffs))
	}
	if c.Evaluation != nil && len(c.Evaluation.Edges) > protocol.MaxEvalEdges {
		errs = append(errs, fmt.Errorf("rounds.evaluation.edges: %d edges, at most %d (merchants' clients refuse more)", len(c.Evaluation.Edges), protocol.MaxEvalEdges))
	}
	if c.PlannedRounds < 0 {
		bad("planned_rounds", c.PlannedRounds, "≥ 1")
	}
	if !(c.SamplingRate >= 0 && c.SamplingRate <= 1) {
		bad("sampling_rate", c.SamplingRate, "in (0, 1]")
	}
	if !(c.LearningRate >= 0) || !finite(c.LearningRate) {
		bad("learning_rate", c.LearningRate, "a finite number > 0")
	}
	if !(c.L2 >= 0) || !finite(c.L2) {
		errs = append(errs, fmt.Errorf("rounds.l2: must be a finite number ≥ 0 (got %v)", c.L2))
	}
	if !(c.CountNoise >= 0) || !finite(c.CountNoise) {
		bad("count_noise", c.CountNoise, "a finite number > 0")
	}
	if c.Server != "" && c.Server != ServerFedAdam && c.Server != ServerFedAvg {
		errs = append(errs, fmt.Errorf("rounds.server: %q: want %s or %s", c.Server, ServerFedAdam, ServerFedAvg))
	}
	if !(c.ServerLR >= 0) || !finite(c.ServerLR) {
		bad("server_lr", c.ServerLR, "a finite number > 0")
	}
	if !(c.ServerTau >= 0) || !finite(c.ServerTau) {
		bad("server_tau", c.ServerTau, "a finite number > 0")
	}
	if !(c.NormBound >= 0) || !finite(c.NormBound) {
		errs = append(errs, fmt.Errorf("rounds.norm_bound: must be a finite number ≥ 0 (got %v; 0 derives the bound from the plan)", c.NormBound))
	}
	if c.MaxRounds < 0 {
		errs = append(errs, fmt.Errorf("rounds.max_rounds: must be ≥ 0 (got %d; 0: no limit)", c.MaxRounds))
	}
	if c.TickInterval < 0 {
		bad("tick_interval", c.TickInterval, "positive")
	} else if c.TickInterval > 0 && c.TickInterval < MinTickInterval {
		// Each tick is a few store transactions: 1ns would run them back to back.
		bad("tick_interval", c.TickInterval, "at least "+MinTickInterval.String())
	}
	if c.SecureStageTimeout < 0 {
		bad("secure_stage_timeout", c.SecureStageTimeout, "positive")
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"secure_dropout_limit", c.SecureDropoutLimit}, {"secure_dropout_window", c.SecureDropoutWindow}, {"secure_exclusion_rounds", c.SecureExclusionRounds}, {"secure_exclusion_max_rounds", c.SecureExclusionMaxRounds}, {"secure_exclusion_forgive_rounds", c.SecureExclusionForgiveRounds}} {
		if v.n < 0 {
			bad(v.key, v.n, "positive")
		}
	}
	if c.SecureDropoutWindow > 0 && c.SecureDropoutWindow < max(c.SecureDropoutLimit, 3) {
		bad("secure_dropout_window", c.SecureDropoutWindow, "at least secure_dropout_limit (default 3)")
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"secure_exclusion_rounds", c.SecureExclusionRounds}, {"secure_exclusion_max_rounds", c.SecureExclusionMaxRounds}, {"secure_exclusion_forgive_rounds", c.SecureExclusionForgiveRounds}} {
		if v.n > MaxSecureExclusionRounds {
			// An exclusion ends at its round seq plus its length, which must not wrap.
			bad(v.key, v.n, fmt.Sprintf("at most %d", MaxSecureExclusionRounds))
		}
	}
	if base := cmp.Or(c.SecureExclusionRounds, 20); c.SecureExclusionMaxRounds > 0 && c.SecureExclusionMaxRounds < base {
		bad("secure_exclusion_max_rounds", c.SecureExclusionMaxRounds, "at least secure_exclusion_rounds (default 20)")
	}
	if c.SecureAggregation && c.Evaluation != nil {
		errs = append(errs, errors.New("rounds.secure_aggregation: secure rounds do not run federated evaluation yet; unset rounds.evaluation"))
	}
	if c.Evaluation != nil && !finite(c.Evaluation.Sigma) {
		errs = append(errs, fmt.Errorf("rounds.evaluation.sigma: must be finite (got %v)", c.Evaluation.Sigma))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.Deadline == 0 {
		c.Deadline = 10 * time.Minute
	}
	if c.Quorum == 0 {
		c.Quorum = 1
	}
	if c.SampleFraction == 0 {
		c.SampleFraction = 1
	}
	if c.SecureDropoutLimit == 0 {
		c.SecureDropoutLimit = 3
	}
	if c.SecureDropoutWindow == 0 {
		c.SecureDropoutWindow = max(10, c.SecureDropoutLimit)
	}
	if c.SecureExclusionRounds == 0 {
		c.SecureExclusionRounds = 20
	}
	if c.SecureExclusionMaxRounds == 0 {
		c.SecureExclusionMaxRounds = min(16*c.SecureExclusionRounds, MaxSecureExclusionRounds)
	}
	if c.SecureExclusionForgiveRounds == 0 {
		c.SecureExclusionForgiveRounds = DefaultSecureExclusionForgiveRounds
	}
	if c.StepsPerRound == 0 {
		c.StepsPerRound = 10
	}
	if c.PlannedRounds == 0 {
		c.PlannedRounds = 20
	}
	if c.SamplingRate == 0 {
		c.SamplingRate = 0.05
	}
	if c.LearningRate == 0 {
		c.LearningRate = 0.5
	}
	if c.CountNoise == 0 {
		c.CountNoise = 50
	}
	so := c.serverOptions().WithDefaults() // the defaults the simulator uses too
	c.Server, c.ServerLR, c.ServerTau = so.Optimizer, so.LR, so.Tau
	if err := so.Validate(); err != nil {
		return err
	}
	if c.TickInterval == 0 {
		c.TickInterval = time.Second
	}
	if c.SecureStageTimeout == 0 {
		c.SecureStageTimeout = time.Minute
	}
	if c.Evaluation != nil {
		e := *c.Evaluation // the caller's config is not modified
		c.Evaluation = &e
		switch {
		case e.Cutoff.IsZero():
			return errors.New("rounds.evaluation.cutoff: required")
		case !(e.Sigma >= 0) || !finite(e.Sigma):
			return fmt.Errorf("rounds.evaluation.sigma: must be a finite number > 0 (got %v; 0 or absent takes the default 10)", e.Sigma)
		case e.Every < 0:
			return fmt.Errorf("rounds.evaluation.every: must be ≥ 0 (got %d; 0: only the final evaluation)", e.Every)
		}
		if e.Sigma == 0 {
			e.Sigma = 10
		}
		if e.Edges == nil {
			e.Edges = fedeval.DefaultEdges()
		}
		e.Edges = slices.Clone(e.Edges)
		if err := fedeval.CheckPlan(&protocol.EvaluationPlan{Cutoff: e.Cutoff, Edges: e.Edges, Sigma: e.Sigma}); err != nil {
			return fmt.Errorf("rounds.evaluation: %w", err)
		}
		for _, t := range c.Cutoffs {
			if e.Cutoff.Before(t.Add(30 * 24 * time.Hour)) {
				return fmt.Errorf("rounds.evaluation.cutoff: %s is less than 30 days after training cutoff %s: training labels would overlap the evaluation window",
					e.Cutoff.Format(time.RFC3339), t.Format(time.RFC3339))
			}
		}
	}
	return nil
}

// New validates opts, creates the initial model (version 1) and the first
// round if the store has none, and returns the service. Several replicas may
// call New on one database at once.
func New(ctx context.Context, opts Options) (*Service, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("new aggregator: no store")
	case opts.Policy == nil:
		return nil, errors.New("new aggregator: no policy")
	case opts.Keys == nil || opts.Keys.Identity == nil || opts.Keys.Recipient == "":
		return nil, errors.New("new aggregator: no aggregator keys")
	case opts.Audit == nil:
		return nil, errors.New("new aggregator: no audit log")
	}
	cfg, err := opts.Rounds.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("new aggregator: %w", err)
	}
	s := &Service{
		store: opts.Store, keys: opts.Keys, audit: opts.Audit,
		now: opts.Now, log: opts.Logger, maxSkew: opts.MaxSkew, maxEnv: opts.MaxEnvelope,
		pq:    opts.RequirePostQuantum,
		noise: map[[3]float64]float64{}, models: map[int]*hazard.Model{}, merchants: map[string]Merchant{},
		rounds: map[string]RoundRecord{}, accepted: map[string]map[string][seal.NonceSize]byte{},
		securePlans: map[securePlanKey]distributed.Plan{},
	}
	s.settings.Store(&settings{policy: opts.Policy, rounds: &cfg})
	if err := checkModes(&cfg, opts.Policy); err != nil {
		return nil, fmt.Errorf("new aggregator: %w", err)
	}
	if s.acct, err = newAccountant(); err != nil {
		return nil, fmt.Errorf("new aggregator: %w", err)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxSkew == 0 {
		s.maxSkew = 10 * time.Minute
	}
	if s.maxEnv == 0 {
		s.maxEnv = 4 << 20
	}
	if s.maxSkew < 0 || s.maxEnv < 0 {
		return nil, fmt.Errorf("new aggregator: max skew %v and max envelope %d must be ≥ 0", s.maxSkew, s.maxEnv)
	}
	initial := opts.InitialModel
	if initial == nil {
		schema, err := policySchema(opts.Policy)
		if err != nil {
			return nil, fmt.Errorf("new aggregator: %w", err)
		}
		if initial, err = hazard.Initial(schema, 0); err != nil {
			return nil, fmt.Errorf("new aggregator: initial model: %w", err)
		}
	}
	s.initial = initial
	s.schema = initial.Schema
	if err := s.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("new aggregator: %w", err)
	}
	if err := s.resumeSecure(ctx); err != nil {
		return nil, fmt.Errorf("new aggregator: %w", err)
	}
	return s, nil
}

// policySchema is the feature schema every merchant of the policy may train
// on: the features allowed to all of them.
func policySchema(p *policies.Policy) (feature.Schema, error) {
	var allow []string
	restricted := false
	for _, id := range p.Merchants() {
		mp, err := p.Merchant(id)
		if err != nil {
			return feature.Schema{}, fmt.Errorf("policy schema: %w", err)
		}
		if mp.AllFeatures {
			continue
		}
		if !restricted {
			allow, restricted = slices.Clone(mp.Features), true
			continue
		}
		allow = slices.DeleteFunc(allow, func(f string) bool { return !slices.Contains(mp.Features, f) })
	}
	if restricted && len(allow) == 0 {
		return feature.Schema{}, fmt.Errorf("policy schema: %w: no feature is allowed to every merchant", ErrPolicy)
	}
	s, err := feature.NewSchema(allow)
	if err != nil {
		return feature.Schema{}, fmt.Errorf("policy schema: %w: %w", ErrPolicy, err)
	}
	return s, nil
}

// bootstrap stores version 1 and opens round 1 unless they exist.
func (s *Service) bootstrap(ctx context.Context) error {
	modelJSON, err := s.initial.MarshalJSON()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	opt, err := s.newOptimizerState()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	var opened []staged
	err = s.store.InTx(ctx, func(tx Tx) error {
		opened = nil
		now := s.now().UTC()
		if _, err := tx.ActiveVersion(ctx); errors.Is(err, ErrNotFound) {
			inserted, err := tx.InsertModel(ctx, ModelRecord{ModelVersion: protocol.ModelVersion{
				Version: 1, PublishedAt: now, Contributions: []protocol.Contribution{},
				PolicyHash: s.pol().Hash(), SchemaHash: s.schema.Hash, Merge: "initial", Model: modelJSON,
			}, Optimizer: opt})
			if err != nil {
				return err
			}
			if inserted {
				if err := tx.SetActiveVersion(ctx, 1); err != nil {
					return err
				}
			}
		} else if err != nil {
			return err
		}
		if _, err := tx.LatestRound(ctx); errors.Is(err, ErrNotFound) {
			r, err := s.openRound(ctx, tx, 1, now)
			if err != nil || r == nil {
				return err
			}
			opened, err = s.stageTransitions(ctx, tx, []transition{{round: *r, action: "round.open"}}, now)
			return err
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.flush(ctx, opened); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func (s *Service) newOptimizerState() ([]byte, error) {
	srv, err := merge.NewServer(s.rc().serverOptions(), nil)
	if err != nil {
		return nil, err
	}
	return srv.State()
}

// serverOptions are the server step's options in c.
func (c *RoundConfig) serverOptions() merge.ServerOptions {
	return merge.ServerOptions{Optimizer: c.Server, LR: c.ServerLR, Tau: c.ServerTau}
}

// Enrol enrols merchant m on behalf of actor (the admin's "role:subject").
// The merchant must be named in the policy; its region must match the
// policy's. The action is audited whether it succeeds or not.
func (s *Service) Enrol(ctx context.Context, actor string, m Merchant) (Merchant, error) {
	m, ps, err := s.enrol(ctx, actor, m)
	if err != nil {
		rec := audit.Record{
			Actor: actor, Action: "merchant.enrol", Object: "merchant", Outcome: outcomeOf(err), Reason: err.Error(),
			Identifiers: map[string]string{"merchant": m.ID},
		}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			return Merchant{}, fmt.Errorf("enrol %s: %w", m.ID, aerr)
		}
		return Merchant{}, err
	}
	// The row is committed: later submissions need not read it for the
	// signature check (their transaction re-reads it anyway).
	s.mu.Lock()
	s.merchants[m.ID] = m
	s.mu.Unlock()
	if err := s.flush(ctx, ps); err != nil {
		return Merchant{}, fmt.Errorf("enrol %s: %w", m.ID, err)
	}
	return m, nil
}

func (s *Service) enrol(ctx context.Context, actor string, m Merchant) (Merchant, []staged, error) {
	if err := keys.CheckMerchantID(m.ID); err != nil {
		return m, nil, fmt.Errorf("enrol: %w: %w", ErrPolicy, err)
	}
	if len(m.PublicKey) != ed25519.PublicKeySize {
		return m, nil, fmt.Errorf("enrol %s: %w: public key has %d bytes, want %d", m.ID, ErrPolicy, len(m.PublicKey), ed25519.PublicKeySize)
	}
	if m.TimeZone == "" {
		m.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(m.TimeZone); err != nil {
		return m, nil, fmt.Errorf("enrol %s: %w: time zone %q: %w", m.ID, ErrPolicy, m.TimeZone, err)
	}
	mp, err := s.pol().Merchant(m.ID)
	if err != nil {
		return m, nil, fmt.Errorf("enrol %s: %w: %w", m.ID, ErrPolicy, err)
	}
	switch {
	case m.Region == "":
		m.Region = mp.Region
	case m.Region != mp.Region:
		return m, nil, fmt.Errorf("enrol %s: %w: region %q, policy binds it to %q", m.ID, ErrPolicy, m.Region, mp.Region)
	}
	m.PublicKey = slices.Clone(m.PublicKey)
	m.Revoked = false
	m.EnrolledAt = s.now().UTC().Truncate(time.Millisecond)
	rec := audit.Record{
		Actor: actor, Action: "merchant.enrol", Object: "merchant", Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"merchant": m.ID},
		Details:     map[string]string{"signing_key_id": keys.KeyID(m.PublicKey), "region": m.Region, "time_zone": m.TimeZone},
	}
	var ps []staged
	err = s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.InsertMerchant(ctx, m); err != nil {
			return err
		}
		p, err := stage(ctx, tx, "merchant.enrol/"+m.ID, rec, m.EnrolledAt)
		ps = []staged{p}
		return err
	})
	if err != nil {
		return m, nil, fmt.Errorf("enrol %s: %w", m.ID, err)
	}
	return m, ps, nil
}

// Merchants returns the enrolled merchants ordered by id.
func (s *Service) Merchants(ctx context.Context) ([]Merchant, error) {
	var ms []Merchant
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		ms, err = tx.Merchants(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	return ms, nil
}

// planNoise returns the noise multiplier merchant policy mp trains with: the
// smallest z for which PlannedRounds rounds of StepsPerRound DP-SGD steps at
// SamplingRate, plus one customer count at CountNoise (released once, sent
// again in later rounds) and the planned evaluations
// (RoundConfig.Evaluation), spend
// exactly the cap at δ by RDP composition; never below the policy's minimum.
func (s *Service) planNoise(mp policies.MerchantPolicy) (float64, error) {
	key := [3]float64{mp.EpsilonCap, mp.Delta, mp.MinNoiseMultiplier}
	s.mu.Lock()
	z, ok := s.noise[key]
	s.mu.Unlock()
	if ok {
		return z, nil
	}
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return 0, err
	}
	// One customer count: a client releases it in its first round and sends
	// it again after (protocol.NoisyCount.ReleasedIn).
	// With a retraining policy, one per campaign (planCounts).
	counts, evals := s.planCounts()
	if err := l.Add(dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: s.rc().CountNoise, Steps: counts}); err != nil {
		return 0, fmt.Errorf("plan noise: %w", err)
	}
	if evals > 0 {
		ev := fedeval.Cost(s.evaluationParams(time.Time{}))
		ev.Steps = evals
		if err := l.Add(ev); err != nil {
			return 0, fmt.Errorf("plan noise: evaluations: %w", err)
		}
	}
	z, err = l.NoiseMultiplierAfter(mp.EpsilonCap, mp.Delta, s.rc().SamplingRate, s.rc().PlannedRounds*s.rc().StepsPerRound)
	if err != nil {
		return 0, fmt.Errorf("plan noise for ε %v at δ %v: %w", mp.EpsilonCap, mp.Delta, err)
	}
	z = max(z, mp.MinNoiseMultiplier)
	s.mu.Lock()
	s.noise[key] = z
	s.mu.Unlock()
	return z, nil
}

// merchantPlan completes a round's shared plan with merchant mp's noise, clip and δ.
func (s *Service) merchantPlan(shared protocol.TrainingPlan, mp policies.MerchantPolicy) (protocol.TrainingPlan, error) {
	z, err := s.planNoise(mp)
	if err != nil {
		return protocol.TrainingPlan{}, err
	}
	p := shared
	p.Cutoffs = slices.Clone(shared.Cutoffs)
	p.NoiseMultiplier, p.ClipNorm, p.Delta = z, mp.ClipNorm, mp.Delta
	return p, nil
}

// CurrentRound returns the latest round as merchantID sees it: whether it was
// sampled, the base model, and its training plan under its own policy.
func (s *Service) CurrentRound(ctx context.Context, merchantID string) (protocol.Round, error) {
	mp, err := s.pol().Merchant(merchantID)
	if err != nil {
		return protocol.Round{}, fmt.Errorf("current round: %w: %w", ErrPolicy, err)
	}
	var rr RoundRecord
	var model ModelRecord
	var ps []staged
	err = s.store.InTx(ctx, func(tx Tx) error {
		ps = nil
		m, err := tx.Merchant(ctx, merchantID)
		if err != nil {
			return err
		}
		if m.Revoked {
			return fmt.Errorf("%w: merchant %s is revoked", ErrPolicy, merchantID)
		}
		if m.Stopped != "" && !s.now().Before(m.StoppedAt.Add(MinStoppedFor)) {
			// It asks for rounds again: sample it from the next round on.
			// Within MinStoppedFor of its stop it stays stopped, with no
			// change and no entry: each resume and stop is audited.
			// The entry is staged with the change (the outbox, as for a
			// stop): a resume that took effect is audited even if the log
			// cannot take the entry right now.
			if err := tx.SetMerchantStopped(ctx, merchantID, "", time.Time{}); err != nil {
				return err
			}
			rec := audit.Record{Actor: "merchant:" + merchantID, Action: "merchant.resume", Object: "merchant", Outcome: audit.OutcomeOK,
				Identifiers: map[string]string{"merchant": merchantID}}
			p, err := stage(ctx, tx, "merchant.resume/"+merchantID+"/"+randomSuffix(), rec, s.now().UTC())
			if err != nil {
				return err
			}
			ps = []staged{p}
		}
		if rr, err = tx.LatestRound(ctx); err != nil {
			return err
		}
		model, err = tx.Model(ctx, rr.BaseVersion)
		return err
	})
	if err != nil {
		return protocol.Round{}, fmt.Errorf("current round: %w", err)
	}
	if err := s.flush(ctx, ps); err != nil {
		return protocol.Round{}, fmt.Errorf("current round: %w", err)
	}
	if model.Withdrawn {
		// The round trains from a version rolled back while it runs: no
		// merchant gets it to train on (the round's version would be
		// withdrawn at publication anyway).
		return protocol.Round{}, fmt.Errorf("current round %s: %w", rr.ID, withdrawnError(model))
	}
	plan, err := s.merchantPlan(rr.Plan, mp)
	if err != nil {
		return protocol.Round{}, fmt.Errorf("current round: %w", err)
	}
	return protocol.Round{
		ID: rr.ID, Seq: rr.Seq, State: rr.State, OpenedAt: rr.OpenedAt, Deadline: rr.Deadline,
		Quorum: rr.Quorum, Selected: slices.Contains(rr.Selected, merchantID),
		BaseVersion: rr.BaseVersion, Model: model.Model, Plan: plan,
		Recipient: s.keys.Recipient, PolicyHash: s.pol().Hash(),
	}, nil
}

// Models returns every model version (without model bytes), marking the active one.
func (s *Service) Models(ctx context.Context) ([]protocol.ModelVersion, error) {
	var ms []ModelRecord
	var active int
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		if active, err = tx.ActiveVersion(ctx); err != nil {
			return err
		}
		ms, err = tx.Models(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	out := make([]protocol.ModelVersion, len(ms))
	for i, m := range ms {
		out[i] = m.ModelVersion
		out[i].Active = m.Version == active
	}
	return out, nil
}

const (
	// DefaultModelLimit is the page size of ModelPage when none is given.
	DefaultModelLimit = 100
	// MaxModelLimit is the largest page ModelPage returns.
	MaxModelLimit = 1000
)

// ModelPage returns at most limit model versions above after (without model
// bytes, oldest first, the active one marked) and the cursor of the next
// page: the last version returned, or 0 when no version follows. A limit of
// 0 is DefaultModelLimit; one outside 0..MaxModelLimit, or a negative after,
// is an error.
func (s *Service) ModelPage(ctx context.Context, after int64, limit int) ([]protocol.ModelVersion, int64, error) {
	if limit == 0 {
		limit = DefaultModelLimit
	}
	if limit < 0 || limit > MaxModelLimit {
		return nil, 0, fmt.Errorf("model page: limit %d not in 1..%d", limit, MaxModelLimit)
	}
	if after < 0 {
		return nil, 0, fmt.Errorf("model page: after %d < 0", after)
	}
	var ms []ModelRecord
	var active int
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		if active, err = tx.ActiveVersion(ctx); err != nil {
			return err
		}
		// One more than the page tells whether another page follows.
		ms, err = tx.ModelsAfter(ctx, after, limit+1)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("model page after %d: %w", after, err)
	}
	var next int64
	if len(ms) > limit {
		ms = ms[:limit]
		next = int64(ms[limit-1].Version)
	}
	out := make([]protocol.ModelVersion, len(ms))
	for i, m := range ms {
		out[i] = m.ModelVersion
		out[i].Active = m.Version == active
	}
	return out, next, nil
}

// Model returns a model version with its model file; version 0 is the active one.
func (s *Service) Model(ctx context.Context, version int) (protocol.ModelVersion, error) {
	if version < 0 {
		return protocol.ModelVersion{}, fmt.Errorf("model %d: %w", version, ErrNotFound)
	}
	var m ModelRecord
	var active int
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		if active, err = tx.ActiveVersion(ctx); err != nil {
			return err
		}
		v := version
		if v == 0 {
			v = active
		}
		m, err = tx.Model(ctx, v)
		return err
	})
	if err == nil && m.Withdrawn {
		err = withdrawnError(m)
	}
	if err != nil {
		return protocol.ModelVersion{}, fmt.Errorf("model %d: %w", version, err)
	}
	mv := m.ModelVersion
	mv.Active = mv.Version == active
	return mv, nil
}

// Rollback makes version the active model on behalf of actor (admin); later
// rounds train from it. The action is audited whether it succeeds or not.
func (s *Service) Rollback(ctx context.Context, actor string, version int) error {
	var prev int
	var ps []staged
	rec := audit.Record{
		Actor: actor, Action: "model.rollback", Object: "model/" + strconv.Itoa(version), Outcome: audit.OutcomeOK,
	}
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		ps = nil
		if prev, err = tx.ActiveVersion(ctx); err != nil {
			return err
		}
		if _, err := tx.Model(ctx, version); err != nil {
			return err
		}
		now := s.now().UTC()
		id := "model.rollback/" + strconv.Itoa(version) + "/" + randomSuffix()
		withdrawn, restored, err := withdraw(ctx, tx, prev, version, now, id)
		if err != nil {
			return err
		}
		if err := tx.SetActiveVersion(ctx, version); err != nil {
			return err
		}
		rec.Details = map[string]string{"from": strconv.Itoa(prev), "to": strconv.Itoa(version)}
		if len(withdrawn) > 0 {
			rec.Details["withdrawn"] = joinVersions(withdrawn)
		}
		if restored {
			rec.Details["restored"] = strconv.Itoa(version)
		}
		// An open round training from a version withdrawn here is cancelled
		// with it (the next round opens on version): every update it still
		// accepted would be charged for a version withdrawn at birth.
		// Updates it accepted before stay charged; they were released.
		cancelled, cps, err := s.cancelWithdrawnRound(ctx, tx, withdrawn, actor, version, now)
		if err != nil {
			return err
		}
		if cancelled != "" {
			rec.Details["cancelled_round"] = cancelled
		}
		p, err := stage(ctx, tx, id, rec, now)
		ps = append([]staged{p}, cps...)
		return err
	})
	if err != nil {
		err = fmt.Errorf("rollback to %d: %w", version, err)
		rec.Outcome, rec.Reason = outcomeOf(err), err.Error()
		rec.Details = map[string]string{"from": strconv.Itoa(prev), "to": strconv.Itoa(version)}
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			return fmt.Errorf("rollback to %d: %w", version, aerr)
		}
		return err
	}
	if err := s.flush(ctx, ps); err != nil {
		return fmt.Errorf("rollback to %d: %w", version, err)
	}
	return nil
}

// cancelWithdrawnRound cancels, in the transaction of a rollback to version
// by actor, the latest round if it is open or collecting and trains from one
// of the versions the rollback withdrew; it returns the cancelled round's id
// and the cancellation's staged entries ("" and none when no round was
// cancelled).
func (s *Service) cancelWithdrawnRound(ctx context.Context, tx Tx, withdrawn []int, actor string, version int, now time.Time) (string, []staged, error) {
	if len(withdrawn) == 0 {
		return "", nil, nil
	}
	r, err := tx.LatestRound(ctx)
	if errors.Is(err, ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if !slices.Contains(withdrawn, r.BaseVersion) {
		return "", nil, nil
	}
	if r, err = tx.Round(ctx, r.ID, LockUpdate); err != nil {
		return "", nil, err
	}
	if r.State != protocol.RoundOpen && r.State != protocol.RoundCollecting {
		return "", nil, nil
	}
	why := fmt.Sprintf("cancelled by %s: the rollback to version %d withdrew version %d, which the round trains from", actor, version, r.BaseVersion)
	ps, _, err := s.cancel(ctx, tx, r, actor, why, now)
	return r.ID, ps, err
}

// RoundCounts returns how many rounds are in each state (for metrics).
func (s *Service) RoundCounts(ctx context.Context) (map[protocol.RoundState]int, error) {
	var out map[protocol.RoundState]int
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		out, err = tx.RoundCounts(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("round counts: %w", err)
	}
	return out, nil
}

// Budgets returns every enrolled merchant's ledger summary against its cap:
// ε is the ledger's at the δ in force, recomputed from its releases. The
// head's stored ε is at the δ of its last debit, which a reload may have
// changed since (a smaller δ: a larger ε than the one stored). A merchant no
// longer in the policy keeps the stored ε, with no cap or δ.
func (s *Service) Budgets(ctx context.Context) ([]Budget, error) {
	pol := s.pol()
	var heads []BudgetHead
	ledgers := map[string][]dp.Release{}
	err := s.store.InTx(ctx, func(tx Tx) (err error) {
		clear(ledgers)
		if heads, err = tx.Budgets(ctx); err != nil {
			return err
		}
		for _, h := range heads {
			if _, err := pol.Merchant(h.Merchant); err != nil || h.Releases == 0 {
				continue
			}
			groups, ok := s.acct.summary(h.Merchant, h.Version)
			if !ok {
				rows, err := tx.Ledger(ctx, h.Merchant)
				if err != nil {
					return err
				}
				if len(rows) != h.Releases {
					return fmt.Errorf("ledger of %s has %d rows, its head says %d", h.Merchant, len(rows), h.Releases)
				}
				if groups, err = summarize(rows); err != nil {
					return err
				}
				s.acct.remember(h.Merchant, ledgerSummary{version: h.Version, groups: slices.Clone(groups)})
			}
			ledgers[h.Merchant] = groups
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	out := make([]Budget, 0, len(heads))
	for _, h := range heads {
		b := Budget{Merchant: h.Merchant, Epsilon: h.Epsilon, Releases: h.Releases, LastRelease: h.LastRelease}
		if mp, err := pol.Merchant(h.Merchant); err == nil {
			b.Cap, b.Delta = mp.EpsilonCap, mp.Delta
			if groups := ledgers[h.Merchant]; len(groups) > 0 {
				if b.Epsilon, err = s.acct.epsilon(groups, mp.Delta); err != nil {
					return nil, fmt.Errorf("budgets: ε of %s: %w", h.Merchant, err)
				}
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// outcomeOf maps an error to the audit outcome: refusals are denied, the
// rest are errors.
func outcomeOf(err error) audit.Outcome {
	for _, e := range refusals {
		if errors.Is(err, e) {
			return audit.OutcomeDenied
		}
	}
	return audit.OutcomeError
}

// appendAudit appends rec on a context detached from the caller's
// cancellation, so an entry is not lost because a client went away.
func (s *Service) appendAudit(ctx context.Context, rec audit.Record) error {
	_, err := s.appendAuditSeq(ctx, rec)
	return err
}

// appendAuditSeq is appendAudit returning the entry's seq.
func (s *Service) appendAuditSeq(ctx context.Context, rec audit.Record) (uint64, error) {
	rec = loggableRecord(rec)
	e, err := s.audit.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrAudit, err)
	}
	s.logAction(ctx, rec)
	return e.Seq, nil
}

// logAction logs one info line per audited action: round transitions,
// accepted and refused updates, enrolments, reloads, rollbacks.
func (s *Service) logAction(ctx context.Context, rec audit.Record) {
	attrs := []slog.Attr{slog.String("actor", rec.Actor), slog.String("object", rec.Object), slog.String("outcome", string(rec.Outcome))}
	if rec.Reason != "" {
		attrs = append(attrs, slog.String("reason", rec.Reason))
	}
	if m := rec.Identifiers["merchant"]; m != "" {
		attrs = append(attrs, slog.String("merchant", m))
	}
	keys := make([]string, 0, len(rec.Details))
	for k := range rec.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, rec.Details[k]))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, rec.Action, attrs...)
}

// RevokeToken makes the API token jti refused until expiresAt (a verifier
// re-checks the store at least every auth.DefaultRevocationTTL) and records
// who did it in the audit log: the revocation and its audit record commit in
// one transaction (the record through the outbox), so neither exists without
// the other. The token id is an audit identifier, stored as its HMAC.
func (s *Service) RevokeToken(ctx context.Context, actor, jti string, expiresAt time.Time) error {
	now := s.now().UTC()
	rec := audit.Record{
		Actor: actor, Action: "token.revoke", Object: "token", Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"token": jti},
		Details:     map[string]string{"expires_at": expiresAt.UTC().Format(time.RFC3339)},
	}
	var err error
	switch {
	case jti == "":
		err = fmt.Errorf("revoke token: %w: empty token id", ErrPolicy)
	case !expiresAt.After(now):
		err = fmt.Errorf("revoke token: %w: expiry %s is not in the future (an expired token is refused anyway)", ErrPolicy, expiresAt.UTC().Format(time.RFC3339))
	}
	var ps []staged
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := tx.RevokeToken(ctx, jti, expiresAt); err != nil {
				return err
			}
			p, err := stage(ctx, tx, fmt.Sprintf("token/%s/revoke/%d", jti, now.UnixNano()), rec, now)
			ps = []staged{p}
			return err
		})
	}
	if err != nil {
		rec.Outcome, rec.Reason = outcomeOf(err), err.Error()
		if aerr := s.appendAudit(ctx, rec); aerr != nil {
			return fmt.Errorf("revoke token: %w", aerr)
		}
		return err
	}
	if err := s.flush(ctx, ps); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// checkModes checks what the round configuration and the policy ask of each
// other, at start and at every reload: secure aggregation needs the policy's
// min_cohort (the honest merchants whose noise the guarantee counts on), and
// does not run the policy's scheduled evaluations (a secure round carries one
// DP step; federated evaluation is a plain-mode histogram).
func checkModes(cfg *RoundConfig, p *policies.Policy) error {
	if !cfg.SecureAggregation {
		return nil
	}
	if p.Aggregation().MinCohort < 2 {
		return errors.New("rounds.secure_aggregation needs the policy's aggregation.min_cohort (the honest merchants whose noise the guarantee counts on), ≥ 2")
	}
	if _, ok := p.Retraining(); ok {
		return errors.New("rounds.secure_aggregation does not run the policy's retraining block (its scheduled evaluations are plain-mode DP histograms): remove one of them")
	}
	return nil
}
