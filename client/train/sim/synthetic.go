package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/client/train/sim/fedrun"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/synth"
	"github.com/kairos-fl/kairos/store"
)

// ScenarioSynthetic1000 is the name of the scenario SyntheticMerchants builds.
const ScenarioSynthetic1000 = "synthetic-1000"

// Synthetic1000Merchants is the number of merchants of ScenarioSynthetic1000.
const Synthetic1000Merchants = 1000

// SyntheticRounds is the number of rounds the synthetic-1000 federation runs
// (of 10 DP-SGD steps each; the aggregator calibrates the noise so that they
// spend each merchant's ε = 1 at δ = 1e-6).
const SyntheticRounds = 10

// SyntheticCutoffs are synthetic-1000's training cutoffs (every two months
// from 2025-03-01 to 2025-09-01) and test cutoff (2025-11-01); the log runs
// from 2024-01-01 to 2025-12-31.
func SyntheticCutoffs(validation bool) (train []time.Time, test time.Time) {
	d := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	if validation {
		return []time.Time{d(2025, 1), d(2025, 3), d(2025, 5), d(2025, 7)}, d(2025, 9)
	}
	return []time.Time{d(2025, 3), d(2025, 5), d(2025, 7), d(2025, 9)}, d(2025, 11)
}

// SyntheticMerchant is one merchant of synthetic-1000 with the parameters
// its customers were drawn with.
type SyntheticMerchant struct {
	ID   string `json:"id"`
	Zone string `json:"zone"`
	// Customers is the merchant's size; MeanGapDays the population's mean days
	// between purchases (1/RateMean); GapShape their regularity; Seasonality
	// and SeasonPeak its yearly cycle (synth.Config).
	Customers   int     `json:"customers"`
	MeanGapDays float64 `json:"mean_gap_days"`
	GapShape    float64 `json:"gap_shape"`
	Seasonality float64 `json:"seasonality"`
	SeasonPeak  float64 `json:"season_peak"`
}

// SyntheticMerchants draws the n merchants of the synthetic scenario for a
// seed: sizes log-normal with median 60 customers and σ = 1.1 (at least 20,
// at most 5,000), so about half are under 60 and a few have thousands; mean
// gaps log-uniform on [10, 90] days; gap shapes uniform on [1, 4] (from
// Poisson-like to regular); seasonality uniform on [0, 0.8) with its peak on a
// uniform day of the year; time zones drawn from eight.
func SyntheticMerchants(n int, seed uint64) []SyntheticMerchant {
	rng := rand.New(rand.NewPCG(seed, 0x73796e3130303030))
	out := make([]SyntheticMerchant, n)
	for i := range out {
		size := int(math.Round(60 * math.Exp(1.1*rng.NormFloat64())))
		out[i] = SyntheticMerchant{
			ID:          fmt.Sprintf("s%04d", i),
			Zone:        scenarioZones[rng.IntN(len(scenarioZones))],
			Customers:   min(max(size, 20), 5000),
			MeanGapDays: 10 * math.Exp(rng.Float64()*math.Log(9)),
			GapShape:    1 + 3*rng.Float64(),
			Seasonality: 0.8 * rng.Float64(),
			SeasonPeak:  365 * rng.Float64(),
		}
	}
	return out
}

// buildSynthetic generates every merchant's log (synth, purchases only, in
// its zone) and builds its rows in its zone at the scenario's cutoffs.
func buildSynthetic(ms []SyntheticMerchant, seed uint64, validation bool) (*Split, *Data, error) {
	trainCutoffs, test := SyntheticCutoffs(validation)
	cutoffs := append(slices.Clone(trainCutoffs), test)
	schema, err := feature.NewSchema(nil)
	if err != nil {
		return nil, nil, err
	}
	n := len(ms)
	rows := make([][]feature.Row, n)
	err = fedrun.Parallel(n, func(i int) error {
		m := ms[i]
		loc, err := time.LoadLocation(m.Zone)
		if err != nil {
			return err
		}
		g, err := synth.New(synth.Config{
			Seed: seed*1_000_003 + uint64(i), Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Days: 730,
			Customers: m.Customers, Merchants: []synth.Merchant{{Name: m.ID, Zone: loc, Weight: 1}},
			RateMean: 1 / m.MeanGapDays, GapShape: m.GapShape, Seasonality: m.Seasonality, SeasonPeak: m.SeasonPeak,
			BrowsePerPurchase: -1, BackgroundViewRate: -1,
		})
		if err != nil {
			return err
		}
		var evs []model.Event
		for c := range m.Customers {
			cu := g.Customer(c)
			for _, e := range cu.Events {
				e.Customer = m.ID + "-" + e.Customer // customer ids unique across merchants
				evs = append(evs, e)
			}
		}
		b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Location: loc})
		if err != nil {
			return err
		}
		for k, e := range evs {
			if err := b.Add(e); err != nil {
				return fmt.Errorf("merchant %s: event %d: %w", m.ID, k, err)
			}
		}
		rows[i] = b.Rows()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	split := &Split{Name: ScenarioSynthetic1000, Seed: seed, Owner: map[string]int{}}
	d := &Data{Schema: schema, Train: make([][]feature.Row, n), Customers: make([]int, n), Shares: make([]float64, n)}
	total := 0
	for _, m := range ms {
		total += m.Customers
	}
	testIdx := len(cutoffs) - 1
	for i, m := range ms {
		split.Merchants = append(split.Merchants, SplitMerchant{Name: m.ID, Customers: m.Customers, Zone: m.Zone})
		d.Shares[i] = float64(m.Customers) / float64(total)
		customers := map[string]bool{}
		for _, r := range rows[i] {
			split.Owner[r.Customer] = i
			if r.Cutoff == testIdx {
				d.Test = append(d.Test, r)
				d.TestMerchant = append(d.TestMerchant, i)
				continue
			}
			d.Train[i] = append(d.Train[i], r)
			customers[r.Customer] = true
		}
		d.Customers[i] = len(customers)
		if d.Customers[i] == 0 {
			return nil, nil, fmt.Errorf("merchant %s has no training customers", m.ID)
		}
	}
	return split, d, nil
}

// federateSynthetic runs the federation through the real protocol (package
// fedrun): every merchant a client in this process, sealed and signed updates
// into an aggregator.Service on a temporary SQLite file, FedAvg weighted by
// the DP customer counts, SyntheticRounds rounds, ε = 1 at δ = 1e-6 per
// merchant. The policy's min_customers_per_update is 1: an update whose DP
// customer count (σ = 50) falls below it is refused and counted as a dropout.
func federateSynthetic(ctx context.Context, d *Data, split *Split, trainCutoffs []time.Time) (*fedrun.Result, error) {
	dir, err := os.MkdirTemp("", "kairos-sim-synthetic-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "kairos.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	ms := make([]fedrun.Merchant, len(split.Merchants))
	for i, m := range split.Merchants {
		ms[i] = fedrun.Merchant{ID: m.Name, Zone: m.Zone, Rows: d.Train[i]}
	}
	fo := DefaultFedOptions()
	return fedrun.Run(ctx, ms, fedrun.Options{
		Store: st, MinCustomers: 1,
		Rounds: aggregator.RoundConfig{
			Quorum: 1, PlannedRounds: SyntheticRounds, StepsPerRound: fo.Steps, SamplingRate: fo.SamplingRate,
			LearningRate: fo.LearningRate, L2: fo.L2, CountNoise: fo.CountNoise, Cutoffs: trainCutoffs,
			Server: aggregator.ServerFedAvg, ServerLR: 1, Seed: 1,
		},
	})
}
