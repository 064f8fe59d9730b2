package bgnbd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// gradTol is the largest gradient (max norm, of the mean log-likelihood per
// customer over log-parameters) at which a point counts as stationary.
const gradTol = 1e-5

// minimize returns the lowest stationary point of problem (value and
// gradient of the mean negative log-likelihood over log-parameters) that it
// finds from the starts x0, in three stages:
//
//  1. BFGS from every start. A run that ends with an error or an unusual
//     status is still accepted when its end point is stationary: on a
//     likelihood that is flat in some direction (BG/NBD on data with no
//     visible dropout rises ever more slowly as a → 0), the line search
//     reports "no change in location" exactly when it has reached the top,
//     and what matters is the gradient there.
//  2. If no run ended at a stationary point, Nelder–Mead, which needs no line
//     search, from the lowest point any run reached, then BFGS again from
//     where it stops.
//  3. If that point is not stationary either, ErrNotConverged, naming the
//     gradient: never a silent failure.
//
// Each run is capped at maxIter major iterations (Nelder–Mead at 20·maxIter,
// as one of its iterations moves one vertex).
func minimize(problem optimize.Problem, x0 [][]float64, maxIter int) ([]float64, error) {
	bfgs := &optimize.Settings{
		GradientThreshold: 1e-9,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 20},
		MajorIterations:   maxIter,
	}
	gradNorm := func(x []float64) float64 {
		g := make([]float64, len(x))
		problem.Grad(g, x)
		n := 0.0
		for _, v := range g {
			n = math.Max(n, math.Abs(v))
		}
		if math.IsNaN(n) {
			return math.Inf(1)
		}
		return n
	}
	var (
		best, lowest   []float64
		bestF, lowestF = math.Inf(1), math.Inf(1)
		lastErr        error
	)
	// consider records where a run ended; it reports whether that is stationary.
	consider := func(res *optimize.Result, err error) bool {
		if res == nil || math.IsNaN(res.F) || math.IsInf(res.F, 0) {
			if err == nil {
				err = errors.New("no finite end point")
			}
			lastErr = err
			return false
		}
		if res.F < lowestF {
			lowest, lowestF = append([]float64(nil), res.X...), res.F
		}
		if norm := gradNorm(res.X); norm > gradTol {
			why := fmt.Sprintf("status %v", res.Status)
			if err != nil {
				why = err.Error()
			}
			lastErr = fmt.Errorf("optimiser stopped (%s) at gradient norm %.3g, want ≤ %g", why, norm, gradTol)
			return false
		}
		if res.F < bestF {
			best, bestF = append([]float64(nil), res.X...), res.F
		}
		return true
	}
	for _, x := range x0 {
		consider(optimize.Minimize(problem, x, bfgs, &optimize.BFGS{}))
	}
	if best != nil {
		return best, nil
	}
	if lowest != nil {
		nm := &optimize.Settings{
			Converger:       &optimize.FunctionConverge{Absolute: 1e-15, Relative: 1e-15, Iterations: 200},
			MajorIterations: 20 * maxIter,
		}
		res, err := optimize.Minimize(optimize.Problem{Func: problem.Func}, lowest, nm, &optimize.NelderMead{})
		if !consider(res, err) && res != nil {
			consider(optimize.Minimize(problem, res.X, bfgs, &optimize.BFGS{}))
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w after %d starts and a Nelder–Mead fallback: %w", ErrNotConverged, len(x0), lastErr)
	}
	return best, nil
}
