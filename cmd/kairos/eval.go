package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/suite"
)

// evalDataset is a known data set: where it lives under the shared data folder,
// how to read it, and its default cutoffs.
type evalDataset struct {
	file     string // relative to <shared>/data
	format   ingest.Format
	test     string
	train    func(test time.Time) []time.Time
	location *time.Location
	overlap  bool
}

func monthlyFrom(from string) func(time.Time) []time.Time {
	return func(test time.Time) []time.Time {
		f, _ := time.Parse(time.DateOnly, from)
		return evaluate.MonthlyCutoffs(f, test)
	}
}

func spacedFrom(from string, days int) func(time.Time) []time.Time {
	return func(test time.Time) []time.Time {
		f, _ := time.Parse(time.DateOnly, from)
		return evaluate.SpacedCutoffs(f, test, time.Duration(days)*model.Day)
	}
}

var evalDatasets = map[string]evalDataset{
	// CDNOW: training cutoffs every 15 days from 1997-04-01 to 1998-01-26 (21
	// cutoffs), every label window ending before the reference test cutoff.
	"cdnow":        {file: "cdnow/CDNOW_master.txt", format: ingest.CDNOW, test: "1998-03-01", train: spacedFrom("1997-04-01", 15)},
	"cdnow-sample": {file: "cdnow/CDNOW_sample.txt", format: ingest.CDNOWSample, test: "1998-03-01", train: spacedFrom("1997-04-01", 15)},
	// Taobao spans nine days (2017-11-25 .. 12-03, UTC+8): no 30-day window fits
	// twice, so training windows overlap the test window (flagged in the output).
	"taobao": {file: "taobao/UserBehavior_head84k.csv", format: ingest.Taobao, test: "2017-12-02",
		location: time.FixedZone("UTC+8", 8*3600), overlap: true,
		train: func(test time.Time) []time.Time {
			var out []time.Time
			for d := 4; d >= 1; d-- {
				out = append(out, test.AddDate(0, 0, -d))
			}
			return out
		}},
	"online-retail": {file: "online_retail/online_retail_sample_20k.csv", format: ingest.OnlineRetail, test: "2011-10-01", train: monthlyFrom("2011-02-01")},
}

func newEvalCmd() *cobra.Command {
	var (
		dataset, dataPath, mappingPath, testCutoff, trainCutoffs, kind, out string
		seed                                                                uint64
		hidden                                                              int
		asJSON, levelCarry                                                  bool
		maxInvalid                                                          float64
		dpo                                                                 evalDPFlags
		suiteFlags                                                          evalSuiteFlags
		testHorizon                                                         int
	)
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate the hazard model against baselines on a time split (default: the CDNOW reference benchmark)",
		Long: `eval reads an event log, builds point-in-time features at the training cutoffs and the test
cutoff, trains the discrete-time hazard model, and reports AUC, PR-AUC and Brier per horizon
(1, 3, 7, 14, 30 days), C-index, the JData-2018 score, calibration and F1 for the hazard model and
the baselines (BG/NBD, recency, purchases in the last 365 days).

With --dp-epsilon E --dp-delta D the hazard model is trained with DP-SGD under a customer-level
(E, D) budget: a DP count of the customers is released first, DP-SGD (per-customer clipping,
Poisson sampling, Gaussian noise from the DP library) is calibrated by the RDP accountant to spend
the rest, training runs a fixed number of steps, and the standardisation is data-independent. The
privacy actually charged is printed and, with --json, given as "privacy". --dp-sweep prints the
privacy–utility table over several ε; --privacy-audit runs the empirical privacy audit (synthetic
canary trainings; no data set is read).

Rows that cannot be read (a time that does not match the layout, a kind value the mapping does
not map, a bad amount) are skipped and counted; when more than --max-invalid-share of the rows
are, eval fails with the first bad lines, because the file does not have the layout it was told.
Rows a format leaves out by rule (Online Retail guest checkouts and cancellations, kind values a
mapping lists under ignore, Taobao's stray timestamps) do not count. A summary of what was read
and skipped goes to standard error.

With --dataset csv, cutoffs not given follow the default protocol (evaluate.DefaultProtocol,
docs/operations.md): the test cutoff is the day after the last event minus the 30-day horizon,
so that the test label window ends with the log; training cutoffs step back 30 days at a time
from the test cutoff minus 30 days, at most 6, none less than 30 days after the first event.
The chosen cutoffs are printed to standard error. A log shorter than 90 days is refused with
its span.

With --suite, eval runs the data-set suite instead of one data set: CDNOW, the complete Online
Retail export and the BTYDplus grocery log, each with its protocol from the shared data README,
plus the data sets of --suite-file (YAML: name, path, format or mapping, and optionally
test_cutoff and train_cutoffs, which otherwise follow the default protocol above from the data
set's span; a data set named like a built-in one replaces it). It prints one table of AUC@7,
AUC@30, PR-AUC@30, Brier@30 and ECE@30 for every Kairos model and baseline (--json: one object),
and --plots DIR writes a reliability diagram and a cumulative gain chart per data set (SVG).
With --dp-epsilon (and the other --dp- training flags) the suite also trains the default model
with DP-SGD at that budget on every data set, as hazard-dp-epsE.

Data sets are looked up under $KAIROS_DATA or ../shared/data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if suiteFlags.enabled() {
				return runEvalSuite(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), suiteFlags, dpo, asJSON, seed, levelCarry)
			}
			if dpo.audit != "" {
				return runPrivacyAudit(ctx, cmd.OutOrStdout(), dpo, asJSON)
			}
			ds, known := evalDatasets[dataset]
			if !known && dataset != "csv" {
				return fmt.Errorf("eval: unknown dataset %q (want cdnow, cdnow-sample, taobao, online-retail or csv)", dataset)
			}
			if !(maxInvalid >= 0 && maxInvalid <= 1) {
				return fmt.Errorf("eval: --max-invalid-share %v, want a share in [0, 1]", maxInvalid)
			}
			if err := suiteFlags.checkWhether(); err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			if err := suiteFlags.suiteOnly(); err != nil {
				return err
			}
			opts := ingest.Options{Format: ds.format, Location: ds.location, OnError: ingest.Skip, MaxInvalidShare: maxInvalid}
			if maxInvalid == 0 {
				opts.OnError = ingest.FailFast // no bad row tolerated: stop at the first
			}
			if dataset == "taobao" {
				opts.ValidFrom, opts.ValidTo = ingest.TaobaoRange()
			}
			if dataset == "csv" {
				if dataPath == "" || mappingPath == "" {
					return errors.New("eval: dataset csv needs --data and --mapping; " + suggestHint(dataPath))
				}
				m, err := ingest.LoadMapping(mappingPath)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				opts.Format, opts.Mapping = ingest.CSV, m
				// The mapping's zone is the shop's calendar: local days for
				// the default cutoffs and the features, as the client's
				// time_zone is in a federation.
				ds.location = m.TimeZone
			}
			path := dataPath
			if path == "" {
				var err error
				if path, err = sharedDataPath(ds.file); err != nil {
					return fmt.Errorf("eval: %w", err)
				}
			}
			test, train, err := parseEvalCutoffs(testCutoff, trainCutoffs)
			if err != nil {
				return err
			}

			events, input, err := readEvalEvents(ctx, cmd.ErrOrStderr(), path, opts)
			if err != nil {
				return err
			}
			if err := checkEvalHorizon(testHorizon); err != nil {
				return err
			}
			if test, train, err = resolveEvalCutoffs(cmd.ErrOrStderr(), ds, test, train, events, testHorizon); err != nil {
				return err
			}

			cfg := evaluate.Config{
				Dataset: dataset, TestCutoff: test, TrainCutoffs: train, Location: ds.location, Seed: seed,
				AllowLabelOverlap: ds.overlap,
				Hazard:            defaultHazardOptions(kind, hidden),
				Select:            defaultSelection(kind, hidden),
				NoLevelCarry:      !levelCarry,
			}
			cfg.Hazard.Whether = suiteFlags.whether
			cfg.Hazard.Rhythm = suiteFlags.rhythm
			if err := dpo.apply(cmd, &cfg); err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			if err := applyClassic(&cfg, suiteFlags.classic, out); err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			start := time.Now()
			prep, err := evaluate.Prepare(events, cfg)
			if err != nil {
				return err
			}
			if dpo.sweep != "" {
				return runPrivacySweep(ctx, cmd.OutOrStdout(), prep, cfg, dpo)
			}
			res, err := prep.Run(ctx, cfg)
			if err != nil {
				return err
			}
			slog.Info("evaluated", "seconds", time.Since(start).Seconds(), "train_rows", res.TrainRows, "hazard_steps", res.TrainReport.Steps)
			if sel := res.Selection; sel != nil {
				slog.Info("model choice", "chosen", sel.Chosen, "reason", sel.Reason)
			}
			if l := res.Level; l != nil {
				slog.Info("level carry-over", "shift", l.Shift, "rho", l.Rho, "pairs", l.Pairs, "windows", len(l.Offsets))
			}
			if out != "" && res.Model != nil {
				res.Model.Training.CreatedAt = time.Now().UTC().Format(time.RFC3339)
				b, err := json.MarshalIndent(res.Model, "", "  ")
				if err != nil {
					return fmt.Errorf("eval: encode model: %w", err)
				}
				if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("eval: write model: %w", err)
				}
				slog.Info("wrote model", "file", out, "schema_hash", res.Model.Schema.Hash)
			}
			loc := ds.location
			if loc == nil {
				loc = time.UTC
			}
			if asJSON {
				return writeEvalJSON(cmd.OutOrStdout(), res, input, loc)
			}
			return writeEvalTable(cmd.OutOrStdout(), res, loc)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataset, "dataset", "cdnow", "cdnow, cdnow-sample, taobao, online-retail or csv")
	f.StringVar(&dataPath, "data", "", "event file (default: the data set's file under the shared data folder)")
	f.StringVar(&mappingPath, "mapping", "", "column mapping YAML for --dataset csv")
	f.StringVar(&testCutoff, "test-cutoff", "", "test cutoff date YYYY-MM-DD (default per data set, cdnow 1998-03-01; csv: the day after the last event minus --horizon days)")
	f.StringVar(&trainCutoffs, "train-cutoffs", "", "comma-separated training cutoff dates (default per data set; csv: up to 6, 30 days apart, back from the test cutoff minus 30 days)")
	f.StringVar(&kind, "model", modelAuto, "hazard score function: auto (linear unless the MLP wins the inner validation split "+
		"of the training cutoffs by more than 1.645 DeLong standard errors in AUC@30 and loses neither PR-AUC@30 nor Brier@30; "+
		"non-private runs only, a DP run trains linear), linear or mlp")
	f.IntVar(&hidden, "hidden", 16, "hidden units for --model mlp (and auto's MLP candidate)")
	f.Uint64Var(&seed, "seed", 1, "training seed")
	f.StringVar(&out, "out", "", "write the fitted hazard model (JSON) to this file")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	f.BoolVar(&levelCarry, "level-carry", true, "shift the non-private hazard model's baselines by the period-level carry-over: "+
		"the latest fully observed window's calibration offset times its measured persistence from window to window "+
		"(evaluate.LevelCarry; false: the baselines as trained)")
	f.Float64Var(&maxInvalid, "max-invalid-share", evalMaxInvalidShare,
		"fail when more than this share of the data rows cannot be read (0: stop at the first bad row; 1: skip any number)")
	dpo.register(f)
	suiteFlags.register(f)
	f.IntVar(&testHorizon, "horizon", model.Horizon, "test horizon in days of the default csv protocol: 30, or 60 or 90 to leave room for those horizons' test windows "+
		"(metrics at 60 and 90 days are reported whenever the log covers them)")
	return cmd
}

// evalMaxInvalidShare is the default of --max-invalid-share. A real export has
// a few damaged rows (the shared CDNOW, Online Retail and Taobao files have
// none once their documented exclusions are applied), while a wrong time layout
// or an unmapped kind column makes most rows bad: 1% tells the two apart.
const evalMaxInvalidShare = 0.01

// readEvalEvents reads every event of path, prints the read summary (rows,
// events, skips per reason, unmapped kind values, first bad rows) to stderr,
// and refuses a file from which no event came.
func readEvalEvents(ctx context.Context, stderr io.Writer, path string, opts ingest.Options) ([]model.Event, ingest.Report, error) {
	var events []model.Event
	rep, err := ingest.ReadFile(ctx, path, opts, func(e model.Event) error {
		events = append(events, e)
		return nil
	})
	var tm *ingest.TooManyInvalidError
	if errors.As(err, &tm) {
		hint := ""
		if opts.Format == ingest.CSV {
			hint = badRowHint(tm.Report)
		}
		return nil, rep, fmt.Errorf("eval: %w\n(%s--max-invalid-share %g is the share of bad rows allowed)", err, hint, opts.MaxInvalidShare)
	}
	if err != nil {
		return nil, rep, fmt.Errorf("eval: %w", err)
	}
	fmt.Fprintln(stderr, rep)
	if len(events) == 0 {
		return nil, rep, fmt.Errorf("eval: no events in %s: %d rows, all skipped or out of range (see the summary above)", path, rep.Rows)
	}
	return events, rep, nil
}

// badRowHints say, per reason of a bad row, which part of a mapping to check.
var badRowHints = []struct{ reason, hint string }{
	{ingest.ReasonBadTime, "the time layout (a Go layout like \"2006-01-02 15:04:05\", or unix, unix_ms, excel) and zone"},
	{ingest.ReasonUnknownKind, "the kind values (or kind: {constant: purchase})"},
	{ingest.ReasonColumnCount, "the delimiter"},
	{ingest.ReasonBadAmount, "the amount column (plain numbers: decimal: and thousands: name the separators; a currency sign or code in the cell must go, currency: {column, rates} reads a column of codes)"},
	{ingest.ReasonMissingCustomer, "the customer column (missing_customer: ignore drops guest rows)"},
	{ingest.ReasonBadCustomer, "the customer column (customer_normalize)"},
	{ingest.ReasonNegativeAmount, "negative amounts (negative_amount: ignore drops returns)"},
}

// badRowHint names the parts of a csv mapping to check, from the reasons of
// the bad rows in rep, most frequent first; the time layout and kind values
// when no reason has a hint.
func badRowHint(rep ingest.Report) string {
	type seen struct {
		hint string
		n    int
	}
	var hs []seen
	for _, h := range badRowHints {
		if n := rep.Skipped[h.reason]; n > 0 {
			hs = append(hs, seen{h.hint, n})
		}
	}
	if len(hs) == 0 {
		return "check the mapping's time layout and kind values against these lines; "
	}
	slices.SortStableFunc(hs, func(a, b seen) int { return cmp.Compare(b.n, a.n) })
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.hint
	}
	return "check the mapping against these lines: " + strings.Join(parts, "; ") + "; "
}

// modelAuto is --model auto: the choice of evaluate.Selection.
const modelAuto = "auto"

// defaultSelection is the model choice of --model kind (nil unless auto).
func defaultSelection(kind string, hidden int) *evaluate.Selection {
	if kind != modelAuto {
		return nil
	}
	s := evaluate.DefaultSelection()
	s.Alternative.Hidden = hidden
	return s
}

// defaultHazardOptions are the training settings of the reference benchmark
// (auto starts from the linear model's).
func defaultHazardOptions(kind string, hidden int) hazard.TrainOptions {
	if kind == modelAuto {
		return evaluate.DefaultHazardOptions()
	}
	if kind == hazard.KindMLP {
		o := evaluate.DefaultMLPOptions()
		o.Hidden = hidden
		return o
	}
	o := evaluate.DefaultHazardOptions()
	o.Kind = kind // an unknown kind is rejected by hazard.Train
	return o
}

func parseDate(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return d, nil
}

// sharedDataPath finds rel under $KAIROS_DATA, ../shared/data or
// ../../shared/data (the shared folder sits beside the repository).
func sharedDataPath(rel string) (string, error) {
	var roots []string
	if s := os.Getenv("KAIROS_DATA"); s != "" {
		roots = append(roots, s)
	}
	roots = append(roots, "../shared/data", "../../shared/data", "../../../shared/data")
	for _, r := range roots {
		p := filepath.Join(r, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("data file %s not found under $KAIROS_DATA or ../shared/data (set KAIROS_DATA or --data)", rel)
}

// jsonMetric maps a horizon-keyed metric to a JSON object holding every
// horizon: null where the metric is undefined (NaN), so that a reader sees the
// gap instead of a missing key.
func jsonMetric(m map[int]float64) map[string]*float64 {
	if m == nil {
		return nil
	}
	out := make(map[string]*float64, len(hazard.Horizons))
	for _, h := range hazard.Horizons {
		v, ok := m[h]
		if !ok {
			v = math.NaN()
		}
		out[strconv.Itoa(h)] = jsonNum(v)
	}
	// The longer horizons only where the log covered their test window.
	for _, h := range hazard.LongHorizons {
		if v, ok := m[h]; ok {
			out[strconv.Itoa(h)] = jsonNum(v)
		}
	}
	return out
}

// jsonNum rounds v to six decimals; nil (JSON null) when v is not finite.
func jsonNum(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	r := math.Round(v*1e6) / 1e6
	return &r
}

// evalJSONMethod is one method of `kairos eval --json`.
type evalJSONMethod struct {
	Name        string              `json:"name"`
	AUC         map[string]*float64 `json:"auc"`
	PRAUC       map[string]*float64 `json:"pr_auc"`
	Brier       map[string]*float64 `json:"brier,omitempty"` // absent for methods without probabilities
	ECE         map[string]*float64 `json:"ece,omitempty"`   // expected calibration error at 30 days (metrics.ECE); as Brier
	CIndex      *float64            `json:"c_index"`
	JData       *float64            `json:"jdata_score"`
	JDataS1     *float64            `json:"jdata_s1"`
	JDataS2     *float64            `json:"jdata_s2"`
	F1          *float64            `json:"f1_30"`
	F1Threshold *float64            `json:"f1_threshold_30"`
	// Date is the date accuracy of the hazard model's days for the test
	// customers who buy within 30 days, keyed by predictor (evaluate.Day*).
	Date  map[string]suite.DateScore `json:"date,omitempty"`
	Error string                     `json:"error,omitempty"`
}

// MarshalJSON writes a failed method as its name and error only: a metric
// beside an error would read like a result.
func (m evalJSONMethod) MarshalJSON() ([]byte, error) {
	if m.Error != "" {
		return json.Marshal(struct {
			Name  string `json:"name"`
			Error string `json:"error"`
		}{m.Name, m.Error})
	}
	type plain evalJSONMethod // without this method
	return json.Marshal(plain(m))
}

// evalJSONInput is the read summary in `kairos eval --json`.
type evalJSONInput struct {
	File         string         `json:"file"`
	Rows         int            `json:"rows"`
	Events       int            `json:"events"`
	Invalid      int            `json:"invalid"`
	OutOfRange   int            `json:"out_of_range"`
	Skipped      map[string]int `json:"skipped"`
	UnknownKinds map[string]int `json:"unknown_kinds,omitempty"`
}

func writeEvalJSON(w io.Writer, r evaluate.Report, in ingest.Report, loc *time.Location) error {
	out := struct {
		Dataset      string                  `json:"dataset"`
		TestCutoff   string                  `json:"test_cutoff"`
		Customers    int                     `json:"customers"`
		Positives    map[string]int          `json:"positives"`
		PositiveRate map[string]*float64     `json:"positive_rate"`
		Undefined    map[string]string       `json:"undefined"`
		Warnings     []string                `json:"warnings"`
		TrainRows    int                     `json:"train_rows"`
		LabelOverlap bool                    `json:"label_overlap,omitempty"`
		SchemaHash   string                  `json:"schema_hash,omitempty"`
		Input        evalJSONInput           `json:"input"`
		Methods      []evalJSONMethod        `json:"methods"`
		Privacy      *evaluate.PrivacyReport `json:"privacy,omitempty"`
		Classic      *evaluate.ClassicFit    `json:"classic,omitempty"`
		// Selection: --model auto's choice and its evidence.
		Selection *suite.Selection `json:"selection,omitempty"`
		// OwnDay: the own-rhythm day's weight (non-private models).
		OwnDay *suite.OwnDay `json:"own_day,omitempty"`
		// DateBaselines: the day baselines' date accuracy on the same buyers.
		DateBaselines map[string]suite.DateScore `json:"date_baselines,omitempty"`
	}{Privacy: r.Privacy, Classic: r.Classic, Selection: suite.SelectionOf(r.Selection), OwnDay: suite.OwnDayOf(r.OwnDay), DateBaselines: evalDates(r.DayBaselines), Dataset: r.Dataset, TestCutoff: r.TestCutoff.In(loc).Format(time.DateOnly), Customers: r.Customers,
		Positives: map[string]int{}, PositiveRate: jsonMetric(r.PositiveRate), Undefined: map[string]string{},
		Warnings: append([]string{}, r.Warnings()...), TrainRows: r.TrainRows, LabelOverlap: r.LabelOverlap,
		Input: evalJSONInput{File: in.File, Rows: in.Rows, Events: in.Events, Invalid: in.Invalid, OutOfRange: in.OutOfRange,
			Skipped: in.Skipped, UnknownKinds: in.UnknownKinds}}
	for _, h := range append(hazard.Horizons[:], r.LongHorizons...) {
		out.Positives[strconv.Itoa(h)] = r.Positives[h]
		if why := r.Undefined(h); why != "" {
			out.Undefined[strconv.Itoa(h)] = why
		}
	}
	if r.Model != nil {
		out.SchemaHash = r.Model.Schema.Hash
	}
	for _, m := range r.Methods {
		out.Methods = append(out.Methods, evalJSONMethod{
			Name: m.Name, AUC: jsonMetric(m.AUC), PRAUC: jsonMetric(m.PRAUC), Brier: jsonMetric(m.Brier),
			ECE:    jsonECE(m.Calibration),
			CIndex: jsonNum(m.CIndex), JData: jsonNum(m.JData), JDataS1: jsonNum(m.JDataS1), JDataS2: jsonNum(m.JDataS2),
			F1: jsonNum(m.F1), F1Threshold: jsonNum(m.F1Threshold), Error: m.Err, Date: evalDates(m.Days),
		})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

func writeEvalTable(w io.Writer, r evaluate.Report, loc *time.Location) error {
	fmt.Fprintf(w, "dataset %s, test cutoff %s: %d customers, 30-day positive rate %.4f; %d training rows\n",
		r.Dataset, r.TestCutoff.In(loc).Format(time.DateOnly), r.Customers, r.PositiveRate[model.Horizon], r.TrainRows)
	for _, warn := range r.Warnings() {
		fmt.Fprintln(w, "warning:", warn)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "method\t")
	for _, h := range hazard.Horizons {
		fmt.Fprintf(tw, "AUC@%d\t", h)
	}
	fmt.Fprint(tw, "PR-AUC@30\tBrier@30\tECE@30\tC-index\tJData\tF1@30\t\n")
	for _, m := range r.Methods {
		if m.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\n", m.Name, strings.Repeat("-\t", len(hazard.Horizons)+6))
			continue
		}
		fmt.Fprintf(tw, "%s\t", m.Name)
		for _, h := range hazard.Horizons {
			fmt.Fprintf(tw, "%s\t", tableCell(r, h, m.AUC[h]))
		}
		brier := "-"
		if b, ok := m.Brier[model.Horizon]; ok {
			brier = fmt.Sprintf("%.4f", b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.4f\t%.4f\t%.4f\t\n", tableCell(r, model.Horizon, m.PRAUC[model.Horizon]), brier, cell(jsonECE(m.Calibration)["30"]),
			m.CIndex, m.JData, m.F1)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeEvalLong(w, r); err != nil {
		return err
	}
	if sel := r.Selection; sel != nil {
		fmt.Fprintf(w, "hazard model: %s\n", sel.Reason)
	}
	if o := r.OwnDay; o != nil && o.Weight > 0 {
		fmt.Fprintf(w, "predicted day weighed by the customer's own rhythm (weight %g): training buyers' MAE %.2f days, %.2f without\n",
			o.Weight, o.TrainMAE, o.TrainMAE0)
	}
	if c := r.Classic; c != nil {
		fmt.Fprintf(w, "hazard inputs include BG/NBD (%s fit over %.0f customers): r = %.4f, α = %.4f, a = %.4f, b = %.4f (weeks)\n",
			c.Mode, c.Customers, c.Params.R, c.Params.Alpha, c.Params.A, c.Params.B)
	}
	if p := r.Privacy; p != nil {
		fmt.Fprintf(w, "hazard trained with DP-SGD (unit: one customer): ε = %.4f at δ = %g (target %g, best order %g); "+
			"q = %.5f (expected batch %.0f), z = %.4f (planned %.4f), clip %g, %d steps; customer count σ = %.1f\n",
			p.Epsilon, p.Delta, p.TargetEpsilon, p.Order, p.SamplingRate, p.BatchSize, p.NoiseMultiplier,
			p.PlannedNoiseMultiplier, p.Clip, p.Steps, p.CountSigma)
	}
	for _, m := range r.Methods {
		if m.Err != "" {
			fmt.Fprintf(w, "%s not available: %s\n", m.Name, m.Err)
		}
	}
	if len(r.DayBaselines) > 0 {
		fmt.Fprintln(w, "\ndate of the first purchase, test customers who buy within 30 days (S2 = mean 10/(10+d²), MAE in days):")
		for _, m := range r.Methods {
			for _, d := range m.Days {
				fmt.Fprintf(w, "  %-30s S2 %.4f  MAE %.2f\n", m.Name+" "+d.Predictor, d.S2, d.MAE)
			}
		}
		for _, d := range r.DayBaselines {
			fmt.Fprintf(w, "  %-30s S2 %.4f  MAE %.2f\n", "baseline "+d.Predictor, d.S2, d.MAE)
		}
	}
	for _, m := range r.Methods {
		if len(m.Calibration) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s 30-day calibration (predicted vs observed):\n", m.Name)
		for _, b := range m.Calibration {
			if b.Count == 0 {
				continue
			}
			fmt.Fprintf(w, "  [%.1f, %.1f)  n=%-6d mean predicted %.4f  observed %.4f\n", b.Lo, b.Hi, b.Count, b.MeanPred, b.FracPos)
		}
	}
	return nil
}

// evalDates keys day scores by predictor, rounded like every metric.
func evalDates(ds []evaluate.DayScore) map[string]suite.DateScore {
	if len(ds) == 0 {
		return nil
	}
	out := make(map[string]suite.DateScore, len(ds))
	for _, d := range ds {
		out[d.Predictor] = suite.DateScore{S2: jsonNum(d.S2), MAE: jsonNum(d.MAE)}
	}
	return out
}

// tableCell formats a ranking metric at horizon h, or says why it is undefined.
func tableCell(r evaluate.Report, h int, v float64) string {
	if !math.IsNaN(v) {
		return fmt.Sprintf("%.4f", v)
	}
	if why := r.Undefined(h); why != "" {
		return "n/a (" + why + ")"
	}
	return "n/a"
}

// evalDPFlags are the flags of private training, the privacy–utility sweep and
// the privacy audit.
type evalDPFlags struct {
	epsilon, delta, clip, batch, epochs, lr, l2 float64
	sweep, audit                                string
	seeds, auditRuns                            int
}

func (d *evalDPFlags) register(f *pflag.FlagSet) {
	f.Float64Var(&d.epsilon, "dp-epsilon", 0, "train the hazard model with DP-SGD spending this ε (customer-level); 0 = non-private")
	f.Float64Var(&d.delta, "dp-delta", 1e-6, "δ of the DP budget")
	f.Float64Var(&d.clip, "dp-clip", 20, "DP-SGD clip norm of one customer's gradient (tuned on CDNOW, whose customers have up to 21 rows)")
	f.Float64Var(&d.batch, "dp-batch", 0, "DP-SGD expected customers per step (default 1024)")
	f.Float64Var(&d.epochs, "dp-epochs", 0, "DP-SGD expected passes over the customers (default 20)")
	f.Float64Var(&d.lr, "dp-lr", 0, "Adam step size for DP training (default: the non-private one)")
	f.Float64Var(&d.l2, "dp-l2", -1, "L2 penalty for DP training (default: the non-private one)")
	f.StringVar(&d.sweep, "dp-sweep", "", "comma-separated ε values (inf = no noise) to print the privacy–utility table for, instead of one run")
	f.IntVar(&d.seeds, "dp-seeds", 5, "runs per ε in --dp-sweep")
	f.StringVar(&d.audit, "privacy-audit", "", "comma-separated ε values to run the empirical privacy audit at (synthetic data with a canary; no data set is read)")
	f.IntVar(&d.auditRuns, "audit-runs", 1000, "trainings with the canary, and as many without, per ε of --privacy-audit")
}

// options returns the DP options for ε (the flags' other values).
func (d *evalDPFlags) options(eps float64) *evaluate.DPOptions {
	return &evaluate.DPOptions{
		Epsilon: eps, Delta: d.delta, Clip: d.clip, BatchSize: d.batch, Epochs: d.epochs,
		Std: hazard.FixedStandardization,
	}
}

func (d *evalDPFlags) apply(cmd *cobra.Command, cfg *evaluate.Config) error {
	if !cmd.Flags().Changed("dp-epsilon") && d.sweep == "" {
		return nil
	}
	return d.applyTo(cfg)
}

// applyTo sets cfg's DP training from the flags (--dp-epsilon given).
func (d *evalDPFlags) applyTo(cfg *evaluate.Config) error {
	if d.lr != 0 {
		cfg.Hazard.LearningRate = d.lr
	}
	if d.l2 >= 0 {
		cfg.Hazard.L2 = d.l2
	}
	if d.sweep != "" {
		if d.seeds < 1 {
			return fmt.Errorf("--dp-seeds %d, want ≥ 1", d.seeds)
		}
		return nil
	}
	if !(d.epsilon > 0) || math.IsInf(d.epsilon, 0) {
		return fmt.Errorf("--dp-epsilon %v, want finite and > 0", d.epsilon)
	}
	cfg.DP = d.options(d.epsilon)
	return nil
}

// meanStd returns the mean and the sample standard deviation of xs.
func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs)-1))
}

// runPrivacySweep prints the privacy–utility table: for every ε of d.sweep,
// d.seeds private trainings (ε = inf: the same training without clipping or
// noise), then the non-private reference hazard model and BG/NBD.
func runPrivacySweep(ctx context.Context, w io.Writer, prep *evaluate.Prepared, cfg evaluate.Config, d evalDPFlags) error {
	epss, err := parseEpsilons("--dp-sweep", d.sweep)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	fmt.Fprintf(w, "| ε (δ = %g) | z | q | steps | ε spent | AUC@30 | PR-AUC@30 | AUC@7 |\n|---|---|---|---|---|---|---|---|\n", d.delta)
	row := func(label, z, q, steps, spent string, reps []evaluate.Report, name string) {
		var a30, p30, a7 []float64
		for _, r := range reps {
			for _, m := range r.Methods {
				if m.Name == name {
					a30, p30, a7 = append(a30, m.AUC[30]), append(p30, m.PRAUC[30]), append(a7, m.AUC[7])
				}
			}
		}
		f := func(xs []float64) string {
			m, s := meanStd(xs)
			if len(xs) < 2 {
				return fmt.Sprintf("%.4f", m)
			}
			return fmt.Sprintf("%.4f ± %.4f", m, s)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, z, q, steps, spent, f(a30), f(p30), f(a7))
	}
	for _, eps := range epss {
		var reps []evaluate.Report
		var zs, spent []float64
		var q float64
		var steps int
		for seed := uint64(1); seed <= uint64(d.seeds); seed++ {
			c := cfg
			c.Seed, c.Methods = seed, []string{evaluate.MethodHazard}
			if math.IsInf(eps, 1) {
				// The same training without clipping or noise.
				std := hazard.FixedStandardization(prep.Schema())
				c.Hazard.Std = &std
				c.Hazard.BatchSize = int(math.Round(firstPos(d.batch, 1024)))
				c.Hazard.Epochs = int(math.Round(firstPos(d.epochs, 20)))
			} else {
				c.DP = d.options(eps)
			}
			r, err := prep.Run(ctx, c)
			if err != nil {
				return fmt.Errorf("eval: ε %v seed %d: %w", eps, seed, err)
			}
			if p := r.Privacy; p != nil {
				zs, spent = append(zs, p.NoiseMultiplier), append(spent, p.Epsilon)
				q, steps = p.SamplingRate, p.Steps
			} else {
				steps = r.TrainReport.Steps
			}
			reps = append(reps, r)
		}
		if math.IsInf(eps, 1) {
			row("∞ (no clip, no noise)", "0", "-", strconv.Itoa(steps), "∞", reps, evaluate.MethodHazard)
			continue
		}
		zm, _ := meanStd(zs)
		sm, _ := meanStd(spent)
		row(strconv.FormatFloat(eps, 'g', -1, 64), fmt.Sprintf("%.3f", zm), fmt.Sprintf("%.4f", q), strconv.Itoa(steps),
			fmt.Sprintf("%.4f", sm), reps, evaluate.MethodHazard)
	}
	ref := cfg
	ref.DP, ref.Methods = nil, []string{evaluate.MethodHazard, evaluate.MethodBGNBD}
	ref.Hazard = evaluate.DefaultHazardOptions()
	r, err := prep.Run(ctx, ref)
	if err != nil {
		return fmt.Errorf("eval: reference: %w", err)
	}
	row("non-private hazard (reference)", "-", "-", strconv.Itoa(r.TrainReport.Steps), "∞", []evaluate.Report{r}, evaluate.MethodHazard)
	row("BG/NBD", "-", "-", "-", "∞", []evaluate.Report{r}, evaluate.MethodBGNBD)
	return nil
}

func firstPos(a, b float64) float64 {
	if a > 0 {
		return a
	}
	return b
}

// parseEpsilons parses a comma-separated list of positive ε values (inf allowed).
func parseEpsilons(flag, list string) ([]float64, error) {
	var out []float64
	for _, s := range strings.Split(list, ",") {
		e, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(e > 0) {
			return nil, fmt.Errorf("%s: %q is not a positive number or inf", flag, s)
		}
		out = append(out, e)
	}
	return out, nil
}

// runPrivacyAudit runs evaluate.PrivacyAudit at every ε of d.audit and prints
// the accountant's ε, the exact ε and the empirical lower bounds.
func runPrivacyAudit(ctx context.Context, w io.Writer, d evalDPFlags, asJSON bool) error {
	epss, err := parseEpsilons("--privacy-audit", d.audit)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	var reps []evaluate.AuditReport
	for _, eps := range epss {
		if math.IsInf(eps, 1) {
			return errors.New("eval: --privacy-audit: ε must be finite")
		}
		start := time.Now()
		r, err := evaluate.PrivacyAudit(ctx, evaluate.AuditOptions{Epsilon: eps, Delta: d.delta, Runs: d.auditRuns})
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		slog.Info("privacy audit", "epsilon", eps, "seconds", time.Since(start).Seconds())
		reps = append(reps, r)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(reps)
	}
	fmt.Fprintf(w, "| target ε (δ = %g) | z | steps | accountant ε (RDP) | exact ε | lower bound, transcript (TPR / FPR) | lower bound, final model (TPR / FPR) | μ measured (lower) | Gaussian ε at μ lower | runs per side |\n", d.delta)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for i, r := range reps {
		fmt.Fprintf(w, "| %g | %.3f | %d | %.4f | %.4f | %.3f (%.3f / %.3f) | %.3f (%.3f / %.3f) | %.3f (%.3f) | %.3f | %d |\n",
			epss[i], r.Release.Z, r.Release.Steps, r.Epsilon, r.ExactEpsilon,
			r.Transcript.Epsilon, r.Transcript.TPR, r.Transcript.FPR,
			r.FinalModel.Epsilon, r.FinalModel.TPR, r.FinalModel.FPR, r.Mu, r.MuLower, r.GaussianEpsilon, r.Runs)
	}
	return nil
}
