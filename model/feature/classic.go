package feature

import (
	"fmt"
	"math"
	"slices"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/bgnbd"
)

// ClassicUnit is the time unit of the BG/NBD parameters a Builder uses
// (SetClassic) and of its summaries (Summaries): a week, as in the published
// CDNOW fits and evaluate's BG/NBD baseline.
const ClassicUnit = 7 * model.Day

// classicSpecs are the classic-model features Config.Classic appends: BG/NBD
// quantities of the customer's own (x, t_x, T) at the cutoff under parameters
// shared by every customer (SetClassic). has_classic is 0 for a customer
// without a purchase before the cutoff (BG/NBD has no summary for them) and
// for every row when no parameters are set; the other four are absent there.
func classicSpecs() []Spec {
	g := func(name, tr string) Spec { return Spec{Name: name, Transform: tr, Gate: "has_classic"} }
	return []Spec{
		{Name: "has_classic", Transform: tIdentity},
		g("bgnbd_p_alive", tIdentity),
		g("bgnbd_p_buy_30d", tLogit),
		g("bgnbd_expected_30d", tLog1p),
		g("bgnbd_rate_per_30d", tLog1p),
	}
}

// SetClassic sets the BG/NBD parameters (in ClassicUnit) of the classic-model
// features of every row Rows builds from now on. The parameters must come from
// a source the privacy model allows for the rows' use: the merchant's own fit
// for a local model, a DP release or a public prior for a shared one.
func (b *Builder) SetClassic(p bgnbd.Params) error {
	if !b.classic {
		return fmt.Errorf("set classic parameters: the builder has no classic features (Config.Classic)")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("set classic parameters: %w", err)
	}
	b.params = &p
	return nil
}

// Summaries returns the BG/NBD summary (in ClassicUnit) at cutoff ci of every
// customer with a purchase before it whose first purchase day is before the
// cutoff's day (T > 0, which a fit needs), ordered by customer ID. Days are the
// merchant's calendar days (Config.Location); in UTC a summary equals
// bgnbd.SummarizeBefore(purchases, cutoff, ClassicUnit).
func (b *Builder) Summaries(ci int) ([]bgnbd.Customer, error) {
	if ci < 0 || ci >= len(b.cutoffs) {
		return nil, fmt.Errorf("classic summaries: cutoff index %d outside 0..%d", ci, len(b.cutoffs)-1)
	}
	ids := b.sortedIDs()
	var out []bgnbd.Customer
	for _, id := range ids {
		c, ok := b.summary(b.customers[id], ci)
		if ok && c.T > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// summary is customer c's BG/NBD summary at cutoff ci; false without a
// purchase before the cutoff. c.purchases must be sorted.
func (b *Builder) summary(c *customer, ci int) (bgnbd.Customer, bool) {
	tau := b.cutoffs[ci]
	first, last, distinct := int64(0), int64(0), 0
	for _, p := range c.purchases {
		if p.at >= tau {
			break
		}
		d := localDay(p.at, b.loc)
		if distinct == 0 {
			first = d
		}
		if distinct == 0 || d != last {
			distinct++
			last = d
		}
	}
	if distinct == 0 {
		return bgnbd.Customer{}, false
	}
	const perUnit = float64(ClassicUnit / model.Day)
	end := localDay(tau, b.loc)
	return bgnbd.Customer{
		X:  float64(distinct - 1),
		Tx: float64(last-first) / perUnit,
		T:  float64(end-first) / perUnit,
	}, true
}

// classicRaw writes the raw classic-model features of customer c at cutoff ci,
// in classicSpecs order, into out (zeroed: absent unless a summary and
// parameters exist). c.purchases must be sorted.
func (b *Builder) classicRaw(c *customer, ci int, out []float64) {
	clear(out)
	if b.params == nil {
		return
	}
	s, ok := b.summary(c, ci)
	if !ok {
		return
	}
	p := *b.params
	h := float64(model.Horizon*model.Day) / float64(ClassicUnit)
	exp, err := p.ExpectedPurchases(s, h)
	if err != nil || math.IsNaN(exp) || math.IsInf(exp, 0) {
		// The series did not converge for this summary: the quantities are
		// unknown, so the row carries no classic signal rather than a guess.
		return
	}
	out[0] = 1
	out[1] = p.PAlive(s)
	out[2] = p.ProbPurchaseWithin(s, h)
	out[3] = max(exp, 0)
	// The posterior mean purchase rate of an alive customer, Gamma(r+x, α+T),
	// per 30 days.
	out[4] = (p.R + s.X) / (p.Alpha + s.T) * float64(30*model.Day) / float64(ClassicUnit)
}

// sortedIDs returns the customer IDs in order, sorting each purchase list.
func (b *Builder) sortedIDs() []string {
	ids := make([]string, 0, len(b.customers))
	for id, c := range b.customers {
		ids = append(ids, id)
		sortPurchases(c.purchases)
	}
	slices.Sort(ids)
	return ids
}
