package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/bench"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/store"
)

// The bench commands parse their flags and call package bench, which
// measures and prints.

func newBenchCmd() *cobra.Command {
	var (
		o       bench.IngestOptions
		jsonOut string
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
			o.Logger = slog.Default()
			res, err := bench.Ingest(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if err := bench.WriteIngestTable(cmd.OutOrStdout(), res, o); err != nil {
				return err
			}
			return writeBenchJSON("bench", jsonOut, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Data, "data", "", "event CSV to read (default: generate a synthetic log)")
	f.StringVar(&o.Mapping, "mapping", "", "column mapping YAML for --data")
	f.IntVar(&o.Events, "events", 1_000_000, "events to generate when --data is not given")
	f.IntVar(&o.Steps, "steps", 200, "training steps")
	f.IntVar(&o.Batch, "batch", 256, "customers per training step")
	f.StringVar(&o.Kind, "model", hazard.KindLinear, "linear or mlp")
	f.IntVar(&o.Hidden, "hidden", 16, "hidden units for --model mlp")
	f.Uint64Var(&o.Seed, "seed", 1, "seed for generation and training")
	f.StringVar(&jsonOut, "json-out", "", "also write the results as JSON to this file")
	cmd.AddCommand(newBenchPredictCmd())
	cmd.AddCommand(newBenchFederationCmd())
	cmd.AddCommand(newBenchStreamCmd())
	return cmd
}

func newBenchPredictCmd() *cobra.Command {
	var (
		o                                          bench.PredictOptions
		clientsFlag, jsonOut, cpuProfile, traceOut string
		gc                                         gcFlags
	)
	cmd := &cobra.Command{
		Use:   "predict",
		Short: "Load-test POST /v1/predict and /v1/predict:batch, side by side with a Flask peer",
		Long: `bench predict starts an aggregator API in this process on loopback — real EdDSA JWT
verification with the revocation check in the store, the partner rate limiter, and
every prediction audited durably (group commit) in the store before it is answered —
with a hazard model trained on synthetic data as the active version. With --url it
targets a running aggregator instead (give --token and --merchant).

A closed-loop Go load generator (in this process, so it shares the CPUs) then runs
--clients concurrent clients for --duration each and reports throughput and exact
p50/p99/p99.9 latencies (every latency is kept and sorted), for bodies with events
(features built by the server) and with precomputed feature vectors; then
--batches batches of --batch customers one after the other.

Side by side, scripts/peer_flask.py serves the same model (fetched from
/v1/models/active) with Flask and scikit-learn, without auth or audit; the bench
checks that both give the same probabilities and reports the throughput ratio.

Use --db postgres://user@host/db to audit on PostgreSQL: a fresh database is
created next to the one named and dropped at the end. Without --db, SQLite in a
temporary file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clients, err := parseInts(clientsFlag)
			if err != nil {
				return fmt.Errorf("bench predict: --clients: %w", err)
			}
			o.Clients = clients
			if o.Duration <= 0 || o.Customers < 1 || o.Batch < 1 || o.Batches < 1 {
				return errors.New("bench predict: --duration, --customers, --batch and --batches must be positive")
			}
			if (o.URL != "") && (o.Token == "" || o.Merchant == "") {
				return errors.New("bench predict: --url needs --token and --merchant")
			}
			if err := gc.apply(); err != nil {
				return fmt.Errorf("bench predict: %w", err)
			}
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("bench predict: %w", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return fmt.Errorf("bench predict: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if traceOut != "" {
				tf, err := os.Create(traceOut)
				if err != nil {
					return fmt.Errorf("bench predict: %w", err)
				}
				defer tf.Close()
				if err := trace.Start(tf); err != nil {
					return fmt.Errorf("bench predict: %w", err)
				}
				defer trace.Stop()
			}
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			res, err := bench.Predict(cmd.Context(), cmd.OutOrStdout(), o)
			if err != nil {
				return fmt.Errorf("bench predict: %w", err)
			}
			return writeBenchJSON("bench predict", jsonOut, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DB, "db", "", "store URL for the in-process aggregator (postgres://… gets a fresh database; default SQLite in a temporary file)")
	f.StringVar(&o.URL, "url", "", "target a running aggregator at this base URL instead")
	f.StringVar(&o.Token, "token", "", "with --url: a partner or merchant token")
	f.StringVar(&o.Merchant, "merchant", "", "with --url: the merchant to predict for")
	f.StringVar(&clientsFlag, "clients", "1,8,32,128", "comma-separated concurrent client counts")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each load level")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "warm-up before the first level")
	f.IntVar(&o.Customers, "customers", 2000, "synthetic customers (distinct request bodies)")
	f.IntVar(&o.Batch, "batch", 1000, "customers per batch request")
	f.IntVar(&o.Batches, "batches", 20, "batch requests to time")
	f.StringVar(&o.Flask, "flask", "scripts/peer_flask.py", "the Flask peer script; empty to skip the peer")
	f.StringVar(&o.Python, "python", "/usr/bin/python3", "Python with Flask and scikit-learn for the peer")
	f.StringVar(&jsonOut, "json", "", "also write the results as JSON to this file")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic data and the training")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (server and generator) to this file")
	f.StringVar(&traceOut, "trace", "", "write an execution trace of this process to this file (go tool trace); keep the run short")
	gc.register(cmd)
	f.BoolVar(&o.Breakdown, "breakdown", false, "in process: also report per level the audit wait and commit times, GC cycles and CPU share, and scheduling latency")
	cmd.AddCommand(newBenchFloodCmd())
	return cmd
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func newBenchFederationCmd() *cobra.Command {
	var o bench.FederationOptions
	var jsonOut string
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "Measure federated rounds per minute and the aggregator's accepted updates per second",
		Long: `federation runs two measurements in this process.

Rounds: --merchants simulated merchants with --customers synthetic customers each
(model/synth) build point-in-time features (model/feature), and in every round each
trains locally with DP-SGD (client/train.Local), seals its update (crypto/seal, the
aggregator's post-quantum recipient) and submits it to an aggregator.Service on --db
(default: a temporary SQLite file; a postgres:// URL gets a fresh database that is
dropped afterwards); when all have sent, the aggregator merges and publishes. It
reports rounds per minute and where a round's time goes.

Acceptance: --updates merchants each submit one pre-sealed update of a model of about
--params parameters from --submitters goroutines to an aggregator on --accept-db
(default: --db when it is PostgreSQL, otherwise skipped); every acceptance verifies the
signature, decrypts, debits the ledger and waits for its audit entry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.AcceptDB == "" && store.IsPostgres(o.DB) {
				o.AcceptDB = o.DB
			}
			res, err := bench.Federation(cmd.Context(), cmd.ErrOrStderr(), o)
			if err != nil {
				return fmt.Errorf("bench federation: %w", err)
			}
			if err := bench.WriteFederationTable(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			return writeBenchJSON("bench federation", jsonOut, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DB, "db", "", "store for the rounds: SQLite path or postgres:// URL (default: temporary SQLite)")
	f.StringVar(&o.AcceptDB, "accept-db", "", "PostgreSQL URL for the acceptance measurement (default: --db if PostgreSQL)")
	f.IntSliceVar(&o.Merchants, "merchants", []int{100}, "simulated merchants; a comma list (10,100,1000) runs the rounds once per entry")
	f.IntVar(&o.Customers, "customers", 2000, "customers per merchant")
	f.IntVar(&o.Rounds, "rounds", 3, "rounds to run")
	f.IntVar(&o.Updates, "updates", 2000, "updates (one per merchant) for the acceptance measurement")
	f.IntVar(&o.Submitters, "submitters", 16, "concurrent submitters for the acceptance measurement")
	f.IntVar(&o.Params, "params", 1000, "approximate model size for the acceptance measurement")
	f.Uint64Var(&o.Seed, "seed", 1, "seed for the synthetic data")
	f.BoolVar(&o.SkipRounds, "skip-rounds", false, "skip the rounds measurement")
	f.BoolVar(&o.SkipAccept, "skip-accept", false, "skip the acceptance measurement")
	f.BoolVar(&o.Secure, "secure", false, "also run --rounds secure-aggregation rounds (SecAgg+ with distributed DP, in process) on the same merchants")
	f.StringVar(&jsonOut, "json-out", "", "also write the results as JSON to this file")
	return cmd
}

func newBenchFloodCmd() *cobra.Command {
	var (
		bin, jsonOut              string
		serveArgs                 []string
		requests, customers, evts int
		retry                     bool
	)
	cmd := &cobra.Command{
		Use:   "flood",
		Short: "Attack a real `kairos aggregator serve` process with concurrent large batches and report its peak RSS",
		Long: `flood reproduces the memory-amplification attack on a separate server process: it
runs "KAIROS aggregator init" in a temporary directory (the example policy lets partner
crm-demo send 50 requests/s with a burst of 100), starts "KAIROS aggregator serve" with
--serve-arg flags, enrols merchant cdnow-1, and sends --requests concurrent
POST /v1/predict:batch bodies of --customers customers × --events events (1,000 × 430 is
28 MB) with one partner token, all within its rate limit. Meanwhile the merchant sends a
single prediction every 100 ms. It reports the attack's answers, whether the compliant
predictions were answered, and the server's peak resident set (VmHWM in /proc/PID/status).

--kairos names the server binary (default: this one), so that an older build can be
measured with the same attack.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if requests < 1 || customers < 1 || evts < 1 {
				return errors.New("bench predict flood: --requests, --customers and --events must be positive")
			}
			if bin == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("bench predict flood: %w", err)
				}
				bin = exe
			}
			res, err := bench.Flood(cmd.Context(), cmd.OutOrStdout(), bin, serveArgs, requests, customers, evts, retry)
			if err != nil {
				return fmt.Errorf("bench predict flood: %w", err)
			}
			return writeBenchJSON("bench predict flood", jsonOut, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&bin, "kairos", "", "the kairos binary to run as the server (default: this one)")
	f.StringArrayVar(&serveArgs, "serve-arg", nil, "an extra flag for aggregator serve, e.g. --serve-arg=--max-inflight-mib=64 (repeatable)")
	f.IntVar(&requests, "requests", 50, "concurrent batch requests")
	f.IntVar(&customers, "customers", 1000, "customers per batch")
	f.IntVar(&evts, "events", 430, "events per customer")
	f.BoolVar(&retry, "retry", false, "each attacker resends its batch after a 503 or 429's Retry-After until it is answered 200")
	f.StringVar(&jsonOut, "json", "", "also write the results as JSON to this file")
	return cmd
}

// writeBenchJSON writes res as indented JSON to path, when path is set.
func writeBenchJSON(op, path string, res any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
