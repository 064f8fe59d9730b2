package evaluate

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// LevelCarry is the period-level correction applied to a non-private hazard
// model's baseline hazards after training (docs/benchmarks.md, "The period
// level"). A model trained on several cutoffs predicts
// their average buying level; the level of one 30-day window moves from
// window to window (holidays, campaigns, a season). The merchant measures,
// on its own log, how far the level of each fully observed window before the
// test cutoff sat from the model's prediction (Offsets, logits) and how much
// of one window's offset persists into the next (Rho); the test window gets
// the latest offset times Rho. Where offsets do not persist (Rho ≈ 0) the
// model is left as trained; where a season carries them it follows it.
type LevelCarry struct {
	// Shift is the logit added to every daily baseline: Rho · Offsets[last].
	Shift float64
	// Rho is the least-squares slope through the origin of each window's
	// offset on the offset of the window one horizon earlier, clipped to
	// [0, 1]; 0 when fewer than MinLevelPairs pairs exist.
	Rho float64
	// Cutoffs are the pseudo-cutoffs, ascending, every half horizon back from
	// the test cutoff minus one horizon to the first training cutoff;
	// Offsets[k] is the logit that, added to every baseline, makes the mean
	// predicted P(buy within the horizon) at Cutoffs[k] equal the observed
	// share (NaN when nobody or everybody bought).
	Cutoffs []time.Time
	Offsets []float64
	// Pairs is the number of offset pairs Rho was estimated from.
	Pairs int
}

// MinLevelPairs is the number of lag pairs below which LevelCarry leaves the
// model as trained: with fewer, the persistence estimate is noise.
const MinLevelPairs = 3

// levelStep is the spacing of the pseudo-cutoffs: half the horizon, so that
// a window and the one a horizon earlier are two steps apart.
const levelStep = model.Horizon / 2

// levelChunk bounds how many pseudo-cutoffs one feature pass builds, so that
// the rows held at once stay about the size of the training rows.
const levelChunk = 4

// levelCarry measures m's period offsets on the prepared log and returns the
// carry-over for the test window (nil when the log holds too few windows).
func (p *Prepared) levelCarry(m *hazard.Model) (*LevelCarry, error) {
	if m.Rhythm() {
		return nil, errors.New("level carry-over: a rhythm model's baselines are not its only level")
	}
	var grid []time.Time
	for s := p.base.TestCutoff.Add(-model.Horizon * model.Day); !s.Before(p.train[0]); s = s.Add(-levelStep * model.Day) {
		grid = append([]time.Time{s}, grid...)
	}
	if len(grid) < MinLevelPairs+2 {
		return nil, nil
	}
	lc := &LevelCarry{Cutoffs: grid, Offsets: make([]float64, len(grid))}
	for lo := 0; lo < len(grid); lo += levelChunk {
		hi := min(lo+levelChunk, len(grid))
		rows, err := p.rowsAt(grid[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("level carry-over: %w", err)
		}
		fs := make([][]float64, hi-lo)
		pos := make([]int, hi-lo)
		for _, r := range rows {
			f, err := m.Score(r.X)
			if err != nil {
				return nil, fmt.Errorf("level carry-over: %w", err)
			}
			fs[r.Cutoff] = append(fs[r.Cutoff], f)
			if r.Label > 0 {
				pos[r.Cutoff]++
			}
		}
		for k := range fs {
			lc.Offsets[lo+k] = levelOffset(m, fs[k], pos[k])
		}
	}
	lc.Rho, lc.Shift, lc.Pairs = carry(lc.Offsets)
	return lc, nil
}

// carry estimates from a series of window offsets, every half horizon
// (offsets[k] and offsets[k+2] are adjacent windows), how much of one
// window's offset persists into the next, rho = Σ o[k]·o[k+2] / Σ o[k]²
// over the pairs with both offsets defined, clipped to [0, 1], and returns
// it with the shift rho·o[last] for the window after the series. With fewer
// than MinLevelPairs pairs, or an undefined last offset, rho and shift are 0.
func carry(offsets []float64) (rho, shift float64, pairs int) {
	var num, den float64
	for k := 2; k < len(offsets); k++ {
		a, b := offsets[k-2], offsets[k]
		if math.IsNaN(a) || math.IsNaN(b) {
			continue
		}
		num += a * b
		den += a * a
		pairs++
	}
	last := math.NaN()
	if len(offsets) > 0 {
		last = offsets[len(offsets)-1]
	}
	if pairs < MinLevelPairs || den == 0 || math.IsNaN(last) {
		return 0, 0, pairs
	}
	rho = min(max(num/den, 0), 1)
	return rho, rho * last, pairs
}

// rowsAt builds the prepared log's rows at cutoffs (Row.Cutoff indexes them),
// with the same feature configuration as the split's rows.
func (p *Prepared) rowsAt(cutoffs []time.Time) ([]feature.Row, error) {
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Location: p.build.Location, Allow: p.build.Allow, Classic: p.classic != nil})
	if err != nil {
		return nil, err
	}
	if p.classic != nil {
		if err := b.SetClassic(p.classic.Params); err != nil {
			return nil, err
		}
	}
	for i, e := range p.events {
		if err := b.Add(e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return b.Rows(), nil
}

// levelOffset returns the logit c with mean over fs of P(buy within the
// horizon | score f, every baseline + c) = pos/len(fs), by bisection (the
// mean increases with c); NaN when the share is 0 or 1. Scores are grouped
// on a grid of 1/levelGrid logits first: the mean moves by less than
// half a grid step per customer on the logit scale, far below the offsets'
// sampling noise, and a shop of any size costs a few hundred groups.
func levelOffset(m *hazard.Model, fs []float64, pos int) float64 {
	if len(fs) == 0 || pos == 0 || pos == len(fs) {
		return math.NaN()
	}
	want := float64(pos) / float64(len(fs))
	groups := map[float64]float64{}
	for _, f := range fs {
		groups[math.Round(f*levelGrid)/levelGrid]++
	}
	base := m.Params[:m.Horizon]
	mean := func(c float64) float64 {
		var s float64
		for f, n := range groups {
			logSurv := 0.0
			for _, b := range base {
				// log(1 − σ(x)) = −log(1 + eˣ)
				logSurv -= softplus(b + f + c)
			}
			s -= n * math.Expm1(logSurv)
		}
		return s / float64(len(fs))
	}
	lo, hi := -8.0, 8.0
	for range 40 {
		mid := (lo + hi) / 2
		if mean(mid) < want {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// levelGrid is the resolution, per logit, at which levelOffset groups scores.
const levelGrid = 200

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// shiftBaselines adds c to every daily baseline logit of m: the hazard of
// every day, and the extrapolated hazard past the horizon, move by c on the
// logit scale; the ranking of customers does not change.
func shiftBaselines(m *hazard.Model, c float64) {
	for t := range m.Horizon {
		m.Params[t] += c
	}
}
