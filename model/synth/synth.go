// Package synth generates realistic synthetic event logs of any size for scale
// tests: customers whose purchases follow gamma renewal processes with
// gamma-distributed rates and BG/NBD-style dropout, browsing that intensifies in
// the days before each purchase, weekly and daily seasonality in each merchant's
// local time, and lognormal amounts. Output is deterministic given the seed and
// streams customer by customer, so memory does not grow with the log.
package synth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// Merchant is a shop customers are assigned to, with its local time zone.
type Merchant struct {
	Name   string
	Zone   *time.Location
	Weight float64 // share of customers, relative to the other merchants
}

// Config describes a synthetic population. Zero fields take the defaults
// documented on each; a negative rate, probability or mean of an optional
// behaviour (browsing, background views, weekend boost) turns it off. New
// validates the rest.
type Config struct {
	Seed uint64
	// Start and Days give the simulated window [Start, Start+Days·24h).
	// Defaults: 2024-01-01T00:00Z and 365.
	Start time.Time
	Days  int
	// Customers is how many customers to generate; Events stops the log after
	// exactly that many events (cutting the last customer's history short).
	// At least one must be positive; with only Events, customers are added
	// until it is reached.
	Customers int
	Events    int
	// EventsPerCustomer, when positive, tunes BrowsePerPurchase so that a
	// customer has about that many events on average (never fewer than the
	// purchases and background views alone give).
	EventsPerCustomer float64
	// Merchants default to three fixed-offset zones: UTC+0, UTC−5, UTC+8 with
	// weights 0.4, 0.35, 0.25.
	Merchants []Merchant
	// A customer's purchase rate λ (per day) is drawn from a gamma with shape
	// RateShape (default 1.5) and mean RateMean (default 1/20), so the pooled
	// mean gap between purchases is 1/RateMean days.
	RateShape, RateMean float64
	// Gaps between purchases are Gamma(GapShape, 1/(GapShape·λ)): mean 1/λ,
	// more regular than exponential when GapShape > 1. Default 2.
	GapShape float64
	// After each purchase a customer drops out with probability p, drawn per
	// customer from Beta(ChurnA, ChurnB) (defaults 0.8 and 6). NoChurn turns
	// dropout off.
	ChurnA, ChurnB float64
	NoChurn        bool
	// Browsing: about BrowsePerPurchase views (Poisson, default 5) precede each
	// purchase, at lead times exponential with mean BrowseLeadDays (default 2);
	// each view is also a cart with probability CartProb (0.2) and a favourite
	// with FavProb (0.07). Alive customers also view at BackgroundViewRate per
	// day (default 0.05).
	BrowsePerPurchase, BrowseLeadDays float64
	CartProb, FavProb                 float64
	BackgroundViewRate                float64
	// WeekendBoost raises Saturday and Sunday intensity by this fraction
	// (default 0.3); purchases also follow a daily profile peaking in the
	// evening, in the merchant's local time.
	WeekendBoost float64
	// Amounts are lognormal: log amount ~ N(μ_c, AmountSigma²) with a
	// per-customer μ_c ~ N(AmountMu, 0.5²). Defaults 3.5 (about 33) and 0.6.
	AmountMu, AmountSigma float64
	// Categories and ItemsPerCategory size the catalogue (defaults 200, 500).
	Categories, ItemsPerCategory int
	// Seasonality, in [0, 1), makes the purchase intensity yearly:
	// λ(t)·(1 + Seasonality·cos(2π(t − SeasonPeak)/365.25)), t and SeasonPeak
	// in days since Start. 0 (default) leaves the process as it was.
	Seasonality, SeasonPeak float64
}

func orDefault(v *float64, d float64) {
	if *v == 0 {
		*v = d
	} else if *v < 0 {
		*v = 0
	}
}

// Generator produces the customers a Config describes.
type Generator struct {
	cfg      Config
	end      time.Time
	merchCum []float64
	hourCum  []float64
}

// New validates cfg, fills in defaults and returns its Generator.
func New(cfg Config) (*Generator, error) {
	if cfg.Customers < 0 || cfg.Events < 0 {
		return nil, errors.New("new generator: customers and events must not be negative")
	}
	if cfg.Customers == 0 && cfg.Events == 0 {
		return nil, errors.New("new generator: give a number of customers or of events")
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	cfg.Start = cfg.Start.UTC()
	if cfg.Days == 0 {
		cfg.Days = 365
	}
	if cfg.Days < 0 || cfg.Days > 100*366 {
		return nil, fmt.Errorf("new generator: days %d out of range", cfg.Days)
	}
	if !(cfg.Seasonality >= 0 && cfg.Seasonality < 1) || math.IsNaN(cfg.SeasonPeak) || math.IsInf(cfg.SeasonPeak, 0) {
		return nil, fmt.Errorf("new generator: seasonality %v (want [0, 1)) and peak %v (want finite)", cfg.Seasonality, cfg.SeasonPeak)
	}
	if len(cfg.Merchants) == 0 {
		cfg.Merchants = []Merchant{
			{Name: "m1", Zone: time.FixedZone("UTC+0", 0), Weight: 0.4},
			{Name: "m2", Zone: time.FixedZone("UTC-5", -5*3600), Weight: 0.35},
			{Name: "m3", Zone: time.FixedZone("UTC+8", 8*3600), Weight: 0.25},
		}
	}
	w := make([]float64, len(cfg.Merchants))
	for i, m := range cfg.Merchants {
		if m.Name == "" || m.Zone == nil || !(m.Weight > 0) || math.IsInf(m.Weight, 0) {
			return nil, fmt.Errorf("new generator: merchant %d needs a name, a zone and a positive weight", i+1)
		}
		w[i] = m.Weight
	}
	orDefault(&cfg.RateShape, 1.5)
	orDefault(&cfg.RateMean, 1.0/20)
	orDefault(&cfg.GapShape, 2)
	orDefault(&cfg.ChurnA, 0.8)
	orDefault(&cfg.ChurnB, 6)
	orDefault(&cfg.BrowsePerPurchase, 5)
	orDefault(&cfg.BrowseLeadDays, 2)
	orDefault(&cfg.CartProb, 0.2)
	orDefault(&cfg.FavProb, 0.07)
	orDefault(&cfg.BackgroundViewRate, 0.05)
	orDefault(&cfg.WeekendBoost, 0.3)
	if cfg.AmountMu == 0 {
		cfg.AmountMu = 3.5
	}
	orDefault(&cfg.AmountSigma, 0.6)
	if cfg.RateShape == 0 || cfg.RateMean == 0 || cfg.GapShape == 0 || (!cfg.NoChurn && (cfg.ChurnA == 0 || cfg.ChurnB == 0)) {
		return nil, errors.New("new generator: rate shape, rate mean, gap shape and churn parameters must be positive")
	}
	if cfg.CartProb > 1 || cfg.FavProb > 1 {
		return nil, errors.New("new generator: cart and favourite probabilities must be at most 1")
	}
	for _, v := range []float64{cfg.RateShape, cfg.RateMean, cfg.GapShape, cfg.ChurnA, cfg.ChurnB, cfg.BrowsePerPurchase,
		cfg.BrowseLeadDays, cfg.BackgroundViewRate, cfg.WeekendBoost, cfg.AmountMu, cfg.AmountSigma, cfg.EventsPerCustomer} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("new generator: parameters must be finite")
		}
	}
	if cfg.Categories == 0 {
		cfg.Categories = 200
	}
	if cfg.ItemsPerCategory == 0 {
		cfg.ItemsPerCategory = 500
	}
	if cfg.Categories < 0 || cfg.ItemsPerCategory < 0 {
		return nil, errors.New("new generator: catalogue sizes must be positive")
	}
	g := &Generator{cfg: cfg, end: cfg.Start.Add(time.Duration(cfg.Days) * model.Day), merchCum: cumsum(w)}
	// Share of purchases by local hour: quiet nights, a lunch bump, an evening peak.
	g.hourCum = cumsum([]float64{1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 6, 5.5, 5, 5, 5, 5.5, 6, 7.5, 8, 7, 5, 2.5})
	if cfg.EventsPerCustomer > 0 {
		g.calibrate()
	}
	return g, nil
}

// Config returns the generator's configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// calibrate sets BrowsePerPurchase from a pilot run of customers drawn from a
// separate stream, so that events per customer average EventsPerCustomer.
func (g *Generator) calibrate() {
	const pilot = 400
	pg := *g
	pg.cfg.BrowsePerPurchase = 0
	pg.cfg.Seed ^= 0x9e3779b97f4a7c15
	purchases, others := 0, 0
	for i := range pilot {
		c := pg.Customer(i)
		for _, ev := range c.Events {
			if ev.Kind == model.Purchase {
				purchases++
			} else {
				others++
			}
		}
	}
	perView := 1 + g.cfg.CartProb + g.cfg.FavProb
	need := g.cfg.EventsPerCustomer*pilot - float64(purchases+others)
	g.cfg.BrowsePerPurchase = max(0, need/(float64(max(purchases, 1))*perView))
}

// Customer is one generated customer and its events in time order.
type Customer struct {
	ID       string
	Merchant string
	Rate     float64 // purchases per day while alive
	Churn    float64 // dropout probability after each purchase
	Events   []model.Event
}

// Customer generates customer i (0-based). It depends only on the seed, the
// configuration and i, so any customer can be regenerated alone.
func (g *Generator) Customer(i int) Customer {
	cfg := &g.cfg
	r := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
	m := cfg.Merchants[categorical(r, g.merchCum)]
	c := Customer{ID: "c" + strconv.Itoa(i+1), Merchant: m.Name}
	c.Rate = gamma(r, cfg.RateShape, cfg.RateMean/cfg.RateShape)
	if !cfg.NoChurn {
		c.Churn = beta(r, cfg.ChurnA, cfg.ChurnB)
	}
	mu := cfg.AmountMu + 0.5*r.NormFloat64()
	// A few favourite categories, skewed towards popular ones.
	var cats [3]int
	for j := range cats {
		u := r.Float64()
		cats[j] = int(u * u * float64(cfg.Categories))
	}
	days := float64(cfg.Days)
	birth := r.Float64() * days // days since Start
	var purchases []float64
	alive := days
	for t := birth; t < days; {
		purchases = append(purchases, t)
		if c.Churn > 0 && r.Float64() < c.Churn {
			alive = t
			break
		}
		t += gamma(r, cfg.GapShape, 1/(cfg.GapShape*c.Rate))
	}
	if cfg.Seasonality > 0 {
		// The gaps above are in operational time u; a purchase happens on the
		// calendar day t with Λ(t) = u, Λ the integral of the seasonal factor.
		kept := purchases[:0]
		for _, u := range purchases {
			if t := seasonalDay(u, cfg.Seasonality, cfg.SeasonPeak); t < days {
				kept = append(kept, t)
			}
		}
		if len(kept) == 0 { // keep the customer's first purchase
			kept = append(kept, min(seasonalDay(purchases[0], cfg.Seasonality, cfg.SeasonPeak), days-1e-6))
		}
		purchases = kept
		birth = purchases[0]
		if alive < days {
			alive = purchases[len(purchases)-1]
		}
	}
	at := func(day float64) time.Time {
		return cfg.Start.Add(time.Duration(day * float64(model.Day)))
	}
	inWindow := func(t time.Time) bool { return !t.Before(cfg.Start) && t.Before(g.end) }
	item := func() (string, string) {
		k := cats[r.IntN(len(cats))]
		return "i" + strconv.Itoa(k*cfg.ItemsPerCategory+r.IntN(cfg.ItemsPerCategory)), "k" + strconv.Itoa(k)
	}
	evs := make([]model.Event, 0, len(purchases)*8)
	browse := func(t time.Time, it, cat string) {
		evs = append(evs, model.Event{Customer: c.ID, Time: t, Kind: model.View, Item: it, Category: cat})
		if r.Float64() < cfg.CartProb {
			evs = append(evs, model.Event{Customer: c.ID, Time: t.Add(time.Duration(r.IntN(600)+1) * time.Second), Kind: model.Cart, Item: it, Category: cat})
		}
		if r.Float64() < cfg.FavProb {
			evs = append(evs, model.Event{Customer: c.ID, Time: t.Add(time.Duration(r.IntN(600)+1) * time.Second), Kind: model.Favorite, Item: it, Category: cat})
		}
	}
	for _, p := range purchases {
		t := g.localize(r, at(p), m.Zone)
		if !inWindow(t) {
			// Near the window's edges keep the unmoved instant, so every
			// customer has at least its first purchase.
			t = at(p).Truncate(time.Second)
		}
		it, cat := item()
		amount := math.Round(math.Exp(mu+cfg.AmountSigma*r.NormFloat64())*100) / 100
		evs = append(evs, model.Event{Customer: c.ID, Time: t, Kind: model.Purchase, Amount: amount, HasAmount: true, Item: it, Category: cat})
		for range poisson(r, cfg.BrowsePerPurchase) {
			vt := t.Add(-time.Duration(r.ExpFloat64() * cfg.BrowseLeadDays * float64(model.Day)))
			if !inWindow(vt) {
				continue
			}
			vit, vcat := it, cat
			if r.Float64() < 0.6 { // most pre-purchase views are of other items
				vit, vcat = item()
			}
			browse(vt, vit, vcat)
		}
	}
	// Background views while alive, thinned to the weekly profile.
	from := max(0, birth-cfg.BrowseLeadDays)
	for t := from + r.ExpFloat64()/max(cfg.BackgroundViewRate, 1e-12); t < alive && cfg.BackgroundViewRate > 0; t += r.ExpFloat64() / cfg.BackgroundViewRate {
		vt := at(t)
		if wd := vt.In(m.Zone).Weekday(); wd != time.Saturday && wd != time.Sunday && r.Float64()*(1+cfg.WeekendBoost) > 1 {
			continue
		}
		if inWindow(vt) {
			it, cat := item()
			browse(vt, it, cat)
		}
	}
	slices.SortStableFunc(evs, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
	c.Events = evs
	return c
}

// seasonalDay returns t ≥ 0 with Λ(t) = u, where Λ(t) = ∫₀ᵗ 1 + a·cos(2π(s −
// peak)/P) ds = t + a·P/(2π)·(sin(2π(t − peak)/P) + sin(2π·peak/P)) and P =
// 365.25 days. Λ is increasing (a < 1), so Newton's method from t = u
// converges; 50 steps bound the work.
func seasonalDay(u, a, peak float64) float64 {
	const period = 365.25
	w := 2 * math.Pi / period
	lambda := func(t float64) float64 { return t + a/w*(math.Sin(w*(t-peak))+math.Sin(w*peak)) }
	t := u
	for range 50 {
		d := (lambda(t) - u) / (1 + a*math.Cos(w*(t-peak)))
		t -= d
		if math.Abs(d) < 1e-9 {
			break
		}
	}
	return max(t, 0)
}

// localize moves a purchase instant to a nearby local day (the day before,
// the day itself or the day after, weekends weighted up) and a local hour
// drawn from the daily profile. The move is at most a day and a half either
// way, so over many purchases the mean gap is unchanged.
func (g *Generator) localize(r *rand.Rand, t time.Time, zone *time.Location) time.Time {
	lt := t.In(zone)
	y, mo, d := lt.Date()
	var w [3]float64
	for k := range w {
		wd := time.Date(y, mo, d+k-1, 12, 0, 0, 0, zone).Weekday()
		w[k] = 1
		if wd == time.Saturday || wd == time.Sunday {
			w[k] += g.cfg.WeekendBoost
		}
		if k == 1 {
			w[k] *= 2 // most purchases stay on their own day
		}
	}
	k := categorical(r, cumsum(w[:]))
	h := categorical(r, g.hourCum)
	return time.Date(y, mo, d+k-1, h, r.IntN(60), r.IntN(60), 0, zone).UTC()
}

// Stats counts what WriteCSV wrote.
type Stats struct {
	Customers int // customers with at least one event written
	Events    int
	Kinds     [model.Purchase + 1]int
}

// Header is the first line WriteCSV writes.
const Header = "customer,time,kind,amount,item,category,merchant"

// MappingYAML is the client/ingest mapping that reads WriteCSV's output.
const MappingYAML = `# Mapping for logs written by kairos gen (model/synth).
header: true
delimiter: ","
customer: customer
time:
  column: time
  layout: unix
kind:
  column: kind
amount: amount
item: item
category: category
`

// WriteCSV streams the log to w: a Header line, then one line per event,
// customer by customer and in time order within a customer. Time is unix
// seconds, kind the canonical name, amount (purchases only) in cents
// precision. It stops after Config.Events events when that is set.
func (g *Generator) WriteCSV(ctx context.Context, w io.Writer) (Stats, error) {
	var st Stats
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.WriteString(Header + "\n"); err != nil {
		return st, fmt.Errorf("write synthetic log: %w", err)
	}
	var line []byte
	for i := 0; g.cfg.Customers == 0 || i < g.cfg.Customers; i++ {
		if g.cfg.Events > 0 && st.Events >= g.cfg.Events {
			break
		}
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return st, fmt.Errorf("write synthetic log: %w", err)
			}
		}
		c := g.Customer(i)
		if len(c.Events) > 0 {
			st.Customers++
		}
		for _, ev := range c.Events {
			if g.cfg.Events > 0 && st.Events >= g.cfg.Events {
				break
			}
			line = append(line[:0], ev.Customer...)
			line = append(line, ',')
			line = strconv.AppendInt(line, ev.Time.Unix(), 10)
			line = append(line, ',')
			line = append(line, ev.Kind.String()...)
			line = append(line, ',')
			if ev.HasAmount {
				line = strconv.AppendFloat(line, ev.Amount, 'f', 2, 64)
			}
			line = append(line, ',')
			line = append(line, ev.Item...)
			line = append(line, ',')
			line = append(line, ev.Category...)
			line = append(line, ',')
			line = append(line, c.Merchant...)
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return st, fmt.Errorf("write synthetic log: %w", err)
			}
			st.Events++
			st.Kinds[ev.Kind]++
		}
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write synthetic log: %w", err)
	}
	return st, nil
}
