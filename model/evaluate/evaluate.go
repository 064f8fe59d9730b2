// Package evaluate runs Kairos's time-split evaluation: it builds point-in-time
// rows at the training cutoffs and the test cutoff, fits the hazard model and the
// baselines on history before the test cutoff, and scores every method on the
// test cutoff's label window with the metrics of model/metrics.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// Method names.
const (
	MethodHazard       = "hazard"
	MethodBGNBD        = "bgnbd"
	MethodRecency      = "recency"
	MethodFrequency365 = "frequency_365"
)

// DefaultMethods are the methods Run evaluates when Config.Methods is empty.
var DefaultMethods = []string{MethodHazard, MethodBGNBD, MethodRecency, MethodFrequency365}

// Config configures Run.
type Config struct {
	// Dataset names the data in the report and the model's metadata.
	Dataset string
	// TestCutoff is τ of the test rows; TrainCutoffs are the training cutoffs,
	// each of whose label windows must end at or before TestCutoff.
	TestCutoff   time.Time
	TrainCutoffs []time.Time
	// Location is the merchant's time zone for local-time features (nil = UTC).
	Location *time.Location
	// Seed seeds hazard training.
	Seed uint64
	// Methods to evaluate; empty means DefaultMethods.
	Methods []string
	// Hazard configures hazard training; its Seed is overridden by Seed and, when
	// its Meta.Dataset is empty, the metadata is filled in by Run.
	Hazard hazard.TrainOptions
	// Allow restricts the feature schema (see feature.Config.Allow).
	Allow []string
	// AllowLabelOverlap accepts training cutoffs whose label windows reach past
	// TestCutoff. Their labels then see purchases inside the test window, which
	// leaks; it exists only for logs shorter than two horizons (the Taobao slice
	// spans nine days), and Report.LabelOverlap records that it was used.
	AllowLabelOverlap bool
	// DP, when set, trains the hazard model with DP-SGD under a customer-level
	// (ε, δ) budget instead of non-privately (see TrainPrivate).
	DP *DPOptions
	// Classic adds BG/NBD's quantities as hazard inputs (feature.Config.Classic)
	// with one parameter set fitted on every customer's purchases before the
	// test cutoff: ClassicLocal fits by maximum likelihood (a merchant's own
	// model), ClassicDP by bgnbd.FitPrivate within DP's budget (Prepare needs
	// DP then, and Run's DP training composes with the fit's release). Empty:
	// no classic features.
	Classic string
	// NoLevelCarry leaves a non-private hazard model's baselines as trained
	// instead of applying the period-level carry-over (LevelCarry). DP models
	// never get it: it reads every customer's labels without noise.
	NoLevelCarry bool
	// Select, when set, chooses the score function on the merchant's own data
	// between Hazard and Select.Alternative (see Selection) before training;
	// a private run (DP) ignores it and trains Hazard.
	Select *Selection
	// DumpPredictions, a scratch option for measurement, is a file to write
	// the hazard model's test predictions to, one line per test row:
	// customer, P(buy within 30 days), bought within 30 days (1/0). "" writes
	// none.
	DumpPredictions string
}

// Classic-feature modes (Config.Classic).
const (
	ClassicLocal = "local"
	ClassicDP    = "dp"
)

// Report is the outcome of Run.
type Report struct {
	Dataset    string
	TestCutoff time.Time
	// Customers is the number of test rows: customers with an event before
	// TestCutoff.
	Customers int
	// PositiveRate[h] is the fraction of test customers who buy within h days,
	// and Positives[h] their number, for hazard.Horizons and LongHorizons.
	PositiveRate map[int]float64
	Positives    map[int]int
	TrainRows    int
	// TrainPositiveRate is the 30-day positive rate over the training rows.
	TrainPositiveRate float64
	Methods           []MethodReport
	// Model is the fitted hazard model (nil when hazard was not evaluated).
	Model       *hazard.Model
	TrainReport hazard.TrainReport
	// LabelOverlap is true when a training label window reached past TestCutoff.
	LabelOverlap bool
	// Concentration is how the log's purchases spread over its customers
	// (Warnings says when one customer dominates).
	Concentration feature.Concentration
	// Privacy describes what DP training charged (nil for a non-private run).
	Privacy *PrivacyReport
	// Classic is the classic features' fit (nil without them).
	Classic *ClassicFit
	// Level is the period-level carry-over applied to the hazard model's
	// baselines (nil when none was measured: DP, Config.NoLevelCarry, a
	// rhythm model, or a log with too few windows).
	Level *LevelCarry
	// DayBaselines is the date accuracy of the simple day predictors
	// (DayLastPlusGap, DayBestConstant, DayBestConstantMAE) on the same test
	// buyers as MethodReport.Days.
	DayBaselines []DayScore
	// OwnDay is the own-rhythm day's weight fitted on the training rows
	// (nil when the model does not use it).
	OwnDay *OwnDayFit
	// Selection is the model choice's evidence and verdict (nil when
	// Config.Select was not set or the run was private).
	Selection *SelectionReport
	// LongHorizons are the horizons of hazard.LongHorizons whose test label
	// window the log covers (TestCutoff + h days at or before the day after
	// the last event's UTC day, the rule of DefaultTestCutoff); metrics at the
	// others are not computed.
	LongHorizons []int
}

// OwnDayFit is the own-rhythm day's weight (hazard.Model.FitOwnDay) and the
// training buyers' mean absolute error of the predicted day with it and
// without it (weight 0).
type OwnDayFit struct {
	Weight              float64
	TrainMAE, TrainMAE0 float64
}

// DayScore is the date accuracy of one first-purchase-day predictor over the
// test customers who buy within the horizon (metrics.DayAccuracy): S2 =
// mean 10/(10 + d²), MAE = mean |d| in days.
type DayScore struct {
	Predictor string
	S2, MAE   float64
}

// Day predictors of DayScore.
const (
	// DayMostLikely, DayMedian and DayExpected are the hazard model's mode,
	// median and mean (rounded) first purchase day given a purchase within
	// the horizon.
	DayMostLikely = "most_likely"
	DayMedian     = "median"
	DayExpected   = "expected"
	// DayClosest is the hazard model's day of highest expected S2
	// (hazard.Prediction.ClosestDay).
	DayClosest = "closest"
	// DayLastPlusGap is the last purchase plus the customer's mean gap between
	// purchase days, clipped into the horizon (the best constant day for a
	// customer with fewer than two purchase days).
	DayLastPlusGap = "last_plus_mean_gap"
	// DayBestConstant is the one day with the highest S2 over the training
	// cutoffs' buyers, DayBestConstantMAE the one with the lowest mean
	// absolute error (a median of their days): each baseline is the best
	// constant for its own metric.
	DayBestConstant    = "best_constant"
	DayBestConstantMAE = "best_constant_mae"
)

// MinPositives is the number of test buyers within a horizon below which
// Report.Warnings flags that horizon's ranking metrics as unreliable: with
// fewer than about 30 positives the standard error of an AUC is of the order
// of 0.05, the size of the differences between methods.
const MinPositives = 30

// Undefined says why the ranking metrics (AUC, PR-AUC) at horizon h are
// undefined: "no positives" when no test customer buys within h days, "no
// negatives" when every one does, and "" when they are defined.
func (r Report) Undefined(h int) string {
	switch r.Positives[h] {
	case 0:
		return "no positives"
	case r.Customers:
		return "no negatives"
	}
	return ""
}

// Warnings lists what a reader of the report should know before trusting it:
// horizons whose test window holds fewer than MinPositives buyers (or none),
// and training label windows that overlap the test window.
func (r Report) Warnings() []string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	var out []string
	for _, h := range hazard.Horizons {
		within := "within " + plural(h, "day", "days") + " of the test cutoff"
		switch n := r.Positives[h]; {
		case n == 0:
			out = append(out, fmt.Sprintf("no test customer buys %s: AUC@%d and PR-AUC@%d are undefined", within, h, h))
		case n == r.Customers:
			out = append(out, fmt.Sprintf("every test customer buys %s: AUC@%d and PR-AUC@%d are undefined", within, h, h))
		case n < MinPositives:
			out = append(out, fmt.Sprintf("only %s %s (fewer than %d): AUC@%d and PR-AUC@%d are unreliable",
				plural(n, "test customer buys", "test customers buy"), within, MinPositives, h, h))
		}
	}
	if r.LabelOverlap {
		out = append(out, "training label windows reach past the test cutoff (log too short for a clean split)")
	}
	if w := r.Concentration.Warning(); w != "" {
		out = append(out, w)
	}
	return out
}

// MethodReport holds one method's test metrics. Maps are keyed by horizon in
// days (hazard.Horizons and Report.LongHorizons); Brier is empty for methods
// that give no probabilities.
// AUC and PR-AUC are NaN at a horizon where the test labels hold one class only
// (Report.Undefined says which).
type MethodReport struct {
	Name  string
	AUC   map[int]float64
	PRAUC map[int]float64
	Brier map[int]float64
	// CIndex is Harrell's C of the method's risk against the first purchase day
	// (censored at 30 days).
	CIndex float64
	// JData is the JData-2018-style score of the top-N list (N = round of the
	// training 30-day positive rate × test customers) with the method's predicted
	// day; JDataS1 and JDataS2 are its parts.
	JData, JDataS1, JDataS2 float64
	// Calibration is the 30-day calibration table (probabilistic methods only).
	Calibration []metrics.Bin
	// Gain is the 30-day cumulative gain curve of the method's ranking at
	// GainPoints equal shares of the test customers.
	Gain []metrics.GainPoint
	// F1Threshold is the 30-day threshold tuned for F1 on the latest training
	// cutoff's rows, and F1 is the test F1 at that threshold.
	F1Threshold, F1 float64
	// Days is the date accuracy of the method's predicted days for the test
	// customers who buy within the horizon (hazard model only: DayMostLikely,
	// DayMedian, DayExpected, DayClosest).
	Days []DayScore
	// ModalDayShare is the share of all test customers whose median day (the
	// day Kairos shows) is the most common one: near 1 when the predicted day
	// carries no per-customer information (hazard model only).
	ModalDayShare float64
	// Err is set when a baseline could not be computed on this data (for
	// example a BG/NBD fit that does not converge); every metric is then left
	// zero and means nothing.
	Err string
}

// GainPoints is the number of points of MethodReport.Gain: every 5% of the
// test customers.
const GainPoints = 20

// prediction is what a method says about one row.
type prediction struct {
	score  float64                       // ranks customers (higher = sooner)
	within [len(hazard.Horizons)]float64 // P(buy within h), when probabilistic
	beyond [len(hazard.LongHorizons)]float64
	day    int // predicted first purchase day
	// days, when set, are the hazard model's most likely, median, expected
	// (rounded) and closest day given a purchase within the horizon.
	days *[4]int
}

// method predicts every row of one cutoff (features rows, histories at τ).
type method struct {
	name  string
	probs bool
	// byHorizon ranks by P(buy within h) at each horizon h instead of by
	// score (a model whose day shape depends on the customer).
	byHorizon bool
	pred      func(rows []feature.Row, tau time.Time) ([]prediction, error)
}

// Run evaluates cfg.Methods on events. It does no I/O.
func Run(ctx context.Context, events []model.Event, cfg Config) (Report, error) {
	p, err := Prepare(events, cfg)
	if err != nil {
		return Report{}, err
	}
	return p.Run(ctx, cfg)
}

// Prepared holds the point-in-time rows and purchase histories of one time
// split, so that several trainings (seeds, privacy budgets) can share them.
type Prepared struct {
	// classic describes the classic features' parameters; nil without them.
	classic                        *ClassicFit
	schema                         feature.Schema
	hist                           histories
	train                          []time.Time
	trainRows, testRows, lastTrain []feature.Row
	base                           Report
	medianDay, topN                int
	// longLabels[i][k] is whether test row i's customer buys within
	// LongHorizons[k] days of the test cutoff (only for base.LongHorizons).
	longLabels [][len(hazard.LongHorizons)]bool
	// events and build rebuild rows at other cutoffs (LevelCarry).
	events []model.Event
	build  feature.Config
}

// Prepare builds the rows of cfg's split from events. Of cfg it uses the
// cutoffs, Location, Allow, AllowLabelOverlap and Dataset; it does no I/O.
func Prepare(events []model.Event, cfg Config) (*Prepared, error) {
	if cfg.TestCutoff.IsZero() || len(cfg.TrainCutoffs) == 0 {
		return nil, errors.New("evaluate: test cutoff and at least one training cutoff are required")
	}
	train := slices.Clone(cfg.TrainCutoffs)
	slices.SortFunc(train, func(a, b time.Time) int { return a.Compare(b) })
	overlap := false
	for _, c := range train {
		if !c.Before(cfg.TestCutoff) {
			return nil, fmt.Errorf("evaluate: training cutoff %s is not before the test cutoff %s",
				c.Format(time.DateOnly), cfg.TestCutoff.Format(time.DateOnly))
		}
		if end := c.Add(model.Horizon * model.Day); end.After(cfg.TestCutoff) {
			overlap = true
			if cfg.AllowLabelOverlap {
				continue
			}
			return nil, fmt.Errorf("evaluate: training cutoff %s: label window ends %s, after the test cutoff %s",
				c.Format(time.DateOnly), end.Format(time.DateOnly), cfg.TestCutoff.Format(time.DateOnly))
		}
	}
	cutoffs := append(slices.Clone(train), cfg.TestCutoff)
	switch cfg.Classic {
	case "", ClassicLocal:
	case ClassicDP:
		if cfg.DP == nil {
			return nil, errors.New("evaluate: classic features fitted with DP need a DP budget")
		}
	default:
		return nil, fmt.Errorf("evaluate: unknown classic mode %q (want %s or %s)", cfg.Classic, ClassicLocal, ClassicDP)
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Location: cfg.Location, Allow: cfg.Allow, Classic: cfg.Classic != ""})
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	hist := histories{}
	var last time.Time
	for i, e := range events {
		if err := b.Add(e); err != nil {
			return nil, fmt.Errorf("evaluate: event %d: %w", i, err)
		}
		if e.Time.After(last) {
			last = e.Time
		}
		if e.Kind == model.Purchase {
			hist[e.Customer] = append(hist[e.Customer], e.Time)
		}
	}
	for _, ts := range hist {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	conc := b.PurchaseConcentration()
	if hint := conc.NoRepeatHint(); hint != "" {
		return nil, fmt.Errorf("evaluate: %s", hint)
	}
	testIdx := len(cutoffs) - 1
	var classic *ClassicFit
	if cfg.Classic != "" {
		if classic, err = fitClassic(b, testIdx, cfg); err != nil {
			return nil, fmt.Errorf("evaluate: classic features: %w", err)
		}
	}
	var trainRows, testRows, lastTrain []feature.Row
	for _, r := range b.Rows() {
		switch r.Cutoff {
		case testIdx:
			testRows = append(testRows, r)
		case testIdx - 1:
			lastTrain = append(lastTrain, r)
			trainRows = append(trainRows, r)
		default:
			trainRows = append(trainRows, r)
		}
	}
	if len(testRows) == 0 || len(trainRows) == 0 {
		return nil, fmt.Errorf("evaluate: %d training rows, %d test rows: need both", len(trainRows), len(testRows))
	}
	rep := Report{
		Dataset: cfg.Dataset, TestCutoff: cfg.TestCutoff, Customers: len(testRows),
		PositiveRate: map[int]float64{}, Positives: map[int]int{}, TrainRows: len(trainRows), LabelOverlap: overlap,
		Concentration: conc,
	}
	for _, h := range hazard.Horizons {
		rep.Positives[h] = positives(testRows, h)
		rep.PositiveRate[h] = float64(rep.Positives[h]) / float64(len(testRows))
	}
	longLabels := make([][len(hazard.LongHorizons)]bool, len(testRows))
	end := utcMidnight(last).Add(model.Day)
	for k, h := range hazard.LongHorizons {
		until := cfg.TestCutoff.Add(time.Duration(h) * model.Day)
		if until.After(end) {
			continue
		}
		rep.LongHorizons = append(rep.LongHorizons, h)
		for i, r := range testRows {
			ts := hist[r.Customer]
			j := sort.Search(len(ts), func(j int) bool { return !ts[j].Before(cfg.TestCutoff) })
			longLabels[i][k] = j < len(ts) && ts[j].Before(until)
			if longLabels[i][k] {
				rep.Positives[h]++
			}
		}
		rep.PositiveRate[h] = float64(rep.Positives[h]) / float64(len(testRows))
	}
	p := &Prepared{classic: classic, schema: b.Schema(), hist: hist, train: train, trainRows: trainRows, testRows: testRows,
		lastTrain: lastTrain, base: rep, longLabels: longLabels,
		events: events, build: feature.Config{Location: cfg.Location, Allow: cfg.Allow}}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p, nil
}

// finish checks that the test rows can be ranked and fills in what the
// scoring needs from the training rows: the training positive rate, the
// baseline day and the JData list's length. p.base.Positives must be set.
func (p *Prepared) finish() error {
	rep := &p.base
	if n := rep.Positives[model.Horizon]; n == 0 || n == len(p.testRows) {
		// C-index, JData and F1 all need buyers and non-buyers at the horizon.
		return fmt.Errorf("evaluate: %d of the %d test customers buy within %d days of the test cutoff %s: nothing to rank; choose another test cutoff",
			n, len(p.testRows), model.Horizon, rep.TestCutoff.Format(time.DateOnly))
	}
	rep.TrainPositiveRate = positiveRate(p.trainRows, model.Horizon)
	// Baseline predicted day for methods without a day distribution: the median
	// first-purchase day among training buyers.
	var buyDays []int
	for _, r := range p.trainRows {
		if r.Label > 0 {
			buyDays = append(buyDays, r.Label)
		}
	}
	p.medianDay = model.Horizon / 2
	if len(buyDays) > 0 {
		slices.Sort(buyDays)
		p.medianDay = buyDays[len(buyDays)/2]
	}
	p.topN = max(1, int(math.Round(rep.TrainPositiveRate*float64(len(p.testRows)))))
	return nil
}

// inner returns the split that moves the test cutoff back to the training
// cutoff p.train[test] and trains on the training cutoffs train (indices
// into p.train, each label window ending by then), from p's own rows: a
// customer's row at a cutoff does not depend on the other cutoffs, so no
// feature is built again. Its report describes the 30-day horizons only (no
// long horizons). A split with classic features is refused: their
// parameters are fitted up to the test cutoff.
func (p *Prepared) inner(test int, train []int) (*Prepared, error) {
	if p.classic != nil {
		return nil, errors.New("evaluate: an inner split of rows with classic features")
	}
	q := &Prepared{schema: p.schema, hist: p.hist, events: p.events, build: p.build}
	last := train[len(train)-1]
	for _, c := range train {
		q.train = append(q.train, p.train[c])
	}
	for _, r := range p.trainRows {
		switch {
		case r.Cutoff == test:
			q.testRows = append(q.testRows, r)
		case slices.Contains(train, r.Cutoff):
			q.trainRows = append(q.trainRows, r)
			if r.Cutoff == last {
				q.lastTrain = append(q.lastTrain, r)
			}
		}
	}
	if len(q.testRows) == 0 || len(q.trainRows) == 0 {
		return nil, fmt.Errorf("evaluate: %d training rows, %d test rows: need both", len(q.trainRows), len(q.testRows))
	}
	q.base = Report{Dataset: p.base.Dataset, TestCutoff: p.train[test], Customers: len(q.testRows),
		PositiveRate: map[int]float64{}, Positives: map[int]int{}, TrainRows: len(q.trainRows), Concentration: p.base.Concentration}
	for _, h := range hazard.Horizons {
		q.base.Positives[h] = positives(q.testRows, h)
		q.base.PositiveRate[h] = float64(q.base.Positives[h]) / float64(len(q.testRows))
	}
	q.longLabels = make([][len(hazard.LongHorizons)]bool, len(q.testRows))
	if err := q.finish(); err != nil {
		return nil, err
	}
	return q, nil
}

// Schema is the feature schema of the prepared rows.
func (p *Prepared) Schema() feature.Schema { return p.schema }

// TrainRows are the prepared training rows (every training cutoff), shared:
// the caller must not modify them.
func (p *Prepared) TrainRows() []feature.Row { return p.trainRows }

// Run trains and scores cfg.Methods on the prepared split. Of cfg it uses
// Dataset, Seed, Methods, Hazard, Select, DP and NoLevelCarry; the split
// itself is the one Prepare was given.
func (p *Prepared) Run(ctx context.Context, cfg Config) (Report, error) {
	methods := cfg.Methods
	if len(methods) == 0 {
		methods = DefaultMethods
	}
	rep := p.base
	rep.PositiveRate = maps.Clone(p.base.PositiveRate)
	rep.Positives = maps.Clone(p.base.Positives)
	rep.LongHorizons = slices.Clone(p.base.LongHorizons)
	hist, train, trainRows, testRows, lastTrain := p.hist, p.train, p.trainRows, p.testRows, p.lastTrain
	medianDay, topN := p.medianDay, p.topN
	var err error

	for _, name := range methods {
		var m method
		switch name {
		case MethodHazard:
			opts := cfg.Hazard
			opts.Seed = cfg.Seed
			if opts.Meta.Dataset == "" {
				opts.Meta.Dataset = cfg.Dataset
				for _, c := range train {
					opts.Meta.Cutoffs = append(opts.Meta.Cutoffs, c.Format(time.DateOnly))
				}
			}
			var hm *hazard.Model
			var tr hazard.TrainReport
			if p.classic != nil && (p.classic.Mode == ClassicDP) != (cfg.DP != nil) {
				return Report{}, fmt.Errorf("evaluate: classic features fitted %s cannot feed a %s model", p.classic.Mode, map[bool]string{true: "private", false: "non-private"}[cfg.DP != nil])
			}
			rep.Classic = p.classic
			if cfg.Select != nil && cfg.DP == nil {
				if opts, rep.Selection, err = p.choose(ctx, cfg, opts); err != nil {
					return Report{}, fmt.Errorf("evaluate: %w", err)
				}
			}
			if cfg.DP != nil {
				var priv *PrivacyReport
				o := *cfg.DP
				if p.classic != nil {
					o.Spent = append(slices.Clone(o.Spent), p.classic.Releases...)
				}
				hm, tr, priv, err = TrainPrivate(ctx, p.schema, trainRows, opts, o)
				rep.Privacy = priv
			} else {
				hm, tr, err = hazard.Train(ctx, p.schema, trainRows, opts)
			}
			if err != nil {
				return Report{}, fmt.Errorf("evaluate: %w", err)
			}
			if cfg.DP == nil && !cfg.NoLevelCarry && !hm.Rhythm() {
				if rep.Level, err = p.levelCarry(hm); err != nil {
					return Report{}, fmt.Errorf("evaluate: %w", err)
				}
				if rep.Level != nil {
					shiftBaselines(hm, rep.Level.Shift)
				}
			}
			if cfg.DP == nil && opts.OwnDay {
				// The weight reads the training rows' purchase days: a
				// non-private model's only (DP models keep the model's day).
				w, mae, mae0, err := hm.FitOwnDay(trainRows)
				if err != nil {
					return Report{}, fmt.Errorf("evaluate: %w", err)
				}
				rep.OwnDay = &OwnDayFit{Weight: w, TrainMAE: mae, TrainMAE0: mae0}
			}
			rep.Model, rep.TrainReport = hm, tr
			m = hazardMethod(hm)
			if rep.DayBaselines, err = p.dayBaselines(); err != nil {
				return Report{}, fmt.Errorf("evaluate: %w", err)
			}
		case MethodBGNBD:
			m, err = bgnbdMethod(hist, medianDay)
			if err != nil {
				return Report{}, fmt.Errorf("evaluate: %w", err)
			}
		case MethodRecency:
			m = method{name: name, pred: func(rows []feature.Row, tau time.Time) ([]prediction, error) {
				return hist.each(rows, func(ts []time.Time) prediction {
					if len(ts) == 0 {
						return prediction{score: math.Inf(-1), day: medianDay}
					}
					return prediction{score: -tau.Sub(ts[len(ts)-1]).Hours() / 24, day: medianDay}
				}, tau), nil
			}}
		case MethodFrequency365:
			m = method{name: name, pred: func(rows []feature.Row, tau time.Time) ([]prediction, error) {
				from := tau.Add(-365 * model.Day)
				return hist.each(rows, func(ts []time.Time) prediction {
					i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(from) })
					return prediction{score: float64(len(ts) - i), day: medianDay}
				}, tau), nil
			}}
		default:
			return Report{}, fmt.Errorf("evaluate: unknown method %q", name)
		}
		mr, err := score(m, testRows, cfg.TestCutoff, lastTrain, train[len(train)-1], topN, longLabels{p.longLabels, rep.LongHorizons})
		if err == nil && name == MethodHazard && cfg.DumpPredictions != "" {
			err = dumpPredictions(cfg.DumpPredictions, m, testRows, cfg.TestCutoff)
		}
		if err != nil {
			if name == MethodHazard {
				return Report{}, fmt.Errorf("evaluate: method %s: %w", name, err)
			}
			// A baseline that cannot be fitted on this data (BG/NBD on a thinned
			// log) is reported as such rather than sinking the whole run.
			mr = MethodReport{Name: name, Err: err.Error()}
		}
		rep.Methods = append(rep.Methods, mr)
		if err := ctx.Err(); err != nil {
			return Report{}, fmt.Errorf("evaluate: %w", err)
		}
	}
	return rep, nil
}

// histories maps a customer to their sorted purchase times.
type histories map[string][]time.Time

// each applies f to every row's purchase history strictly before tau.
func (h histories) each(rows []feature.Row, f func([]time.Time) prediction, tau time.Time) []prediction {
	out := make([]prediction, len(rows))
	for i, r := range rows {
		ts := h[r.Customer]
		n := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(tau) })
		out[i] = f(ts[:n])
	}
	return out
}

func hazardMethod(hm *hazard.Model) method {
	return method{name: MethodHazard, probs: true, byHorizon: hm.Rhythm(), pred: func(rows []feature.Row, _ time.Time) ([]prediction, error) {
		out := make([]prediction, len(rows))
		for i, r := range rows {
			f, err := hm.Score(r.X)
			if err != nil {
				return nil, err
			}
			p, err := hm.Predict(r.X)
			if err != nil {
				return nil, err
			}
			if hm.Rhythm() {
				// The day shape depends on the customer, so f alone no
				// longer orders P(buy within 30 days).
				f = p.Within[len(hazard.Horizons)-1]
			}
			// JData's S2 rewards a day close to the truth (10/(10+d²)); the
			// conditional median beats the mode, which is day 1 for most customers.
			out[i] = prediction{score: f, within: p.Within, beyond: p.Beyond, day: p.MedianDay,
				days: &[4]int{p.MostLikelyDay, p.MedianDay, int(math.Round(p.ExpectedDayIfBuys)), p.ClosestDay}}
		}
		return out, nil
	}}
}

// dayBaselines scores the simple day predictors on the test buyers: the best
// constant day on the training cutoffs' buyers, and the last purchase plus
// the customer's own mean gap.
func (p *Prepared) dayBaselines() ([]DayScore, error) {
	var trainDays []int
	for _, r := range p.trainRows {
		if r.Label > 0 {
			trainDays = append(trainDays, r.Label)
		}
	}
	best, bestS2 := p.medianDay, -1.0
	bestMAE, lowMAE := p.medianDay, math.Inf(1)
	if len(trainDays) > 0 {
		pred := make([]float64, len(trainDays))
		for d := 1; d <= model.Horizon; d++ {
			for i := range pred {
				pred[i] = float64(d)
			}
			s2, mae, err := metrics.DayAccuracy(pred, trainDays)
			if err != nil {
				return nil, err
			}
			if s2 > bestS2 {
				best, bestS2 = d, s2
			}
			if mae < lowMAE {
				bestMAE, lowMAE = d, mae
			}
		}
	}
	at := map[string]int{}
	for j, n := range p.schema.Names {
		at[n] = j
	}
	ri, okR := at["recency_days"]
	gi, okG := at["gap_mean_days"]
	hi, okH := at["has_gap"]
	var constant, constantMAE, gap []float64
	var truth []int
	for _, r := range p.testRows {
		if r.Label == 0 {
			continue
		}
		truth = append(truth, r.Label)
		constant = append(constant, float64(best))
		constantMAE = append(constantMAE, float64(bestMAE))
		d := float64(best)
		if okR && okG && okH && r.X[hi] == 1 {
			// recency and gap_mean_days are log1p of days.
			due := math.Expm1(r.X[gi]) - math.Expm1(r.X[ri])
			d = min(max(math.Floor(due)+1, 1), model.Horizon)
		}
		gap = append(gap, d)
	}
	var out []DayScore
	for _, b := range []struct {
		name string
		pred []float64
	}{{DayLastPlusGap, gap}, {DayBestConstant, constant}, {DayBestConstantMAE, constantMAE}} {
		s2, mae, err := metrics.DayAccuracy(b.pred, truth)
		if err != nil {
			return nil, fmt.Errorf("day baseline %s: %w", b.name, err)
		}
		out = append(out, DayScore{Predictor: b.name, S2: s2, MAE: mae})
	}
	return out, nil
}

// positives counts the rows whose customer buys within h days.
func positives(rows []feature.Row, h int) int {
	n := 0
	for _, r := range rows {
		if r.Label > 0 && r.Label <= h {
			n++
		}
	}
	return n
}

func positiveRate(rows []feature.Row, h int) float64 {
	return float64(positives(rows, h)) / float64(len(rows))
}

// score computes every metric of one method on the test rows, tuning the F1
// threshold on the latest training cutoff's rows.
// longLabels are the test rows' labels at the observed long horizons
// (Prepared.longLabels, Report.LongHorizons).
type longLabels struct {
	labels   [][len(hazard.LongHorizons)]bool
	horizons []int
}

func score(m method, test []feature.Row, tau time.Time, tune []feature.Row, tuneTau time.Time, topN int, long longLabels) (MethodReport, error) {
	preds, err := m.pred(test, tau)
	if err != nil {
		return MethodReport{}, err
	}
	mr := MethodReport{Name: m.name, AUC: map[int]float64{}, PRAUC: map[int]float64{}}
	scores := make([]float64, len(preds))
	for i, p := range preds {
		// −Inf (recency of a customer who never bought) ranks last.
		scores[i] = max(p.score, -math.MaxFloat64)
	}
	labels := make([]bool, len(test))
	for hi, h := range hazard.Horizons {
		for i, r := range test {
			labels[i] = r.Label > 0 && r.Label <= h
		}
		rank := scores
		if m.byHorizon {
			rank = make([]float64, len(preds))
			for i, p := range preds {
				rank[i] = p.within[hi]
			}
		}
		if !hasBoth(labels) {
			// Undefined at this horizon (e.g. nobody buys on day 1 of a small log).
			mr.AUC[h], mr.PRAUC[h] = math.NaN(), math.NaN()
		} else {
			if mr.AUC[h], err = metrics.AUC(rank, labels); err != nil {
				return MethodReport{}, fmt.Errorf("auc@%d: %w", h, err)
			}
			if mr.PRAUC[h], err = metrics.AveragePrecision(rank, labels); err != nil {
				return MethodReport{}, fmt.Errorf("pr-auc@%d: %w", h, err)
			}
		}
		if !m.probs {
			continue
		}
		probs := make([]float64, len(preds))
		for i, p := range preds {
			probs[i] = p.within[hi]
		}
		if mr.Brier == nil {
			mr.Brier = map[int]float64{}
		}
		if mr.Brier[h], err = metrics.Brier(probs, labels); err != nil {
			return MethodReport{}, fmt.Errorf("brier@%d: %w", h, err)
		}
		if h == model.Horizon {
			if mr.Calibration, err = metrics.Calibration(probs, labels, 10); err != nil {
				return MethodReport{}, fmt.Errorf("calibration: %w", err)
			}
		}
	}
	// labels now holds the 30-day labels.
	times := make([]float64, len(test))
	events := make([]bool, len(test))
	users := make([]string, len(test))
	days := make([]int, len(test))
	truth := map[string]int{}
	finite := make([]float64, len(test))
	for i, r := range test {
		times[i], events[i] = model.Horizon+1, false
		if r.Label > 0 {
			times[i], events[i] = float64(r.Label), true
			truth[r.Customer] = r.Label
		}
		users[i], days[i] = r.Customer, preds[i].day
		finite[i] = scores[i]
	}
	if mr.CIndex, err = metrics.ConcordanceIndex(finite, times, events); err != nil {
		return MethodReport{}, fmt.Errorf("c-index: %w", err)
	}
	if mr.Gain, err = metrics.CumulativeGain(finite, labels, GainPoints); err != nil {
		return MethodReport{}, err
	}
	list, err := metrics.JDataList(users, finite, days, topN)
	if err != nil {
		return MethodReport{}, err
	}
	if mr.JData, mr.JDataS1, mr.JDataS2, err = metrics.JData(list, truth); err != nil {
		return MethodReport{}, err
	}
	if mr.Days, err = dayScores(preds, test); err != nil {
		return MethodReport{}, err
	}
	if preds[0].days != nil {
		mr.ModalDayShare = modalShare(preds)
	}
	if err := scoreLong(m, &mr, preds, scores, long); err != nil {
		return MethodReport{}, err
	}
	// F1: tune on the latest training cutoff, apply to the test rows.
	tp, err := m.pred(tune, tuneTau)
	if err != nil {
		return MethodReport{}, err
	}
	ts := make([]float64, len(tp))
	tl := make([]bool, len(tp))
	for i, p := range tp {
		ts[i] = p.score
		if math.IsInf(ts[i], -1) {
			ts[i] = -math.MaxFloat64
		}
		tl[i] = tune[i].Label > 0
	}
	if mr.F1Threshold, _, err = metrics.BestF1(ts, tl); err != nil {
		return MethodReport{}, fmt.Errorf("f1 threshold: %w", err)
	}
	mr.F1 = f1At(finite, labels, mr.F1Threshold)
	return mr, nil
}

// scoreLong adds AUC, PR-AUC and, for a probabilistic method, Brier at each
// observed long horizon: ranked by P(buy within h) for a method that ranks
// by horizon, by its score otherwise.
func scoreLong(m method, mr *MethodReport, preds []prediction, scores []float64, long longLabels) error {
	labels := make([]bool, len(preds))
	for _, h := range long.horizons {
		k := slices.Index(hazard.LongHorizons[:], h)
		for i := range preds {
			labels[i] = long.labels[i][k]
		}
		probs := make([]float64, len(preds))
		for i, p := range preds {
			probs[i] = p.beyond[k]
		}
		rank := scores
		if m.byHorizon {
			rank = probs
		}
		if !hasBoth(labels) {
			mr.AUC[h], mr.PRAUC[h] = math.NaN(), math.NaN()
		} else {
			var err error
			if mr.AUC[h], err = metrics.AUC(rank, labels); err != nil {
				return fmt.Errorf("auc@%d: %w", h, err)
			}
			if mr.PRAUC[h], err = metrics.AveragePrecision(rank, labels); err != nil {
				return fmt.Errorf("pr-auc@%d: %w", h, err)
			}
		}
		if m.probs {
			b, err := metrics.Brier(probs, labels)
			if err != nil {
				return fmt.Errorf("brier@%d: %w", h, err)
			}
			mr.Brier[h] = b
		}
	}
	return nil
}

// modalShare is the share of preds whose predicted day is the most common one.
func modalShare(preds []prediction) float64 {
	var n [model.Horizon + 1]int
	for _, p := range preds {
		n[min(max(p.day, 0), model.Horizon)]++
	}
	return float64(slices.Max(n[:])) / float64(len(preds))
}

func hasBoth(labels []bool) bool {
	return slices.Contains(labels, true) && slices.Contains(labels, false)
}

// f1At is the F1 of predicting positive when score ≥ threshold.
func f1At(scores []float64, labels []bool, threshold float64) float64 {
	var tp, fp, fn float64
	for i, s := range scores {
		switch {
		case s >= threshold && labels[i]:
			tp++
		case s >= threshold:
			fp++
		case labels[i]:
			fn++
		}
	}
	if tp == 0 {
		return 0
	}
	return 2 * tp / (2*tp + fp + fn)
}

// MonthlyCutoffs returns the first of every month from `from` up to the last month
// whose 30-day label window ends at or before test.
func MonthlyCutoffs(from, test time.Time) []time.Time {
	var out []time.Time
	for c := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, from.Location()); !c.Add(model.Horizon * model.Day).After(test); c = c.AddDate(0, 1, 0) {
		if !c.Before(from) {
			out = append(out, c)
		}
	}
	return out
}

// SpacedCutoffs returns from, from+every, from+2·every, … up to the last cutoff
// whose label window [c, c+Horizon days) ends at or before test.
func SpacedCutoffs(from, test time.Time, every time.Duration) []time.Time {
	var out []time.Time
	if every <= 0 {
		return nil
	}
	for c := from; !c.Add(model.Horizon * model.Day).After(test); c = c.Add(every) {
		out = append(out, c)
	}
	return out
}

// DefaultHazardOptions are the hazard training settings used by `kairos eval`
// and the reference test: the linear score, 10 epochs of Adam at batch 256
// customers, step size 0.01 annealed linearly to 0.0005, L2 = 1e-4, no early
// stopping. On CDNOW they reach the same test AUC as early stopping (the
// problem is convex) at a fraction of the time, and vary by less than 0.0002
// AUC across seeds. A non-private model's predicted day is weighed by the
// customer's own rhythm where the training buyers show it pays
// (hazard.Model.FitOwnDay; OwnDay).
func DefaultHazardOptions() hazard.TrainOptions {
	return hazard.TrainOptions{Kind: hazard.KindLinear, L2: 1e-4, LearningRate: 0.01, Epochs: 10, Anneal: true, OwnDay: true}
}

// DefaultMLPOptions are the settings tuned for the 16-unit MLP on CDNOW, with
// the own-rhythm day like DefaultHazardOptions.
func DefaultMLPOptions() hazard.TrainOptions {
	return hazard.TrainOptions{Kind: hazard.KindMLP, Hidden: 16, L2: 1e-2, LearningRate: 0.003, Epochs: 20, Anneal: true, OwnDay: true}
}

// dayScores is the date accuracy of the hazard model's three predicted days
// over the test rows that buy within the horizon; nil for a method without
// them.
func dayScores(preds []prediction, test []feature.Row) ([]DayScore, error) {
	if len(preds) == 0 || preds[0].days == nil {
		return nil, nil
	}
	var truth []int
	var pred [4][]float64
	for i, r := range test {
		if r.Label == 0 {
			continue
		}
		truth = append(truth, r.Label)
		for k := range pred {
			pred[k] = append(pred[k], float64(preds[i].days[k]))
		}
	}
	var out []DayScore
	for k, name := range []string{DayMostLikely, DayMedian, DayExpected, DayClosest} {
		s2, mae, err := metrics.DayAccuracy(pred[k], truth)
		if err != nil {
			return nil, fmt.Errorf("day accuracy %s: %w", name, err)
		}
		out = append(out, DayScore{Predictor: name, S2: s2, MAE: mae})
	}
	return out, nil
}

// dumpPredictions writes m's predictions of the test rows to path
// (Config.DumpPredictions).
func dumpPredictions(path string, m method, test []feature.Row, tau time.Time) error {
	preds, err := m.pred(test, tau)
	if err != nil {
		return err
	}
	hi := slices.Index(hazard.Horizons[:], model.Horizon)
	var b strings.Builder
	for i, r := range test {
		bought := 0
		if r.Label > 0 && r.Label <= model.Horizon {
			bought = 1
		}
		fmt.Fprintf(&b, "%s\t%.17g\t%d\n", r.Customer, preds[i].within[hi], bought)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
