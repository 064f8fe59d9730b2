package paretonbd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/optimize"
)

// gradTol is the largest gradient (max norm, of the mean log-likelihood per
// customer over log-parameters) at which a point counts as stationary. The
// central differences it is measured with are accurate to about 1e−9.
const gradTol = 1e-5

// minimize returns the lowest stationary point of f (the mean negative
// log-likelihood over log-parameters) that it finds from the starts x0. From
// every start it runs Nelder–Mead, which needs no gradient and no line search
// and so walks safely through regions where a series is slow, then BFGS on a
// central-difference gradient from where Nelder–Mead stopped, to finish and
// to certify a stationary point. A run whose end point is stationary counts
// even if the optimiser reported an error there: on a flat likelihood the
// line search reports "no change in location" exactly when it has reached
// the top. If no run ends at a stationary point: ErrNotConverged, naming the
// gradient where the lowest run stopped.
func minimize(f func([]float64) float64, x0 [][]float64, maxIter int) ([]float64, error) {
	grad := func(g, x []float64) {
		fd.Gradient(g, f, x, &fd.Settings{Formula: fd.Central, Step: 1e-5})
	}
	problem := optimize.Problem{Func: f, Grad: grad}
	nm := &optimize.Settings{
		Converger:       &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-12, Iterations: 100},
		MajorIterations: 20 * maxIter,
	}
	bfgs := &optimize.Settings{
		GradientThreshold: 1e-8,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 20},
		MajorIterations:   maxIter,
	}
	gradNorm := func(x []float64) float64 {
		g := make([]float64, len(x))
		grad(g, x)
		n := 0.0
		for _, v := range g {
			if math.IsNaN(v) {
				return math.Inf(1)
			}
			n = math.Max(n, math.Abs(v))
		}
		return n
	}
	var (
		best    []float64
		bestF   = math.Inf(1)
		lastErr error
	)
	// consider keeps res's end point if it is stationary and the lowest yet.
	consider := func(res *optimize.Result, err error) bool {
		if res == nil || math.IsNaN(res.F) || math.IsInf(res.F, 0) {
			if err == nil {
				err = errors.New("no finite end point")
			}
			lastErr = err
			return false
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
		res, err := optimize.Minimize(optimize.Problem{Func: f}, x, nm, &optimize.NelderMead{})
		if res == nil || math.IsInf(res.F, 0) || math.IsNaN(res.F) {
			consider(res, err)
			continue
		}
		fin, ferr := optimize.Minimize(problem, res.X, bfgs, &optimize.BFGS{})
		if fin == nil || !(fin.F <= res.F) {
			// BFGS made it no better: judge Nelder–Mead's point itself.
			consider(res, err)
			continue
		}
		consider(fin, ferr)
	}
	if best == nil {
		return nil, fmt.Errorf("%w after %d starts: %w", ErrNotConverged, len(x0), lastErr)
	}
	return best, nil
}
