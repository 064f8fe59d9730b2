package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people.
func WriteTable(w io.Writer, r Report) error {
	total := 0
	for _, m := range r.Merchants {
		total += m.Customers
	}
	fmt.Fprintf(w, "Kairos demo: %d merchants drawn from the %s split of CDNOW (seed %d, non-IID, %d customers), each a `kairos client` process\n",
		len(r.Merchants), strings.TrimSuffix(r.Scenario, "-demo"), r.Seed, total)
	fmt.Fprintf(w, "federated through `kairos aggregator serve`: %d rounds, DP-SGD z = %.3f, ε ≤ %.4f at δ = %g per merchant — %.1f s\n\n",
		r.Rounds, r.NoiseMultiplier, r.EpsilonMax, r.Delta, r.Seconds)
	if r.Dropouts > 0 {
		fmt.Fprintf(w, "%d merchants dropped out after the policy refused an update (DP customer count below one)\n\n", r.Dropouts)
	}
	fmt.Fprintf(w, "Each merchant's own customers at the test cutoff %s, P(buy within 30 days), AUC@30 pooled per size bucket:\n\n", r.TestCutoff)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "customers\tmerchants\ttest customers\tlocal-only (non-private)\tfederated (ε = 1)\tpersonalised\tpersonalised − local\tpers ≥ local\t")
	for _, b := range r.BySize {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t%.4f\t%+.4f\t%.0f of %d\t\n", b.Bucket, b.Merchants, b.Customers,
			b.LocalOnly, b.Federated, b.Personalized, b.Personalized-b.LocalOnly, b.PersonalizedGELocal*float64(b.Compared), b.Compared)
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%.4f\t%.4f\t%.4f\t%+.4f\t%.0f%%\t\n", len(r.Merchants), r.TestCustomers,
		r.AUC30.LocalOnlyPooled, r.AUC30.Federated, r.AUC30.PersonalizedPooled, r.AUC30.PersonalizedPooled-r.AUC30.LocalOnlyPooled, 100*r.PersonalizedGELocal)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "(centralised non-private model on the same merchants' customers pooled: %.4f)\n\n", r.AUC30.Centralized)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "merchant\tcustomers\tbuyers / test\trounds\treleases\tε spent\tε cap\tAUC@30 local\tfederated\tpersonalised\tpersonalised by\t")
	for _, m := range r.Merchants {
		auc := "—\t—\t—"
		if m.Own.Scored {
			auc = fmt.Sprintf("%.4f\t%.4f\t%.4f", m.Own.AUC30.LocalOnly, m.Own.AUC30.Federated, m.Own.AUC30.Personalized)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d / %d\t%d\t%d\t%.5f\t%.4g\t%s\t%s\t\n", m.ID, m.Customers, m.Own.Buyers, m.Own.TestCustomers,
			m.Rounds, m.Releases, m.Epsilon, m.EpsilonCap, auc, m.Own.Choice)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.BySize) > 0 {
		small := r.BySize[0]
		fmt.Fprintf(w, "merchants with %s customers: federated %s local-only by %+.4f, personalised by %+.4f\n",
			small.Bucket, aboveBelow(small.Federated > small.LocalOnly), small.Federated-small.LocalOnly, small.Personalized-small.LocalOnly)
	}
	if r.AuditVerified {
		fmt.Fprintf(w, "audit log verified: %d entries, hash chain and signed checkpoints intact\n", r.AuditEntries)
	} else {
		fmt.Fprintln(w, "audit log verification FAILED")
	}
	if len(r.Timings) > 0 {
		var parts []string
		for _, k := range []string{"split", "federation", "audit_verify", "prepare", "centralized", "compare"} {
			if v, ok := r.Timings[k]; ok {
				parts = append(parts, strings.ReplaceAll(k, "_", " ")+" "+v)
			}
		}
		fmt.Fprintf(w, "timings: %s (rows and the centralised model are built in the demo process while the federation runs)\n", strings.Join(parts, ", "))
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "run directory kept: %s\n", r.WorkDir)
	}
	return nil
}

func aboveBelow(above bool) string {
	if above {
		return "above"
	}
	return "NOT above"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// ParseAuditEntries reads "OK: N entries" from kairos compliance audit verify.
func ParseAuditEntries(out string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(firstLine(out), "OK: %d entries", &n); err != nil {
		return 0, false
	}
	return n, true
}
