package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/synth"
)

// benchResult is what `kairos bench` measures; it is also its JSON output.
type benchResult struct {
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

func newBenchCmd() *cobra.Command {
	var (
		dataPath, mappingPath, jsonOut, kind string
		events, steps, batch, hidden         int
		seed                                 uint64
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest + feature throughput, peak memory and training speed",
		Long: `bench streams an event log through client/ingest into the point-in-time feature
builder (monthly cutoffs over the log's span), reports events per second and the peak
resident memory (VmHWM), then trains the hazard model for a fixed number of steps and
reports training examples (customer-cutoff rows) per second.

Without --data it first writes a synthetic log of --events events (model/synth) to a
temporary file, so the read is a real file read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			res := benchResult{GoMaxProcs: runtime.GOMAXPROCS(0)}
			var mapping *ingest.Mapping
			if dataPath == "" {
				dir, err := os.MkdirTemp("", "kairos-bench-")
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				defer os.RemoveAll(dir)
				dataPath = filepath.Join(dir, "synth.csv")
				g, err := synth.New(synth.Config{Seed: seed, Events: events})
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				f, err := os.Create(dataPath)
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				if _, err := g.WriteCSV(ctx, f); err != nil {
					f.Close()
					return fmt.Errorf("bench: generate: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				if mapping, err = ingest.ParseMapping(strings.NewReader(synth.MappingYAML), "synth mapping"); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				res.Generated = true
				slog.Info("generated synthetic log", "file", dataPath, "events", events)
			} else {
				if mappingPath == "" {
					return fmt.Errorf("bench: --data needs --mapping")
				}
				var err error
				if mapping, err = ingest.LoadMapping(mappingPath); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
			}
			res.Data = dataPath

			// The span decides the cutoffs, so scan it first (not timed).
			var first, last time.Time
			if _, err := ingest.ReadFile(ctx, dataPath, ingest.Options{Format: ingest.CSV, Mapping: mapping, OnError: ingest.Skip}, func(e model.Event) error {
				if first.IsZero() || e.Time.Before(first) {
					first = e.Time
				}
				if e.Time.After(last) {
					last = e.Time
				}
				return nil
			}); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			var cutoffs []time.Time
			for c := first.AddDate(0, 2, 0).Truncate(model.Day); !c.Add(model.Horizon * model.Day).After(last); c = c.AddDate(0, 1, 0) {
				cutoffs = append(cutoffs, c)
			}
			if len(cutoffs) == 0 {
				return fmt.Errorf("bench: log spans %s .. %s: too short for a cutoff", first.Format(time.DateOnly), last.Format(time.DateOnly))
			}
			b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs})
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			start := time.Now()
			rep, err := ingest.ReadFile(ctx, dataPath, ingest.Options{Format: ingest.CSV, Mapping: mapping, OnError: ingest.Skip}, b.Add)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			res.IngestFeatureSeconds = time.Since(start).Seconds()
			res.Events, res.Customers, res.Cutoffs = rep.Events, b.Customers(), len(cutoffs)
			res.IngestFeatureEventsPerS = float64(rep.Events) / res.IngestFeatureSeconds
			start = time.Now()
			rows := b.Rows()
			res.RowsSeconds = time.Since(start).Seconds()
			res.Rows = len(rows)
			res.PeakRSSFeaturesMiB = peakRSSMiB()

			opts := hazard.TrainOptions{Kind: kind, Hidden: hidden, Steps: steps, BatchSize: batch, Seed: seed}
			start = time.Now()
			_, trep, err := hazard.Train(ctx, b.Schema(), rows, opts)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			res.TrainSeconds = time.Since(start).Seconds()
			res.TrainSteps = trep.Steps
			// Each step visits batch customers and all their rows: on average
			// rows/customers examples per customer.
			perCustomer := float64(trep.Rows) / float64(max(trep.Customers, 1))
			res.TrainExamples = int(float64(steps*min(batch, trep.Customers)) * perCustomer)
			res.TrainExamplesPerS = float64(res.TrainExamples) / res.TrainSeconds
			res.PeakRSSMiB = peakRSSMiB()

			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "data\t%s\n", res.Data)
			fmt.Fprintf(tw, "events\t%d\n", res.Events)
			fmt.Fprintf(tw, "customers × cutoffs\t%d × %d = %d rows\n", res.Customers, res.Cutoffs, res.Rows)
			fmt.Fprintf(tw, "ingest + features\t%.2f s\t%.0f events/s\n", res.IngestFeatureSeconds, res.IngestFeatureEventsPerS)
			fmt.Fprintf(tw, "build rows\t%.2f s\n", res.RowsSeconds)
			fmt.Fprintf(tw, "training (%s, %d steps × %d customers)\t%.2f s\t%.0f examples/s\n", kind, steps, batch, res.TrainSeconds, res.TrainExamplesPerS)
			fmt.Fprintf(tw, "peak RSS (VmHWM) after features\t%.1f MiB\n", res.PeakRSSFeaturesMiB)
			fmt.Fprintf(tw, "peak RSS (VmHWM) after training\t%.1f MiB\n", res.PeakRSSMiB)
			if err := tw.Flush(); err != nil {
				return err
			}
			if jsonOut != "" {
				data, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
					return fmt.Errorf("bench: %w", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataPath, "data", "", "event CSV to read (default: generate a synthetic log)")
	f.StringVar(&mappingPath, "mapping", "", "column mapping YAML for --data")
	f.IntVar(&events, "events", 1_000_000, "events to generate when --data is not given")
	f.IntVar(&steps, "steps", 200, "training steps")
	f.IntVar(&batch, "batch", 256, "customers per training step")
	f.StringVar(&kind, "model", hazard.KindLinear, "linear or mlp")
	f.IntVar(&hidden, "hidden", 16, "hidden units for --model mlp")
	f.Uint64Var(&seed, "seed", 1, "seed for generation and training")
	f.StringVar(&jsonOut, "json-out", "", "also write the results as JSON to this file")
	cmd.AddCommand(newBenchPredictCmd())
	cmd.AddCommand(newBenchFederationCmd())
	cmd.AddCommand(newBenchStreamCmd())
	return cmd
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
