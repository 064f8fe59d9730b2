// Package drift watches a merchant's model locally: the population stability
// index (PSI) of each feature between the training period and now, and the
// realised outcomes of past predictions (AUC@30, Brier, calibration) once
// their 30-day label window has passed. Everything is computed on the
// merchant's own data and returned to the merchant; nothing here is released
// to the federation (a federated evaluation is the DP path for that,
// model/fedeval).
package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/metrics"
)

// psiFloor replaces an empty bin's share, so that a bin the current period
// leaves empty adds a large but finite term (the usual convention).
const psiFloor = 1e-4

// PSI is the population stability index of current against reference over
// bins quantile bins of reference: Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ), with eᵢ and aᵢ the
// shares of reference and current in bin i (a share of 0 counts as 1e-4).
// Bin edges are the reference values at ranks ⌊i·n/bins⌋, i = 1..bins−1,
// duplicates merged (a flag feature has two bins); bin i holds the values at
// or above edge i−1 and below edge i. Rules of thumb read PSI < 0.1 as
// stable and > 0.25 as a shift.
func PSI(reference, current []float64, bins int) (float64, error) {
	if bins < 2 {
		return 0, fmt.Errorf("psi: %d bins, want at least 2", bins)
	}
	if len(reference) == 0 || len(current) == 0 {
		return 0, errors.New("psi: an empty sample")
	}
	for _, s := range [][]float64{reference, current} {
		for i, v := range s {
			if math.IsNaN(v) {
				return 0, fmt.Errorf("psi: value %d is NaN", i)
			}
		}
	}
	ref := slices.Clone(reference)
	slices.Sort(ref)
	var edges []float64
	for i := 1; i < bins; i++ {
		e := ref[i*len(ref)/bins]
		if e > ref[0] && (len(edges) == 0 || e > edges[len(edges)-1]) {
			edges = append(edges, e)
		}
	}
	share := func(s []float64) []float64 {
		c := make([]float64, len(edges)+1)
		for _, v := range s {
			c[sort.SearchFloat64s(edges, math.Nextafter(v, math.Inf(1)))]++
		}
		for i := range c {
			c[i] /= float64(len(s))
		}
		return c
	}
	e, a := share(reference), share(current)
	var psi float64
	for i := range e {
		ei, ai := max(e[i], psiFloor), max(a[i], psiFloor)
		psi += (ai - ei) * math.Log(ai/ei)
	}
	return psi, nil
}

// FeatureShift is one feature's PSI.
type FeatureShift struct {
	Name string  `json:"name"`
	PSI  float64 `json:"psi"`
}

// Shifts returns the PSI of every feature (columns of the rows, named by
// names) between reference and current rows, largest first.
func Shifts(names []string, reference, current [][]float64, bins int) ([]FeatureShift, error) {
	col := func(rows [][]float64, j int) ([]float64, error) {
		out := make([]float64, len(rows))
		for i, r := range rows {
			if len(r) != len(names) {
				return nil, fmt.Errorf("drift: row %d has %d features, want %d", i, len(r), len(names))
			}
			out[i] = r[j]
		}
		return out, nil
	}
	out := make([]FeatureShift, len(names))
	for j, n := range names {
		r, err := col(reference, j)
		if err != nil {
			return nil, err
		}
		c, err := col(current, j)
		if err != nil {
			return nil, err
		}
		p, err := PSI(r, c, bins)
		if err != nil {
			return nil, fmt.Errorf("drift: feature %s: %w", n, err)
		}
		out[j] = FeatureShift{Name: n, PSI: p}
	}
	slices.SortStableFunc(out, func(a, b FeatureShift) int { return -cmpFloat(a.PSI, b.PSI) })
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Prediction is one past score: P(buy within 30 days) of a customer at a time.
type Prediction struct {
	Customer string
	At       time.Time
	P30      float64
}

// Outcome is how past predictions turned out.
type Outcome struct {
	// Evaluated predictions had their whole label window [At, At+30 d)
	// before now; Pending ones did not and are left out.
	Evaluated, Pending int
	Buyers             int
	AUC30              float64 // NaN when every evaluated label is the same
	Brier              float64
	ECE                float64
	Calibration        []metrics.Bin
}

// Outcomes scores preds against purchases (each customer's purchase times)
// as of now: the label of a prediction at τ is a purchase in [τ, τ+30 d).
func Outcomes(preds []Prediction, purchases map[string][]time.Time, now time.Time, bins int) (Outcome, error) {
	var o Outcome
	var probs []float64
	var labels []bool
	for _, p := range preds {
		end := p.At.Add(model.Horizon * model.Day)
		if end.After(now) {
			o.Pending++
			continue
		}
		buys := false
		for _, t := range purchases[p.Customer] {
			if !t.Before(p.At) && t.Before(end) {
				buys = true
				break
			}
		}
		probs = append(probs, p.P30)
		labels = append(labels, buys)
		if buys {
			o.Buyers++
		}
	}
	o.Evaluated = len(probs)
	if o.Evaluated == 0 {
		return o, errors.New("outcomes: no prediction's label window has passed")
	}
	var err error
	if o.Buyers == 0 || o.Buyers == o.Evaluated {
		o.AUC30 = math.NaN()
	} else if o.AUC30, err = metrics.AUC(probs, labels); err != nil {
		return o, fmt.Errorf("outcomes: %w", err)
	}
	if o.Brier, err = metrics.Brier(probs, labels); err != nil {
		return o, fmt.Errorf("outcomes: %w", err)
	}
	if o.Calibration, err = metrics.Calibration(probs, labels, bins); err != nil {
		return o, fmt.Errorf("outcomes: %w", err)
	}
	if o.ECE, err = metrics.ECE(o.Calibration); err != nil {
		return o, fmt.Errorf("outcomes: %w", err)
	}
	return o, nil
}
