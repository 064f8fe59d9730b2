package sim

import (
	"context"
	"fmt"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/model"
)

// DefaultFedOptions is the configuration tuned on the CDNOW reference split: each
// merchant spends ε = 1 at δ = 1e-6 over 40 rounds of 10 DP-SGD steps at q = 0.05
// and one customer count at σ = 50 (z = 4.70861, as printed by
// `kairos dp noise --epsilon 1 --delta 1e-6 --sampling-rate 0.05 --steps 400 --release q=1,z=50,steps=1`;
// Calibrate finds it to 0.1%), clip norm 1, local SGD at learning rate 0.5, FedAvg
// weighted by the DP customer counts.
func DefaultFedOptions() FedOptions {
	return FedOptions{
		Rounds: 40, Steps: 10, SamplingRate: 0.05, ClipNorm: 1, LearningRate: 0.5,
		Epsilon: 1, Delta: 1e-6, CountNoise: 50,
		Server: ServerFedAvg, Merge: merge.Options{Method: merge.MethodFedAvg},
	}
}

// Options configures Simulate.
type Options struct {
	Data DataOptions
	// Fed configures the federation and, restricted to one merchant, each
	// local-only model (same plan, same budget). Zero value: DefaultFedOptions.
	Fed FedOptions
	// SkipLocal and SkipCentralized leave out the comparison models.
	SkipLocal, SkipCentralized bool
	// Seed seeds the centralized model's training.
	Seed uint64
}

// MerchantReport is one merchant's row of a simulation.
type MerchantReport struct {
	Index     int     `json:"index"`
	Share     float64 `json:"share"`
	Customers int     `json:"customers"`
	// Epsilon is what the merchant spent in the federation, at the run's δ.
	Epsilon float64 `json:"epsilon"`
	// LocalOnly scores the merchant's local-only DP model on the pooled test rows;
	// LocalOnlyOwn on the merchant's own test customers.
	LocalOnly    Scores `json:"local_only"`
	LocalOnlyOwn Scores `json:"local_only_own"`
}

// Report is the outcome of Simulate.
type Report struct {
	Rounds          int              `json:"rounds"`
	Steps           int              `json:"steps"`
	SamplingRate    float64          `json:"sampling_rate"`
	NoiseMultiplier float64          `json:"noise_multiplier"`
	Delta           float64          `json:"delta"`
	TestCustomers   int              `json:"test_customers"`
	Federated       Scores           `json:"federated"`
	Centralized     Scores           `json:"centralized"`
	Merchants       []MerchantReport `json:"merchants"`
}

// LocalOnlyMean is the mean pooled score of the local-only models.
func (r Report) LocalOnlyMean() Scores {
	var s Scores
	if len(r.Merchants) == 0 {
		return s
	}
	for _, m := range r.Merchants {
		s.AUC30 += m.LocalOnly.AUC30
		s.AUC7 += m.LocalOnly.AUC7
		s.PRAUC30 += m.LocalOnly.PRAUC30
		s.Brier30 += m.LocalOnly.Brier30
	}
	n := float64(len(r.Merchants))
	return Scores{AUC30: s.AUC30 / n, AUC7: s.AUC7 / n, PRAUC30: s.PRAUC30 / n, Brier30: s.Brier30 / n}
}

// Simulate prepares events (DataOptions), runs the federation, each merchant's
// local-only model under the same plan and budget, and the centralized non-private
// model, and scores them all on the pooled test cutoff.
func Simulate(ctx context.Context, events []model.Event, opt Options) (Report, error) {
	d, err := Prepare(events, opt.Data)
	if err != nil {
		return Report{}, fmt.Errorf("simulate: %w", err)
	}
	return d.Simulate(ctx, opt)
}

// Simulate is Simulate on prepared data (opt.Data is ignored).
func (d *Data) Simulate(ctx context.Context, opt Options) (Report, error) {
	fo := opt.Fed
	if fo.Rounds == 0 {
		fo = DefaultFedOptions()
	}
	fed, err := d.Federate(ctx, fo)
	if err != nil {
		return Report{}, fmt.Errorf("simulate: %w", err)
	}
	rep := Report{
		Rounds: fo.Rounds, Steps: fo.Steps, SamplingRate: fo.SamplingRate, NoiseMultiplier: fed.NoiseMultiplier,
		Delta: fo.Delta, TestCustomers: len(d.Test), Federated: fed.Pooled,
	}
	members := fo.Merchants
	if members == nil {
		for m := range d.Train {
			members = append(members, m)
		}
	}
	for i, m := range members {
		mr := MerchantReport{Index: m, Share: d.Shares[m], Customers: d.Customers[m], Epsilon: fed.Epsilon[i]}
		if !opt.SkipLocal {
			lo := fo
			lo.Merchants, lo.Attackers = []int{m}, nil
			lo.NoiseMultiplier = fed.NoiseMultiplier
			res, err := d.Federate(ctx, lo)
			if err != nil {
				return Report{}, fmt.Errorf("simulate: local-only merchant %d: %w", m, err)
			}
			mr.LocalOnly = res.Pooled
			if mr.LocalOnlyOwn, err = d.Evaluate(res.Model, m); err != nil {
				return Report{}, fmt.Errorf("simulate: local-only merchant %d: %w", m, err)
			}
		}
		rep.Merchants = append(rep.Merchants, mr)
	}
	if !opt.SkipCentralized {
		if _, rep.Centralized, err = d.Centralized(ctx, opt.Seed); err != nil {
			return Report{}, fmt.Errorf("simulate: %w", err)
		}
	}
	return rep, nil
}
