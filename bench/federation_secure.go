package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/model/feature"
)

// SecureRun is the secure-mode measurement of `kairos bench federation
// --secure`: the same merchants and rows, rounds of secure aggregation with
// distributed DP (sim.FederateSecure).
type SecureRun struct {
	Rounds       int     `json:"rounds"`
	SamplingRate float64 `json:"sampling_rate"`
	// RoundSeconds is the mean wall time of a round: every merchant's sampled
	// gradients and encoding, the SecAgg+ protocol of all merchants and the
	// server in this process, decoding and the step.
	RoundSeconds float64 `json:"round_seconds_mean"`
	// SecAggSeconds is the protocol's part of a round (one core: the clients
	// run one after another).
	SecAggSeconds float64 `json:"secagg_seconds_mean"`
	// PlainRoundSeconds is the plain rounds' mean from the same run, and
	// Overhead the ratio of the two means.
	PlainRoundSeconds   float64 `json:"plain_round_seconds_mean"`
	Overhead            float64 `json:"overhead_vs_plain"`
	Degree              int     `json:"degree"`
	Threshold           int     `json:"threshold"`
	Bits                int     `json:"bits"`
	NoiseMultiplier     float64 `json:"noise_multiplier"`
	Epsilon             float64 `json:"epsilon"`
	ClientBytesPerRound int     `json:"client_bytes_per_round"`
	ServerBytesPerRound int     `json:"server_bytes_per_round"`
}

// benchSecureRounds runs o.Rounds secure rounds over the merchants' rows, at
// ε = 1, δ = 1e-6 per merchant over the run, q = 0.05, every merchant's noise
// share counted on (min cohort = all).
func benchSecureRounds(ctx context.Context, progress io.Writer, o FederationOptions, schema feature.Schema, rows [][]feature.Row, plainSeconds []float64) (*SecureRun, error) {
	opt := sim.DefaultSecureOptions()
	opt.Rounds, opt.Seed = o.Rounds, o.Seed
	d := &sim.Data{Schema: schema, Train: rows}
	start := time.Now()
	res, err := d.FederateSecure(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("secure rounds: %w", err)
	}
	run := &SecureRun{
		Rounds: o.Rounds, SamplingRate: opt.SamplingRate,
		RoundSeconds:  time.Since(start).Seconds() / float64(o.Rounds),
		SecAggSeconds: res.SecAggSeconds / float64(o.Rounds),
		Degree:        res.Degree, Threshold: res.Threshold, Bits: res.Plan.Params.Bits,
		NoiseMultiplier: res.Plan.NoiseMultiplier, Epsilon: res.Plan.Epsilon,
		ClientBytesPerRound: res.ClientBytes / o.Rounds, ServerBytesPerRound: res.ServerBytes / o.Rounds,
	}
	for _, s := range plainSeconds {
		run.PlainRoundSeconds += s / float64(len(plainSeconds))
	}
	if run.PlainRoundSeconds > 0 {
		run.Overhead = run.RoundSeconds / run.PlainRoundSeconds
	}
	fmt.Fprintf(progress, "  secure rounds: %.2f s each (SecAgg+ %.2f s), %.2f× plain\n", run.RoundSeconds, run.SecAggSeconds, run.Overhead)
	return run, nil
}

// writeSecureRun adds the secure-mode lines to the bench table.
func writeSecureRun(w io.Writer, s *SecureRun) {
	fmt.Fprintf(w, "secure rounds (SecAgg+, distributed DP)\t%d\t%.2f s each (SecAgg+ %.2f s), %.2f× the plain round's %.2f s\n",
		s.Rounds, s.RoundSeconds, s.SecAggSeconds, s.Overhead, s.PlainRoundSeconds)
	fmt.Fprintf(w, "secure round setup\tdegree %d, threshold %d\t%d bits, noise multiplier %.3f on the sum, ε %.4f; %d B from merchants, %d B from the server per round\n",
		s.Degree, s.Threshold, s.Bits, s.NoiseMultiplier, s.Epsilon, s.ClientBytesPerRound, s.ServerBytesPerRound)
}
