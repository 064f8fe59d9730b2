package train

import "math"

// DeLong's variance of the paired difference of two AUCs measured on the same
// rows (DeLong, DeLong & Clarke-Pearson 1988), for the stratified AUC of
// strataOrder.auc and with the rows of one customer (the same customer at
// several cutoffs) counted as one cluster.
//
// In one stratum of m buyers and n non-buyers, buyer i's placement is
// V10_i = (non-buyers scored below i + ½ · those tied with i) / n and non-buyer
// j's is V01_j = (buyers scored above j + ½ · those tied) / m; the AUC θ is
// the mean of either, and DeLong's variance is S10/m + S01/n with S10 and S01
// the sample variances (divisor m − 1, n − 1) of the two placements. For two
// candidates A and B scored on the same rows the difference's variance takes
// the same form with the placements' differences V10_A − V10_B and
// V01_A − V01_B.
//
// The stratified AUC is Σ_s w_s θ_s with w_s = m_s n_s / Σ m n. Each row's
// influence is its placement's deviation from its stratum's θ_s, times w_s,
// divided by √(m_s (m_s − 1)) for a buyer (√(n_s (n_s − 1)) for a non-buyer):
// with one stratum and one row per customer the sum of the squared influences
// is DeLong's variance exactly. Rows of one customer are summed before
// squaring (a cluster-robust sum: a customer's rows at several cutoffs are not
// independent), so the variance of A − B is Σ_c (Σ_{k ∈ c} φ_A(k) − φ_B(k))².
// A stratum with fewer than two buyers (non-buyers) contributes no buyer
// (non-buyer) term.

// influence returns the stratified AUC of o against bought and every row's
// DeLong influence on it (above). Sorting is done once by newStrataOrder, so
// this is linear in the rows.
func (o *strataOrder) influence(bought []bool) (float64, []float64) {
	phi := make([]float64, len(o.score))
	// First pass: each stratum's counts and Mann–Whitney sum.
	type counts struct{ pos, neg, u float64 }
	cs := make([]counts, len(o.rows))
	var u, pairs float64
	for s, rs := range o.rows {
		c := &cs[s]
		var negBelow float64
		o.tieGroups(rs, bought, func(_ []int, pos, neg float64) {
			c.u += pos * (negBelow + neg/2)
			negBelow += neg
			c.pos += pos
			c.neg += neg
		})
		u += c.u
		pairs += c.pos * c.neg
	}
	if pairs == 0 {
		return math.NaN(), phi
	}
	// Second pass: the placements, centred on the stratum's AUC and scaled.
	for s, rs := range o.rows {
		c := cs[s]
		if c.pos == 0 || c.neg == 0 {
			continue
		}
		w := c.pos * c.neg / pairs
		theta := c.u / (c.pos * c.neg)
		var sp, sn float64
		if c.pos > 1 {
			sp = w / math.Sqrt(c.pos*(c.pos-1))
		}
		if c.neg > 1 {
			sn = w / math.Sqrt(c.neg*(c.neg-1))
		}
		var negBelow, posBelow float64
		o.tieGroups(rs, bought, func(group []int, pos, neg float64) {
			v10 := (negBelow + neg/2) / c.neg
			v01 := (c.pos - posBelow - pos + pos/2) / c.pos
			for _, k := range group {
				if bought[k] {
					phi[k] = sp * (v10 - theta)
				} else {
					phi[k] = sn * (v01 - theta)
				}
			}
			negBelow += neg
			posBelow += pos
		})
	}
	return u / pairs, phi
}

// pairedSE is the standard error of AUC_A − AUC_B from the two candidates'
// influences on the same rows, cluster[k] being row k's customer (0 ≤ cluster
// < clusters).
func pairedSE(phiA, phiB []float64, cluster []int, clusters int) float64 {
	sum := make([]float64, clusters)
	for k := range phiA {
		sum[cluster[k]] += phiA[k] - phiB[k]
	}
	var v float64
	for _, s := range sum {
		v += s * s
	}
	return math.Sqrt(v)
}
