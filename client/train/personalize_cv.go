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
	// Per row: its cutoff's stratum and whether it bought.
	stratum []int
	bought  []bool
	// score[i][k] is candidate i's score function on row k.
	score [][]float64
	// auc[i] is candidate i's stratified AUC; best the highest's index.
	auc  []float64
	best int
}

// crossFit scores every row with every candidate of opt.Blends, the merchant's
// own model fitted without the row's customer (groups: rows by customer) for
// steps steps, and measures the candidates' AUC.
func crossFit(ctx context.Context, global *hazard.Model, groups [][]feature.Row, steps int, opt PersonalizeOptions) (*crossFitted, error) {
	fold := dealFolds(groups, opt.Folds, opt.Seed)
	cv := &crossFitted{score: make([][]float64, len(opt.Blends))}
	strata := map[int]int{}
	// Per row: the global model's score, the fold model's (α = 1), and the
	// fold model's in the global standardisation (inside the blends).
	var fg, fl, fo []float64
	for f := range opt.Folds {
		var fitRows []feature.Row
		var held []int
		for g, rs := range groups {
			if fold[g] == f {
				held = append(held, g)
			} else {
				fitRows = append(fitRows, rs...)
			}
		}
		local, err := localSteps(ctx, global.Schema, fitRows, steps, opt.Seed)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
		p, err := restandardize(local, global)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
		own := clone(global, p)
		for _, g := range held {
			for _, r := range groups[g] {
				s, ok := strata[r.Cutoff]
				if !ok {
					s = len(strata)
					strata[r.Cutoff] = s
				}
				cv.stratum, cv.bought = append(cv.stratum, s), append(cv.bought, r.Label >= 1)
				for _, c := range []struct {
					m   *hazard.Model
					out *[]float64
				}{{global, &fg}, {local, &fl}, {own, &fo}} {
					v, err := c.m.Score(r.X)
					if err != nil {
						return nil, fmt.Errorf("fold %d: %w", f, err)
					}
					*c.out = append(*c.out, v)
				}
			}
		}
	}
	for i, a := range opt.Blends {
		cv.score[i] = make([]float64, len(fg))
		for k := range fg {
			switch a {
			case 1:
				cv.score[i][k] = fl[k]
			default:
				cv.score[i][k] = (1-a)*fg[k] + a*fo[k]
			}
		}
	}
	cv.best = cv.measure(len(strata))
	return cv, nil
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

// measure fills auc and returns the index of the highest AUC, the first
// (most global) on an exact tie.
func (cv *crossFitted) measure(strata int) int {
	cv.auc = make([]float64, len(cv.score))
	best := 0
	for i, sc := range cv.score {
		cv.auc[i] = newStrataOrder(sc, cv.stratum, strata).auc(cv.bought)
		if cv.auc[i] > cv.auc[best] {
			best = i
		}
	}
	return best
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
			u += pos * (negBelow + neg/2)
			negBelow += neg
			posTotal += pos
			negTotal += neg
			i = j
		}
		pairs += posTotal * negTotal
	}
	if pairs == 0 {
		return math.NaN()
	}
	return u / pairs
}
