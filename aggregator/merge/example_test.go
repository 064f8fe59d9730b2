package merge_test

import (
	"fmt"

	"github.com/kairos-fl/kairos/aggregator/merge"
)

// Three honest merchants and one that sends a huge update: FedAvg follows the
// outlier, the median and the trimmed mean do not, and a norm bound caps it.
func ExampleCombine() {
	deltas := [][]float64{{0.10, -0.20}, {0.12, -0.18}, {0.08, -0.22}, {50, 50}}
	for _, opt := range []merge.Options{
		{Method: merge.MethodFedAvg},
		{Method: merge.MethodFedAvg, NormBound: 0.5},
		{Method: merge.MethodMedian},
		{Method: merge.MethodTrimmedMean, TrimFraction: 0.25},
	} {
		out, err := merge.Combine(deltas, nil, opt)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-12s bound %-3v → [%.3f %.3f]\n", opt.Method, opt.NormBound, out[0], out[1])
	}
	// Output:
	// fedavg       bound 0   → [12.575 12.350]
	// fedavg       bound 0.5 → [0.163 -0.062]
	// median       bound 0   → [0.110 -0.190]
	// trimmed_mean bound 0   → [0.110 -0.190]
}

// On the first round FedAdam moves a parameter by η·|Δ|/(|Δ| + 10τ) in the
// direction of the combined update Δ (m = 0.1·Δ, √v = 0.1·|Δ|): almost the full
// server learning rate η where |Δ| is large next to τ, less where it is not.
func ExampleAdam() {
	params := []float64{1, 1}
	adam := merge.NewAdam(0.01, 1e-3)
	if err := adam.Step(params, []float64{0.5, -0.002}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("[%.5f %.5f] after %d round\n", params[0], params[1], adam.T)
	// Output:
	// [1.00980 0.99833] after 1 round
}
