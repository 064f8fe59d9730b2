package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

// Loader reads every event of a data set whose Path and Mapping are resolved.
// The caller provides it (cmd/kairos reads with client/ingest), so that this
// package stays below the readers.
type Loader func(ctx context.Context, d Dataset) ([]model.Event, error)

// Model is a Kairos model trained on every data set: a name for the table,
// the hazard training settings and, for a private model, its DP-SGD budget.
type Model struct {
	Name   string
	Hazard hazard.TrainOptions
	// DP, when set, trains the model with DP-SGD under a customer-level
	// budget on every data set (evaluate.TrainPrivate).
	DP *evaluate.DPOptions
	// Classic adds BG/NBD's quantities as inputs (evaluate.Config.Classic):
	// evaluate.ClassicLocal for a non-private model, evaluate.ClassicDP for a
	// private one.
	Classic string
	// Prior starts the training from a public prior instead of zero weights
	// (hazard.TrainOptions.Init): the model's own non-private training (with
	// DP's data-independent standardisation for a DP model) on the training
	// rows of every other data set of the suite, pooled. The evaluated data
	// set never enters its own prior; with no other data set that loads, the
	// model starts from zero and the data set's warnings say so.
	Prior bool
	// Select chooses the score function on each data set's own training
	// cutoffs (evaluate.Config.Select); nil trains Hazard as given.
	Select *evaluate.Selection
}

// Method kinds in a result.
const (
	KindKairos   = "kairos"
	KindBaseline = "baseline"
)

// DefaultModels are the Kairos models of `kairos eval`: the default hazard
// model ("hazard": linear unless the 16-unit MLP wins the data set's own inner
// validation split, evaluate.DefaultSelection) and the 16-unit MLP ("mlp"),
// each with the settings `kairos eval` uses.
func DefaultModels() []Model {
	return []Model{
		{Name: evaluate.MethodHazard, Hazard: evaluate.DefaultHazardOptions(), Select: evaluate.DefaultSelection()},
		{Name: hazard.KindMLP, Hazard: evaluate.DefaultMLPOptions()},
	}
}

// DefaultBaselines are evaluate's default methods other than the hazard model.
func DefaultBaselines() []string {
	return slices.DeleteFunc(slices.Clone(evaluate.DefaultMethods), func(m string) bool { return m == evaluate.MethodHazard })
}

// Options configure Run. Models and Baselines are used as given: start from
// DefaultModels and DefaultBaselines.
type Options struct {
	Load      Loader
	Models    []Model
	Baselines []string
	// Seed seeds hazard training.
	Seed uint64
	// Log, when set, receives one line per data set and method as they finish.
	Log *slog.Logger
	// NoLevelCarry leaves every non-private model's baselines as trained
	// (evaluate.Config.NoLevelCarry).
	NoLevelCarry bool
	// DumpDir, a scratch option for measurement, writes every Kairos model's
	// test predictions to DumpDir/<data set>--<model>.tsv
	// (evaluate.Config.DumpPredictions); "" writes none.
	DumpDir string
}

func (o Options) validate() error {
	if o.Load == nil {
		return errors.New("no loader")
	}
	if len(o.Models)+len(o.Baselines) == 0 {
		return errors.New("no model and no baseline to evaluate")
	}
	names := map[string]bool{}
	for _, m := range o.Models {
		if m.Name == "" || names[m.Name] {
			return fmt.Errorf("model name %q is empty or repeated", m.Name)
		}
		if m.Prior && m.DP == nil {
			// A non-private model fits its standardisation on its own rows,
			// which a prior's weights would not match.
			return fmt.Errorf("model %s: a prior is built for DP models only", m.Name)
		}
		names[m.Name] = true
	}
	for _, b := range o.Baselines {
		if b == evaluate.MethodHazard || names[b] {
			return fmt.Errorf("baseline %q is a model or repeated", b)
		}
		names[b] = true
	}
	return nil
}

// Result is the outcome of Run; its JSON form is the one `kairos eval
// --suite --json` prints:
//
//	{"datasets":[{"name":"cdnow", …, "methods":[{"name":"hazard","auc":{"7":…,"30":…},
//	  "pr_auc":{"30":…},"brier":{"30":…},"ece":{"30":…}}, …]}]}
type Result struct {
	Datasets []DatasetResult `json:"datasets"`
}

// DatasetResult is one data set's protocol, test labels and methods. When the
// data set cannot be read or split, Error says why and Methods is empty.
type DatasetResult struct {
	Name         string   `json:"name"`
	TestCutoff   string   `json:"test_cutoff"`
	TrainCutoffs []string `json:"train_cutoffs"`
	// Customers is the number of test customers (an event before the test
	// cutoff), Positives how many buy within 30 days, PositiveRate their share.
	Customers    int      `json:"customers"`
	Positives    int      `json:"positives_30"`
	PositiveRate *float64 `json:"positive_rate_30"`
	TrainRows    int      `json:"train_rows"`
	Warnings     []string `json:"warnings,omitempty"`
	// Seconds is the wall time of reading, splitting and every method.
	Seconds float64  `json:"seconds"`
	Error   string   `json:"error,omitempty"`
	Methods []Method `json:"methods"`
	// DateBaselines is the date accuracy, for the test customers who buy
	// within 30 days, of the simple day predictors (last purchase + own mean
	// gap, the best constant day for S2 and for MAE), keyed by evaluate's
	// Day* names.
	DateBaselines map[string]DateScore `json:"date_baselines,omitempty"`
	// LongPositives is, for each horizon of hazard.LongHorizons whose test
	// label window the log covers, the number of test customers who buy
	// within it; the methods' metrics at those horizons are keyed like 30.
	LongPositives map[string]int `json:"long_positives,omitempty"`
}

// DateScore is the date accuracy of one predicted first-purchase day over the
// test customers who buy within 30 days: JData's S2 (mean 10/(10 + d²)) and
// the mean absolute error in days.
type DateScore struct {
	S2  *float64 `json:"s2"`
	MAE *float64 `json:"mae_days"`
}

// dateScores keys evaluate's day scores by predictor.
func dateScores(ds []evaluate.DayScore) map[string]DateScore {
	if len(ds) == 0 {
		return nil
	}
	out := make(map[string]DateScore, len(ds))
	for _, d := range ds {
		out[d.Predictor] = DateScore{S2: num(d.S2), MAE: num(d.MAE)}
	}
	return out
}

// Method is one method's metrics on one data set. Metric maps are keyed by
// horizon in days: AUC at 7 and 30, the others at 30, and AUC, PR-AUC and
// Brier also at 60 and 90 where the log covers the test label window
// (DatasetResult.LongPositives). Brier and ECE are absent
// for a method that gives no probabilities (recency, frequency), and every
// metric is absent when Error is set: a failure is never a zero. A metric that
// is undefined on these labels is null.
type Method struct {
	Name  string              `json:"name"`
	Kind  string              `json:"kind"` // KindKairos or KindBaseline
	AUC   map[string]*float64 `json:"auc,omitempty"`
	PRAUC map[string]*float64 `json:"pr_auc,omitempty"`
	Brier map[string]*float64 `json:"brier,omitempty"`
	// ECE is the expected calibration error over metrics.ECEBins equal-width
	// bins (metrics.ECE).
	ECE map[string]*float64 `json:"ece,omitempty"`
	// Date is the date accuracy of a Kairos model's most likely, median and
	// expected day for the test customers who buy within 30 days.
	Date map[string]DateScore `json:"date,omitempty"`
	// ModalDayShare is the share of test customers whose median day (the day
	// Kairos shows) is the most common one (Kairos models only).
	ModalDayShare *float64 `json:"modal_day_share,omitempty"`
	Seconds       float64  `json:"seconds"`
	Error         string   `json:"error,omitempty"`
	// Classic is how the BG/NBD parameters of a model with classic features
	// were fitted (Model.Classic).
	Classic *evaluate.ClassicFit `json:"classic,omitempty"`
	// Level is the period-level carry-over applied to the model's baselines
	// (evaluate.LevelCarry); absent when none was applied.
	Level *Level `json:"level,omitempty"`
	// OwnDay is the own-rhythm day's weight and the training buyers' day
	// error with it and without it (evaluate.OwnDayFit); absent when the
	// model does not fit it.
	OwnDay *OwnDay `json:"own_day,omitempty"`
	// Selection is the model choice of a model with Model.Select: the kind
	// trained and the inner split's evidence; absent otherwise.
	Selection *Selection `json:"selection,omitempty"`
	// Calibration and Gain are the 30-day reliability table and cumulative
	// gain curve, for charts.
	Calibration []metrics.Bin       `json:"-"`
	Gain        []metrics.GainPoint `json:"-"`
}

// Level summarises evaluate.LevelCarry: the logit added to every baseline,
// the persistence estimate it was scaled by, the latest window's offset and
// the number of offset pairs behind the estimate.
type Level struct {
	Shift  float64 `json:"shift"`
	Rho    float64 `json:"rho"`
	Latest float64 `json:"latest_offset"`
	Pairs  int     `json:"pairs"`
}

// OwnDay summarises evaluate.OwnDayFit.
type OwnDay struct {
	Weight    float64 `json:"weight"`
	TrainMAE  float64 `json:"train_mae_days"`
	TrainMAE0 float64 `json:"train_mae_days_without"`
}

// OwnDayOf is the JSON form of o (nil for nil).
func OwnDayOf(o *evaluate.OwnDayFit) *OwnDay {
	if o == nil {
		return nil
	}
	j := OwnDay(*o)
	return &j
}

// Selection summarises evaluate.SelectionReport at 30 days.
type Selection struct {
	Chosen      string      `json:"chosen"`
	Reason      string      `json:"reason"`
	InnerTest   string      `json:"inner_test_cutoff,omitempty"`
	InnerTrain  []string    `json:"inner_train_cutoffs,omitempty"`
	Customers   int         `json:"inner_customers,omitempty"`
	Buyers      int         `json:"inner_buyers,omitempty"`
	Base        *InnerScore `json:"base,omitempty"`
	Alternative *InnerScore `json:"alternative,omitempty"`
	SE          float64     `json:"auc_diff_se,omitempty"`
}

// InnerScore is one candidate's inner scores at 30 days.
type InnerScore struct {
	Kind  string  `json:"kind"`
	AUC   float64 `json:"auc_30"`
	PRAUC float64 `json:"pr_auc_30"`
	Brier float64 `json:"brier_30"`
}

// SelectionOf is the JSON form of r (nil for nil).
func SelectionOf(r *evaluate.SelectionReport) *Selection {
	if r == nil {
		return nil
	}
	s := &Selection{Chosen: r.Chosen, Reason: r.Reason, Customers: r.Customers, Buyers: r.Buyers, SE: r.SE}
	if !r.InnerTest.IsZero() {
		s.InnerTest = r.InnerTest.Format(time.DateOnly)
		for _, c := range r.InnerTrain {
			s.InnerTrain = append(s.InnerTrain, c.Format(time.DateOnly))
		}
	}
	if r.Base.Kind != "" {
		b, a := InnerScore(r.Base), InnerScore(r.Alternative)
		s.Base, s.Alternative = &b, &a
	}
	return s
}

func levelOf(l *evaluate.LevelCarry) *Level {
	if l == nil || len(l.Offsets) == 0 || math.IsNaN(l.Offsets[len(l.Offsets)-1]) {
		return nil
	}
	return &Level{Shift: l.Shift, Rho: l.Rho, Latest: l.Offsets[len(l.Offsets)-1], Pairs: l.Pairs}
}

// AUCHorizons are the horizons of Method.AUC.
var AUCHorizons = []int{7, model.Horizon}

// Run evaluates every model and baseline of opts on every data set, in order.
// A data set that cannot be read or split, and a method that fails on it, are
// recorded in the result and the run goes on; Run itself fails only on bad
// options or a cancelled ctx.
func Run(ctx context.Context, datasets []Dataset, opts Options) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, fmt.Errorf("run suite: %w", err)
	}
	res := Result{Datasets: []DatasetResult{}}
	// A prior needs the other data sets' rows: then every data set is read
	// and split first; otherwise one at a time, to hold one in memory.
	needPrior := slices.ContainsFunc(opts.Models, func(m Model) bool { return m.Prior })
	var all []*loaded
	if needPrior {
		for _, d := range datasets {
			ld := load(ctx, d, opts)
			if ctx.Err() != nil {
				return Result{}, fmt.Errorf("run suite: %s: %w", d.Name, ctx.Err())
			}
			all = append(all, ld)
		}
	}
	for i, d := range datasets {
		var ld *loaded
		var others []*loaded
		if needPrior {
			ld = all[i]
			others = append(slices.Clone(all[:i]), all[i+1:]...)
		} else {
			ld = load(ctx, d, opts)
		}
		dr, err := runDataset(ctx, d, opts, ld, others)
		if err != nil {
			return Result{}, fmt.Errorf("run suite: %s: %w", d.Name, err)
		}
		res.Datasets = append(res.Datasets, dr)
	}
	return res, nil
}

// loaded is one data set read and split, or why it could not be.
type loaded struct {
	name string
	// dataset is the data set with its cutoffs resolved, chosen what
	// WithDefaultCutoffs filled in.
	dataset Dataset
	chosen  string
	events  []model.Event
	prep    *evaluate.Prepared
	err     error
	seconds time.Duration
}

func load(ctx context.Context, d Dataset, opts Options) *loaded {
	start := time.Now()
	ld := &loaded{name: d.Name}
	defer func() { ld.seconds = time.Since(start) }()
	if ld.err = d.Validate(); ld.err != nil {
		return ld
	}
	if ld.events, ld.err = opts.Load(ctx, d); ld.err != nil {
		return ld
	}
	if d, ld.chosen, ld.err = d.WithDefaultCutoffs(ld.events); ld.err != nil {
		return ld
	}
	d = d.InZone()
	ld.dataset = d
	cfg := evaluate.Config{Dataset: d.Name, TestCutoff: d.TestCutoff, TrainCutoffs: d.TrainCutoffs, Location: d.Location, Seed: opts.Seed}
	ld.prep, ld.err = evaluate.Prepare(ld.events, cfg)
	return ld
}

// trainPrior fits m's public prior for one data set on the pooled training
// rows of others (customer IDs prefixed by their data set, so that no two
// data sets' customers merge); nil when none of them loaded.
func trainPrior(ctx context.Context, m Model, others []*loaded, seed uint64) (*hazard.Model, []string, error) {
	var rows []feature.Row
	var used []string
	var schema feature.Schema
	for _, o := range others {
		if o.err != nil || o.prep == nil {
			continue
		}
		schema = o.prep.Schema()
		for _, r := range o.prep.TrainRows() {
			r.Customer = o.name + "/" + r.Customer
			rows = append(rows, r)
		}
		used = append(used, o.name)
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	opts := m.Hazard
	opts.Seed, opts.Init, opts.Step = seed, nil, nil
	if m.DP != nil {
		if m.DP.Std == nil {
			return nil, nil, errors.New("prior: a DP model needs its data-independent standardisation")
		}
		std := m.DP.Std(schema)
		opts.Std = &std
	}
	p, _, err := hazard.Train(ctx, schema, rows, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("prior: %w", err)
	}
	return p, used, nil
}

// runDataset returns an error only when ctx is done. others are the other
// data sets of the suite, loaded, when a model needs a prior.
func runDataset(ctx context.Context, d Dataset, opts Options, ld *loaded, others []*loaded) (DatasetResult, error) {
	start := time.Now().Add(-ld.seconds)
	if ld.err == nil {
		d = ld.dataset
	}
	dr := DatasetResult{Name: d.Name, Methods: []Method{}}
	if !d.TestCutoff.IsZero() {
		dr.TestCutoff = d.Date(d.TestCutoff)
	}
	if ld.chosen != "" {
		dr.Warnings = append(dr.Warnings, "protocol: "+ld.chosen)
	}
	for _, c := range d.TrainCutoffs {
		dr.TrainCutoffs = append(dr.TrainCutoffs, d.Date(c))
	}
	fail := func(err error) (DatasetResult, error) {
		if ctx.Err() != nil {
			return dr, ctx.Err()
		}
		dr.Error = err.Error()
		dr.Seconds = roundSeconds(time.Since(start))
		if opts.Log != nil {
			opts.Log.Warn("suite data set failed", "dataset", d.Name, "error", err)
		}
		return dr, nil
	}
	if ld.err != nil {
		return fail(ld.err)
	}
	events, prep := ld.events, ld.prep
	cfg := evaluate.Config{Dataset: d.Name, TestCutoff: d.TestCutoff, TrainCutoffs: d.TrainCutoffs, Location: d.Location,
		Seed: opts.Seed, NoLevelCarry: opts.NoLevelCarry}
	type job struct {
		name, kind, method string
		hazard             hazard.TrainOptions
		dp                 *evaluate.DPOptions
		classic            string
		sel                *evaluate.Selection
	}
	var jobs []job
	for _, m := range opts.Models {
		h := m.Hazard
		if m.Prior {
			if m.Classic != "" {
				dr.Warnings = append(dr.Warnings, m.Name+": a prior with classic features is not built; trained from zero")
			} else {
				prior, used, err := trainPrior(ctx, m, others, opts.Seed)
				switch {
				case ctx.Err() != nil:
					return dr, ctx.Err()
				case err != nil:
					dr.Warnings = append(dr.Warnings, fmt.Sprintf("%s: %v; trained from zero", m.Name, err))
				case prior == nil:
					dr.Warnings = append(dr.Warnings, m.Name+": no other data set for a prior; trained from zero")
				default:
					h.Init = prior
					if opts.Log != nil {
						opts.Log.Info("suite prior", "dataset", d.Name, "model", m.Name, "from", used)
					}
				}
			}
		}
		jobs = append(jobs, job{m.Name, KindKairos, evaluate.MethodHazard, h, m.DP, m.Classic, m.Select})
	}
	for _, b := range opts.Baselines {
		jobs = append(jobs, job{b, KindBaseline, b, hazard.TrainOptions{}, nil, "", nil})
	}
	// The rows with classic features are prepared when a model first asks for
	// them; a DP fit of their parameters is made afresh for every model that
	// uses it (each is its own release).
	localPrep := (*evaluate.Prepared)(nil)
	prepFor := func(j job) (*evaluate.Prepared, error) {
		switch j.classic {
		case "":
			return prep, nil
		case evaluate.ClassicLocal:
			if localPrep == nil {
				c := cfg
				c.Classic = j.classic
				p, err := evaluate.Prepare(events, c)
				if err != nil {
					return nil, err
				}
				localPrep = p
			}
			return localPrep, nil
		default:
			c := cfg
			c.Classic, c.DP = j.classic, j.dp
			return evaluate.Prepare(events, c)
		}
	}
	described := false
	for _, j := range jobs {
		t0 := time.Now()
		c := cfg
		c.Methods, c.Hazard, c.DP, c.Select = []string{j.method}, j.hazard, j.dp, j.sel
		if opts.DumpDir != "" && j.kind == KindKairos {
			c.DumpPredictions = filepath.Join(opts.DumpDir, d.Name+"--"+j.name+".tsv")
		}
		p, err := prepFor(j)
		var rep evaluate.Report
		if err == nil {
			rep, err = p.Run(ctx, c)
		}
		m := Method{Name: j.name, Kind: j.kind}
		switch {
		case ctx.Err() != nil:
			return dr, ctx.Err()
		case err != nil:
			m.Error = err.Error()
		case len(rep.Methods) != 1:
			m.Error = fmt.Sprintf("evaluate returned %d methods, want 1", len(rep.Methods))
		case rep.Methods[0].Err != "":
			m.Error = rep.Methods[0].Err
		default:
			if !described {
				describeSplit(&dr, rep)
				described = true
			}
			fill(&m, rep.Methods[0], rep.LongHorizons)
			m.Classic = rep.Classic
			m.Level = levelOf(rep.Level)
			m.Selection = SelectionOf(rep.Selection)
			m.OwnDay = OwnDayOf(rep.OwnDay)
			if dr.DateBaselines == nil {
				dr.DateBaselines = dateScores(rep.DayBaselines)
			}
		}
		m.Seconds = roundSeconds(time.Since(t0))
		if opts.Log != nil {
			opts.Log.Info("suite method", "dataset", d.Name, "method", m.Name, "seconds", m.Seconds, "error", m.Error)
		}
		dr.Methods = append(dr.Methods, m)
	}
	dr.Seconds = roundSeconds(time.Since(start))
	return dr, nil
}

// describeSplit copies the split's figures, which every report of it shares.
func describeSplit(dr *DatasetResult, rep evaluate.Report) {
	dr.Customers, dr.TrainRows = rep.Customers, rep.TrainRows
	dr.Positives = rep.Positives[model.Horizon]
	dr.PositiveRate = num(rep.PositiveRate[model.Horizon])
	for _, h := range rep.LongHorizons {
		if dr.LongPositives == nil {
			dr.LongPositives = map[string]int{}
		}
		dr.LongPositives[strconv.Itoa(h)] = rep.Positives[h]
	}
	if w := rep.Concentration.Warning(); w != "" {
		dr.Warnings = append(dr.Warnings, w)
	}
	// Only the horizons the suite reports: evaluate also warns about AUC@1 and
	// @3, which are not in the table.
	for _, h := range AUCHorizons {
		switch n := rep.Positives[h]; {
		case n == 0 || n == rep.Customers:
			dr.Warnings = append(dr.Warnings, fmt.Sprintf("%d of %d test customers buy within %d days: AUC@%d is undefined", n, rep.Customers, h, h))
		case n < evaluate.MinPositives:
			dr.Warnings = append(dr.Warnings, fmt.Sprintf("only %d test customers buy within %d days (fewer than %d): AUC@%d is unreliable", n, h, evaluate.MinPositives, h))
		}
	}
}

// fill copies a method's metrics from its evaluate report.
func fill(m *Method, r evaluate.MethodReport, long []int) {
	m.AUC = map[string]*float64{}
	for _, h := range AUCHorizons {
		m.AUC[strconv.Itoa(h)] = num(r.AUC[h])
	}
	h := strconv.Itoa(model.Horizon)
	m.PRAUC = map[string]*float64{h: num(r.PRAUC[model.Horizon])}
	if b, ok := r.Brier[model.Horizon]; ok {
		m.Brier = map[string]*float64{h: num(b)}
	}
	if len(r.Calibration) > 0 {
		e, err := metrics.ECE(r.Calibration)
		if err != nil {
			e = math.NaN()
		}
		m.ECE = map[string]*float64{h: num(e)}
	}
	for _, h := range long {
		k := strconv.Itoa(h)
		m.AUC[k], m.PRAUC[k] = num(r.AUC[h]), num(r.PRAUC[h])
		if b, ok := r.Brier[h]; ok {
			m.Brier[k] = num(b)
		}
	}
	m.Calibration, m.Gain = r.Calibration, r.Gain
	m.Date = dateScores(r.Days)
	if len(r.Days) > 0 {
		m.ModalDayShare = num(r.ModalDayShare)
	}
}

// num rounds v to six decimals; nil (JSON null) when v is not finite.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	r := math.Round(v*1e6) / 1e6
	return &r
}

func roundSeconds(d time.Duration) float64 { return math.Round(d.Seconds()*100) / 100 }
