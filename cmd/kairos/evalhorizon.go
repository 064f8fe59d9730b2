package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/hazard"
)

// checkEvalHorizon refuses a --horizon that is neither the model's horizon
// nor one of the extrapolated ones.
func checkEvalHorizon(h int) error {
	if h == model.Horizon || slices.Contains(hazard.LongHorizons[:], h) {
		return nil
	}
	return fmt.Errorf("eval: --horizon %d: want %d or one of %v", h, model.Horizon, hazard.LongHorizons)
}

// writeEvalLong prints AUC, PR-AUC and Brier at the longer horizons the log
// covers (evaluate.Report.LongHorizons); nothing when it covers none.
func writeEvalLong(w io.Writer, r evaluate.Report) error {
	if len(r.LongHorizons) == 0 {
		return nil
	}
	fmt.Fprintln(w, "longer horizons (the hazard model's P(buy) past day 30 is extrapolated):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "method\t")
	for _, h := range r.LongHorizons {
		fmt.Fprintf(tw, "AUC@%d\tPR-AUC@%d\tBrier@%d\t", h, h, h)
	}
	fmt.Fprint(tw, "\n")
	for _, m := range r.Methods {
		if m.Err != "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t", m.Name)
		for _, h := range r.LongHorizons {
			brier := "-"
			if b, ok := m.Brier[h]; ok {
				brier = fmt.Sprintf("%.4f", b)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t", tableCell(r, h, m.AUC[h]), tableCell(r, h, m.PRAUC[h]), brier)
		}
		fmt.Fprint(tw, "\n")
	}
	return tw.Flush()
}
