// Command kairos is the one binary of Kairos: the merchant client, the aggregator,
// evaluation, privacy planning, key and token tools, and compliance reports.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
)

func main() {
	// Outside a container with a memory limit there is nothing to apply, and
	// the runtime keeps its default: the error only says which.
	_, _ = applyMemoryLimit(memlimit.FromCgroup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kairos:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kairos",
		Short: "Predict when each customer will next buy, trained federated and differentially private",
		Long: `Kairos predicts, for every customer of an online shop, the probability of a purchase
within 1, 3, 7, 14 and 30 days, the expected number of days and the most likely day.

Start here:
  kairos demo                 a federation of five CDNOW shops on loopback, end to end
  kairos eval                 run the CDNOW reference benchmark (hazard model vs baselines)
  kairos mapping suggest      write the mapping of a shop's export from the file
  kairos fit bgnbd --summary  fit the BG/NBD baseline to a calibration summary
  kairos gen                  write a synthetic event log for scale tests
  kairos dp epsilon|noise     plan a differentially private training
  kairos keys gen             create the keys a merchant or the aggregator holds
  kairos aggregator init      start a federation (README: "A federation of two shops")
  kairos version              module version, commit, build date, feature schema`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newEvalCmd(),
		newMappingCmd(),
		newFitCmd(),
		newGenCmd(),
		newBenchCmd(),
		newPseudonymCmd(),
		newDPCmd(),
		newKeysCmd(),
		newTokenCmd(),
		newComplianceCmd(),
		newAggregatorCmd(),
		newClientCmd(),
		newDemoCmd(),
		newSimCmd(),
		newVersionCmd(),
	)
	registerFlagCompletions(root)
	return root
}
