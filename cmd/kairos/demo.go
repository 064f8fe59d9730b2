package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/federation/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		asJSON, keep bool
		data, work   string
		timeout      time.Duration
		seed         uint64
	)
	cmd := &cobra.Command{
		Use:   "demo [--json]",
		Short: "Run a ten-merchant non-IID federation over CDNOW on this machine: local-only, federated and personalised per merchant size",
		Long: `Demo needs no set-up. It draws ten merchants from the cdnow-100 split of CDNOW
(kairos sim --scenario cdnow-100): four with 60-99 customers, three with 100-299, one
with 300-999 and the two largest, each drawing its customers from a few first-purchase
cohort x spend x early-repeat strata of its own, and writes each its own order file.
In a temporary directory it creates an aggregator (kairos aggregator init), starts it
(kairos aggregator serve) and one merchant client per merchant (kairos client run) as
separate processes on loopback; each trains with DP-SGD until its budget of ε = 1 at
δ = 1e-6 is spent (40 rounds). Then each merchant's own customers at the test cutoff
1998-03-01 are scored by its local-only non-private model, the published federated
model and its personalised model (what kairos client score uses), pooled per size
bucket, and the aggregator's audit log is verified (kairos compliance audit verify).

The CDNOW file is looked up in --data, $KAIROS_DATA, ../shared/data and shared/data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			path, err := findCDNOW(data, exe)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rep, err := demo.Run(ctx, demo.Options{Exe: exe, Data: path, WorkDir: work, Keep: keep, Seed: seed, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false) // the bucket "<100" as written
				err = enc.Encode(rep)
			} else {
				err = demo.WriteTable(cmd.OutOrStdout(), rep)
			}
			if err == nil && !rep.AuditVerified {
				err = errors.New("demo: the audit log did not verify")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
	f.StringVar(&data, "data", "", "CDNOW_master.txt (default: search, see above)")
	f.StringVar(&work, "work-dir", "", "directory for the run (default: a new temporary directory)")
	f.BoolVar(&keep, "keep", false, "keep the run's directory (logs, databases, states, order files)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	f.Uint64Var(&seed, "seed", 1, "seed of the cdnow-100 split the merchants are drawn from")
	return cmd
}

// findCDNOW locates CDNOW_master.txt (findSharedData).
func findCDNOW(flag, exe string) (string, error) {
	return findSharedData(flag, exe, "cdnow/CDNOW_master.txt")
}
