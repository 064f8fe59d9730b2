// Package server assembles an aggregator from its parts (store, keys,
// policy, audit log and witness, the aggregator service and its HTTP API)
// and serves it. It is the one assembly behind `kairos aggregator serve`,
// the predict and federation benchmarks and the test harnesses, so that what
// they measure and test is what is deployed.
package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance/report"
	"github.com/kairos-fl/kairos/console"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// Options are the parts of an aggregator. Store, Keys and Policy are
// required; every other zero value takes the default that serve uses.
type Options struct {
	// Store is the open, migrated store. It must hold the federation tables
	// (aggregator.Store) as both of Kairos's stores do. The caller closes it
	// after Aggregator.Close.
	Store store.Store
	// Keys are the aggregator's keys: sealing identity, JWT keys, audit HMAC
	// and checkpoint key.
	Keys *keys.Aggregator
	// Policy is the federation policy at start; Reload replaces it.
	Policy *policies.Policy
	// Rounds configures the rounds (aggregator.RoundConfig's defaults).
	Rounds aggregator.RoundConfig
	// Logger receives the service's and the API's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock of the service and the audit log (time.Now when nil).
	Now func() time.Time
	// InitialModel is version 1's model instead of the policy's initial one.
	InitialModel *hazard.Model
	// Envelopes bounds the sealed updates the service opens.
	Envelopes config.Envelopes
	// Limits bound request bodies (api defaults when zero).
	Limits config.Limits
	// Tokens set the merchant token lifetime (api.DefaultMerchantTokenTTL
	// when zero) and the verifier's clock leeway.
	Tokens config.Tokens
	// Audit sets the checkpoint interval (config.DefaultCheckpointInterval
	// when zero; negative: no periodic checkpoints, for a harness that counts
	// them) and the witness file (none when empty).
	Audit config.Audit
	// AuditStore is what the audit log writes through, Store when nil
	// (a benchmark wraps Store in it to time commits).
	AuditStore audit.Store
	// WrapAuditor, when set, wraps the audit log as the predict path's
	// auditor (a benchmark times the waits for durability).
	WrapAuditor func(api.Auditor) api.Auditor
	// Reload serves POST /v1/config:reload (503 when nil); Aggregator.Reload
	// calls it too.
	Reload func(ctx context.Context, svc *aggregator.Service, actor string) (protocol.Reload, error)
	// Source names the store in compliance reports (without a password).
	Source string
}

// Aggregator is an assembled aggregator: the service, its audit log and the
// HTTP API over them.
type Aggregator struct {
	Service *aggregator.Service
	Audit   *audit.Log
	API     *api.Server
	// Issuer signs tokens with the active JWT key; JWKS are the public keys
	// the API's verifier accepts.
	Issuer *auth.Issuer
	JWKS   []auth.PublicKey
	Policy *policies.Policy // at start

	log    *slog.Logger
	source string
	reload func(ctx context.Context, svc *aggregator.Service, actor string) (protocol.Reload, error)

	// auditSrc is the shared audit log FollowReloads reads; followAfter is
	// the last seq it has read, under followMu.
	auditSrc    audit.Store
	followMu    sync.Mutex
	followAfter uint64
}

// New assembles an aggregator: it opens the audit log (checking the stored
// log against its signed checkpoints and the witness, and signing its head),
// creates the service (and the initial model and first round on an empty
// store) and builds the API with the console, the compliance report and the
// token administration on the same sources. Close it to flush the audit log.
func New(ctx context.Context, o Options) (_ *Aggregator, err error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("assemble aggregator: no store")
	case o.Keys == nil || o.Keys.Checkpoint == nil:
		return nil, errors.New("assemble aggregator: no aggregator keys")
	case o.Policy == nil:
		return nil, errors.New("assemble aggregator: no policy")
	}
	fst, ok := o.Store.(aggregator.Store)
	if !ok {
		return nil, fmt.Errorf("assemble aggregator: store %T has no federation tables", o.Store)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxTTL := TokenMaxTTL(o.Policy)
	if limit := maxTTL(auth.RoleMerchant); o.Tokens.MerchantTTL > limit {
		return nil, fmt.Errorf("assemble aggregator: tokens.merchant_ttl %v exceeds %v, the longest merchant token lifetime the policy accepts", o.Tokens.MerchantTTL, limit)
	}
	alog, witness, err := openAuditLog(ctx, log, o)
	if err != nil {
		return nil, fmt.Errorf("assemble aggregator: %w", err)
	}
	defer func() {
		if err != nil {
			_ = alog.Close()
		}
	}()
	svc, err := aggregator.New(ctx, aggregator.Options{
		Store: fst, Policy: o.Policy, Keys: o.Keys, Audit: alog, Logger: log, Now: o.Now, Rounds: o.Rounds,
		MaxSkew: o.Envelopes.MaxSkew, MaxEnvelope: int(o.Limits.MaxEnvelopeBytes),
		RequirePostQuantum: o.Envelopes.RequirePostQuantum, InitialModel: o.InitialModel,
	})
	if err != nil {
		return nil, fmt.Errorf("assemble aggregator: %w", err)
	}
	jwks := PublicKeys(o.Keys)
	verifier, err := auth.NewVerifier(auth.VerifierOptions{
		Keys: jwks, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience,
		Leeway: o.Tokens.Leeway, Revocations: o.Store, MaxTTL: maxTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("assemble aggregator: %w", err)
	}
	issuer, err := Issuer(o.Keys)
	if err != nil {
		return nil, fmt.Errorf("assemble aggregator: %w", err)
	}
	// Reloads made before this replica started are in the files it read.
	head, err := o.Store.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("assemble aggregator: audit head: %w", err)
	}
	a := &Aggregator{Service: svc, Audit: alog, Issuer: issuer, JWKS: jwks, Policy: o.Policy, log: log, source: o.Source, reload: o.Reload,
		auditSrc: o.Store, followAfter: head.Seq}
	var auditor api.Auditor = alog
	if o.WrapAuditor != nil {
		auditor = o.WrapAuditor(alog)
	}
	opts := api.Options{
		Service: svc, Verifier: verifier, Issuer: issuer, JWKS: jwks,
		MerchantTokenTTL: o.Tokens.MerchantTTL,
		MaxEnvelopeBytes: o.Limits.MaxEnvelopeBytes, MaxJSONBytes: o.Limits.MaxJSONBytes,
		MaxInflightBytes: o.Limits.MaxInflightBytes,
		MerchantRate:     o.Limits.MerchantRatePerSecond, MerchantBurst: o.Limits.MerchantBurst,
		OverseerRate: o.Limits.OverseerRatePerSecond, OverseerBurst: o.Limits.OverseerBurst,
		// The store has no ping; a revocation lookup is one cheap indexed query.
		Ready: func(ctx context.Context) error {
			_, err := o.Store.IsTokenRevoked(ctx, "readyz-probe")
			return err
		},
		Merchants: func(id string) error {
			_, err := svc.Policy().Merchant(id)
			return err
		},
		Partners: func(id string) (float64, int, error) {
			pp, err := svc.Policy().Partner(id)
			return pp.RatePerSecond, pp.Burst, err
		},
		Logger: log,
		Audit:  o.Store,
		// Predictions are audited in the same log and answered only once their entry is durable.
		Predict: api.PredictOptions{Audit: auditor, MayQuery: func(partner, merchant string) bool { return svc.Policy().MayQuery(partner, merchant) }},
		// The web console at /console/ and the routes it reads.
		Status: svc, TokenAudit: svc, TokenMaxTTL: maxTTL, Console: console.Handler(),
		Rounds: svc, RoundCounts: svc, Revoker: svc,
		Reports: reports{svc: svc, src: report.Sources{Store: fst, Audit: o.Store,
			CheckpointKey: o.Keys.Checkpoint.Public().(ed25519.PublicKey), Source: o.Source}},
	}
	if witness != nil {
		opts.Witness = witness.Checkpoints
	}
	if o.Reload != nil {
		opts.Reload = a.Reload
	}
	if a.API, err = api.NewServer(opts); err != nil {
		return nil, fmt.Errorf("assemble aggregator: %w", err)
	}
	return a, nil
}

// Reload runs the Reload of the Options on the service (ErrNoReload
// without one).
func (a *Aggregator) Reload(ctx context.Context, actor string) (protocol.Reload, error) {
	if a.reload == nil {
		return protocol.Reload{}, ErrNoReload
	}
	return a.reload(ctx, a.Service, actor)
}

// ErrNoReload is Reload's answer when the aggregator was assembled without
// a way to reload.
var ErrNoReload = errors.New("this aggregator cannot reload its configuration")

// Close flushes and closes the audit log.
func (a *Aggregator) Close() error {
	if err := a.Audit.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// reports hands the API the compliance report's sources with the policy in
// force (reloaded without a restart), so that GET /v1/report and the budget
// charts answer from the same code as `kairos compliance report`.
type reports struct {
	svc *aggregator.Service
	src report.Sources
}

var _ api.ComplianceReporter = reports{}

func (r reports) ReportSources() report.Sources {
	src := r.src
	src.Policy = r.svc.Policy()
	return src
}

// openAuditLog opens the audit log, pushing checkpoints to the witness file
// when one is configured. audit.New refuses a stored log that disagrees with
// a signed checkpoint (in the store or the witness) and signs the head.
func openAuditLog(ctx context.Context, log *slog.Logger, o Options) (*audit.Log, *audit.FileWitness, error) {
	interval := o.Audit.CheckpointInterval
	switch {
	case interval == 0:
		interval = config.DefaultCheckpointInterval
	case interval < 0:
		interval = 0 // audit: none
	}
	st := o.AuditStore
	if st == nil {
		st = o.Store
	}
	opts := audit.Options{Store: st, HMACKey: o.Keys.AuditHMAC, SigningKey: o.Keys.Checkpoint, CheckpointInterval: interval, Now: o.Now}
	var w *audit.FileWitness
	if o.Audit.Witness != "" {
		var err error
		if w, err = audit.NewFileWitness(o.Audit.Witness, o.Keys.Checkpoint.Public().(ed25519.PublicKey)); err != nil {
			return nil, nil, fmt.Errorf("audit.witness: %w", err)
		}
		opts.Witness = w
		opts.WitnessFailed = func(err error) {
			log.Warn("audit witness push failed; retried with the next checkpoint", "witness", o.Audit.Witness, "err", err)
		}
	}
	l, err := audit.New(ctx, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("open audit log: %w", err)
	}
	return l, w, nil
}

// PublicKeys are the public halves of the aggregator's JWT keys, as the API
// serves them at /.well-known/jwks.json.
func PublicKeys(a *keys.Aggregator) []auth.PublicKey {
	pubs := make([]auth.PublicKey, 0, len(a.JWT))
	for _, k := range a.JWT {
		pubs = append(pubs, auth.PublicKey{ID: k.ID, Key: k.Private.Public().(ed25519.PublicKey)})
	}
	return pubs
}

// Issuer signs tokens with the aggregator's active JWT key.
func Issuer(a *keys.Aggregator) (*auth.Issuer, error) {
	active, err := a.Active()
	if err != nil {
		return nil, err
	}
	return auth.NewIssuer(auth.IssuerOptions{Key: auth.SigningKey{ID: active.ID, Private: active.Private}})
}

// TokenMaxTTL is the bound on token lifetimes under policy: its
// tokens.max_ttl for a role it names, auth.DefaultMaxTTL for the others. The
// aggregator's verifier refuses a longer-lived token.
func TokenMaxTTL(policy *policies.Policy) func(auth.Role) time.Duration {
	return func(r auth.Role) time.Duration {
		if d, ok := policy.MaxTokenTTL(string(r)); ok {
			return d
		}
		return auth.DefaultMaxTTL(r)
	}
}
