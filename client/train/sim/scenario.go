package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// SizeBuckets are the merchant-size buckets of a scenario report: a merchant of
// c customers is in the first bucket whose upper bound exceeds c.
var SizeBuckets = []struct {
	Name  string
	Below int
}{{"<100", 100}, {"100-299", 300}, {"300-999", 1000}, {">=1000", int(^uint(0) >> 1)}}

// Trio holds one figure for the three models a merchant can score with.
type Trio struct {
	LocalOnly    float64 `json:"local_only"`
	Federated    float64 `json:"federated"`
	Personalized float64 `json:"personalized"`
}

// BucketReport is one size bucket of a scenario: pooled over its merchants' own
// test customers, each scored by that merchant's model.
type BucketReport struct {
	Bucket    string `json:"bucket"`
	Merchants int    `json:"merchants"`
	Customers int    `json:"customers"`
	// The pooled AUC@30 (issue 12's keys), then PR-AUC@30 and Brier@30.
	Trio
	PRAUC30 Trio `json:"pr_auc_30"`
	Brier30 Trio `json:"brier_30"`
	// PersonalizedGELocal is the share of the bucket's merchants, among those
	// whose test customers hold both buyers and non-buyers, whose personalised
	// AUC@30 is at least their local-only one.
	PersonalizedGELocal float64 `json:"personalized_ge_local_only"`
	Compared            int     `json:"merchants_compared"`
}

// PooledAUC are the AUC@30 figures of a whole scenario.
type PooledAUC struct {
	Federated          float64 `json:"federated"`
	Centralized        float64 `json:"centralized"`
	LocalOnlyPooled    float64 `json:"local_only_pooled"`
	PersonalizedPooled float64 `json:"personalized_pooled"`
}

// ScenarioReport is the outcome of RunScenario.
type ScenarioReport struct {
	Scenario string `json:"scenario"`
	// Validation says the run used ValidationCutoffs; TestCutoff is the cutoff scored.
	Validation        bool    `json:"validation,omitempty"`
	TestCutoff        string  `json:"test_cutoff"`
	Seed              uint64  `json:"seed"`
	Merchants         int     `json:"merchants"`
	SecureAggregation bool    `json:"secure_aggregation"`
	Dropouts          int     `json:"dropouts"`
	EpsilonMax        float64 `json:"epsilon_max"`
	Delta             float64 `json:"delta"`
	NoiseMultiplier   float64 `json:"noise_multiplier"`
	// InProcess says the merchants ran in this process, not as client
	// processes; ThroughAggregator that they sent sealed, signed updates to
	// an aggregator service (package fedrun) rather than package sim merging
	// their deltas directly. Rounds is the number of rounds merged.
	InProcess         bool           `json:"in_process"`
	ThroughAggregator bool           `json:"through_aggregator"`
	Rounds            int            `json:"rounds"`
	AUC30             PooledAUC      `json:"auc_30"`
	BySize            []BucketReport `json:"by_size"`
	// PersonalizedGELocal is the share over all compared merchants.
	PersonalizedGELocal float64 `json:"personalized_ge_local_only"`
	// Choices counts the personalisation choices (train.Choice…).
	Choices map[string]int `json:"choices"`
	// Seconds is filled in by the caller that timed the run.
	Seconds float64 `json:"seconds"`
	// Secure describes the secure-aggregation run (nil in plain mode).
	Secure *SecureReport `json:"secure,omitempty"`
	// PerMerchant holds each merchant's own figures (CompareMerchants), for
	// callers that show merchants one by one; the JSON report keeps buckets.
	PerMerchant []MerchantResult `json:"-"`
}

// MerchantResult is one merchant's outcome in CompareMerchants: its own test
// customers scored by its local-only, the federated and its personalised model.
type MerchantResult struct {
	Customers     int `json:"customers"`
	TestCustomers int `json:"test_customers"`
	Buyers        int `json:"buyers_30"`
	// AUC30 is set when Scored: its test customers hold buyers and non-buyers.
	AUC30  Trio   `json:"auc_30"`
	Scored bool   `json:"scored"`
	Choice string `json:"personalized_choice"`
}

// Scenarios are the names RunScenario knows.
var Scenarios = []string{ScenarioCDNOW100, ScenarioCDNOW20, ScenarioCDNOW5, ScenarioRetailRegions, ScenarioSynthetic1000}

// ScenarioFile returns the data file a scenario is built from, relative to the
// shared data directory ("" for a generated scenario).
func ScenarioFile(name string) (string, error) {
	if _, ok := CDNOWScenarioMerchants(name); ok {
		return "cdnow/CDNOW_master.txt", nil
	}
	switch name {
	case ScenarioRetailRegions:
		return "online_retail_full/online_retail.csv.gz", nil
	case ScenarioSynthetic1000:
		return "", nil // generated
	}
	return "", fmt.Errorf("scenario %q: unknown (want one of %v)", name, Scenarios)
}

// LoadScenarioData reads the data file of scenario name at path (see
// ScenarioFile) into what RunScenario needs.
func LoadScenarioData(ctx context.Context, name, path string) (Inputs, error) {
	if _, ok := CDNOWScenarioMerchants(name); ok {
		ev, err := LoadCDNOW(ctx, path)
		return Inputs{CDNOW: ev}, err
	}
	switch name {
	case ScenarioRetailRegions:
		d, err := LoadRetail(ctx, path)
		return Inputs{Retail: d}, err
	case ScenarioSynthetic1000:
		return Inputs{}, nil
	}
	return Inputs{}, fmt.Errorf("scenario %q: unknown (want one of %v)", name, Scenarios)
}

// Inputs are the data sets scenarios are built from; a scenario reads only its own.
type Inputs struct {
	// CDNOW are CDNOW's events (LoadCDNOW), for the cdnow-N scenarios.
	CDNOW []model.Event
	// Retail is the full Online Retail export (LoadRetail), for retail-regions.
	Retail *RetailData
}

// ScenarioOptions configures RunScenario.
type ScenarioOptions struct {
	// Name is the scenario (Scenarios); Seed seeds its split and every training
	// but the DP noise.
	Name string
	Seed uint64
	// Fed configures the federation (zero value: DefaultFedOptions).
	Fed FedOptions
	// Validation scores at the scenario's validation cutoffs instead of its
	// test cutoff, so that design choices can be measured without looking at
	// the test cutoff.
	Validation bool
	// Secure, when not nil, trains the global model with secure aggregation and
	// distributed DP (FederateSecure) instead of Fed's plain federation.
	Secure *SecureOptions
	// Progress, when set, receives a line as each stage ends.
	Progress io.Writer
}

// ValidationCutoffs are the cutoffs of a validation run: training 1997-05-01,
// 07-01, 09-01 and 11-01, test 1998-01-01, whose label window ends before the
// reference test cutoff 1998-03-01.
func ValidationCutoffs() (train []time.Time, test time.Time) {
	d := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	return []time.Time{d(1997, 5), d(1997, 7), d(1997, 9), d(1997, 11)}, d(1998, 1)
}

// buildScenario splits the scenario's data and builds its rows.
func buildScenario(in Inputs, opt ScenarioOptions) (*Split, *Data, DataOptions, error) {
	var do DataOptions
	var split *Split
	var events []model.Event
	var err error
	switch n, ok := CDNOWScenarioMerchants(opt.Name); {
	case ok:
		if in.CDNOW == nil {
			return nil, nil, do, errors.New("no CDNOW events")
		}
		events = in.CDNOW
		do.TrainCutoffs, do.TestCutoff = ReferenceCutoffs()
		if opt.Validation {
			do.TrainCutoffs, do.TestCutoff = ValidationCutoffs()
		}
		split, err = SplitCDNOW(events, n, opt.Seed)
	case opt.Name == ScenarioSynthetic1000:
		do.TrainCutoffs, do.TestCutoff = SyntheticCutoffs(opt.Validation)
		split, d, err := buildSynthetic(SyntheticMerchants(Synthetic1000Merchants, opt.Seed), opt.Seed, opt.Validation)
		return split, d, do, err
	case opt.Name == ScenarioRetailRegions:
		if in.Retail == nil {
			return nil, nil, do, errors.New("no Online Retail data")
		}
		events = in.Retail.Events
		do.TrainCutoffs, do.TestCutoff = RetailCutoffs(opt.Validation)
		do.LocalTime = true
		split, err = SplitRetailRegions(in.Retail)
	default:
		return nil, nil, do, fmt.Errorf("unknown (want one of %v)", Scenarios)
	}
	if err != nil {
		return nil, nil, do, err
	}
	d, err := PrepareSplit(events, split, do)
	if err != nil {
		return nil, nil, do, err
	}
	return split, d, do, nil
}

// RunScenario splits the scenario's data (in) by the named scenario and seed,
// runs the federation (DefaultFedOptions: ε = 1 and δ = 1e-6 per merchant) in
// process, the centralised non-private model, and for every merchant its
// local-only non-private model (train.LocalOnly) and its personalised model
// (train.Personalize from the federated one), and scores all of them on each
// merchant's own customers at the scenario's test (or validation) cutoff.
func RunScenario(ctx context.Context, in Inputs, opt ScenarioOptions) (ScenarioReport, error) {
	name, seed, fed := opt.Name, opt.Seed, opt.Fed
	start := time.Now()
	stage := func(what string) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "[%6.1fs] %s %s\n", time.Since(start).Seconds(), name, what)
		}
	}
	split, d, do, err := buildScenario(in, opt)
	if err != nil {
		return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	stage(fmt.Sprintf("split into %d merchants, rows built", len(split.Merchants)))
	if fed.Rounds == 0 {
		fed = DefaultFedOptions()
	}
	fed.Seed = seed
	rep := ScenarioReport{
		Validation: opt.Validation, TestCutoff: do.TestCutoff.Format(time.DateOnly),
		Scenario: name, Seed: seed, Merchants: len(split.Merchants), Delta: fed.Delta, InProcess: true,
	}
	var global *hazard.Model
	if name == ScenarioSynthetic1000 && opt.Secure == nil {
		// Plain mode goes through the aggregator service; secure mode, like every
		// scenario's, runs in package sim (FederateSecure), below.
		res, err := federateSynthetic(ctx, d, split, do.TrainCutoffs)
		if err != nil {
			return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
		}
		global, rep.EpsilonMax, rep.NoiseMultiplier, rep.Dropouts = res.Model, res.MaxEpsilon, res.NoiseMultiplier, res.Dropouts
		rep.ThroughAggregator, rep.Rounds = true, res.Published
		if rep.AUC30.Federated, err = auc30(d, global); err != nil {
			return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
		}
	} else {
		fr, secure, err := d.federateScenario(ctx, fed, opt.Secure, seed)
		if err != nil {
			return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
		}
		global, rep.EpsilonMax, rep.NoiseMultiplier, rep.Rounds = fr.Model, slices.Max(fr.Epsilon), fr.NoiseMultiplier, fed.Rounds
		rep.AUC30.Federated = fr.Pooled.AUC30
		if secure != nil {
			rep.SecureAggregation, rep.Secure, rep.Delta = true, secure, opt.Secure.Delta
			rep.Dropouts, rep.Rounds = secure.Dropouts, secure.Rounds
		}
	}
	stage(fmt.Sprintf("federated: %d rounds, AUC@30 %.4f", rep.Rounds, rep.AUC30.Federated))
	_, cent, err := d.Centralized(ctx, seed)
	if err != nil {
		return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	rep.AUC30.Centralized = cent.AUC30
	stage(fmt.Sprintf("centralised: AUC@30 %.4f", cent.AUC30))
	if err := d.CompareMerchants(ctx, global, split, seed, &rep); err != nil {
		return ScenarioReport{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	stage("local-only and personalised models of every merchant scored")
	return rep, nil
}

func auc30(d *Data, m *hazard.Model) (float64, error) {
	sc, err := d.Evaluate(m, -1)
	return sc.AUC30, err
}

// CompareMerchants trains, for every merchant of split, its local-only
// non-private model (train.LocalOnly) and its personalised model
// (train.Personalize from global), scores them and global on the merchant's
// own customers at the test cutoff, and fills rep's by-size buckets, pooled
// local-only and personalised AUC@30, share of merchants with personalised ≥
// local-only, and choices.
func (d *Data) CompareMerchants(ctx context.Context, global *hazard.Model, split *Split, seed uint64, rep *ScenarioReport) error {
	return d.compareMerchants(ctx, global, split, train.PersonalizeOptions{Seed: seed}, rep)
}

// compareMerchants is CompareMerchants with the personalisation's options
// (opt.Seed seeds every merchant's models).
func (d *Data) compareMerchants(ctx context.Context, global *hazard.Model, split *Split, opt train.PersonalizeOptions, rep *ScenarioReport) error {
	rep.Choices = map[string]int{}
	rep.PerMerchant = make([]MerchantResult, len(split.Merchants))
	type scored struct{ local, fed, pers []float64 }
	own := make([]scored, len(split.Merchants))
	labels := make([][]bool, len(split.Merchants))
	for i, r := range d.Test {
		labels[d.TestMerchant[i]] = append(labels[d.TestMerchant[i]], r.Label >= 1)
	}
	// Merchants are independent (each model seeded, the global one read only),
	// so they are fitted on every core, the largest first.
	order := make([]int, len(split.Merchants))
	for m := range order {
		order[m] = m
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(d.Train[b]) - len(d.Train[a]) })
	errs := make([]error, len(split.Merchants))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range next {
				errs[m] = d.compareOne(ctx, global, m, opt, &rep.PerMerchant[m], &own[m].local, &own[m].fed, &own[m].pers)
			}
		}()
	}
	for _, m := range order {
		next <- m
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, pm := range rep.PerMerchant {
		rep.Choices[pm.Choice]++
	}
	var allL, allP []float64
	var allY []bool
	var ge, compared int
	rep.BySize = nil
	for bi, b := range SizeBuckets {
		br := BucketReport{Bucket: b.Name}
		var sl, sf, sp []float64
		var y []bool
		lo := 0
		if bi > 0 {
			lo = SizeBuckets[bi-1].Below
		}
		for m, sm := range split.Merchants {
			if sm.Customers < lo || sm.Customers >= b.Below {
				continue
			}
			br.Merchants++
			br.Customers += len(labels[m])
			sl, sf, sp = append(sl, own[m].local...), append(sf, own[m].fed...), append(sp, own[m].pers...)
			y = append(y, labels[m]...)
			al, errL := metrics.AUC(own[m].local, labels[m])
			ap, errP := metrics.AUC(own[m].pers, labels[m])
			af, errF := metrics.AUC(own[m].fed, labels[m])
			pm := &rep.PerMerchant[m]
			pm.Customers, pm.TestCustomers = sm.Customers, len(labels[m])
			for _, y := range labels[m] {
				if y {
					pm.Buyers++
				}
			}
			if errL == nil && errP == nil && errF == nil {
				pm.AUC30, pm.Scored = Trio{LocalOnly: al, Federated: af, Personalized: ap}, true
			}
			if errL == nil && errP == nil {
				br.Compared++
				if ap >= al {
					br.PersonalizedGELocal++
				}
			}
		}
		allL, allP, allY = append(allL, sl...), append(allP, sp...), append(allY, y...)
		if br.Merchants > 0 {
			var err error
			if br.Trio, br.PRAUC30, br.Brier30, err = trioMetrics(sl, sf, sp, y); err != nil {
				return fmt.Errorf("bucket %s: %w", b.Name, err)
			}
		}
		ge, compared = ge+int(br.PersonalizedGELocal), compared+br.Compared
		if br.Compared > 0 {
			br.PersonalizedGELocal /= float64(br.Compared)
		}
		rep.BySize = append(rep.BySize, br)
	}
	if compared > 0 {
		rep.PersonalizedGELocal = float64(ge) / float64(compared)
	}
	var err error
	if rep.AUC30.LocalOnlyPooled, err = metrics.AUC(allL, allY); err != nil {
		return err
	}
	if rep.AUC30.PersonalizedPooled, err = metrics.AUC(allP, allY); err != nil {
		return err
	}
	return nil
}

// compareOne fits merchant m's local-only and personalised models and scores
// them and global on its own test customers.
func (d *Data) compareOne(ctx context.Context, global *hazard.Model, m int, opt train.PersonalizeOptions, res *MerchantResult, local, fed, pers *[]float64) error {
	p, err := train.Personalize(ctx, global, d.Train[m], opt)
	if err != nil {
		return fmt.Errorf("merchant %d: %w", m, err)
	}
	// Personalize fitted the same LocalOnly model (rows, seed) unless it kept
	// the global model without a comparison.
	lm := p.Local
	if lm == nil {
		if lm, err = train.LocalOnly(ctx, d.Schema, d.Train[m], opt.Seed); err != nil {
			return fmt.Errorf("merchant %d: %w", m, err)
		}
	}
	res.Choice = p.Choice
	for _, mod := range []struct {
		m   *hazard.Model
		out *[]float64
	}{{lm, local}, {global, fed}, {p.Model, pers}} {
		if *mod.out, err = d.p30(mod.m, m); err != nil {
			return fmt.Errorf("merchant %d: %w", m, err)
		}
	}
	return nil
}

// p30 is m's P(buy within 30 days) for merchant's own test customers, in test order.
func (d *Data) p30(m *hazard.Model, merchant int) ([]float64, error) {
	var p []float64
	for i, r := range d.Test {
		if d.TestMerchant[i] != merchant {
			continue
		}
		s, err := m.Score(r.X)
		if err != nil {
			return nil, err
		}
		p = append(p, m.PredictScore(s).Within[len(hazard.Horizons)-1])
	}
	return p, nil
}

// trioMetrics returns AUC@30, PR-AUC@30 and Brier@30 of the three score lists.
func trioMetrics(local, fed, pers []float64, y []bool) (auc, pr, brier Trio, err error) {
	for _, c := range []struct {
		p         []float64
		a, ap, br *float64
	}{
		{local, &auc.LocalOnly, &pr.LocalOnly, &brier.LocalOnly},
		{fed, &auc.Federated, &pr.Federated, &brier.Federated},
		{pers, &auc.Personalized, &pr.Personalized, &brier.Personalized},
	} {
		if *c.a, err = metrics.AUC(c.p, y); err != nil {
			return Trio{}, Trio{}, Trio{}, err
		}
		if *c.ap, err = metrics.AveragePrecision(c.p, y); err != nil {
			return Trio{}, Trio{}, Trio{}, err
		}
		if *c.br, err = metrics.Brier(c.p, y); err != nil {
			return Trio{}, Trio{}, Trio{}, err
		}
	}
	return auc, pr, brier, nil
}
