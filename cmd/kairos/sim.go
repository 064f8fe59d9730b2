package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/train/sim"
)

func newSimCmd() *cobra.Command {
	var (
		scenario, data string
		seed           uint64
		asJSON, secure bool
		validation     bool
		dropout        float64
	)
	cmd := &cobra.Command{
		Use:   "sim --scenario NAME [--seed N] [--json]",
		Short: "Run a many-merchant federation benchmark and compare local-only, federated and personalised models per merchant size",
		Long: `Sim splits a real data set into a named, seeded scenario of many merchants, runs the
federation at ε = 1, δ = 1e-6 per merchant, and scores on every merchant's own customers at
the test cutoff its local-only non-private model, the federated global model and its
personalised model (the global model fine-tuned on its own customers, as kairos client
score does), pooled per merchant-size bucket.

Scenarios:
  cdnow-100   CDNOW's customers over 100 non-IID merchants (log-normal sizes, median about
              100; each merchant draws from a few first-purchase cohort × spend × early-repeat
              strata), each with a declared time zone; test cutoff 1998-03-01.
  cdnow-20    the same construction with 20 merchants (sizes' median scaled by 100/20:
  cdnow-5     about 500 customers) and with 5 (about 2,000); every CDNOW customer is still
              placed once. They show what splitting the DP noise over more merchants costs.
  retail-regions  the full Online Retail export split by the customer's country: United
              Kingdom, Germany and France (≥ 50 customers each) alone, the other countries
              merged into 8 regions; each merchant builds its features in its own time
              zone; test cutoff 2011-11-09 (the suite's protocol). The split has no seed.

The merchants run in this process through the simulation package (client/train/sim), not
as client processes against an aggregator. With --secure-aggregation each round is one
DP-SGD step whose per-customer clipped gradients every merchant encodes with its share of
distributed discrete Gaussian noise (dp/distributed) and masks with SecAgg+
(aggregator/secagg); the server sees only the cohort's sum. --dropout makes that share of
merchants drop out after masking in every round. The scenario's data file
(cdnow/CDNOW_master.txt, online_retail_full/online_retail.csv.gz) is --data, or looked up
under $KAIROS_DATA, ../shared/data and shared/data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dropout != 0 && !secure {
				return errors.New("sim: --dropout needs --secure-aggregation")
			}
			if !slices.Contains(sim.Scenarios, scenario) {
				return fmt.Errorf("sim: --scenario %q: unknown (want one of %v)", scenario, sim.Scenarios)
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			rel, err := sim.ScenarioFile(scenario)
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			path, err := findSharedData(data, exe, rel)
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			start := time.Now()
			in, err := sim.LoadScenarioData(cmd.Context(), scenario, path)
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			so := sim.ScenarioOptions{Name: scenario, Seed: seed, Validation: validation}
			if secure {
				o := sim.DefaultSecureOptions()
				o.Dropout = dropout
				so.Secure = &o
			}
			rep, err := sim.RunScenario(cmd.Context(), in, so)
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			rep.Seconds = time.Since(start).Seconds()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false) // the bucket "<100" as written
				return enc.Encode(rep)
			}
			return writeSimTable(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", sim.ScenarioCDNOW100, fmt.Sprintf("scenario to run (%v)", sim.Scenarios))
	f.Uint64Var(&seed, "seed", 1, "seed of the split and of every training (DP noise excepted)")
	f.StringVar(&data, "data", "", "the scenario's data file (default: search, see above)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&validation, "validation", false, "score at the validation cutoff (cdnow: 1998-01-01, training 1997-05-01 … 1997-11-01; retail: 2011-10-09, training 2011-04-01 … 2011-09-01) instead of the test cutoff")
	f.BoolVar(&secure, "secure-aggregation", false, "train with secure aggregation (SecAgg+) and distributed DP: one step per round, the aggregator sees only the cohort's noisy sum")
	f.Float64Var(&dropout, "dropout", 0, "with --secure-aggregation: share of merchants that drop out after masking, every round")
	return cmd
}

// writeSimTable prints a scenario report as a table.
func writeSimTable(w io.Writer, r sim.ScenarioReport) error {
	fmt.Fprintf(w, "scenario %s (seed %d, test cutoff %s): %d merchants in process, ε ≤ %.4f at δ = %g (z = %.3f), %.1f s\n",
		r.Scenario, r.Seed, r.TestCutoff, r.Merchants, r.EpsilonMax, r.Delta, r.NoiseMultiplier, r.Seconds)
	fmt.Fprintf(w, "AUC@30 pooled: federated %.4f, centralised non-private %.4f, local-only %.4f, personalised %.4f\n",
		r.AUC30.Federated, r.AUC30.Centralized, r.AUC30.LocalOnlyPooled, r.AUC30.PersonalizedPooled)
	if sc := r.Secure; sc != nil {
		fmt.Fprintf(w, "secure aggregation: %d rounds at q = %g, noise multiplier %.3f on the sum of ≥ %d merchants, %d bits, degree %d, threshold %d, %d dropouts, %.1f s in the protocol\n",
			sc.Rounds, sc.SamplingRate, sc.NoiseMultiplier, sc.MinCohort, sc.Bits, sc.Degree, sc.Threshold, sc.Dropouts, sc.SecAggSeconds)
	}
	fmt.Fprintf(w, "personalised ≥ local-only for %.1f%% of merchants; choices %v\n\n", 100*r.PersonalizedGELocal, r.Choices)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tmerchants\tcustomers\tAUC local\tAUC fed\tAUC pers\tPR local\tPR fed\tPR pers\tBrier local\tBrier fed\tBrier pers\tpers ≥ local\t")
	for _, b := range r.BySize {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.0f%% of %d\t\n",
			b.Bucket, b.Merchants, b.Customers, b.LocalOnly, b.Federated, b.Personalized,
			b.PRAUC30.LocalOnly, b.PRAUC30.Federated, b.PRAUC30.Personalized,
			b.Brier30.LocalOnly, b.Brier30.Federated, b.Brier30.Personalized, 100*b.PersonalizedGELocal, b.Compared)
	}
	return tw.Flush()
}

// findSharedData returns flag if set (it must exist), else the first of
// $KAIROS_DATA/rel, ../shared/data/rel, shared/data/rel and, beside the
// binary, ../../shared/data/rel that exists.
func findSharedData(flag, exe, rel string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", fmt.Errorf("--data: %w", err)
		}
		return filepath.Abs(flag)
	}
	var cands []string
	if d := os.Getenv("KAIROS_DATA"); d != "" {
		cands = append(cands, filepath.Join(d, rel))
	}
	cands = append(cands, filepath.Join("..", "shared", "data", rel), filepath.Join("shared", "data", rel))
	if exe != "" {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "..", "..", "shared", "data", rel))
	}
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("%s not found (looked in %s); pass --data", filepath.Base(rel), strings.Join(cands, ", "))
}
