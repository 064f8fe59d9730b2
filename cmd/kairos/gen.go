package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/synth"
)

func newGenCmd() *cobra.Command {
	var (
		customers, events, days int
		perCustomer             float64
		seed                    uint64
		out, mapping, start     string
		noChurn                 bool
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write a synthetic event log for scale tests",
		Long: `gen writes a deterministic synthetic event log (model/synth) in the generic CSV
layout, with the client/ingest mapping that reads it back:

  kairos gen --customers 100000 --events-per-customer 40 --out log.csv
  kairos gen --events 10000000 --seed 7 --out big.csv --start 2024-01-01 --days 730

Customers buy in gamma renewal processes with gamma-distributed rates and drop out
BG/NBD-style; browsing intensifies before purchases; weekly and daily seasonality
follow each merchant's zone (m1 UTC+0, m2 UTC-5, m3 UTC+8). The log streams
customer by customer, so size is limited only by disk. With --out FILE the
mapping is written to FILE.mapping.yaml unless --mapping names another file;
--out - writes the log to standard output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events > 0 && perCustomer > 0 {
				return errors.New("gen: give --events or --events-per-customer, not both")
			}
			if events <= 0 && customers <= 0 {
				return errors.New("gen: give --customers (with --events-per-customer) or --events")
			}
			if perCustomer > 0 && customers <= 0 {
				return errors.New("gen: --events-per-customer needs --customers")
			}
			cfg := synth.Config{Seed: seed, Customers: customers, Events: events, EventsPerCustomer: perCustomer, Days: days, NoChurn: noChurn}
			if start != "" {
				t, err := time.Parse(time.DateOnly, start)
				if err != nil {
					return fmt.Errorf("gen: --start: %w", err)
				}
				cfg.Start = t
			}
			g, err := synth.New(cfg)
			if err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "-" {
				if f, err = os.Create(out); err != nil {
					return fmt.Errorf("gen: %w", err)
				}
				defer f.Close()
				w = f
				if mapping == "" {
					mapping = out + ".mapping.yaml"
				}
			}
			if mapping != "" {
				if err := os.WriteFile(mapping, []byte(synth.MappingYAML), 0o644); err != nil {
					return fmt.Errorf("gen: write mapping: %w", err)
				}
			}
			began := time.Now()
			st, err := g.WriteCSV(cmd.Context(), w)
			if err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("gen: %w", err)
				}
			}
			secs := time.Since(began).Seconds()
			slog.Info("wrote synthetic log", "file", out, "mapping", mapping, "customers", st.Customers, "events", st.Events,
				"views", st.Kinds[model.View], "carts", st.Kinds[model.Cart], "favorites", st.Kinds[model.Favorite],
				"purchases", st.Kinds[model.Purchase], "seconds", secs, "events_per_second", float64(st.Events)/max(secs, 1e-9))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&customers, "customers", 0, "number of customers")
	f.Float64Var(&perCustomer, "events-per-customer", 0, "average events per customer (tunes browsing intensity; needs --customers)")
	f.IntVar(&events, "events", 0, "stop after exactly this many events")
	f.Uint64Var(&seed, "seed", 1, "random seed; the same seed gives the same log")
	f.StringVar(&out, "out", "-", "output CSV file, - for standard output")
	f.StringVar(&mapping, "mapping", "", "where to write the ingest mapping (default OUT.mapping.yaml)")
	f.StringVar(&start, "start", "2024-01-01", "first day of the simulated window (YYYY-MM-DD, UTC)")
	f.IntVar(&days, "days", 365, "length of the simulated window in days")
	f.BoolVar(&noChurn, "no-churn", false, "customers never drop out")
	return cmd
}
