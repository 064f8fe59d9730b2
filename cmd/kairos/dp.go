package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/dp"
)

// newDPCmd groups the privacy-planning commands.
func newDPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dp",
		Short: "Plan and account differentially private training (RDP accountant)",
		Long: `Plan and account differentially private training.

Kairos trains with DP-SGD: each step Poisson-samples customers with rate q, clips each
customer's gradient to L2 norm C, adds Gaussian noise σ = z·C and averages. The privacy
unit is one customer of one merchant. Releases compose by Rényi DP (RDP) and are
converted to (ε, δ) with the improved conversion; see docs/privacy.md.

Plan a training of 3 epochs over 20,000 customers with batches of about 200, spending
ε = 2 at δ = 1e-6:
  kairos dp noise --epsilon 2 --delta 1e-6 --customers 20000 --batch-size 200 --epochs 3

Check what a configuration spends:
  kairos dp epsilon --noise-multiplier 1.1 --sampling-rate 0.01 --steps 300 --delta 1e-6

Compose several releases (rounds, statistics) or a whole ledger file:
  kairos dp epsilon --delta 1e-6 --release q=0.01,z=1.1,steps=300 --release rho=0.005
  kairos dp epsilon --delta 1e-6 --ledger ledger.jsonl

Audit what a merchant's round releases, through the code that releases it:
  kairos dp audit --epsilon 1,2,4,8 --delta 1e-6 --runs 1000`,
	}
	cmd.AddCommand(newDPEpsilonCmd(), newDPNoiseCmd(), newDPAuditCmd())
	return cmd
}

// accountantFlags are the flags both subcommands share.
type accountantFlags struct {
	orders, series string
	delta          float64
	asJSON         bool
}

func (a *accountantFlags) register(cmd *cobra.Command) {
	cmd.Flags().Float64Var(&a.delta, "delta", 0, "δ at which ε is reported (required), e.g. 1e-6")
	cmd.Flags().StringVar(&a.orders, "orders", "default",
		`Rényi orders: "default" (Opacus's 1.1..10.9, 12..63 plus 11, 128, 256, 512, 1024), "opacus", or a comma-separated list`)
	cmd.Flags().StringVar(&a.series, "series", "absolute",
		`fractional-order series: "absolute" (dp_accounting, conservative) or "signed" (Opacus)`)
	cmd.Flags().BoolVar(&a.asJSON, "json", false, "print JSON")
}

func (a *accountantFlags) options() (dp.AccountantOptions, error) {
	var opt dp.AccountantOptions
	switch a.orders {
	case "default", "":
	case "opacus":
		opt.Orders = dp.OpacusOrders()
	default:
		for f := range strings.SplitSeq(a.orders, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return opt, fmt.Errorf("--orders: %q is not a number", f)
			}
			opt.Orders = append(opt.Orders, x)
		}
	}
	switch a.series {
	case "absolute":
		opt.Series = dp.SeriesAbsolute
	case "signed":
		opt.Series = dp.SeriesSigned
	default:
		return opt, fmt.Errorf("--series: %q unknown (want absolute or signed)", a.series)
	}
	if a.delta == 0 {
		return opt, fmt.Errorf("--delta is required")
	}
	return opt, nil
}

// epsilonResult is what `kairos dp epsilon --json` prints.
type epsilonResult struct {
	Epsilon  float64 `json:"epsilon"`
	Order    float64 `json:"order"`
	Delta    float64 `json:"delta"`
	Releases int     `json:"releases"`
}

func newDPEpsilonCmd() *cobra.Command {
	var (
		acc      accountantFlags
		z, q     float64
		steps    int
		releases []string
		ledger   string
		ddg      ddgFlags
	)
	cmd := &cobra.Command{
		Use:   "epsilon",
		Short: "Compute ε at δ for DP-SGD parameters, composed releases or a ledger file",
		Long: `Compute ε at δ of everything given, composed by RDP:

  --noise-multiplier Z --sampling-rate Q --steps N   one DP-SGD training
  --release SPEC (repeatable)                        q=0.01,z=1.1,steps=100 | rho=0.02 | epsilon=0.5
  --ledger FILE                                      JSON lines ({"q":0.01,"z":1.1,"steps":100})
                                                     or CSV with a header (q,z,steps[,mechanism,rho,epsilon])

z is the noise actually added divided by the clipping norm; rho is a zCDP release;
epsilon is a pure ε-DP (Laplace) release.

Secure aggregation (distributed discrete Gaussian on the cohort's sum, docs/privacy.md):
  --mechanism ddgauss --sampling-rate Q --steps N --dim D --clip C --gamma G
  --local-variance S2 --min-cohort M    one training of N rounds, one step each`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, err := acc.options()
			if err != nil {
				return err
			}
			var rs []dp.Release
			f := cmd.Flags()
			isDDG, err := ddg.isDDG()
			if err != nil {
				return err
			}
			if isDDG {
				if !f.Changed("sampling-rate") || !f.Changed("steps") || !f.Changed("local-variance") || !f.Changed("gamma") {
					return fmt.Errorf("--mechanism ddgauss needs --sampling-rate, --steps, --gamma and --local-variance")
				}
				r, err := ddg.release(q, steps)
				if err != nil {
					return err
				}
				rs = append(rs, r)
			} else if f.Changed("noise-multiplier") || f.Changed("sampling-rate") || f.Changed("steps") {
				if !f.Changed("noise-multiplier") || !f.Changed("sampling-rate") || !f.Changed("steps") {
					return fmt.Errorf("--noise-multiplier, --sampling-rate and --steps go together")
				}
				rs = append(rs, dp.Release{Mechanism: dp.Gaussian, Q: q, Z: z, Steps: steps})
			}
			for i, s := range releases {
				r, err := dp.ParseReleaseSpec(s)
				if err != nil {
					return fmt.Errorf("--release %d %q: %w", i+1, s, err)
				}
				rs = append(rs, r)
			}
			if ledger != "" {
				fromFile, err := dpReadLedger(ledger)
				if err != nil {
					return err
				}
				rs = append(rs, fromFile...)
			}
			if len(rs) == 0 {
				return fmt.Errorf("nothing to account: give --noise-multiplier/--sampling-rate/--steps, --release or --ledger")
			}
			eps, order, err := dp.Epsilon(rs, acc.delta, opt)
			if err != nil {
				return err
			}
			if math.IsInf(eps, 1) {
				return fmt.Errorf("ε is unbounded at every order for these releases (noise too small)")
			}
			res := epsilonResult{Epsilon: eps, Order: order, Delta: acc.delta, Releases: len(rs)}
			if acc.asJSON {
				return dpWriteJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "ε = %.6g at δ = %g (best Rényi order %g) over %d release(s)\n",
				eps, acc.delta, order, len(rs))
			return err
		},
	}
	acc.register(cmd)
	cmd.Flags().Float64Var(&z, "noise-multiplier", 0, "noise multiplier z = σ / clipping norm")
	cmd.Flags().Float64Var(&q, "sampling-rate", 0, "Poisson sampling rate q (expected batch / customers)")
	cmd.Flags().IntVar(&steps, "steps", 0, "number of steps")
	cmd.Flags().StringArrayVar(&releases, "release", nil, "a release, e.g. q=0.01,z=1.1,steps=100 (repeatable)")
	cmd.Flags().StringVar(&ledger, "ledger", "", "ledger file of releases (JSON lines or CSV)")
	ddg.register(cmd, false)
	return cmd
}

func dpReadLedger(path string) ([]dp.Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--ledger: %w", err)
	}
	defer f.Close()
	rs, err := dp.ParseReleases(f)
	if err != nil {
		return nil, fmt.Errorf("--ledger %s: %w", path, err)
	}
	return rs, nil
}

func newDPNoiseCmd() *cobra.Command {
	var (
		acc          accountantFlags
		eps, q, b    float64
		epochs       float64
		steps, custs int
		ledger       string
		releases     []string
		ddg          ddgFlags
	)
	cmd := &cobra.Command{
		Use:   "noise",
		Short: "Find the smallest noise multiplier that spends at most ε at δ",
		Long: `Find the smallest noise multiplier z such that a DP-SGD training spends at most
--epsilon at --delta. Give the sampling rate (--sampling-rate, or --batch-size with
--customers) and the length (--steps, or --epochs). Example:

  kairos dp noise --epsilon 2 --delta 1e-6 --customers 20000 --batch-size 200 --epochs 3

trains with q = 0.01 for 300 steps; pass the printed noise_multiplier to training. The
noise the library actually adds is up to 0.1% larger, so the spend is at most ε.

With --ledger FILE or --release SPEC (repeatable, as in kairos dp epsilon), --epsilon is
the total budget: the plan spends what is left after those releases (the printed
epsilon is the total after training). The noise of a federated round plan, whose one
customer count (σ = 50) is spent besides 40 rounds of 10 steps at q = 0.05:

  kairos dp noise --epsilon 1 --delta 1e-6 --sampling-rate 0.05 --steps 400 --release q=1,z=50,steps=1

With --mechanism ddgauss it plans secure aggregation instead: --steps rounds of one
step at --sampling-rate, the grid step, each merchant's noise share for --min-cohort
honest merchants, and the modulus for --max-cohort merchants and --max-customers:

  kairos dp noise --mechanism ddgauss --epsilon 1 --delta 1e-6 --sampling-rate 0.05 --steps 40 \
    --dim 95 --min-cohort 10 --max-cohort 100 --max-customers 23570 --release q=1,z=50,steps=1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, err := acc.options()
			if err != nil {
				return err
			}
			po := dp.PlanOptions{
				Epsilon: eps, Delta: acc.delta, Customers: custs, BatchSize: b, SamplingRate: q,
				Epochs: epochs, Steps: steps, Accountant: opt,
			}
			if ledger != "" || len(releases) > 0 {
				l, err := dp.NewLedger(opt)
				if err != nil {
					return err
				}
				for i, s := range releases {
					r, err := dp.ParseReleaseSpec(s)
					if err != nil {
						return fmt.Errorf("--release %d %q: %w", i+1, s, err)
					}
					if err := l.Add(r); err != nil {
						return fmt.Errorf("--release %d %q: %w", i+1, s, err)
					}
				}
				if ledger != "" {
					rs, err := dpReadLedger(ledger)
					if err != nil {
						return err
					}
					for i, r := range rs {
						if err := l.Add(r); err != nil {
							return fmt.Errorf("--ledger %s: release %d: %w", ledger, i+1, err)
						}
					}
				}
				po.Spent = l
			}
			if isDDG, err := ddg.isDDG(); err != nil {
				return err
			} else if isDDG {
				if q == 0 || steps == 0 {
					return fmt.Errorf("--mechanism ddgauss needs --sampling-rate and --steps")
				}
				dplan, err := ddg.plan(eps, acc.delta, q, steps, po.Spent, opt)
				if err != nil {
					return err
				}
				return writeDDGPlan(cmd, dplan, acc.asJSON)
			}
			p, err := dp.PlanTraining(po)
			if err != nil {
				return err
			}
			if acc.asJSON {
				return dpWriteJSON(cmd.OutOrStdout(), p)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"noise multiplier z = %.6g for q = %.6g, %d steps: ε = %.6g at δ = %g (best Rényi order %g)\n",
				p.NoiseMultiplier, p.SamplingRate, p.Steps, p.Epsilon, p.Delta, p.Order)
			return err
		},
	}
	acc.register(cmd)
	cmd.Flags().Float64Var(&eps, "epsilon", 0, "target ε (required)")
	cmd.Flags().Float64Var(&q, "sampling-rate", 0, "Poisson sampling rate q")
	cmd.Flags().Float64Var(&b, "batch-size", 0, "expected batch size (with --customers)")
	cmd.Flags().IntVar(&custs, "customers", 0, "number of customers (privacy units)")
	cmd.Flags().IntVar(&steps, "steps", 0, "number of steps")
	cmd.Flags().Float64Var(&epochs, "epochs", 0, "expected passes over the customers (steps = ⌈epochs/q⌉)")
	cmd.Flags().StringVar(&ledger, "ledger", "", "releases already spent (JSON lines or CSV); --epsilon is then the total")
	cmd.Flags().StringArrayVar(&releases, "release", nil, "a release already spent, e.g. q=1,z=50,steps=1 (repeatable); --epsilon is then the total")
	ddg.register(cmd, true)
	return cmd
}

func dpWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
