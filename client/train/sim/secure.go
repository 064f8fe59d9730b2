package sim

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// SecureOptions configures FederateSecure.
type SecureOptions struct {
	// Rounds is the number of rounds; each is one DP-SGD step of the global model.
	Rounds int
	// SamplingRate is the Poisson rate at which each customer enters a round;
	// ClipNorm bounds one customer's gradient; LearningRate and L2 (a ridge on
	// the feature weights) make the server's step.
	SamplingRate, ClipNorm, LearningRate, L2 float64
	// Epsilon and Delta are each merchant's budget over the whole run, which
	// also pays for its customer count.
	Epsilon, Delta float64
	// CountNoise is the σ of the customer count each merchant releases once
	// (0: 50, as in plain mode); the server divides each round's sum by q
	// times the sum of the counts.
	CountNoise float64
	// MinCohort is the number of merchants whose honest noise shares the
	// guarantee counts on (0: those that do not drop out): each adds
	// 1/MinCohort of the noise, and no round with fewer survivors is unmasked.
	MinCohort int
	// Dropout is the share of merchants that, in every round, drop out after
	// sharing their keys and before sending their masked input.
	Dropout float64
	// The neighbour graph (secagg.ChooseDegree, failure 1e-9) tolerates
	// Tolerate of the merchants dropping out (0: the larger of Dropout and 0.1)
	// and Colluders of them colluding with the aggregator (0: 0.1).
	Tolerate, Colluders float64
	// Seed seeds the public round seeds and the choice of dropouts (never the
	// customers' sampling or the noise, which come from crypto/rand).
	Seed uint64

	// noiseless encodes without the noise shares, for tests of the exact sum;
	// tamper, when set, alters merchant m's encoding before it is masked (a
	// misbehaving merchant, for tests of the norm check).
	noiseless bool
	tamper    func(m int, enc []uint32)
}

// DefaultSecureOptions is the secure-mode plan for the CDNOW scenarios: ε = 1
// at δ = 1e-6 per merchant over 15 rounds of one step at q = 0.2, clip 1,
// server learning rate 2. Chosen on the cdnow-100 validation cutoff
// (TestSecureExplore with VAL=1), where 15 rounds at q = 0.2, 20 and 30 at
// 0.05, 30 at 0.1 and 100 at 0.05 all scored AUC@30 0.819–0.820 (60 at 0.05:
// 0.817; learning rate 4: 0.803): the fewest rounds cost the least protocol.
func DefaultSecureOptions() SecureOptions {
	return SecureOptions{Rounds: 15, SamplingRate: 0.2, ClipNorm: 1, LearningRate: 2, Epsilon: 1, Delta: 1e-6}
}

// SecureResult is the outcome of FederateSecure.
type SecureResult struct {
	FedResult
	// Plan is the distributed-DP encoding and its cost (the same every round
	// but for the rotation seed).
	Plan distributed.Plan
	// Degree and Threshold are the secure aggregation's neighbour graph.
	Degree, Threshold int
	// Dropouts counts the merchants that dropped out, summed over rounds.
	Dropouts int
	// Rejected counts the rounds whose decoded sum failed the norm check
	// (normBound) and was not applied.
	Rejected int
	// SecAggSeconds is the time spent in the secure-aggregation protocol (all
	// merchants and the server, in this process); ClientBytes and ServerBytes
	// the protocol's messages, summed over rounds.
	SecAggSeconds            float64
	ClientBytes, ServerBytes int

	// lastDropped are the merchants that dropped out in the last round,
	// lastAttested the secagg ids that attested its unmask request;
	// divisor is the sum of the released customer counts.
	lastDropped  []int
	lastAttested []uint32
	divisor      float64
}

// FederateSecure trains the global model with secure aggregation and
// distributed DP. Each merchant first releases its customer count (Gaussian,
// σ = CountNoise). Every round each merchant Poisson-samples its customers,
// computes each sampled customer's gradient at the global model, and encodes
// their sum with its share of discrete Gaussian noise (distributed.Encode:
// clip, rotate, round, noise, mod 2^b); the merchants' encodings are summed by
// SecAgg+ (secagg.InProcess, Dropout of them leaving after masking); the
// server decodes the sum, divides it by q times the sum of the released
// counts and steps. Multi-step local training is not possible here: the noise
// is on the sum of one step's gradients, so a round is one step. Each
// merchant's ε covers its count and every round (distributed.MakePlan with the
// count already spent).
func (d *Data) FederateSecure(ctx context.Context, opt SecureOptions) (SecureResult, error) {
	fail := func(err error) (SecureResult, error) { return SecureResult{}, fmt.Errorf("federate securely: %w", err) }
	merchants := len(d.Train)
	switch {
	case opt.Rounds < 1:
		return fail(fmt.Errorf("rounds %d, want ≥ 1", opt.Rounds))
	case merchants < 2:
		return fail(fmt.Errorf("%d merchants, want ≥ 2", merchants))
	case !(opt.Dropout >= 0 && opt.Dropout < 1):
		return fail(fmt.Errorf("dropout %v, want [0, 1)", opt.Dropout))
	}
	dropping := int(math.Floor(opt.Dropout * float64(merchants)))
	if opt.MinCohort == 0 {
		opt.MinCohort = merchants - dropping
	}
	if merchants-dropping < opt.MinCohort {
		return fail(fmt.Errorf("%d of %d merchants dropping leave fewer than the min cohort %d", dropping, merchants, opt.MinCohort))
	}
	global, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		return fail(err)
	}
	if opt.CountNoise == 0 {
		opt.CountNoise = 50
	}
	// Each merchant releases its customer count once with Gaussian noise (the
	// plain mode's count); the server's divisor is the sum of the releases.
	counter, err := dp.NewVectorGaussian(dp.GaussianOptions{Clip: 1, NoiseMultiplier: opt.CountNoise})
	if err != nil {
		return fail(err)
	}
	spent, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return fail(err)
	}
	if err := spent.Add(counter.Release(1)); err != nil {
		return fail(err)
	}
	groups := make([][][]feature.Row, merchants)
	total, counted := 0, 0.0
	for m, rows := range d.Train {
		groups[m] = train.GroupByCustomer(rows)
		total += len(groups[m])
		c := []float64{float64(len(groups[m]))}
		if err := counter.AddNoise(c); err != nil {
			return fail(err)
		}
		counted += c[0]
	}
	// MaxCustomers bounds the modulus, not the privacy: the simulation knows
	// the true total; a deployment takes the policy's bound.
	plan, err := distributed.MakePlan(distributed.PlanOptions{
		Dim: len(global.Params), Clip: opt.ClipNorm, MinCohort: opt.MinCohort,
		MaxCohort: merchants, MaxCustomers: total, Spent: spent,
		SamplingRate: opt.SamplingRate, Steps: opt.Rounds, Epsilon: opt.Epsilon, Delta: opt.Delta,
	})
	if err != nil {
		return fail(err)
	}
	if opt.Tolerate == 0 {
		opt.Tolerate = max(opt.Dropout, 0.1)
	}
	if opt.Colluders == 0 {
		opt.Colluders = 0.1
	}
	degree, threshold, err := secagg.ChooseDegree(merchants, opt.Tolerate, opt.Colluders, 1e-9)
	if err != nil {
		return fail(err)
	}
	res := SecureResult{Plan: plan, Degree: degree, Threshold: threshold, divisor: max(counted, 1)}
	ids := make([]uint32, merchants)
	for m := range ids {
		ids[m] = uint32(m + 1) // secagg ids are non-zero
	}
	var sampleSeed [32]byte
	_, _ = crand.Read(sampleSeed[:]) // never fails since Go 1.24
	sampler := rand.New(rand.NewChaCha8(sampleSeed))
	public := rand.New(rand.NewPCG(opt.Seed, 0x73656361676721))
	H := global.Horizon
	p := global.Params
	grad := make([]float64, len(p))
	for r := range opt.Rounds {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		params := plan.Params
		params.Seed = roundSeed(opt.Seed, r)
		inputs := make(map[uint32][]uint32, merchants)
		for m := range merchants {
			var contrib [][]float64
			for _, g := range groups[m] {
				if sampler.Float64() >= opt.SamplingRate {
					continue
				}
				clear(grad)
				if _, err := global.CustomerLoss(g, grad); err != nil {
					return fail(fmt.Errorf("round %d: merchant %d: %w", r, m, err))
				}
				if dp.CheckFinite(grad) != nil {
					continue // contributes nothing, as in dp.SGD: whether a merchant sends never depends on one customer
				}
				contrib = append(contrib, slices.Clone(grad))
			}
			encode := distributed.Encode
			if opt.noiseless {
				encode = distributed.EncodeWithoutNoise
			}
			if inputs[ids[m]], err = encode(ctx, contrib, params); err != nil {
				return fail(fmt.Errorf("round %d: merchant %d: %w", r, m, err))
			}
			if opt.tamper != nil {
				opt.tamper(m, inputs[ids[m]])
			}
		}
		drop := make(map[uint32]secagg.Dropout, dropping)
		res.lastDropped = public.Perm(merchants)[:dropping]
		for _, m := range res.lastDropped {
			drop[ids[m]] = secagg.DropMask
		}
		// The consistency check, as every live round runs it
		// (secureplan.Decode): the sum is the same, the bytes and time are
		// the protocol's. The adverts are not signed: the merchants here
		// have no enrolled keys, and the signatures change no message but
		// the advert's 64 bytes.
		cfg := secagg.Config{
			Seed: params.Seed, Clients: ids, Degree: degree, Threshold: threshold,
			MinSurvivors: max(threshold, opt.MinCohort), Bits: params.Bits, Length: params.PaddedDim(),
			Consistency: true,
		}
		start := time.Now()
		out, err := secagg.InProcess(ctx, cfg, secagg.InProcessOptions{Inputs: inputs, Drop: drop})
		res.SecAggSeconds += time.Since(start).Seconds()
		if err != nil {
			return fail(fmt.Errorf("round %d: %w", r, err))
		}
		res.Dropouts += len(out.Dropouts)
		res.lastAttested = out.Attested
		res.ClientBytes += out.ClientBytes
		res.ServerBytes += out.ServerBytes
		sum, err := distributed.DecodeSum(out.Sum, params)
		if err != nil {
			return fail(fmt.Errorf("round %d: %w", r, err))
		}
		if l2(sum) > normBound(plan, opt.SamplingRate, counted, opt.CountNoise, merchants, len(out.Survivors)) {
			res.Rejected++ // the server cannot see who: it skips the round
			continue
		}
		scale := 1 / (opt.SamplingRate * res.divisor)
		for j := range p {
			g := sum[j] * scale
			if j >= H {
				g += opt.L2 * p[j] // data-independent ridge: no privacy cost
			}
			p[j] -= opt.LearningRate * g
		}
		if err := dp.CheckFinite(p); err != nil {
			return fail(fmt.Errorf("round %d: diverged: %w", r, err))
		}
	}
	res.Model = global
	res.NoiseMultiplier = plan.NoiseMultiplier
	res.Epsilon = make([]float64, merchants)
	for m := range res.Epsilon {
		res.Epsilon[m] = plan.Epsilon
	}
	if len(d.Test) > 0 { // a benchmark's data has none
		if res.Pooled, err = d.Evaluate(global, -1); err != nil {
			return fail(err)
		}
	}
	return res, nil
}

// normBound is the largest L2 norm an honest round's decoded sum can have,
// but with negligible probability: the sampled customers, at most
// K = qN + 10√(qN) + 10 with N the counts' sum plus 10 of its noise's standard
// deviations, each contributing at most γ·Δ₂ (a clipped gradient after
// rounding); plus the noise of the survivors' shares, whose norm over the
// padded dimension d stays below √v·(√d + 10) for a per-coordinate variance v
// (sub-Gaussian concentration). The server checks the aggregate against it,
// the only robustness check it can make on a sum it cannot take apart: a
// merchant that inflates its encoding by more than the slack is caught, not
// identified, and the round is dropped.
func normBound(plan distributed.Plan, q, counted, countNoise float64, merchants, survivors int) float64 {
	n := counted + 10*countNoise*math.Sqrt(float64(merchants))
	k := q*n + 10*math.Sqrt(q*n) + 10
	v := plan.NoiseStd * plan.NoiseStd * float64(survivors) / float64(plan.Release.Cohort)
	return k*plan.Params.Gamma*plan.Params.NormBound() + math.Sqrt(v)*(math.Sqrt(float64(plan.Params.PaddedDim()))+10)
}

// roundSeed is round r's public seed: it fixes the rotation and the
// neighbour graph and separates the round's key derivations.
func roundSeed(seed uint64, r int) [32]byte {
	var b [8 + 8 + 24]byte
	copy(b[:24], "kairos sim secure round\x00")
	binary.BigEndian.PutUint64(b[24:], seed)
	binary.BigEndian.PutUint64(b[32:], uint64(r))
	return sha256.Sum256(b[:])
}

// SecureReport is the secure-aggregation part of a scenario report.
type SecureReport struct {
	Rounds       int     `json:"rounds"`
	SamplingRate float64 `json:"sampling_rate"`
	MinCohort    int     `json:"min_cohort"`
	// NoiseMultiplier is the noise of the cohort's sum over the clip norm;
	// Bits and Gamma the modulus exponent and grid step of the encoding.
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Bits            int     `json:"bits"`
	Gamma           float64 `json:"gamma"`
	// Release is the ledger entry each merchant is debited (dp.DDGauss).
	Release dp.Release `json:"release"`
	// Degree and Threshold are the neighbour graph's; Dropouts the merchants
	// that dropped out, summed over rounds.
	Degree    int `json:"degree"`
	Threshold int `json:"threshold"`
	Dropouts  int `json:"dropouts"`
	// Rejected counts rounds whose sum failed the norm check (not applied).
	Rejected int `json:"rejected_rounds"`
	// SecAggSeconds is the protocol's share of the run's time; the bytes are
	// its messages per round, from all merchants and from the server.
	SecAggSeconds       float64 `json:"secagg_seconds"`
	ClientBytesPerRound int     `json:"client_bytes_per_round"`
	ServerBytesPerRound int     `json:"server_bytes_per_round"`
}

// federateScenario runs the scenario's federation: plain (Federate with fed),
// or secure when secure is not nil (FederateSecure, seeded by seed).
func (d *Data) federateScenario(ctx context.Context, fed FedOptions, secure *SecureOptions, seed uint64) (FedResult, *SecureReport, error) {
	if secure == nil {
		fr, err := d.Federate(ctx, fed)
		return fr, nil, err
	}
	o := *secure
	o.Seed = seed
	sr, err := d.FederateSecure(ctx, o)
	if err != nil {
		return FedResult{}, nil, err
	}
	minCohort := sr.Plan.Release.Cohort
	return sr.FedResult, &SecureReport{
		Rounds: o.Rounds, SamplingRate: o.SamplingRate, MinCohort: minCohort,
		NoiseMultiplier: sr.Plan.NoiseMultiplier, Bits: sr.Plan.Params.Bits, Gamma: sr.Plan.Params.Gamma,
		Release: sr.Plan.Release, Degree: sr.Degree, Threshold: sr.Threshold, Dropouts: sr.Dropouts, Rejected: sr.Rejected,
		SecAggSeconds:       sr.SecAggSeconds,
		ClientBytesPerRound: sr.ClientBytes / o.Rounds, ServerBytesPerRound: sr.ServerBytes / o.Rounds,
	}, nil
}
