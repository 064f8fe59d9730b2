// Package hazard is Kairos's purchase-timing model: a discrete-time logistic hazard
// over days 1..Horizon, h_t(x) = σ(b_t + f(x)), with f linear or a one-hidden-layer
// MLP, trained by per-customer gradients so that a differentially private gradient
// step can be plugged in.
package hazard

import (
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// Kinds of score function f.
const (
	KindLinear = "linear"
	KindMLP    = "mlp"
	// KindWide is a scratch kind for measurement only (docs/benchmarks.md, "A
	// nonlinear score across thirteen validation splits"): the linear score
	// plus an MLP residual, f(z) = w·z + w2·tanh(W1·z + c1), its parameters
	// laid out as [w | W1 | c1 | w2]. The residual starts at zero output
	// (w2 = 0) and TrainOptions.L2Hidden shrinks it on its own. It is not a
	// model file kind (Marshal refuses it) and no default uses it.
	KindWide = "wide"
)

// Horizons are the horizons, in days, reported by Predict within the trained
// horizon (Prediction.Within).
var Horizons = [...]int{1, 3, 7, 14, 30}

// LongHorizons are the horizons beyond the trained horizon that Predict
// extrapolates to (Prediction.Beyond). Every day t past the model's Horizon
// gets the hazard σ(b̄ + f(x) + rhythm offset of day t), b̄ the mean of the
// baseline logits b_1..b_Horizon: the training labels stop at Horizon, so the
// baseline's day-to-day shape is not known beyond it and is held at its mean
// level, while the customer's own score (and, for a rhythm model, the wait
// relative to their gap on day t) carries on. The survival curve continues
// the same product, so P(buy within 7) ≤ P(within 30) ≤ P(within 60) ≤
// P(within 90) for every customer by construction.
var LongHorizons = [...]int{60, 90}

// MaxHorizon is the longest horizon Predict reports.
const MaxHorizon = 90

// Standardization holds per-feature statistics from the training set: the model
// sees (x − Mean)/Scale.
type Standardization struct {
	Mean  []float64 `json:"mean"`
	Scale []float64 `json:"scale"`
}

// Model is a fitted (or freshly initialised) hazard model. Parameters live in one
// flat vector, laid out as [b_1..b_H | f's parameters]; for KindLinear f's
// parameters are the weights w (len d), for KindMLP they are W1 (Hidden×d, row
// major), c1 (Hidden) and w2 (Hidden), with f(x) = w2·tanh(W1·x + c1).
type Model struct {
	Kind     string
	Horizon  int
	Hidden   int
	Schema   feature.Schema
	Std      Standardization
	Params   []float64
	Training Metadata
	// gate is Schema.Gates(): where the indicator feature gate[j] is 0, the
	// standardised feature j is 0 (absent, not a placeholder raw value).
	gate []int
	// rhythm, when on, adds the customer-dependent day shape v·g(x, t)
	// (rhythm.go); v is the last RhythmTerms entries of Params.
	rhythm rhythmIndex
	// ownDayWeight, when > 0, reads the day off the model's day
	// distribution weighed by the customer's own rhythm (ownday.go) at the
	// schema positions ownDay.
	ownDayWeight float64
	ownDay       ownDayIndex
	// whether is the weight of the direct horizon objective in the training
	// loss (whether.go); it changes no prediction.
	whether float64
}

// Metadata records how a model was trained.
type Metadata struct {
	Dataset   string   `json:"dataset,omitempty"`
	Cutoffs   []string `json:"cutoffs,omitempty"`
	Seed      uint64   `json:"seed"`
	Steps     int      `json:"steps"`
	Rows      int      `json:"rows,omitempty"`
	Customers int      `json:"customers,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
}

// NumParams is the length of the flat parameter vector for the given shape.
func NumParams(kind string, d, hidden, horizon int) int {
	switch kind {
	case KindMLP:
		return horizon + hidden*d + 2*hidden
	case KindWide:
		return horizon + d + hidden*d + 2*hidden
	}
	return horizon + d
}

// New returns a model of the given shape with zero score parameters and every
// baseline hazard equal to baseHazard (data-independent, so it costs no privacy).
// MLP input weights are drawn later by Train; New leaves them zero.
func New(kind string, schema feature.Schema, std Standardization, hidden int, baseHazard float64) (*Model, error) {
	d := schema.Len()
	switch kind {
	case KindLinear:
		hidden = 0
	case KindMLP, KindWide:
		if hidden <= 0 {
			return nil, fmt.Errorf("new hazard model: %s needs hidden > 0, got %d", kind, hidden)
		}
	default:
		return nil, fmt.Errorf("new hazard model: unknown kind %q (want linear or mlp)", kind)
	}
	if len(std.Mean) != d || len(std.Scale) != d {
		return nil, fmt.Errorf("new hazard model: standardization has %d/%d entries, schema has %d features", len(std.Mean), len(std.Scale), d)
	}
	if !(baseHazard > 0 && baseHazard < 1) {
		return nil, fmt.Errorf("new hazard model: base hazard %v not in (0, 1)", baseHazard)
	}
	m := &Model{Kind: kind, Horizon: model.Horizon, Hidden: hidden, Schema: schema, Std: std, gate: schema.Gates()}
	m.Params = make([]float64, NumParams(kind, d, hidden, m.Horizon))
	lo := math.Log(baseHazard / (1 - baseHazard))
	for t := range m.Horizon {
		m.Params[t] = lo
	}
	return m, nil
}

// ErrFeatureCount is returned when a feature vector does not match the schema.
var ErrFeatureCount = errors.New("feature vector length does not match schema")

// Standardize writes the vector the score function sees into z (len(x)):
// (x − Mean)/Scale, except that a feature whose gating indicator
// (feature.Spec.Gate) is 0 in x is absent and enters as 0 — it moves neither
// the score nor, in training, its own weight. A purchases-only log thus trains
// and explains no view features at all, instead of reading view_recency_days
// = 0 as "viewed today". len(x) must be the schema's length.
func (m *Model) Standardize(x, z []float64) {
	for j, v := range x {
		if m.gate != nil {
			if g := m.gate[j]; g >= 0 && x[g] == 0 {
				z[j] = 0
				continue
			}
		}
		z[j] = (v - m.Std.Mean[j]) / m.Std.Scale[j]
	}
}

func (m *Model) standardize(x, out []float64) { m.Standardize(x, out) }

// score computes f(z) for a standardised z. hidden, when non-nil, receives the
// MLP's hidden activations (len Hidden).
func (m *Model) score(p, z, hidden []float64) float64 {
	d := len(z)
	w := p[m.Horizon:]
	if m.Kind != KindMLP && m.Kind != KindWide {
		var s float64
		for j, v := range z {
			s += w[j] * v
		}
		return s
	}
	if m.Kind == KindWide {
		var s float64
		for j, v := range z {
			s += w[j] * v
		}
		return s + m.mlpScore(w[d:], z, hidden)
	}
	return m.mlpScore(w, z, hidden)
}

// mlpScore is w2·tanh(W1·z + c1) for the MLP parameters w = [W1 | c1 | w2].
func (m *Model) mlpScore(w, z, hidden []float64) float64 {
	d := len(z)
	H := m.Hidden
	w1, c1, w2 := w[:H*d], w[H*d:H*d+H], w[H*d+H:H*d+2*H]
	var s float64
	for k := range H {
		a := c1[k]
		row := w1[k*d : (k+1)*d]
		for j, v := range z {
			a += row[j] * v
		}
		a = math.Tanh(a)
		if hidden != nil {
			hidden[k] = a
		}
		s += w2[k] * a
	}
	return s
}

// Score returns f(x) for a raw (unstandardised) feature vector. Every P(buy
// within t) is increasing in it, so it ranks customers at every horizon.
func (m *Model) Score(x []float64) (float64, error) {
	if len(x) != m.Schema.Len() {
		return 0, fmt.Errorf("score: %w: got %d, want %d", ErrFeatureCount, len(x), m.Schema.Len())
	}
	z := make([]float64, len(x))
	m.standardize(x, z)
	return m.score(m.Params, z, nil), nil
}

// Prediction is everything the model says about one customer at one cutoff.
type Prediction struct {
	// Hazard[t-1] is P(first purchase on day t | none before), t = 1..Horizon.
	Hazard []float64
	// Survival[t] is P(no purchase in days 1..t); Survival[0] = 1.
	Survival []float64
	// Within[i] is P(purchase within Horizons[i] days) = 1 − Survival[Horizons[i]].
	Within [len(Horizons)]float64
	// Beyond[i] is P(purchase within LongHorizons[i] days), extrapolated past
	// the trained horizon as LongHorizons describes; Beyond[i] ≥ Within[i']
	// for every i, i'.
	Beyond [len(LongHorizons)]float64
	// ExpectedDays is the capped expectation E[min(T, Horizon)] =
	// Σ_{t=0}^{Horizon−1} Survival[t], where T is the day (1, 2, …) of the
	// first purchase: a customer who does not buy within the horizon counts
	// as Horizon, so for a shop where most customers do not buy within 30
	// days it is close to 30 for most of them and says more about whether
	// than when. ExpectedDayIfBuys is the expectation of the day itself.
	ExpectedDays float64
	// MostLikelyDay is argmax_t Hazard[t-1]·Survival[t-1], the day with the highest
	// probability of being the first purchase day.
	MostLikelyDay int
	// MedianDay is the median first purchase day given a purchase within the
	// horizon: the smallest t with 1 − Survival[t] ≥ (1 − Survival[Horizon])/2.
	// It is the day Kairos shows (the API's and client score's predicted
	// day): the day that minimises the expected absolute error in days, and
	// the rule with the lowest MAE on the suite's validation splits
	// (docs/benchmarks.md).
	MedianDay int
	// ExpectedDayIfBuys is E[T | T ≤ Horizon], the mean first purchase day of
	// a customer who buys within the horizon.
	ExpectedDayIfBuys float64
	// ClosestDay is the day d that maximises the expected closeness
	// E[10/(10 + (d − T)²) | T ≤ Horizon] (JData's S2 per buyer): a day near
	// most of the probability, where MostLikelyDay may be an isolated peak and
	// MedianDay minimises the expected distance instead.
	ClosestDay int
}

// Predict computes the prediction for a raw feature vector, with the
// customer's own day shape when the model has the rhythm term.
func (m *Model) Predict(x []float64) (Prediction, error) {
	if len(x) != m.Schema.Len() {
		return Prediction{}, fmt.Errorf("predict: score: %w: got %d, want %d", ErrFeatureCount, len(x), m.Schema.Len())
	}
	z := make([]float64, len(x))
	m.standardize(x, z)
	f := m.score(m.Params, z, nil)
	var off []float64
	if m.rhythm.on {
		days := max(m.Horizon, MaxHorizon)
		off = make([]float64, days)
		m.rhythmOffsets(m.Params, z, make([]float64, days*RhythmTerms), off)
	}
	p := m.predict(f, off)
	if m.ownDayWeight > 0 {
		m.applyOwnDay(x, &p, m.ownDayWeight)
	}
	return p, nil
}

// PredictScore computes the prediction from a score f returned by Score. It
// knows only the score, not the customer: a model with the rhythm term needs
// Predict for the customer's own day shape.
func (m *Model) PredictScore(f float64) Prediction { return m.predict(f, nil) }

// predict computes the prediction from the score and, when non-nil, the
// per-day logit offsets (len max(Horizon, MaxHorizon)).
func (m *Model) predict(f float64, off []float64) Prediction {
	H := m.Horizon
	p := Prediction{Hazard: make([]float64, H), Survival: make([]float64, H+1)}
	p.Survival[0] = 1
	best := -1.0
	for t := 1; t <= H; t++ {
		zt := m.Params[t-1] + f
		if off != nil {
			zt += off[t-1]
		}
		h := sigmoid(zt)
		p.Hazard[t-1] = h
		if pr := h * p.Survival[t-1]; pr > best {
			best, p.MostLikelyDay = pr, t
		}
		p.Survival[t] = p.Survival[t-1] * (1 - h)
		p.ExpectedDays += p.Survival[t-1]
		p.ExpectedDayIfBuys += float64(t) * h * p.Survival[t-1]
	}
	if buy := 1 - p.Survival[H]; buy > 0 {
		p.ExpectedDayIfBuys /= buy
	} else {
		p.ExpectedDayIfBuys = float64(H+1) / 2
	}
	for i, t := range Horizons {
		if t <= H {
			p.Within[i] = 1 - p.Survival[t]
		}
	}
	// The day weights P(T = t) on the stack: Predict is the scoring path.
	var buf [model.Horizon]float64
	q := buf[:0]
	for t := range H {
		q = append(q, p.Hazard[t]*p.Survival[t])
	}
	p.ClosestDay = closestDay(q)
	p.Beyond = m.extrapolate(f, off, p.Survival[H])
	half := (1 - p.Survival[H]) / 2
	p.MedianDay = H
	for t := 1; t <= H; t++ {
		if 1-p.Survival[t] >= half {
			p.MedianDay = t
			break
		}
	}
	return p
}

// closestDay is the day d = 1..len(q) that maximises Σ_t q[t−1]·10/(10 +
// (d − t)²), JData's S2 expected under the day weights q (normalised or not).
func closestDay(q []float64) int {
	day, best := 1, -1.0
	for d := 1; d <= len(q); d++ {
		var c float64
		for t := 1; t <= len(q); t++ {
			k := float64(d - t)
			c += q[t-1] * 10 / (10 + k*k)
		}
		if c > best {
			best, day = c, d
		}
	}
	return day
}

// extrapolate returns P(purchase within LongHorizons[i] days) given the
// survival sH to the model's horizon, continuing the survival product with
// the hazard σ(b̄ + f + off[t−1]) on every day t past Horizon (LongHorizons).
func (m *Model) extrapolate(f float64, off []float64, sH float64) [len(LongHorizons)]float64 {
	H := m.Horizon
	var bbar float64
	for _, b := range m.Params[:H] {
		bbar += b
	}
	bbar /= float64(H)
	var out [len(LongHorizons)]float64
	s, t := sH, H
	for i, h := range LongHorizons {
		for ; t < h; t++ {
			zt := bbar + f
			if off != nil && t < len(off) {
				zt += off[t]
			}
			s *= 1 - sigmoid(zt)
		}
		out[i] = 1 - s
	}
	return out
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus is log(1 + e^z), computed without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// expBaselines writes e^{b_t} into eb (len Horizon), so that exampleLoss can form
// e^{b_t + f} = e^{b_t}·e^f with one exponential per example instead of one per
// day.
func (m *Model) expBaselines(p, eb []float64) {
	for t := range m.Horizon {
		eb[t] = math.Exp(p[t])
	}
}

// exampleLoss returns the negative log-likelihood of one example with
// standardised features z and label (day 1..H, or 0 = censored at H), and, when
// grad is non-nil, adds its gradient with respect to p into grad. eb holds
// expBaselines(p); hid has room for Hidden values; rs is rhythm scratch
// (newRhythmScratch), nil for a model without the rhythm term.
func (m *Model) exampleLoss(p, eb, z []float64, label int, grad, hid []float64, rs *rhythmScratch) float64 {
	H := m.Horizon
	f := m.score(p, z, hid)
	var off []float64
	if rs != nil {
		m.rhythmOffsets(p, z, rs.g, rs.off)
		off = rs.off
	}
	last := H
	// k weighs the hazard likelihood of a buyer's row against the direct
	// horizon objective (whether.go); a non-buyer's row is the same under both.
	k := 1.0
	if label > 0 {
		last = label
		k = 1 - m.whether
	}
	ef := math.Exp(f)
	// −log(1−h_t) summed over the risk days is −log Π(1−h_t): multiply and take
	// one logarithm (renormalising before the product could underflow).
	var loss, df float64
	surv := 1.0
	for t := 1; t <= last; t++ {
		zt := p[t-1] + f
		var h, q float64 // h = σ(z), q = 1 − h
		if off != nil {
			zt += off[t-1]
		}
		if zt > -30 && zt < 30 {
			e := eb[t-1] * ef
			if off != nil {
				e = math.Exp(zt)
			}
			q = 1 / (1 + e)
			h = e * q
		} else {
			e := math.Exp(-math.Abs(zt))
			if zt >= 0 {
				h, q = 1/(1+e), e/(1+e)
			} else {
				h, q = e/(1+e), 1/(1+e)
			}
		}
		g := h * k
		switch {
		case t == label:
			// −log h = softplus(−z).
			loss += softplus(-zt)
			g -= k
		case q < 1e-100:
			// −log q = softplus(z): q itself would underflow the product to 0
			// and the loss to +Inf (z > 230 takes a feature far outside any
			// shop's range, but a finite one).
			loss += softplus(zt)
		default:
			surv *= q
			if surv < 1e-200 {
				loss -= math.Log(surv)
				surv = 1
			}
		}
		if grad != nil {
			grad[t-1] += g
			if off != nil && g != 0 {
				v, at := grad[len(grad)-RhythmTerms:], (t-1)*RhythmTerms
				for i := range RhythmTerms {
					v[i] += g * rs.g[at+i]
				}
			}
		}
		df += g
	}
	loss -= math.Log(surv)
	loss *= k
	if label > 0 && m.whether > 0 {
		l, dfw := m.whetherLoss(p, f, off, grad, rs)
		loss += l
		df += dfw
	}
	if grad == nil {
		return loss
	}
	d := len(z)
	w := grad[H:]
	if m.Kind != KindMLP {
		for j, v := range z {
			w[j] += df * v
		}
		if m.Kind != KindWide {
			return loss
		}
		m.mlpGrad(p[H+d:], w[d:], z, hid, df)
		return loss
	}
	m.mlpGrad(p[H:], w, z, hid, df)
	return loss
}

// mlpGrad adds df times the gradient of mlpScore(pw, z) into gw, hid holding
// the hidden activations mlpScore wrote.
func (m *Model) mlpGrad(pw, gw, z, hid []float64, df float64) {
	d := len(z)
	Hd := m.Hidden
	w2 := pw[Hd*d+Hd : Hd*d+2*Hd]
	gw1, gc1, gw2 := gw[:Hd*d], gw[Hd*d:Hd*d+Hd], gw[Hd*d+Hd:Hd*d+2*Hd]
	for k := range Hd {
		a := hid[k]
		gw2[k] += df * a
		ga := df * w2[k] * (1 - a*a)
		if ga == 0 {
			continue
		}
		gc1[k] += ga
		row := gw1[k*d : (k+1)*d]
		for j, v := range z {
			row[j] += ga * v
		}
	}
}

// Explanation methods returned by Contributions.
const (
	// ExplainLinearExact: contribution_j = w_j·z_j, which add up to the score.
	ExplainLinearExact = "linear_exact"
	// ExplainGradientInput: contribution_j = ∂f/∂z_j·z_j, a first-order
	// attribution of the MLP's score that need not add up to it.
	ExplainGradientInput = "gradient_x_input"
)

// Contributions attributes the score of a raw feature vector x to its
// features: it writes the standardised vector (Standardize, so a feature whose
// signal x lacks is 0 and contributes nothing) into z and each feature's push
// on the score into contrib (both len(x), zeroed here), and returns the score
// f(x) and the attribution method. A model owns this because it walks the
// model's parameters; callers rank and format. len(x) must be the schema's
// length.
func (m *Model) Contributions(x, z, contrib []float64) (score float64, method string) {
	m.Standardize(x, z)
	clear(contrib)
	d := len(x)
	p := m.Params[m.Horizon:]
	if m.Kind != KindMLP && m.Kind != KindWide {
		for j, v := range z {
			contrib[j] = p[j] * v
			score += contrib[j]
		}
		return score, ExplainLinearExact
	}
	if m.Kind == KindWide {
		// The linear part's weights join the residual's gradient below.
		copy(contrib, p[:d])
		for j, v := range z {
			score += p[j] * v
		}
		p = p[d:]
	}
	H := m.Hidden
	w1, c1, w2 := p[:H*d], p[H*d:H*d+H], p[H*d+H:H*d+2*H]
	for k := range H {
		a := c1[k]
		row := w1[k*d : (k+1)*d]
		for j, v := range z {
			a += row[j] * v
		}
		h := math.Tanh(a)
		score += w2[k] * h
		g := w2[k] * (1 - h*h)
		for j := range z {
			contrib[j] += g * row[j]
		}
	}
	for j := range contrib {
		contrib[j] *= z[j]
	}
	return score, ExplainGradientInput
}
