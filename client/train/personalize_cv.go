package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// crossFitted holds the out-of-fold scores of Personalize's candidates and
// what was measured on them.
type crossFitted struct {
	// Per row: its stratum (cutoff and fold), its customer (a cluster of
	// DeLong's variance) and whether it bought.
	stratum   []int
	customer  []int
	bought    []bool
	strata    map[[2]int]int
	customers map[string]int
	// Per row: the global model's score, the merchant's own model's (α = 1),
	// and the own model's in the global standardisation (inside the blends).
	fg, fl, fo []float64
	// score[i][k] is candidate i's score function on row k.
	score [][]float64
	// auc[i] is candidate i's stratified AUC, se[i] the standard error of
	// auc[i] − auc[last] (paired DeLong, customers as clusters; 0 for the
	// last, the most local candidate); best the chosen candidate's index.
	auc  []float64
	se   []float64
	best int
}

// add scores rows with the global model and with local, a model of the
// merchant's own that has not seen them; part names the fold. Rows are
// compared only with rows of the same cutoff and part: the scores of
// different fold models are never ranked against each other, since a linear
// hazard model's score carries an arbitrary constant (its baselines absorb
// it) that differs from fold to fold and would shift one fold's rows against
// another's — every candidate but the global model alone.
func (cv *crossFitted) add(global, local *hazard.Model, rows []feature.Row, part int) error {
	p, err := restandardize(local, global)
	if err != nil {
		return err
	}
	own := clone(global, p)
	if cv.strata == nil {
		cv.strata, cv.customers = map[[2]int]int{}, map[string]int{}
	}
	for _, r := range rows {
		c, ok := cv.customers[r.Customer]
		if !ok {
			c = len(cv.customers)
			cv.customers[r.Customer] = c
		}
		cv.customer = append(cv.customer, c)
		key := [2]int{r.Cutoff, part}
		s, ok := cv.strata[key]
		if !ok {
			s = len(cv.strata)
			cv.strata[key] = s
		}
		cv.stratum, cv.bought = append(cv.stratum, s), append(cv.bought, r.Label >= 1)
		for _, c := range []struct {
			m   *hazard.Model
			out *[]float64
		}{{global, &cv.fg}, {local, &cv.fl}, {own, &cv.fo}} {
			v, err := c.m.Score(r.X)
			if err != nil {
				return err
			}
			*c.out = append(*c.out, v)
		}
	}
	return nil
}

// finish mixes the candidates' scores (score (1 − α)·f_global + α·f_own;
// α = 1 the own model itself), measures them and chooses with margin z.
func (cv *crossFitted) finish(blends []float64, z float64) {
	cv.score = make([][]float64, len(blends))
	for i, a := range blends {
		cv.score[i] = make([]float64, len(cv.fg))
		for k := range cv.fg {
			switch a {
			case 1:
				cv.score[i][k] = cv.fl[k]
			default:
				cv.score[i][k] = (1-a)*cv.fg[k] + a*cv.fo[k]
			}
		}
	}
	cv.best = cv.measure(len(cv.strata), z)
}

// crossFit scores every row with every candidate of opt.Blends, the merchant's
// own model fitted without the row's customer (groups: rows by customer) for
// steps steps, and measures the candidates' AUC.
func crossFit(ctx context.Context, global *hazard.Model, groups [][]feature.Row, steps int, opt PersonalizeOptions) (*crossFitted, error) {
	fold := dealFolds(groups, opt.Folds, opt.Seed)
	cv := &crossFitted{}
	for f := range opt.Folds {
		var fitRows, heldRows []feature.Row
		for g, rs := range groups {
			if fold[g] == f {
				heldRows = append(heldRows, rs...)
			} else {
				fitRows = append(fitRows, rs...)
			}
		}
		local, err := localSteps(ctx, global.Schema, fitRows, steps, opt.Seed)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
		if err := cv.add(global, local, heldRows, f); err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
	}
	cv.finish(opt.Blends, opt.Z)
	return cv, nil
}

// judgeLatest scores the candidates on the rows of the latest cutoff, with
// earlier, a global model that has not seen that cutoff, and the merchant's
// own model fitted (LocalOnly) on the rows of the earlier cutoffs: neither
// side has seen what it is judged on. ok is false when rows have fewer than
// two cutoffs.
func judgeLatest(ctx context.Context, earlier *hazard.Model, rows []feature.Row, opt PersonalizeOptions) (cv *crossFitted, ok bool, err error) {
	last := slices.MaxFunc(rows, func(a, b feature.Row) int { return a.Cutoff - b.Cutoff }).Cutoff
	var fit, held []feature.Row
	for _, r := range rows {
		if r.Cutoff == last {
			held = append(held, r)
		} else {
			fit = append(fit, r)
		}
	}
	if len(fit) == 0 {
		return nil, false, nil
	}
	local, err := LocalOnly(ctx, earlier.Schema, fit, opt.Seed)
	if err != nil {
		return nil, false, fmt.Errorf("latest cutoff: %w", err)
	}
	cv = &crossFitted{}
	if err := cv.add(earlier, local, held, 0); err != nil {
		return nil, false, fmt.Errorf("latest cutoff: %w", err)
	}
	cv.finish(opt.Blends, opt.Z)
	return cv, true, nil
}

// dealFolds deals the customers (groups: rows by customer), in id order then
// by a seeded shuffle, into folds; fold[g] is group g's.
func dealFolds(groups [][]feature.Row, folds int, seed uint64) []int {
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(groups[a][0].Customer, groups[b][0].Customer) })
	rng := rand.New(rand.NewPCG(seed, 0x70657273))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	fold := make([]int, len(groups))
	for k, g := range order {
		fold[g] = k % folds
	}
	return fold
}

// measure fills auc and se and returns the index of the chosen candidate:
// the most local (last) unless a more global one's AUC exceeds it by more than
// z standard errors of the paired difference; of those that do, the most
// local. A difference with no standard error (no stratum with two buyers or
// two non-buyers) or no AUC (no buyer/non-buyer pair) is no evidence.
func (cv *crossFitted) measure(strata int, z float64) int {
	cv.auc = make([]float64, len(cv.score))
	cv.se = make([]float64, len(cv.score))
	phi := make([][]float64, len(cv.score))
	for i, sc := range cv.score {
		cv.auc[i], phi[i] = newStrataOrder(sc, cv.stratum, strata).influence(cv.bought)
	}
	last := len(cv.score) - 1
	for i := range cv.score {
		cv.se[i] = pairedSE(phi[i], phi[last], cv.customer, len(cv.customers))
	}
	for i := last - 1; i >= 0; i-- {
		if cv.se[i] > 0 && cv.auc[i]-cv.auc[last] > z*cv.se[i] {
			return i
		}
	}
	return last
}

// strataOrder is one candidate's rows sorted by score within each stratum.
type strataOrder struct {
	score []float64
	rows  [][]int
}

func newStrataOrder(score []float64, stratum []int, strata int) *strataOrder {
	o := &strataOrder{score: score, rows: make([][]int, strata)}
	for k, s := range stratum {
		o.rows[s] = append(o.rows[s], k)
	}
	for _, rs := range o.rows {
		slices.SortStableFunc(rs, func(a, b int) int { return cmpFloat(score[a], score[b]) })
	}
	return o
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

// auc is the AUC comparing buyers with non-buyers of the same stratum only (a
// Mann–Whitney count per stratum, ties counting one half, summed over strata
// and divided by the summed number of pairs); NaN without a pair.
func (o *strataOrder) auc(bought []bool) float64 {
	var u, pairs float64
	for _, rs := range o.rows {
		var negBelow, posTotal, negTotal float64
		o.tieGroups(rs, bought, func(_ []int, pos, neg float64) {
			u += pos * (negBelow + neg/2)
			negBelow += neg
			posTotal += pos
			negTotal += neg
		})
		pairs += posTotal * negTotal
	}
	if pairs == 0 {
		return math.NaN()
	}
	return u / pairs
}

// tieGroups calls f, in increasing order of score, with each run of rows of
// rs (one stratum's rows, sorted by score) whose scores are equal and the
// numbers of buyers and non-buyers in it.
func (o *strataOrder) tieGroups(rs []int, bought []bool, f func(group []int, pos, neg float64)) {
	for i := 0; i < len(rs); {
		j := i
		var pos, neg float64
		for ; j < len(rs) && o.score[rs[j]] == o.score[rs[i]]; j++ {
			if bought[rs[j]] {
				pos++
			} else {
				neg++
			}
		}
		f(rs[i:j], pos, neg)
		i = j
	}
}
