package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/chart"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/metrics"
	"github.com/kairos-fl/kairos/model/suite"
)

// evalSuiteFlags are the flags of `kairos eval --suite`.
type evalSuiteFlags struct {
	on                   bool
	rhythm               bool
	classic              bool
	prior                bool
	whether              float64
	file, dataDir, plots string
	// flags is the command's flag set, to refuse the flags of a single
	// evaluation beside --suite.
	flags *pflag.FlagSet
}

func (s *evalSuiteFlags) register(f *pflag.FlagSet) {
	s.flags = f
	f.BoolVar(&s.on, "suite", false, "run the data-set suite (CDNOW, Online Retail full, grocery and --suite-file's data sets), each with its protocol, "+
		"for every Kairos model and baseline, and print one table (--json: one JSON object)")
	f.StringVar(&s.file, "suite-file", "", "YAML file of data sets to add to the suite or to replace built-in ones (implies --suite)")
	f.StringVar(&s.dataDir, "data-dir", "", "folder of the built-in data sets (default $KAIROS_DATA or ../shared/data)")
	f.StringVar(&s.plots, "plots", "", "with --suite, write a reliability diagram and a cumulative gain chart per data set (SVG) to this folder")
	f.BoolVar(&s.classic, "classic", false, "add BG/NBD's P(alive), P(buy within 30 days), expected purchases and posterior rate as hazard inputs, "+
		"BG/NBD fitted on the merchant's own data (with --dp-epsilon: fitted with DP within the budget); with --suite, as the extra rows hazard+bgnbd "+
		"(and hazard+bgnbd-dp-eps… with --dp-epsilon)")
	f.BoolVar(&s.prior, "dp-prior", true, "with --suite and --dp-epsilon, start the private model from a public prior: the model trained "+
		"non-privately on the other data sets of the suite, never the evaluated one (false: from zero weights)")
	f.BoolVar(&s.rhythm, "rhythm", false, "train the linear hazard model with the rhythm term (hazard.TrainOptions.Rhythm); "+
		"with --suite, as the extra row hazard-rhythm")
	f.Float64Var(&s.whether, "whether", 0, "train the hazard model with this weight in (0, 1] on the direct objective P(buy within 30 days) "+
		"(hazard.TrainOptions.Whether); with --suite, as the extra row hazard-whether<W> (and hazard-whether<W>-dp-eps… with --dp-epsilon); "+
		"0 = the plain hazard likelihood")
}

func (s *evalSuiteFlags) enabled() bool { return s.on || s.file != "" }

// suiteOnly refuses, in a single evaluation, the flags that only the suite
// reads, which would otherwise be silently ignored.
func (s *evalSuiteFlags) suiteOnly() error {
	if set := s.setFlags(true, "data-dir", "plots", "dp-prior"); len(set) > 0 {
		return fmt.Errorf("eval: %s only apply with --suite", strings.Join(set, ", "))
	}
	return nil
}

// setFlags lists, as --name, the flags the user set that are among names
// (in) or not among them (!in).
func (s *evalSuiteFlags) setFlags(in bool, names ...string) []string {
	if s.flags == nil {
		return nil
	}
	var set []string
	s.flags.Visit(func(f *pflag.Flag) {
		if slices.Contains(names, f.Name) == in {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}

// checkWhether refuses a --whether outside (0, 1] (0 means the flag is off).
func (s *evalSuiteFlags) checkWhether() error {
	if s.whether != 0 && !(s.whether > 0 && s.whether <= 1) {
		return fmt.Errorf("--whether %v: want a weight in (0, 1]", s.whether)
	}
	return nil
}

// conflicts refuses the flags of a single evaluation, which the suite would
// otherwise silently ignore: every data set brings its file and cutoffs, and
// the suite runs every model with its default settings.
func (s *evalSuiteFlags) conflicts() error {
	set := s.setFlags(false, "suite", "suite-file", "data-dir", "plots", "json", "seed", "rhythm", "whether", "classic", "dp-prior", "level-carry",
		"dp-epsilon", "dp-delta", "dp-clip", "dp-batch", "dp-epochs", "dp-lr", "dp-l2")
	if len(set) > 0 {
		return fmt.Errorf("eval --suite: %s cannot be combined with --suite (a suite file sets each data set's file, reader and cutoffs; "+
			"the suite runs every model with its defaults)", strings.Join(set, ", "))
	}
	return nil
}

// suiteDataDir is --data-dir, or the first shared data folder found beside the
// repository (the same places sharedDataPath looks).
func suiteDataDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	var roots []string
	if s := os.Getenv("KAIROS_DATA"); s != "" {
		roots = append(roots, s)
	}
	roots = append(roots, "../shared/data", "../../shared/data", "../../../shared/data")
	for _, p := range roots {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("no shared data folder under $KAIROS_DATA or ../shared/data (set --data-dir)")
}

// runEvalSuite is `kairos eval --suite`: it loads the suite, runs it, and
// prints the table or the JSON, writing the charts when asked.
func runEvalSuite(ctx context.Context, stdout, stderr io.Writer, s evalSuiteFlags, dp evalDPFlags, asJSON bool, seed uint64, levelCarry bool) error {
	if err := s.conflicts(); err != nil {
		return err
	}
	if err := s.checkWhether(); err != nil {
		return fmt.Errorf("eval --suite: %w", err)
	}
	whetherName := "hazard-whether" + strconv.FormatFloat(s.whether, 'g', -1, 64)
	models := suite.DefaultModels()
	if s.flags != nil && s.flags.Changed("dp-epsilon") {
		// The default model trained with DP-SGD beside the non-private ones,
		// on the same split of every data set.
		var cfg evaluate.Config
		cfg.Hazard = evaluate.DefaultHazardOptions()
		if err := dp.applyTo(&cfg); err != nil {
			return fmt.Errorf("eval --suite: %w", err)
		}
		models = append(models, suite.Model{Name: privateModelName(dp.epsilon), Hazard: cfg.Hazard, DP: cfg.DP, Prior: s.prior})
		if s.whether != 0 {
			h := cfg.Hazard
			h.Whether = s.whether
			models = append(models, suite.Model{Name: whetherName + "-dp-eps" + strconv.FormatFloat(dp.epsilon, 'g', -1, 64),
				Hazard: h, DP: cfg.DP, Prior: s.prior})
		}
		if s.classic {
			models = append(models, suite.Model{Name: "hazard+bgnbd-dp-eps" + strconv.FormatFloat(dp.epsilon, 'g', -1, 64),
				Hazard: cfg.Hazard, DP: cfg.DP, Classic: evaluate.ClassicDP})
		}
	}
	if s.classic {
		models = append(models, suite.Model{Name: "hazard+bgnbd", Hazard: evaluate.DefaultHazardOptions(), Classic: evaluate.ClassicLocal})
	}
	if s.rhythm {
		h := evaluate.DefaultHazardOptions()
		h.Rhythm = true
		models = append(models, suite.Model{Name: "hazard-rhythm", Hazard: h})
	}
	if s.whether != 0 {
		h := evaluate.DefaultHazardOptions()
		h.Whether = s.whether
		models = append(models, suite.Model{Name: whetherName, Hazard: h})
	}
	// The shared data folder is needed only for the built-in data sets: a
	// suite file of the user's own logs (builtin: false) runs without it.
	dir, dirErr := suiteDataDir(s.dataDir)
	if dirErr != nil && s.file == "" {
		return fmt.Errorf("eval --suite: %w", dirErr)
	}
	builtin := suite.Builtin()
	var datasets []suite.Dataset
	for _, d := range builtin {
		if dirErr == nil {
			d = d.Resolve(dir)
		}
		datasets = append(datasets, d)
	}
	if s.file != "" {
		var err error
		if datasets, err = suite.LoadFile(s.file, datasets); err != nil {
			return fmt.Errorf("eval --suite: %w", err)
		}
	}
	if dirErr != nil {
		for _, d := range datasets {
			for _, b := range builtin {
				if d.Name == b.Name && d.Path == b.Path {
					return fmt.Errorf("eval --suite: built-in data set %s: %w; to run only the data sets of %s, put `builtin: false` in it", d.Name, dirErr, s.file)
				}
			}
		}
	}
	for i, d := range datasets {
		// A csv mapping's zone is the shop's calendar (suite.Dataset.Location);
		// a mapping that does not load is the loader's error to report.
		if d.Format == suite.FormatCSV {
			if m, err := ingest.LoadMapping(d.Mapping); err == nil {
				datasets[i].Location = m.TimeZone
			}
		}
	}
	if s.plots != "" {
		if err := os.MkdirAll(s.plots, 0o755); err != nil {
			return fmt.Errorf("eval --suite: plots: %w", err)
		}
	}
	models, baselines, err := applyScratch(models, suite.DefaultBaselines())
	if err != nil {
		return fmt.Errorf("eval --suite: %w", err)
	}
	res, err := suite.Run(ctx, datasets, suite.Options{
		Load: suiteLoader(stderr), Models: models, Baselines: baselines, Seed: seed, Log: slog.Default(),
		NoLevelCarry: !levelCarry, DumpDir: os.Getenv("KAIROS_SCRATCH_DUMP"),
	})
	if err != nil {
		return fmt.Errorf("eval --suite: %w", err)
	}
	if s.plots != "" {
		if err := writeSuitePlots(s.plots, res); err != nil {
			return fmt.Errorf("eval --suite: %w", err)
		}
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	return writeSuiteTable(stdout, res)
}

// privateModelName names the DP model of a suite run in its table and JSON.
func privateModelName(eps float64) string {
	return "hazard-dp-eps" + strconv.FormatFloat(eps, 'g', -1, 64)
}

// suiteLoader reads a suite data set with client/ingest. Reads skip bad rows up
// to evalMaxInvalidShare, and print their summary to stderr.
func suiteLoader(stderr io.Writer) suite.Loader {
	return func(ctx context.Context, d suite.Dataset) ([]model.Event, error) {
		opts := ingest.Options{OnError: ingest.Skip, MaxInvalidShare: evalMaxInvalidShare}
		switch d.Format {
		case suite.FormatCDNOW:
			opts.Format = ingest.CDNOW
		case suite.FormatCDNOWSample:
			opts.Format = ingest.CDNOWSample
		case suite.FormatGrocery:
			opts.Format, opts.Mapping = ingest.CSV, ingest.GroceryMapping()
		case suite.FormatCSV:
			m, err := ingest.LoadMapping(d.Mapping)
			if err != nil {
				return nil, err
			}
			opts.Format, opts.Mapping = ingest.CSV, m
		case suite.FormatOnlineRetail:
			return readRetailInvoices(ctx, stderr, d.Path)
		default:
			return nil, fmt.Errorf("no reader for format %q", d.Format)
		}
		events, _, err := readEvalEvents(ctx, stderr, d.Path, opts)
		return events, err
	}
}

// readRetailInvoices reads an Online Retail export as the suite's protocol
// defines a purchase: one per non-cancelled invoice of a known customer, the
// invoice's lines merged (ingest.InvoiceMerger). Guest checkouts (no
// customer) and cancellations are excluded by the reader; a bad row counts
// against evalMaxInvalidShare.
func readRetailInvoices(ctx context.Context, stderr io.Writer, path string) ([]model.Event, error) {
	f, err := ingest.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m ingest.InvoiceMerger
	rep, err := ingest.ReadOnlineRetail(ctx, f, path, ingest.Options{OnError: ingest.Skip, MaxInvalidShare: evalMaxInvalidShare}, m.Add)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, rep)
	events := make([]model.Event, 0, m.Len())
	if err := m.Flush(func(ev model.Event, _ ingest.RetailLine) error {
		events = append(events, ev)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("read %s: no purchases", path)
	}
	return events, nil
}

// writeSuiteTable prints one table: a row per data set and method.
func writeSuiteTable(w io.Writer, res suite.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "data set\tcustomers\tpositive@30\tmethod\tAUC@7\tAUC@30\tPR-AUC@30\tBrier@30\tECE@30\tseconds\t\n")
	var notes []string
	for _, d := range res.Datasets {
		if d.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t%.1f\t\n", d.Name, d.Seconds)
			notes = append(notes, fmt.Sprintf("%s failed: %s", d.Name, d.Error))
			continue
		}
		for i, m := range d.Methods {
			name, customers, rate := "", "", ""
			if i == 0 {
				name, customers, rate = d.Name, fmt.Sprint(d.Customers), cell(d.PositiveRate)
			}
			if m.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t%.1f\t\n", name, customers, rate, m.Name, m.Seconds)
				notes = append(notes, fmt.Sprintf("%s: %s failed: %s", d.Name, m.Name, m.Error))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t\n", name, customers, rate, m.Name,
				cell(m.AUC["7"]), cell(m.AUC["30"]), cell(m.PRAUC["30"]), cell(m.Brier["30"]), cell(m.ECE["30"]), m.Seconds)
			if m.Selection != nil {
				notes = append(notes, fmt.Sprintf("%s: %s: %s", d.Name, m.Name, m.Selection.Reason))
			}
			if o := m.OwnDay; o != nil && o.Weight > 0 {
				notes = append(notes, fmt.Sprintf("%s: %s: predicted day weighed by the customer's own rhythm (weight %g; training buyers' MAE %.2f days, %.2f without)",
					d.Name, m.Name, o.Weight, o.TrainMAE, o.TrainMAE0))
			}
		}
		for _, warn := range d.Warnings {
			notes = append(notes, fmt.Sprintf("%s: %s", d.Name, warn))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if err := writeSuiteLong(w, res); err != nil {
		return err
	}
	return writeSuiteDates(w, res)
}

// writeSuiteLong prints the metrics at 60 and 90 days of the data sets whose
// log covers those test label windows.
func writeSuiteLong(w io.Writer, res suite.Result) error {
	var with []suite.DatasetResult
	for _, d := range res.Datasets {
		if len(d.LongPositives) > 0 {
			with = append(with, d)
		}
	}
	if len(with) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nlonger horizons (Kairos hazard past day 30: extrapolated), where the log covers the test label window:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "data set\tpositive@60\tpositive@90\tmethod\tAUC@60\tPR-AUC@60\tBrier@60\tAUC@90\tPR-AUC@90\tBrier@90\t\n")
	for _, d := range with {
		pos := func(h string) string {
			if n, ok := d.LongPositives[h]; ok {
				return fmt.Sprint(n)
			}
			return "-"
		}
		for i, m := range d.Methods {
			if m.Error != "" {
				continue
			}
			name, p60, p90 := "", "", ""
			if i == 0 {
				name, p60, p90 = d.Name, pos("60"), pos("90")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, p60, p90, m.Name,
				cell(m.AUC["60"]), cell(m.PRAUC["60"]), cell(m.Brier["60"]), cell(m.AUC["90"]), cell(m.PRAUC["90"]), cell(m.Brier["90"]))
		}
	}
	return tw.Flush()
}

// writeSuiteDates prints the date accuracy of every Kairos model's days and
// of the day baselines for the test customers who buy within 30 days.
func writeSuiteDates(w io.Writer, res suite.Result) error {
	fmt.Fprintln(w, "\ndate of the first purchase, test customers who buy within 30 days (S2 = mean 10/(10+d²), MAE in days):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "data set\tpredictor\tS2\tMAE\t\n")
	for _, d := range res.Datasets {
		row := func(name string, ds map[string]suite.DateScore, keys ...string) {
			for _, k := range keys {
				if v, ok := ds[k]; ok {
					fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t\n", d.Name, name, k, cell(v.S2), cell(v.MAE))
				}
			}
		}
		for _, m := range d.Methods {
			row(m.Name, m.Date, evaluate.DayMostLikely, evaluate.DayMedian, evaluate.DayExpected, evaluate.DayClosest)
			if m.ModalDayShare != nil {
				fmt.Fprintf(tw, "%s\t%s: share of customers on the most common median day\t%s\t\t\n", d.Name, m.Name, cell(m.ModalDayShare))
			}
		}
		row("baseline", d.DateBaselines, evaluate.DayLastPlusGap, evaluate.DayBestConstant, evaluate.DayBestConstantMAE)
	}
	return tw.Flush()
}

// cell formats a metric, "-" when absent (no probabilities) or undefined.
func cell(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}

// writeSuitePlots writes <data set>-reliability.svg and <data set>-gain.svg
// for every data set that ran.
func writeSuitePlots(dir string, res suite.Result) error {
	for _, d := range res.Datasets {
		var rel []chart.ReliabilitySeries
		var gain []chart.GainSeries
		for _, m := range d.Methods {
			if m.Error != "" {
				continue
			}
			if len(m.Calibration) > 0 {
				rel = append(rel, chart.ReliabilitySeries{Name: m.Name, Bins: m.Calibration})
			}
			if len(m.Gain) > 0 {
				gain = append(gain, chart.GainSeries{Name: m.Name, Points: m.Gain})
			}
		}
		title := fmt.Sprintf("%s, test cutoff %s: ", d.Name, d.TestCutoff)
		if len(rel) > 0 {
			if err := writeChart(filepath.Join(dir, fileName(d.Name)+"-reliability.svg"), func(w io.Writer) error {
				return chart.Reliability(w, title+"reliability of P(buy within 30 days)", rel)
			}); err != nil {
				return err
			}
		}
		if len(gain) > 0 {
			if err := writeChart(filepath.Join(dir, fileName(d.Name)+"-gain.svg"), func(w io.Writer) error {
				return chart.Gain(w, title+"cumulative gain, 30-day buyers", gain)
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeChart(path string, draw func(io.Writer) error) error {
	var b strings.Builder
	if err := draw(&b); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// fileName keeps the letters, digits, '-' and '_' of a data set's name.
func fileName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}

// jsonECE is the expected calibration error of a method's 30-day calibration
// table as `kairos eval --json` gives it, {"30": ece}; nil for a method
// without probabilities.
func jsonECE(bins []metrics.Bin) map[string]*float64 {
	if len(bins) == 0 {
		return nil
	}
	e, err := metrics.ECE(bins)
	if err != nil {
		return map[string]*float64{strconv.Itoa(model.Horizon): nil}
	}
	return map[string]*float64{strconv.Itoa(model.Horizon): jsonNum(e)}
}
