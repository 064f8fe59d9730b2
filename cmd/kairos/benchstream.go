package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/stream"
)

func newBenchStreamCmd() *cobra.Command {
	var (
		opt     stream.BenchOptions
		asJSON  bool
		seconds float64
		profile string
	)
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Measure the live pipeline through a real NATS JetStream server",
		Long: `bench stream measures the merchant client's live pipeline (client/stream) on the
NATS JetStream server at --nats, in memory streams of its own that it deletes after:

  state updates     feature.LiveEngine.Apply alone, one goroutine (events/s per core)
  events_per_second --events events published first, then consumed, decoded, applied,
                    scored with a linear hazard model and committed to SQLite
  p99 event→score   --rate events per second offered for --seconds; the time from the
                    publisher's send to the event's score being committed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt.Duration = time.Duration(seconds * float64(time.Second))
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return fmt.Errorf("bench stream: cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("bench stream: cpu profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			res, err := stream.Bench(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "state updates per second (one core)\t%.0f\n", res.StateUpdatesPerSecondPerCore)
			fmt.Fprintf(w, "events per second (NATS → state → score → SQLite)\t%.0f\n", res.EventsPerSecond)
			fmt.Fprintf(w, "CPU (user+system) per 1,000 events, throughput run\t%.1f ms\n", res.CPUMsPer1000Events)
			fmt.Fprintf(w, "CPU per 1,000 events, latency run (publisher included)\t%.1f ms\n", res.LatencyRunCPUMsPer1000Events)
			fmt.Fprintf(w, "event → score at %d/s offered (achieved %.0f/s)\tp50 %.2f ms, p99 %.2f ms over %d events\n", res.Rate, res.AchievedRate, res.P50EventToScoreMs, res.P99EventToScoreMs, res.LatencyEvents)
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS server URL (JetStream enabled)")
	f.IntVar(&opt.Events, "events", 200_000, "events for the throughput run")
	f.IntVar(&opt.Customers, "customers", 10_000, "distinct customers")
	f.IntVar(&opt.Rate, "rate", 10_000, "offered events per second for the latency run")
	f.Float64Var(&seconds, "seconds", 10, "length of the latency run in seconds")
	f.Uint64Var(&opt.Seed, "seed", 1, "seed of the synthetic events")
	f.BoolVar(&asJSON, "json", false, "write the result as JSON")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the whole run (pprof format) to this file")
	return cmd
}
