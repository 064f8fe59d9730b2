// Package policies reads a federation's privacy and access policy: the
// differential-privacy budget and training limits of every merchant (set as
// defaults, overridden per region and per merchant), the robust merge the
// aggregator uses, and what each partner app may query at what rate.
//
// A policy file is YAML:
//
//	version: 1
//	federation: cdnow-demo
//	defaults:                       # every key required here
//	  epsilon_cap: 1.0              # lifetime ε per merchant, > 0
//	  delta: 1e-6                   # 0 < δ ≤ MaxDelta and δ < 1/min_customers_per_update
//	  min_noise_multiplier: 0.5     # σ/C floor, ≥ 0
//	  clip_norm: 1.0                # per-customer L2 clip, > 0
//	  min_customers_per_update: 100 # ≥ 1
//	  allowed_features: [all]       # or feature names (data minimisation)
//	  retention_days: 365           # raw-data retention at the client, ≥ 1
//	  max_customers: 50000          # optional: plausible customers, ≥ 1 (default ⌊1/δ⌋)
//	aggregation:                    # optional; merge defaults to fedavg
//	  merge: trimmed_mean           # fedavg | median | trimmed_mean
//	  trim_fraction: 0.1            # only with trimmed_mean, in (0, 0.5)
//	  norm_bound: 2.5               # L2 bound of an update, > 0 (default: derived from the plan)
//	  max_weight_share: 0.5         # fedavg: largest share of the weight, in (0, 1] (default 0.5)
//	  min_cohort: 10                # secure aggregation: honest merchants the noise counts on, ≥ 2
//	regions:
//	  eu: { epsilon_cap: 0.5 }      # any defaults key
//	merchants:
//	  m1: { region: eu, epsilon_cap: 0.8 }
//	partners:
//	  crm-app: { merchants: [m1], rate_per_second: 50, burst: 100 }
//	tokens:                         # optional: the longest API token lifetime per role
//	  max_ttl: { partner: 720h }    # (tokens.go; the API's default for the others)
//	retraining:                     # optional: scheduled evaluations and campaigns (retraining.go)
//	  { evaluate_every: 30d, auc_drop: 0.02, max_model_age: 90d, campaign_rounds: 10 }
//
// Parsing is strict: unknown or repeated keys, values of the wrong type,
// aliases, and failed checks are reported as "file:line:col: message", all of
// them at once. A merchant's effective rules are defaults, then its region,
// then its own entry. Merchants and partners not in the file get nothing.
//
// The package does no I/O: callers read the file and hand over its bytes.
package policies

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Merge names a robust aggregation rule.
type Merge string

// The merge rules the aggregator implements.
const (
	MergeFedAvg      Merge = "fedavg"
	MergeMedian      Merge = "median"
	MergeTrimmedMean Merge = "trimmed_mean"
)

// AllFeatures is the allowed_features entry that allows every feature.
const AllFeatures = "all"

// Aggregation is the federation-wide merge rule.
type Aggregation struct {
	Merge Merge `json:"merge"`
	// TrimFraction is the fraction trimmed from each end per coordinate;
	// set only for MergeTrimmedMean.
	TrimFraction float64 `json:"trim_fraction"`
	// NormBound is the L2 bound every update is scaled down to before the
	// merge; 0 when the policy gives none (the aggregator then derives one
	// from the round's plan).
	NormBound float64 `json:"norm_bound,omitempty"`
	// MaxWeightShare caps any one update's share of the FedAvg weight; 0 when
	// the policy gives none (DefaultMaxWeightShare applies).
	MaxWeightShare float64 `json:"max_weight_share,omitempty"`
	// MinCohort is, in secure aggregation with distributed DP, the fewest
	// merchants whose honest noise shares every unmasked sum must carry: each
	// merchant adds 1/MinCohort of the noise the target ε needs, and a round
	// with fewer survivors is never unmasked. 0 when the policy gives none
	// (secure aggregation then refuses to plan).
	MinCohort int `json:"min_cohort,omitempty"`
}

// MaxDelta is the largest δ a policy may set, at any level and whatever
// min_customers_per_update says: ε read at a large δ is small for any release
// (the demo's releases are ε = 1 at δ = 1e-6 and 0 at δ ≥ 0.3), so a policy
// with a large δ would make every cap meaningless.
const MaxDelta = 1e-4

// MaxClipNorm and MaxNoiseMultiplier bound clip_norm and min_noise_multiplier
// so that the noise σ = z·C of every release is finite with room to spare:
// features are standardised and per-customer gradients have norms of order
// one to a hundred, so no useful policy comes near either bound.
const (
	MaxClipNorm        = 1e6
	MaxNoiseMultiplier = 1e6
)

// DefaultMaxWeightShare is the largest share of the FedAvg weight one update
// gets when the policy sets no max_weight_share.
const DefaultMaxWeightShare = 0.5

// WeightShareCap is the effective cap on one update's share of the FedAvg weight.
func (a Aggregation) WeightShareCap() float64 {
	if a.MaxWeightShare > 0 {
		return a.MaxWeightShare
	}
	return DefaultMaxWeightShare
}

// MerchantPolicy is one merchant's effective rules.
type MerchantPolicy struct {
	ID     string `json:"id"`
	Region string `json:"region"` // "" when the merchant has none
	// EpsilonCap is the lifetime ε the merchant's data may spend at Delta.
	EpsilonCap float64 `json:"epsilon_cap"`
	Delta      float64 `json:"delta"`
	// MinNoiseMultiplier is the smallest σ/C a release may use.
	MinNoiseMultiplier float64 `json:"min_noise_multiplier"`
	// ClipNorm is the per-customer L2 clipping norm.
	ClipNorm float64 `json:"clip_norm"`
	// MinCustomersPerUpdate is the fewest distinct customers an update may
	// be computed from.
	MinCustomersPerUpdate int `json:"min_customers_per_update"`
	// AllFeatures is true when every feature is allowed; otherwise Features
	// lists the allowed ones, sorted.
	AllFeatures bool     `json:"all_features"`
	Features    []string `json:"features"`
	// RetentionDays is how long the client keeps raw events.
	RetentionDays int `json:"retention_days"`
	// MaxCustomers is the most customers the merchant can plausibly have; 0
	// when the policy gives none (PlausibleCustomers then uses ⌊1/δ⌋).
	MaxCustomers int `json:"max_customers,omitempty"`
}

// PlausibleCustomers is the most customers an update of the merchant may
// claim: max_customers when set, else ⌊1/δ⌋ — with more customers than 1/δ,
// δ no longer bounds the chance that one of them is exposed outright, so the
// policy's δ itself says the merchant has fewer.
func (m MerchantPolicy) PlausibleCustomers() float64 {
	if m.MaxCustomers > 0 {
		return float64(m.MaxCustomers)
	}
	return math.Floor(1 / m.Delta)
}

// AllowsFeature reports whether the merchant may train on feature name.
func (m MerchantPolicy) AllowsFeature(name string) bool {
	if m.AllFeatures {
		return true
	}
	_, ok := slices.BinarySearch(m.Features, name)
	return ok
}

// PartnerPolicy is what one partner app may do.
type PartnerPolicy struct {
	ID string `json:"id"`
	// Merchants it may query, sorted.
	Merchants     []string `json:"merchants"`
	RatePerSecond float64  `json:"rate_per_second"`
	Burst         int      `json:"burst"`
}

// Policy is a parsed and validated federation policy. It is immutable.
type Policy struct {
	version     int
	federation  string
	aggregation Aggregation
	defaults    MerchantPolicy // ID and Region empty
	regions     []string       // sorted names of regions in use
	merchants   map[string]MerchantPolicy
	partners    map[string]PartnerPolicy
	tokenTTL    map[string]time.Duration // tokens.max_ttl as written; nil without it
	retraining  *Retraining              // nil without a retraining block
	hash        string
}

// Sentinel errors of the lookups.
var (
	ErrUnknownMerchant = errors.New("merchant not in policy")
	ErrUnknownPartner  = errors.New("partner not in policy")
)

// Version is the policy format version.
func (p *Policy) Version() int { return p.version }

// Federation is the federation's name.
func (p *Policy) Federation() string { return p.federation }

// Aggregation is the merge rule.
func (p *Policy) Aggregation() Aggregation { return p.aggregation }

// Merchant returns the effective rules of merchant id.
func (p *Policy) Merchant(id string) (MerchantPolicy, error) {
	m, ok := p.merchants[id]
	if !ok {
		return MerchantPolicy{}, fmt.Errorf("policy %s: merchant %q: %w", p.federation, id, ErrUnknownMerchant)
	}
	m.Features = slices.Clone(m.Features)
	return m, nil
}

// Merchants returns the ids of all merchants, sorted.
func (p *Policy) Merchants() []string { return sortedKeys(p.merchants) }

// Partner returns the grant of partner id.
func (p *Policy) Partner(id string) (PartnerPolicy, error) {
	q, ok := p.partners[id]
	if !ok {
		return PartnerPolicy{}, fmt.Errorf("policy %s: partner %q: %w", p.federation, id, ErrUnknownPartner)
	}
	q.Merchants = slices.Clone(q.Merchants)
	return q, nil
}

// Partners returns the ids of all partners, sorted.
func (p *Policy) Partners() []string { return sortedKeys(p.partners) }

// MayQuery reports whether partner may query predictions for merchant.
func (p *Policy) MayQuery(partner, merchant string) bool {
	q, ok := p.partners[partner]
	if !ok {
		return false
	}
	_, ok = slices.BinarySearch(q.Merchants, merchant)
	return ok
}

// Hash identifies the policy's effective content: "sha256:" and the hex
// SHA-256 of a canonical encoding of the version, federation, aggregation,
// every merchant's effective rules and every partner's grant. Reformatting,
// reordering keys, or moving a value between defaults, region and merchant
// without changing any merchant's effective value keeps the hash; changing
// any effective value changes it.
func (p *Policy) Hash() string { return p.hash }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Error is one problem in a policy file, at a 1-based line and column
// (Column 0 when the YAML parser gave only a line).
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Column == 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// ErrorList is every problem found in a policy file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}
