package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/synth"
)

// IngestResult is what `kairos bench` measures; it is also its JSON output.
type IngestResult struct {
	Data                    string  `json:"data"`
	Generated               bool    `json:"generated"`
	Events                  int     `json:"events"`
	Customers               int     `json:"customers"`
	Cutoffs                 int     `json:"cutoffs"`
	Rows                    int     `json:"rows"`
	IngestFeatureSeconds    float64 `json:"ingest_features_seconds"`
	IngestFeatureEventsPerS float64 `json:"ingest_features_events_per_second"`
	RowsSeconds             float64 `json:"rows_seconds"`
	PeakRSSFeaturesMiB      float64 `json:"peak_rss_after_features_mib"`
	PeakRSSMiB              float64 `json:"peak_rss_mib"`
	TrainSteps              int     `json:"train_steps"`
	TrainExamples           int     `json:"train_examples"`
	TrainSeconds            float64 `json:"train_seconds"`
	TrainExamplesPerS       float64 `json:"train_examples_per_second"`
	GoMaxProcs              int     `json:"gomaxprocs"`
}

// IngestOptions configure Ingest; the command's flags of the same names say
// what each one does.
type IngestOptions struct {
	// Data is an event CSV read with Mapping; empty: a synthetic log of
	// Events events is written to a temporary file first.
	Data, Mapping string
	Events        int
	// Steps training steps of Batch customers, of model Kind (Hidden units
	// for an MLP).
	Steps, Batch, Hidden int
	Kind                 string
	Seed                 uint64
	// Logger notes the generated log; discarded when nil.
	Logger *slog.Logger
}

// Ingest streams an event log through client/ingest into the point-in-time
// feature builder (monthly cutoffs over the log's span), then trains the
// hazard model for a fixed number of steps, and measures both.
func Ingest(ctx context.Context, o IngestOptions) (*IngestResult, error) {
	res := &IngestResult{GoMaxProcs: runtime.GOMAXPROCS(0)}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var mapping *ingest.Mapping
	if o.Data == "" {
		dir, err := os.MkdirTemp("", "kairos-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Data = filepath.Join(dir, "synth.csv")
		g, err := synth.New(synth.Config{Seed: o.Seed, Events: o.Events})
		if err != nil {
			return nil, err
		}
		f, err := os.Create(o.Data)
		if err != nil {
			return nil, err
		}
		if _, err := g.WriteCSV(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("generate: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		if mapping, err = ingest.ParseMapping(strings.NewReader(synth.MappingYAML), "synth mapping"); err != nil {
			return nil, err
		}
		res.Generated = true
		o.Logger.Info("generated synthetic log", "file", o.Data, "events", o.Events)
	} else {
		if o.Mapping == "" {
			return nil, errors.New("a data file needs a mapping")
		}
		var err error
		if mapping, err = ingest.LoadMapping(o.Mapping); err != nil {
			return nil, err
		}
	}
	res.Data = o.Data

	// The span decides the cutoffs, so scan it first (not timed).
	var first, last time.Time
	if _, err := ingest.ReadFile(ctx, o.Data, ingest.Options{Format: ingest.CSV, Mapping: mapping, OnError: ingest.Skip}, func(e model.Event) error {
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var cutoffs []time.Time
	for c := first.AddDate(0, 2, 0).Truncate(model.Day); !c.Add(model.Horizon * model.Day).After(last); c = c.AddDate(0, 1, 0) {
		cutoffs = append(cutoffs, c)
	}
	if len(cutoffs) == 0 {
		return nil, fmt.Errorf("log spans %s .. %s: too short for a cutoff", first.Format(time.DateOnly), last.Format(time.DateOnly))
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rep, err := ingest.ReadFile(ctx, o.Data, ingest.Options{Format: ingest.CSV, Mapping: mapping, OnError: ingest.Skip}, b.Add)
	if err != nil {
		return nil, err
	}
	res.IngestFeatureSeconds = time.Since(start).Seconds()
	res.Events, res.Customers, res.Cutoffs = rep.Events, b.Customers(), len(cutoffs)
	res.IngestFeatureEventsPerS = float64(rep.Events) / res.IngestFeatureSeconds
	start = time.Now()
	rows := b.Rows()
	res.RowsSeconds = time.Since(start).Seconds()
	res.Rows = len(rows)
	res.PeakRSSFeaturesMiB = peakRSSMiB()

	opts := hazard.TrainOptions{Kind: o.Kind, Hidden: o.Hidden, Steps: o.Steps, BatchSize: o.Batch, Seed: o.Seed}
	start = time.Now()
	_, trep, err := hazard.Train(ctx, b.Schema(), rows, opts)
	if err != nil {
		return nil, err
	}
	res.TrainSeconds = time.Since(start).Seconds()
	res.TrainSteps = trep.Steps
	// Each step visits Batch customers and all their rows: on average
	// rows/customers examples per customer.
	perCustomer := float64(trep.Rows) / float64(max(trep.Customers, 1))
	res.TrainExamples = int(float64(o.Steps*min(o.Batch, trep.Customers)) * perCustomer)
	res.TrainExamplesPerS = float64(res.TrainExamples) / res.TrainSeconds
	res.PeakRSSMiB = peakRSSMiB()

	return res, nil
}

// WriteIngestTable writes res as the table `kairos bench` prints.
func WriteIngestTable(w io.Writer, res *IngestResult, o IngestOptions) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "data\t%s\n", res.Data)
	fmt.Fprintf(tw, "events\t%d\n", res.Events)
	fmt.Fprintf(tw, "customers × cutoffs\t%d × %d = %d rows\n", res.Customers, res.Cutoffs, res.Rows)
	fmt.Fprintf(tw, "ingest + features\t%.2f s\t%.0f events/s\n", res.IngestFeatureSeconds, res.IngestFeatureEventsPerS)
	fmt.Fprintf(tw, "build rows\t%.2f s\n", res.RowsSeconds)
	fmt.Fprintf(tw, "training (%s, %d steps × %d customers)\t%.2f s\t%.0f examples/s\n", o.Kind, o.Steps, o.Batch, res.TrainSeconds, res.TrainExamplesPerS)
	fmt.Fprintf(tw, "peak RSS (VmHWM) after features\t%.1f MiB\n", res.PeakRSSFeaturesMiB)
	fmt.Fprintf(tw, "peak RSS (VmHWM) after training\t%.1f MiB\n", res.PeakRSSMiB)
	return tw.Flush()
}

// peakRSSMiB reads the process's peak resident set size (VmHWM) from
// /proc/self/status; it returns 0 where that file does not exist.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				kb, err := strconv.ParseFloat(fs[0], 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}
