// Package feature turns a customer's event history into point-in-time feature
// vectors and first-purchase labels at a set of cutoffs: every feature at cutoff τ
// uses only events strictly before τ, and the label is the first purchase day in
// [τ, τ+Horizon days).
//
// The builder is streaming: events may arrive in any order. Memory is bounded by
// customers × cutoffs for browse, cart and favourite events (per-cutoff
// accumulators), plus one compact record (time, amount) per purchase, because
// inter-purchase gap statistics (standard deviation, last gap) and labels need the
// purchase list itself. Purchases are rare next to browsing, so the list stays small.
package feature

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/bgnbd"
)

// SchemaVersion is the version of the feature definitions below. Bump it whenever
// the meaning of any feature changes, so that models trained on the old meaning
// are rejected.
//
// Version 2 added gap_due_share and has_amount, and gates (Spec.Gate): a
// feature whose signal a row lacks is absent, not zero.
const SchemaVersion = 2

// Windows are the purchase-count windows in days.
var purchaseWindows = [...]int{1, 3, 7, 14, 30, 90, 180, 365}

// decayHalfLives are the half-lives in days of exponentially decayed purchase
// counts, Σ 2^(−age/half-life) over purchases.
var decayHalfLives = [...]int{14, 60, 180}

// spendWindows are the spend windows in days.
var spendWindows = [...]int{30, 90, 365}

// activityWindows are the browse, cart and favourite count windows in days.
var activityWindows = [...]int{7, 30}

// Transform names used in the schema. They are part of the hash.
const (
	tLog1p     = "log1p"         // log(1+x), x ≥ 0
	tSignLog1p = "sign*log1p|x|" // sign(x)·log(1+|x|)
	tIdentity  = "identity"
	tLogit     = "logit" // log(p/(1−p)), p clamped to [1e-9, 1−1e-9]
)

// Spec names one feature and the transform applied to its raw value.
type Spec struct {
	Name      string
	Transform string
	// Gate, when set, names the 0/1 indicator feature that says whether this
	// feature's signal exists for the row at all (has_view for view counts,
	// has_amount for spend). Where the indicator is 0 the raw value is a
	// placeholder, not a measurement — view_recency_days = 0 would read as
	// "viewed today" — and a model must treat the feature as absent
	// (Schema.Gates).
	Gate string
}

// ErrUnknownFeature is returned when a mask names a feature the schema does not have.
var ErrUnknownFeature = errors.New("unknown feature")

// fullSpecs is the full, ordered feature list of SchemaVersion, its schema
// (hash included) and each name's position, computed once: they depend on
// constant data only. Callers get copies of the slices, never these.
var fullSpecs = sync.OnceValue(func() specTable {
	specs := allSpecs()
	n := len(specs)
	t := specTable{specs: specs, pos: make(map[string]int, n), units: make(map[string]string, n), schema: Schema{Version: SchemaVersion}}
	for i, sp := range specs {
		t.pos[sp.Name] = i
		t.units[sp.Name] = unitOf(sp.Name)
		t.schema.Names = append(t.schema.Names, sp.Name)
		t.schema.Transforms = append(t.schema.Transforms, sp.Transform)
	}
	// The classic-model features follow the base list in the lookup tables
	// (positions n, n+1, …) but are not part of the unmasked schema: a
	// builder appends them only when Config.Classic asks for them.
	t.specs = append(t.specs, classicSpecs()...)
	for i, sp := range t.specs[n:] {
		t.pos[sp.Name] = n + i
		t.units[sp.Name] = unitOf(sp.Name)
	}
	t.base = n
	t.schema.Hash = t.schema.ComputeHash()
	t.index = make([]int, n)
	for i := range t.index {
		t.index[i] = i
	}
	return t
})

type specTable struct {
	// specs is the base list of allSpecs followed by classicSpecs; base is
	// the length of the base list.
	specs  []Spec
	base   int
	pos    map[string]int    // name → position in specs
	units  map[string]string // name → unit of the raw value
	schema Schema            // the unmasked schema
	index  []int             // identity: schema position → spec position
}

// allSpecs is the full, ordered feature list of SchemaVersion.
func allSpecs() []Spec {
	var s []Spec
	add := func(name, tr string) { s = append(s, Spec{Name: name, Transform: tr}) }
	// gated adds a feature whose signal only exists where the indicator gate is 1.
	gated := func(gate, name, tr string) { s = append(s, Spec{Name: name, Transform: tr, Gate: gate}) }
	add("recency_days", tLog1p)
	add("recency_years", tIdentity)
	add("tenure_days", tLog1p)
	gated("has_purchase", "first_purchase_age_days", tLog1p)
	add("has_purchase", tIdentity)
	add("purchases_total", tLog1p)
	add("purchase_days_distinct", tLog1p)
	for _, w := range purchaseWindows {
		add("purchases_"+strconv.Itoa(w)+"d", tLog1p)
	}
	add("purchase_rate_per_30d", tLog1p)
	for _, hl := range decayHalfLives {
		add("purchases_decayed_"+strconv.Itoa(hl)+"d", tLog1p)
	}
	add("purchase_days_90d", tLog1p)
	add("purchase_days_365d", tLog1p)
	add("active_months_365d", tLog1p)
	gated("has_gap", "recency_2nd_day_days", tLog1p)
	gated("has_gap", "recency_3rd_day_days", tLog1p)
	gated("has_gap", "gap_mean_days", tLog1p)
	gated("has_gap", "gap_std_days", tLog1p)
	gated("has_gap", "gap_last_days", tLog1p)
	add("has_gap", tIdentity)
	gated("has_gap", "overdue_days", tSignLog1p)
	gated("has_gap", "overdue_ratio", tLog1p)
	gated("has_gap", "gap_due_share", tIdentity)
	gated("has_amount", "spend_total", tLog1p)
	gated("has_amount", "spend_mean", tLog1p)
	gated("has_amount", "spend_last", tLog1p)
	gated("has_amount", "spend_first_day", tLog1p)
	add("purchases_first_day", tLog1p)
	for _, w := range spendWindows {
		gated("has_amount", "spend_"+strconv.Itoa(w)+"d", tLog1p)
	}
	add("has_amount", tIdentity)
	for _, k := range []string{"view", "cart", "favorite"} {
		gated("has_"+k, k+"s_total", tLog1p)
		for _, w := range activityWindows {
			gated("has_"+k, k+"s_"+strconv.Itoa(w)+"d", tLog1p)
		}
		gated("has_"+k, k+"_recency_days", tLog1p)
		add("has_"+k, tIdentity)
	}
	gated("has_cart", "cart_not_bought", tIdentity)
	for d := time.Sunday; d <= time.Saturday; d++ {
		gated("has_purchase", "purchase_share_"+strings.ToLower(d.String()[:3]), tIdentity)
	}
	for h := 0; h < 24; h += 6 {
		gated("has_purchase", fmt.Sprintf("purchase_share_hour_%02d_%02d", h, h+6), tIdentity)
	}
	return s
}

// Schema describes a feature vector: its version, the ordered feature names and
// transforms, and a hash over a canonical encoding of all three that travels with
// every model.
type Schema struct {
	Version    int      `json:"version"`
	Names      []string `json:"names"`
	Transforms []string `json:"transforms"`
	Hash       string   `json:"hash"`
}

// Len is the number of features.
func (s Schema) Len() int { return len(s.Names) }

// Gates returns, for each feature of s, the position in s of the indicator
// that gates it (Spec.Gate), or −1 when the feature is not gated or its
// indicator was masked out. A schema of another version than SchemaVersion
// has no gates: its features meant what they meant then.
func (s Schema) Gates() []int {
	g := make([]int, len(s.Names))
	for i := range g {
		g[i] = -1
	}
	if s.Version != SchemaVersion {
		return g
	}
	t := fullSpecs()
	at := make(map[string]int, len(s.Names))
	for i, n := range s.Names {
		at[n] = i
	}
	for i, n := range s.Names {
		if j, ok := t.pos[n]; ok && t.specs[j].Gate != "" {
			if k, ok := at[t.specs[j].Gate]; ok {
				g[i] = k
			}
		}
	}
	return g
}

// ComputeHash returns the hex SHA-256 over the canonical, domain-separated encoding
// of the version, names and transforms. A masked schema has fewer names and so a
// different hash.
func (s Schema) ComputeHash() string {
	h := sha256.New()
	h.Write([]byte("kairos feature schema v1\x00"))
	h.Write([]byte(strconv.Itoa(s.Version)))
	h.Write([]byte{0})
	for i, n := range s.Names {
		tr := ""
		if i < len(s.Transforms) {
			tr = s.Transforms[i]
		}
		// Lengths first so that no two name lists share an encoding.
		fmt.Fprintf(h, "%d:%s\x00%d:%s\x00", len(n), n, len(tr), tr)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewSchema returns the schema of SchemaVersion restricted to the features in
// allow (in schema order); a nil or empty allow keeps every feature. Naming a
// feature that does not exist is an error wrapping ErrUnknownFeature.
func NewSchema(allow []string) (Schema, error) {
	s, _, err := schemaFor(allow, false)
	if err != nil {
		return Schema{}, err
	}
	s.Names, s.Transforms = slices.Clone(s.Names), slices.Clone(s.Transforms)
	return s, nil
}

// schemaFor returns the schema for allow and, for each of its features, the
// position in the full spec list; classic appends the classic-model features
// (classicSpecs) that allow keeps. For an empty allow without classic both are
// shared with fullSpecs and must not be modified.
func schemaFor(allow []string, classic bool) (Schema, []int, error) {
	t := fullSpecs()
	if len(allow) == 0 && !classic {
		return t.schema, t.index, nil
	}
	specs := t.specs[:t.base]
	if classic {
		specs = t.specs
	}
	keep := make([]bool, len(specs))
	for _, a := range allow {
		i, ok := t.pos[a]
		if !ok || i >= len(specs) {
			return Schema{}, nil, fmt.Errorf("feature schema: mask: %w %q", ErrUnknownFeature, a)
		}
		keep[i] = true
	}
	s := Schema{Version: SchemaVersion}
	var index []int
	for i, sp := range specs {
		if len(allow) == 0 || keep[i] {
			s.Names = append(s.Names, sp.Name)
			s.Transforms = append(s.Transforms, sp.Transform)
			index = append(index, i)
		}
	}
	s.Hash = s.ComputeHash()
	return s, index, nil
}

// Config configures a Builder.
type Config struct {
	// Cutoffs are the points in time τ at which rows are built. Required.
	Cutoffs []time.Time
	// Location is the merchant's time zone for day-of-week and hour features;
	// nil means UTC.
	Location *time.Location
	// Allow, when non-empty, restricts the vector to these features (data
	// minimisation by policy); the schema hash reflects the restriction.
	Allow []string
	// Classic appends the classic-model features (classicSpecs: BG/NBD's
	// P(alive), P(buy within the horizon), expected purchases and posterior
	// rate) to the vector. Their values need BG/NBD parameters
	// (Builder.SetClassic); until they are set, every row has has_classic = 0
	// and the features are absent.
	Classic bool
}

// Row is one (customer, cutoff) example.
type Row struct {
	Customer string
	// Cutoff indexes Config.Cutoffs.
	Cutoff int
	// X is the transformed feature vector in schema order.
	X []float64
	// Label is the day 1..Horizon of the first purchase in [τ, τ+Horizon days),
	// or 0 when there is none (censored at Horizon).
	Label int
}

type purchase struct {
	at        int64 // unix seconds
	amount    float64
	hasAmount bool // the log gave an amount (a grocery log gives none)
}

// activity accumulates one non-purchase kind at one cutoff.
type activity struct {
	total int32
	win   [len(activityWindows)]int32
	last  int64 // unix seconds of the latest event before the cutoff; 0 = none
}

type customer struct {
	first     int64 // earliest event of any kind, unix seconds
	purchases []purchase
	// act[c][k] is kind k (0 view, 1 cart, 2 favorite) at cutoff c; nil until the
	// customer has a non-purchase event.
	act [][3]activity
}

// Builder accumulates events and builds rows. It is not safe for concurrent use.
type Builder struct {
	cutoffs   []int64
	loc       *time.Location
	schema    Schema
	index     []int // schema position -> full-spec position
	customers map[string]*customer
	classic   bool          // Config.Classic
	params    *bgnbd.Params // SetClassic; nil = classic features absent
}

// NewBuilder validates cfg and returns an empty builder.
func NewBuilder(cfg Config) (*Builder, error) {
	if len(cfg.Cutoffs) == 0 {
		return nil, errors.New("new feature builder: no cutoffs")
	}
	sc, index, err := schemaFor(cfg.Allow, cfg.Classic)
	if err != nil {
		return nil, fmt.Errorf("new feature builder: %w", err)
	}
	b := &Builder{loc: cfg.Location, schema: sc, index: index, customers: make(map[string]*customer), classic: cfg.Classic}
	if b.loc == nil {
		b.loc = time.UTC
	}
	for i, c := range cfg.Cutoffs {
		if c.IsZero() {
			return nil, fmt.Errorf("new feature builder: cutoff %d is zero", i)
		}
		if u := c.Unix(); u < -maxAbsUnix || u > maxAbsUnix {
			return nil, fmt.Errorf("new feature builder: cutoff %d (%s) is more than 2^40 seconds from 1970", i, c.UTC().Format(time.RFC3339))
		}
		b.cutoffs = append(b.cutoffs, c.Unix())
	}
	return b, nil
}

// maxAbsUnix bounds event times and cutoffs in Unix seconds (2^40 s, about 34,800
// years either side of 1970). Event times beyond it saturate there: they stay on
// the same side of every cutoff, and every difference of two times, with any time
// zone offset, is far inside int64, so no feature can overflow.
const maxAbsUnix = 1 << 40

// saturate clamps an event amount to [−model.MaxAmount, model.MaxAmount] (±Inf
// included; NaN and a missing amount count as 0): with at most a few billion purchases per
// customer, every sum of amounts stays far below the float64 range.
func saturate(amount float64, has bool) float64 {
	if !has || math.IsNaN(amount) {
		return 0
	}
	return min(max(amount, -model.MaxAmount), model.MaxAmount)
}

// Schema returns the schema of the rows this builder produces.
func (b *Builder) Schema() Schema {
	s := b.schema
	s.Names, s.Transforms = slices.Clone(s.Names), slices.Clone(s.Transforms)
	return s
}

// Customers returns the number of distinct customers seen.
func (b *Builder) Customers() int { return len(b.customers) }

// Add records one event. Events may come in any order.
func (b *Builder) Add(e model.Event) error {
	if e.Kind < model.View || e.Kind > model.Purchase {
		return fmt.Errorf("add event: customer %q: invalid kind %d", e.Customer, e.Kind)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("add event: customer %q: zero time", e.Customer)
	}
	t := min(max(e.Time.Unix(), -maxAbsUnix), maxAbsUnix)
	c := b.customers[e.Customer]
	if c == nil {
		c = &customer{first: t}
		b.customers[e.Customer] = c
	}
	c.first = min(c.first, t)
	if e.Kind == model.Purchase {
		c.purchases = append(c.purchases, purchase{at: t, amount: saturate(e.Amount, e.HasAmount), hasAmount: e.HasAmount})
		return nil
	}
	k := 0
	switch e.Kind {
	case model.Cart:
		k = 1
	case model.Favorite:
		k = 2
	}
	if c.act == nil {
		c.act = make([][3]activity, len(b.cutoffs))
	}
	for ci, tau := range b.cutoffs {
		if t >= tau {
			continue
		}
		a := &c.act[ci][k]
		a.total++
		age := tau - t
		for wi, w := range activityWindows {
			if age <= int64(w)*secPerDay {
				a.win[wi]++
			}
		}
		if a.total == 1 || t > a.last {
			a.last = t
		}
	}
	return nil
}

const secPerDay = 86400

// Rows builds every (customer, cutoff) row where the customer has at least one
// event before the cutoff, ordered by cutoff and then customer.
func (b *Builder) Rows() []Row {
	ids := b.sortedIDs()
	var rows []Row
	t := fullSpecs()
	raw := make([]float64, len(t.specs))
	for ci := range b.cutoffs {
		for _, id := range ids {
			c := b.customers[id]
			if c.first >= b.cutoffs[ci] {
				continue
			}
			b.raw(c, ci, raw[:t.base])
			if b.classic {
				b.classicRaw(c, ci, raw[t.base:])
			}
			x := make([]float64, len(b.index))
			for i, j := range b.index {
				x[i] = transform(b.schema.Transforms[i], raw[j])
			}
			rows = append(rows, Row{Customer: id, Cutoff: ci, X: x, Label: label(c.purchases, b.cutoffs[ci])})
		}
	}
	return rows
}

func sortPurchases(ps []purchase) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].at < ps[j].at })
}

// label returns the first purchase day in [tau, tau+Horizon days) or 0.
func label(ps []purchase, tau int64) int {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].at >= tau })
	if i == len(ps) {
		return 0
	}
	d := (ps[i].at - tau) / secPerDay
	if d >= model.Horizon {
		return 0
	}
	return int(d) + 1
}

// Untransform inverts a schema transform: it returns the raw value, in the
// feature's own unit (Unit), of a transformed value v. log1p is inverted as
// e^v − 1, sign·log1p|x| as sign(v)·(e^|v| − 1), logit as 1/(1+e^−v);
// identity is v. A v no
// feature builds (log1p of more than about 1e308) gives ±Inf.
func Untransform(transform string, v float64) float64 {
	switch transform {
	case tLog1p:
		return math.Expm1(v)
	case tSignLog1p:
		if v < 0 {
			return -math.Expm1(-v)
		}
		return math.Expm1(v)
	case tLogit:
		return 1 / (1 + math.Exp(-v))
	default:
		return v
	}
}

// Units of a feature's raw value (Unit).
const (
	UnitDays     = "days"
	UnitYears    = "years"
	UnitCount    = "count"    // events or distinct days or months
	UnitRate     = "per_30d"  // purchases per 30 days
	UnitCurrency = "currency" // the shop's currency
	UnitShare    = "share"    // 0..1
	UnitRatio    = "ratio"
	UnitFlag     = "flag" // 0 or 1
)

// Unit returns the unit of the raw (untransformed) value of the feature
// name of SchemaVersion, or "" for a name the schema does not have.
func Unit(name string) string { return fullSpecs().units[name] }

// unitOf names the unit of each feature of allSpecs, from its name.
func unitOf(name string) string {
	switch {
	case strings.HasPrefix(name, "has_"), name == "cart_not_bought":
		return UnitFlag
	case name == "recency_years":
		return UnitYears
	case name == "purchase_rate_per_30d", name == "bgnbd_rate_per_30d":
		return UnitRate
	case name == "overdue_ratio":
		return UnitRatio
	case name == "gap_due_share", strings.HasPrefix(name, "purchase_share_"), name == "bgnbd_p_alive", name == "bgnbd_p_buy_30d":
		return UnitShare
	case strings.HasPrefix(name, "spend_"):
		return UnitCurrency
	case strings.HasPrefix(name, "purchase_days_"), strings.HasPrefix(name, "active_months_"):
		return UnitCount // distinct days or months, not a duration
	case strings.HasSuffix(name, "_days"):
		return UnitDays
	default:
		return UnitCount
	}
}

func transform(name string, v float64) float64 {
	switch name {
	case tLog1p:
		return math.Log1p(math.Max(v, 0))
	case tSignLog1p:
		if v < 0 {
			return -math.Log1p(-v)
		}
		return math.Log1p(v)
	case tLogit:
		p := min(max(v, 1e-9), 1-1e-9)
		return math.Log(p / (1 - p))
	default:
		return v
	}
}

// raw writes the untransformed feature values of customer c at cutoff ci, in
// full-spec order, into out.
func (b *Builder) raw(c *customer, ci int, out []float64) {
	clear(out)
	tau := b.cutoffs[ci]
	days := func(t int64) float64 { return float64(tau-t) / secPerDay }
	n := sort.Search(len(c.purchases), func(i int) bool { return c.purchases[i].at >= tau })
	ps := c.purchases[:n]
	i := 0
	put := func(v float64) { out[i] = v; i++ }

	tenure := days(c.first)
	recency := tenure // no purchase yet: time since first seen
	if n > 0 {
		recency = days(ps[n-1].at)
	}
	put(recency)
	put(recency / 365)
	put(tenure)
	if n > 0 {
		put(days(ps[0].at))
		put(1)
	} else {
		put(0)
		put(0)
	}
	put(float64(n))
	// Distinct purchase days, in the merchant's local calendar.
	var pdays []int64
	for _, p := range ps {
		d := localDay(p.at, b.loc)
		if len(pdays) == 0 || pdays[len(pdays)-1] != d {
			pdays = append(pdays, d)
		}
	}
	put(float64(len(pdays)))
	for _, w := range purchaseWindows {
		put(float64(countSince(ps, tau-int64(w)*secPerDay)))
	}
	put(float64(n) / math.Max(tenure, 1) * 30)
	for _, hl := range decayHalfLives {
		var v float64
		for _, p := range ps {
			v += math.Exp2(-days(p.at) / float64(hl))
		}
		put(v)
	}
	// Distinct purchase days in the last 90 and 365 days, and how many of the
	// twelve 30-day periods before τ hold a purchase (regular vs bursty buyers).
	tauDay := localDay(tau, b.loc)
	var days90, days365 float64
	var months [13]bool
	for _, d := range pdays {
		age := tauDay - d // 1 = yesterday
		if age <= 90 {
			days90++
		}
		if age <= 365 {
			days365++
		}
	}
	for _, p := range ps {
		if a := days(p.at); a <= 360 {
			months[int(a/30)] = true
		}
	}
	put(days90)
	put(days365)
	var active float64
	for _, m := range months[:12] {
		if m {
			active++
		}
	}
	put(active)
	// Days since the 2nd and 3rd most recent distinct purchase days (0 when absent),
	// measured from the end of that local day's predecessor day number.
	for k := 2; k <= 3; k++ {
		if len(pdays) >= k {
			put(recency + float64(pdays[len(pdays)-1]-pdays[len(pdays)-k]))
		} else {
			put(0)
		}
	}
	var gapMean, gapStd, gapLast float64
	if len(pdays) >= 2 {
		k := float64(len(pdays) - 1)
		gapMean = float64(pdays[len(pdays)-1]-pdays[0]) / k
		for j := 1; j < len(pdays); j++ {
			g := float64(pdays[j]-pdays[j-1]) - gapMean
			gapStd += g * g
		}
		gapStd = math.Sqrt(gapStd / k)
		gapLast = float64(pdays[len(pdays)-1] - pdays[len(pdays)-2])
	}
	put(gapMean)
	put(gapStd)
	put(gapLast)
	if len(pdays) >= 2 {
		put(1)
		put(recency - gapMean)
		// gapMean ≥ 0 unless a time zone moves the calendar back across midnight
		// between two purchases; the floor keeps the ratio finite then too.
		put(recency / (max(gapMean, 0) + 1))
		put(gapDueShare(pdays, tauDay))
	} else {
		put(0)
		put(0)
		put(0)
		put(0)
	}
	var total float64
	for _, p := range ps {
		total += p.amount
	}
	put(total)
	if n > 0 {
		put(total / float64(n))
		put(ps[n-1].amount)
	} else {
		put(0)
		put(0)
	}
	// The first shopping day (order size is a classic CDNOW predictor).
	var firstSpend, firstCount float64
	for _, p := range ps {
		if localDay(p.at, b.loc) != pdays[0] {
			break
		}
		firstSpend += p.amount
		firstCount++
	}
	put(firstSpend)
	put(firstCount)
	for _, w := range spendWindows {
		var s float64
		for j := n - 1; j >= 0 && ps[j].at >= tau-int64(w)*secPerDay; j-- {
			s += ps[j].amount
		}
		put(s)
	}
	hasAmount := 0.0
	for _, p := range ps {
		if p.hasAmount {
			hasAmount = 1
			break
		}
	}
	put(hasAmount)
	var lastCart int64
	for k := range 3 {
		var a activity
		if c.act != nil {
			a = c.act[ci][k]
		}
		put(float64(a.total))
		for wi := range activityWindows {
			put(float64(a.win[wi]))
		}
		if a.total > 0 {
			put(days(a.last))
			put(1)
		} else {
			put(0)
			put(0)
		}
		if k == 1 {
			lastCart = a.last
		}
	}
	// A cart after the latest purchase (or with no purchase at all) not yet bought.
	if lastCart > 0 && (n == 0 || lastCart > ps[n-1].at) {
		put(1)
	} else {
		put(0)
	}
	var dow [7]float64
	var hour [4]float64
	for _, p := range ps {
		lt := time.Unix(p.at, 0).In(b.loc)
		dow[lt.Weekday()]++
		hour[lt.Hour()/6]++
	}
	for _, v := range dow {
		put(share(v, n))
	}
	for _, v := range hour {
		put(share(v, n))
	}
}

// gapDueShare is the customer's own estimate of buying within the horizon, in
// the customer's own time scale rather than the merchant's: of the gaps between
// consecutive purchase days (pdays, at least two) that are at least as long as
// the current wait r = tauDay − last purchase day (a gap shorter than r is ruled
// out: no purchase came), the share that ends within the next Horizon days,
// smoothed towards ½ as (a + ½)/(b + 1). A weekly grocery buyer three days in
// and a quarterly CD buyer a month in score alike when their own histories say
// the same.
func gapDueShare(pdays []int64, tauDay int64) float64 {
	r := tauDay - pdays[len(pdays)-1]
	var a, b float64
	for j := 1; j < len(pdays); j++ {
		if g := pdays[j] - pdays[j-1]; g >= r {
			b++
			if g < r+model.Horizon {
				a++
			}
		}
	}
	return (a + 0.5) / (b + 1)
}

func share(v float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return v / float64(n)
}

// countSince counts purchases at or after from in the sorted prefix ps.
func countSince(ps []purchase, from int64) int {
	return len(ps) - sort.Search(len(ps), func(i int) bool { return ps[i].at >= from })
}

// localDay is the day number of t in loc's calendar.
func localDay(t int64, loc *time.Location) int64 {
	_, off := time.Unix(t, 0).In(loc).Zone()
	s := t + int64(off)
	d := s / secPerDay
	if s%secPerDay < 0 {
		d--
	}
	return d
}
