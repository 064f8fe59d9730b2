package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/train/privacyaudit"
)

func newDPAuditCmd() *cobra.Command {
	var (
		epsilons string
		opt      privacyaudit.Options
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "audit --epsilon 1,2,4,8 --delta 1e-6 [--runs 1000]",
		Short: "Measure lower bounds on ε of a merchant's round through the code that releases it",
		Long: `Audit runs a merchant's round --runs times with a canary customer and as many times
without it, through client/train.Local (customer grouping, Poisson sampling, the DP count
as the normaliser, the DP library's noise) and the federated evaluation's histogram, and
bounds ε from below for each release from what an adversary sees (the update rescaled by
the released count, the count, the canary's histogram cell). Each release is calibrated
on its own to every --epsilon at --delta. A lower bound above the accountant's ε would be
a privacy bug. See docs/privacy.md, section 11.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var reps []privacyaudit.Report
			for f := range strings.SplitSeq(epsilons, ",") {
				eps, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil {
					return fmt.Errorf("--epsilon: %q is not a number", f)
				}
				o := opt
				o.Epsilon = eps
				rep, err := privacyaudit.Run(cmd.Context(), o)
				if err != nil {
					return err
				}
				reps = append(reps, rep)
			}
			if asJSON {
				return dpWriteJSON(cmd.OutOrStdout(), reps)
			}
			return writeAudit(cmd.OutOrStdout(), reps)
		},
	}
	f := cmd.Flags()
	f.StringVar(&epsilons, "epsilon", "1,2,4,8", "comma-separated target ε of each release")
	f.Float64Var(&opt.Delta, "delta", 1e-6, "δ of the targets and the bounds")
	f.IntVar(&opt.Runs, "runs", 1000, "rounds with the canary, and again without")
	f.IntVar(&opt.Customers, "customers", 50, "ordinary customers")
	f.Float64Var(&opt.SamplingRate, "sampling-rate", 0.5, "Poisson sampling rate q of the DP-SGD steps")
	f.IntVar(&opt.Steps, "steps", 10, "DP-SGD steps per round")
	f.Float64Var(&opt.Alpha, "alpha", 0.05, "one minus the confidence of the bounds")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeAudit(w io.Writer, reps []privacyaudit.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target ε\trelease\tnoise z\taccountant ε\texact ε\tlower bound\tTPR / FPR\tround ε\taborted (with / without)")
	for _, r := range reps {
		for _, x := range []struct {
			name string
			res  privacyaudit.Result
		}{{"update", r.Update}, {"count", r.Count}, {"histogram", r.Histogram}} {
			exact := "–"
			if x.res.ExactEpsilon > 0 {
				exact = fmt.Sprintf("%.4f", x.res.ExactEpsilon)
			}
			fmt.Fprintf(tw, "%g\t%s (q %g, %d steps)\t%.4g\t%.4f\t%s\t%.3f\t%.3f / %.3f\t%.4f\t%d / %d\n",
				r.Epsilon, x.name, x.res.Release.Q, x.res.Release.Steps, x.res.Release.Z, x.res.Epsilon, exact,
				x.res.Bound.Epsilon, x.res.Bound.TPR, x.res.Bound.FPR, r.RoundEpsilon, r.Aborted[1], r.Aborted[0])
		}
	}
	fmt.Fprintf(tw, "δ = %g, %d runs per side, confidence %.3g\n", reps[0].Delta, reps[0].Runs, reps[0].Update.Bound.Confidence)
	return tw.Flush()
}
