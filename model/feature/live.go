package feature

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// This file is the incremental (live) counterpart of Builder: a per-customer
// LiveState that each event updates in place and from which the feature vector
// at any cutoff after the customer's latest event is computed as Builder.Rows
// computes it at that cutoff.
//
// Memory per customer does not grow with the length of the history. The state
// keeps exact records only where a feature reads exact times: purchases of the
// last liveKeepDays local days (every purchase window, spend window, distinct
// day count and active month reaches back at most 365 days) and non-purchase
// events of the last 30 days (the longest activity window). Older purchases are
// folded, in time order, into fixed-size aggregates (count, amount sum,
// weekday and hour counts, first day's spend, decayed counts, the last three
// distinct days) and a histogram of the gaps between distinct purchase days;
// a histogram of g distinct gap lengths spans at least g(g+1)/2 days, so it holds
// at most √(2·span in days) entries (270 for a century of history).
//
// Ordering rules. Events may arrive in any order with one exception: a purchase
// whose local day is at or before the latest folded day (so at least
// liveKeepDays before the customer's latest event) cannot be placed among the
// folded gaps; Apply refuses it with ErrLate and leaves the state unchanged.
// Identical events are distinct events, as in Builder: a stream position is
// applied once by the caller (client/stream), so a redelivered message is not
// an identical event.
//
// Exactness. Every feature equals Builder's bit for bit except four sums whose
// floating-point summation order a bounded state cannot reproduce: the decayed
// purchase counts (old purchases are folded into one decayed sum),
// gap_std_days (squared deviations summed per histogram bucket), and the spend
// sums when two purchases share a second (Builder's sort does not order ties).
// Those agree to a relative 1e-12 (TestLiveMatchesBatch).

// ErrLate is returned by LiveEngine.Apply for a purchase older than the part
// of the history the state keeps exactly.
var ErrLate = errors.New("purchase is older than the live state keeps exactly")

// ErrCutoffNotAfter is returned by LiveEngine.Features for a cutoff at or
// before the customer's latest event.
var ErrCutoffNotAfter = errors.New("cutoff is not after the customer's latest event")

// liveKeepDays is how many local days before the latest event the state keeps
// purchases exactly: 365 for the longest window, plus two for the offset
// between local and UTC days at either end, plus one for a window edge.
const liveKeepDays = 368

// liveActivityKeep is how long non-purchase events are kept exactly: the
// longest activity window.
const liveActivityKeep = int64(30) * secPerDay

// LiveEngine computes features from LiveStates. It holds configuration only
// and is safe for concurrent use; each LiveState is not.
type LiveEngine struct {
	loc    *time.Location
	schema Schema
	index  []int
}

// LiveConfig configures a LiveEngine.
type LiveConfig struct {
	// Location is the merchant's time zone; nil means UTC.
	Location *time.Location
	// Allow restricts the vector as Config.Allow does.
	Allow []string
}

// NewLiveEngine validates cfg and returns an engine.
func NewLiveEngine(cfg LiveConfig) (*LiveEngine, error) {
	sc, index, err := schemaFor(cfg.Allow, false) // classic-model features are not live
	if err != nil {
		return nil, fmt.Errorf("new live feature engine: %w", err)
	}
	e := &LiveEngine{loc: cfg.Location, schema: sc, index: index}
	if e.loc == nil {
		e.loc = time.UTC
	}
	return e, nil
}

// Schema returns the schema of the vectors the engine produces.
func (e *LiveEngine) Schema() Schema {
	s := e.schema
	s.Names, s.Transforms = slices.Clone(s.Names), slices.Clone(s.Transforms)
	return s
}

// LiveState is one customer's bounded state. The zero value is a customer
// with no events.
type LiveState struct {
	seen   bool
	first  int64 // earliest event of any kind
	latest int64 // latest event of any kind (the high-water mark)

	// Purchases kept exactly, sorted by time, every one on a local day after
	// fold.lastDay.
	recent []purchase
	fold   foldedPurchases

	act [3]liveActivity // view, cart, favorite
}

// foldedPurchases aggregates the purchases older than the exact window, in
// the order Builder reads them (time order).
type foldedPurchases struct {
	n          int64
	firstAt    int64 // earliest folded purchase
	lastAt     int64 // latest folded purchase
	lastAmount float64
	total      float64 // Σ amount, summed in time order
	hasAmount  bool
	firstDay   int64 // local day of the first purchase
	firstSpend float64
	firstCount int64
	days       int64    // distinct local days
	tail       [3]int64 // the last three distinct days, newest first (valid up to days)
	lastDay    int64
	gaps       []gapCount // gaps between consecutive folded days, by gap
	dow        [7]int64
	hour       [4]int64
	decayRef   int64                        // time the decayed sums refer to
	decayed    [len(decayHalfLives)]float64 // Σ 2^(−(decayRef−t)/half-life)
}

type gapCount struct{ gap, count int64 }

// liveActivity is one non-purchase kind.
type liveActivity struct {
	total  int64
	last   int64   // latest event; 0 when total is 0 (as in Builder)
	recent []int64 // times within liveActivityKeep of the latest event, sorted
}

// Latest returns the time of the customer's latest event, and false for a
// state with no events.
func (s *LiveState) Latest() (time.Time, bool) {
	if !s.seen {
		return time.Time{}, false
	}
	return time.Unix(s.latest, 0).UTC(), true
}

// Size returns the number of exactly kept records (recent purchases,
// recent activity and gap buckets): the part of the state that is not fixed.
func (s *LiveState) Size() int {
	n := len(s.recent) + len(s.fold.gaps)
	for _, a := range s.act {
		n += len(a.recent)
	}
	return n
}

// Apply records event ev in s. It refuses, leaving s unchanged, an invalid
// event (as Builder.Add does) and a purchase older than the folded history
// (ErrLate).
func (e *LiveEngine) Apply(s *LiveState, ev model.Event) error {
	if ev.Kind < model.View || ev.Kind > model.Purchase {
		return fmt.Errorf("apply event: customer %q: invalid kind %d", ev.Customer, ev.Kind)
	}
	if ev.Time.IsZero() {
		return fmt.Errorf("apply event: customer %q: zero time", ev.Customer)
	}
	t := min(max(ev.Time.Unix(), -maxAbsUnix), maxAbsUnix)
	if ev.Kind == model.Purchase && s.fold.n > 0 && localDay(t, e.loc) <= s.fold.lastDay {
		return fmt.Errorf("apply event: customer %q: purchase at %s: %w", ev.Customer, ev.Time.UTC().Format(time.RFC3339), ErrLate)
	}
	if !s.seen {
		s.seen, s.first, s.latest = true, t, t
	}
	s.first = min(s.first, t)
	s.latest = max(s.latest, t)
	if ev.Kind == model.Purchase {
		p := purchase{at: t, amount: saturate(ev.Amount, ev.HasAmount), hasAmount: ev.HasAmount}
		// After every equal time, so that arrival order breaks ties.
		i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].at > t })
		s.recent = slices.Insert(s.recent, i, p)
	} else {
		k := 0
		switch ev.Kind {
		case model.Cart:
			k = 1
		case model.Favorite:
			k = 2
		}
		a := &s.act[k]
		a.total++
		if a.total == 1 || t > a.last {
			a.last = t
		}
		if t >= s.latest-liveActivityKeep {
			i := sort.Search(len(a.recent), func(i int) bool { return a.recent[i] > t })
			a.recent = slices.Insert(a.recent, i, t)
		}
	}
	e.expire(s)
	return nil
}

// expire folds purchases and drops activity times that no window at a cutoff
// after s.latest can read.
func (e *LiveEngine) expire(s *LiveState) {
	boundary := localDay(s.latest, e.loc) - liveKeepDays
	n := 0
	for n < len(s.recent) && localDay(s.recent[n].at, e.loc) < boundary {
		e.foldOne(&s.fold, s.recent[n])
		n++
	}
	if n > 0 {
		s.recent = slices.Delete(s.recent, 0, n)
	}
	for k := range s.act {
		a := &s.act[k]
		i := sort.Search(len(a.recent), func(i int) bool { return a.recent[i] >= s.latest-liveActivityKeep })
		if i > 0 {
			a.recent = slices.Delete(a.recent, 0, i)
		}
	}
}

// foldOne moves purchase p, later than every folded one, into f.
func (e *LiveEngine) foldOne(f *foldedPurchases, p purchase) {
	d := localDay(p.at, e.loc)
	if f.n == 0 {
		f.firstAt, f.firstDay, f.decayRef = p.at, d, p.at
	}
	if d == f.firstDay {
		f.firstSpend += p.amount
		f.firstCount++
	}
	if f.n == 0 || d != f.lastDay {
		if f.n > 0 {
			addGap(&f.gaps, d-f.lastDay)
		}
		f.days++
		f.tail = [3]int64{d, f.tail[0], f.tail[1]}
		f.lastDay = d
	}
	f.n++
	f.lastAt, f.lastAmount = p.at, p.amount
	f.total += p.amount
	f.hasAmount = f.hasAmount || p.hasAmount
	lt := time.Unix(p.at, 0).In(e.loc)
	f.dow[lt.Weekday()]++
	f.hour[lt.Hour()/6]++
	for i, hl := range decayHalfLives {
		f.decayed[i] = f.decayed[i]*math.Exp2(-float64(p.at-f.decayRef)/secPerDay/float64(hl)) + 1
	}
	f.decayRef = p.at
}

func addGap(gs *[]gapCount, g int64) {
	i := sort.Search(len(*gs), func(i int) bool { return (*gs)[i].gap >= g })
	if i < len(*gs) && (*gs)[i].gap == g {
		(*gs)[i].count++
		return
	}
	*gs = slices.Insert(*gs, i, gapCount{gap: g, count: 1})
}

// Features returns the transformed feature vector of s at cutoff tau, which
// must be after the customer's latest event, in the engine's schema order. It
// writes into dst when dst has the schema's length.
func (e *LiveEngine) Features(s *LiveState, tau time.Time, dst []float64) ([]float64, error) {
	if !s.seen {
		return nil, errors.New("live features: customer has no events")
	}
	u := tau.Unix()
	if u <= s.latest {
		return nil, fmt.Errorf("live features: cutoff %s: %w (%s)", tau.UTC().Format(time.RFC3339), ErrCutoffNotAfter, time.Unix(s.latest, 0).UTC().Format(time.RFC3339))
	}
	if u > maxAbsUnix {
		return nil, fmt.Errorf("live features: cutoff %s is more than 2^40 seconds from 1970", tau.UTC().Format(time.RFC3339))
	}
	// The raw vector lives on the stack when it fits (it does for every
	// schema today): Features runs once per changed customer per batch.
	var buf [liveRawMax]float64
	var raw []float64
	if n := len(fullSpecs().specs); n <= liveRawMax {
		raw = buf[:n]
	} else {
		raw = make([]float64, n)
	}
	e.raw(s, u, raw)
	if len(dst) != len(e.index) {
		dst = make([]float64, len(e.index))
	}
	for i, j := range e.index {
		dst[i] = transform(e.schema.Transforms[i], raw[j])
	}
	return dst, nil
}

// liveRawMax bounds the raw vector Features keeps on the stack.
const liveRawMax = 128

// raw mirrors Builder.raw feature by feature (same order, same arithmetic
// where the state allows it).
func (e *LiveEngine) raw(s *LiveState, tau int64, out []float64) {
	clear(out)
	f := &s.fold
	days := func(t int64) float64 { return float64(tau-t) / secPerDay }
	ps := s.recent
	n := int(f.n) + len(ps)
	i := 0
	put := func(v float64) { out[i] = v; i++ }

	lastAt, firstAt := int64(0), int64(0)
	switch {
	case len(ps) > 0:
		lastAt = ps[len(ps)-1].at
	case f.n > 0:
		lastAt = f.lastAt
	}
	switch {
	case f.n > 0:
		firstAt = f.firstAt
	case len(ps) > 0:
		firstAt = ps[0].at
	}
	tenure := days(s.first)
	recency := tenure
	if n > 0 {
		recency = days(lastAt)
	}
	put(recency)
	put(recency / 365)
	put(tenure)
	if n > 0 {
		put(days(firstAt))
		put(1)
	} else {
		put(0)
		put(0)
	}
	put(float64(n))
	// Distinct local days of the exact purchases; all after f.lastDay.
	var pdays []int64
	for _, p := range ps {
		d := localDay(p.at, e.loc)
		if len(pdays) == 0 || pdays[len(pdays)-1] != d {
			pdays = append(pdays, d)
		}
	}
	ndays := int(f.days) + len(pdays)
	put(float64(ndays))
	for _, w := range purchaseWindows {
		put(float64(countSince(ps, tau-int64(w)*secPerDay)))
	}
	put(float64(n) / math.Max(tenure, 1) * 30)
	for hi, hl := range decayHalfLives {
		var v float64
		if f.n > 0 {
			v = f.decayed[hi] * math.Exp2(-days(f.decayRef)/float64(hl))
		}
		for _, p := range ps {
			v += math.Exp2(-days(p.at) / float64(hl))
		}
		put(v)
	}
	tauDay := localDay(tau, e.loc)
	var days90, days365 float64
	var months [13]bool
	for _, d := range pdays {
		age := tauDay - d
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
	// dayFromEnd(k) is the k-th most recent distinct purchase day (k ≥ 1).
	dayFromEnd := func(k int) int64 {
		if k <= len(pdays) {
			return pdays[len(pdays)-k]
		}
		return f.tail[k-len(pdays)-1]
	}
	for k := 2; k <= 3; k++ {
		if ndays >= k {
			put(recency + float64(dayFromEnd(1)-dayFromEnd(k)))
		} else {
			put(0)
		}
	}
	// Gaps between distinct days: the folded histogram, the gap from the last
	// folded day to the first exact one, and the gaps among exact days.
	eachGap := func(fn func(g, count int64)) {
		for _, gc := range f.gaps {
			fn(gc.gap, gc.count)
		}
		if f.days > 0 && len(pdays) > 0 {
			fn(pdays[0]-f.lastDay, 1)
		}
		for j := 1; j < len(pdays); j++ {
			fn(pdays[j]-pdays[j-1], 1)
		}
	}
	var gapMean, gapStd, gapLast float64
	if ndays >= 2 {
		firstDay := f.firstDay
		if f.days == 0 {
			firstDay = pdays[0]
		}
		k := float64(ndays - 1)
		gapMean = float64(dayFromEnd(1)-firstDay) / k
		eachGap(func(g, count int64) {
			d := float64(g) - gapMean
			gapStd += float64(count) * (d * d)
		})
		gapStd = math.Sqrt(gapStd / k)
		gapLast = float64(dayFromEnd(1) - dayFromEnd(2))
	}
	put(gapMean)
	put(gapStd)
	put(gapLast)
	if ndays >= 2 {
		put(1)
		put(recency - gapMean)
		put(recency / (max(gapMean, 0) + 1))
		r := tauDay - dayFromEnd(1)
		var a, b float64
		eachGap(func(g, count int64) {
			if g >= r {
				b += float64(count)
				if g < r+model.Horizon {
					a += float64(count)
				}
			}
		})
		put((a + 0.5) / (b + 1))
	} else {
		put(0)
		put(0)
		put(0)
		put(0)
	}
	total := f.total
	for _, p := range ps {
		total += p.amount
	}
	put(total)
	if n > 0 {
		put(total / float64(n))
		if len(ps) > 0 {
			put(ps[len(ps)-1].amount)
		} else {
			put(f.lastAmount)
		}
	} else {
		put(0)
		put(0)
	}
	firstSpend, firstCount := f.firstSpend, float64(f.firstCount)
	if f.n == 0 {
		for _, p := range ps {
			if localDay(p.at, e.loc) != pdays[0] {
				break
			}
			firstSpend += p.amount
			firstCount++
		}
	}
	put(firstSpend)
	put(firstCount)
	for _, w := range spendWindows {
		var sp float64
		for j := len(ps) - 1; j >= 0 && ps[j].at >= tau-int64(w)*secPerDay; j-- {
			sp += ps[j].amount
		}
		put(sp)
	}
	hasAmount := 0.0
	if f.hasAmount {
		hasAmount = 1
	}
	for _, p := range ps {
		if p.hasAmount {
			hasAmount = 1
			break
		}
	}
	put(hasAmount)
	var lastCart int64
	for k := range 3 {
		a := &s.act[k]
		put(float64(a.total))
		for _, w := range activityWindows {
			var c int
			for _, t := range a.recent {
				if tau-t <= int64(w)*secPerDay {
					c++
				}
			}
			put(float64(c))
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
	if lastCart > 0 && (n == 0 || lastCart > lastAt) {
		put(1)
	} else {
		put(0)
	}
	dow, hour := f.dow, f.hour
	for _, p := range ps {
		lt := time.Unix(p.at, 0).In(e.loc)
		dow[lt.Weekday()]++
		hour[lt.Hour()/6]++
	}
	for _, v := range dow {
		put(share(float64(v), n))
	}
	for _, v := range hour {
		put(share(float64(v), n))
	}
}
