package hazard

import (
	"errors"
	"math"
)

// The rhythm term lets the shape of the hazard over the days of the horizon
// depend on the customer: on day t the logit gains v·g(x, t), where g measures
// how far the customer's wait on day t is from their own usual gap,
//
//	u_t = log((recency + t − ½) / max(mean gap, 1)),  clipped to [−3, 3],
//	g(x, t) = (u_t, u_t², u_t²·c),  c = 1/(1 + gap sd / mean gap),
//
// and g = 0 when the customer has fewer than two purchase days (has_gap = 0).
// A linear score f(x) shifts every day's logit alike, so without this term the
// most likely day is the same for nearly every customer; with v₂ < 0 the
// hazard of a customer with a steady rhythm peaks where the wait reaches the
// usual gap. c makes the peak sharper for a regular buyer than for an erratic
// one. Every component of g is bounded (|u| ≤ 3), so a customer's gradient
// with respect to v is bounded like the rest and DP clipping applies to it
// unchanged.

// RhythmTerms is the number of rhythm weights v.
const RhythmTerms = 3

// rhythmClip bounds u_t (a wait 20 times shorter or longer than the gap).
const rhythmClip = 3.0

// ErrNoRhythmFeatures is returned by EnableRhythm when the schema lacks a
// feature the rhythm term reads.
var ErrNoRhythmFeatures = errors.New("schema lacks recency_days, gap_mean_days, gap_std_days or has_gap")

// rhythmIndex holds the schema positions the rhythm term reads.
type rhythmIndex struct {
	on                       bool
	recency, gap, sd, hasGap int
}

func (m *Model) rhythmPositions() (rhythmIndex, bool) {
	ix := rhythmIndex{on: true, recency: -1, gap: -1, sd: -1, hasGap: -1}
	for j, n := range m.Schema.Names {
		switch n {
		case "recency_days":
			ix.recency = j
		case "gap_mean_days":
			ix.gap = j
		case "gap_std_days":
			ix.sd = j
		case "has_gap":
			ix.hasGap = j
		}
	}
	ok := ix.recency >= 0 && ix.gap >= 0 && ix.sd >= 0 && ix.hasGap >= 0 &&
		m.Schema.Transforms[ix.recency] == "log1p" && m.Schema.Transforms[ix.gap] == "log1p" &&
		m.Schema.Transforms[ix.sd] == "log1p"
	return ix, ok
}

// EnableRhythm adds the rhythm term (zero weights, so predictions do not
// change until training moves them) to a model that does not have it.
func (m *Model) EnableRhythm() error {
	if m.rhythm.on {
		return nil
	}
	ix, ok := m.rhythmPositions()
	if !ok {
		return ErrNoRhythmFeatures
	}
	m.rhythm = ix
	m.Params = append(m.Params, make([]float64, RhythmTerms)...)
	return nil
}

// Rhythm reports whether the model has the rhythm term.
func (m *Model) Rhythm() bool { return m.rhythm.on }

// rhythmStart is the position of v in Params.
func (m *Model) rhythmStart() int { return len(m.Params) - RhythmTerms }

// rhythmInputs writes g(x, t) for t = 1..len(g)/RhythmTerms into g
// (day-major; Horizon days in training, MaxHorizon for an extrapolating
// Predict) from a standardised vector z, and reports whether the customer
// has a gap at all (false: g is zero). Raw values are recovered as
// z·Scale + Mean: recency and has_gap are never gated, and the gap features
// are read only where has_gap is 1.
func (m *Model) rhythmInputs(z, g []float64) bool {
	ix := m.rhythm
	raw := func(j int) float64 { return z[j]*m.Std.Scale[j] + m.Std.Mean[j] }
	if raw(ix.hasGap) < 0.5 {
		clear(g)
		return false
	}
	r := math.Expm1(max(raw(ix.recency), 0))
	gap := max(math.Expm1(max(raw(ix.gap), 0)), 1)
	c := 1 / (1 + math.Expm1(max(raw(ix.sd), 0))/gap)
	for t := 1; t <= len(g)/RhythmTerms; t++ {
		u := math.Log((r + float64(t) - 0.5) / gap)
		u = min(max(u, -rhythmClip), rhythmClip)
		k := (t - 1) * RhythmTerms
		g[k], g[k+1], g[k+2] = u, u*u, u*u*c
	}
	return true
}

// rhythmOffsets writes v·g(x, t) for t = 1..len(off) into off using
// parameters p; off is all zero for a model without the term or a customer
// without a gap. g is scratch of len(off)·RhythmTerms.
func (m *Model) rhythmOffsets(p, z, g, off []float64) {
	clear(off)
	if !m.rhythm.on || !m.rhythmInputs(z, g) {
		return
	}
	v := p[len(p)-RhythmTerms:]
	for t := range off {
		k := t * RhythmTerms
		off[t] = v[0]*g[k] + v[1]*g[k+1] + v[2]*g[k+2]
	}
}

// rhythmScratch is per-goroutine scratch for exampleLoss.
type rhythmScratch struct{ g, off []float64 }

// newRhythmScratch returns scratch for m, or nil when m has no rhythm term.
func (m *Model) newRhythmScratch() *rhythmScratch {
	if !m.rhythm.on {
		return nil
	}
	return &rhythmScratch{g: make([]float64, m.Horizon*RhythmTerms), off: make([]float64, m.Horizon)}
}
