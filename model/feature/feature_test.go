package feature

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func day(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

func valueOf(t *testing.T, s Schema, x []float64, name string) float64 {
	t.Helper()
	i := slices.Index(s.Names, name)
	if i < 0 {
		t.Fatalf("feature %q not in schema", name)
	}
	return x[i]
}

// TestHandWorked checks features of one small history against values worked out
// by hand (in the comments).
func TestHandWorked(t *testing.T) {
	tau := day(1997, 2, 10, 0)
	b, err := NewBuilder(Config{Cutoffs: []time.Time{tau}})
	if err != nil {
		t.Fatal(err)
	}
	p := func(at time.Time, amt float64) model.Event {
		return model.Event{Customer: "a", Time: at, Kind: model.Purchase, Amount: amt, HasAmount: true}
	}
	events := []model.Event{
		p(day(1997, 2, 12, 0), 7), // label: 2 days after τ → day 3
		p(day(1997, 1, 31, 12), 5),
		p(day(1997, 1, 1, 0), 10),
		{Customer: "a", Time: day(1996, 12, 30, 0), Kind: model.View},
		p(day(1997, 1, 11, 0), 20),
		p(day(1997, 1, 31, 0), 30),
		{Customer: "a", Time: day(1997, 2, 5, 0), Kind: model.Cart},
		{Customer: "b", Time: day(1997, 2, 20, 0), Kind: model.Purchase}, // only after τ: no row
	}
	for _, e := range events {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	rows := b.Rows()
	if len(rows) != 1 || rows[0].Customer != "a" {
		t.Fatalf("got %d rows (%v), want one row for a", len(rows), rows)
	}
	r := rows[0]
	if r.Label != 3 {
		t.Errorf("label: got %d, want 3", r.Label)
	}
	s := b.Schema()
	l := math.Log1p
	want := map[string]float64{
		"recency_days":            l(9.5), // Jan 31 12:00 → Feb 10 00:00
		"tenure_days":             l(42),  // Dec 30 → Feb 10
		"first_purchase_age_days": l(40),
		"purchases_total":         l(4),
		"purchase_days_distinct":  l(3), // Jan 1, Jan 11, Jan 31
		"purchases_7d":            0,
		"purchases_14d":           l(2),
		"purchases_30d":           l(3), // Jan 11 00:00 is exactly τ−30d: included
		"purchases_90d":           l(4),
		"gap_mean_days":           l(15), // gaps 10, 20
		"gap_std_days":            l(5),  // sqrt((25+25)/2)
		"gap_last_days":           l(20),
		"overdue_days":            -l(5.5), // 9.5 − 15
		"overdue_ratio":           l(9.5 / 16),
		// Wait Feb 10 − Jan 31 = 10 days; gaps 10 and 20 are both ≥ 10 and end
		// within 10 + 30 days: (2 + ½)/(2 + 1).
		"gap_due_share":             2.5 / 3,
		"spend_total":               l(65),
		"spend_mean":                l(16.25),
		"spend_last":                l(5),
		"spend_30d":                 l(55),
		"has_amount":                1,
		"views_total":               l(1),
		"views_30d":                 0, // 42 days ago
		"view_recency_days":         l(42),
		"carts_7d":                  l(1),
		"cart_recency_days":         l(5),
		"cart_not_bought":           1,
		"has_favorite":              0,
		"purchase_share_wed":        0.25, // 1997-01-01 was a Wednesday
		"purchase_share_sat":        0.25, // Jan 11
		"purchase_share_fri":        0.5,  // Jan 31 twice
		"purchase_share_hour_12_18": 0.25,
		"recency_years":             9.5 / 365,
		"purchase_days_90d":         l(3),
		"active_months_365d":        l(2),    // ages 9.5, 10 → period 0; 30, 40 → period 1
		"recency_2nd_day_days":      l(29.5), // 9.5 + (Jan 31 − Jan 11)
		"recency_3rd_day_days":      l(39.5), // 9.5 + (Jan 31 − Jan 1)
		"spend_first_day":           l(10),
		"purchases_first_day":       l(1),
		// Σ 2^(−age/14) over ages 9.5, 10, 30, 40 days.
		"purchases_decayed_14d": l(math.Exp2(-9.5/14) + math.Exp2(-10.0/14) + math.Exp2(-30.0/14) + math.Exp2(-40.0/14)),
	}
	for name, w := range want {
		if got := valueOf(t, s, r.X, name); math.Abs(got-w) > 1e-12 {
			t.Errorf("%s: got %v, want %v", name, got, w)
		}
	}
}

func TestLabelBoundaries(t *testing.T) {
	tau := day(1998, 3, 1, 0)
	tests := []struct {
		at   time.Time
		want int
	}{
		{tau, 1},
		{tau.Add(model.Day - time.Second), 1},
		{tau.Add(model.Day), 2},
		{tau.Add(29*model.Day + 23*time.Hour), 30},
		{tau.Add(30 * model.Day), 0},
	}
	for _, tc := range tests {
		b, _ := NewBuilder(Config{Cutoffs: []time.Time{tau}})
		_ = b.Add(model.Event{Customer: "c", Time: tau.Add(-model.Day), Kind: model.Purchase})
		_ = b.Add(model.Event{Customer: "c", Time: tc.at, Kind: model.Purchase})
		if got := b.Rows()[0].Label; got != tc.want {
			t.Errorf("purchase at %v: got label %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestSchemaHash(t *testing.T) {
	// printf 'kairos feature schema v1\x001\x001:a\x005:log1p\x002:bc\x008:identity\x00' | sha256sum
	s := Schema{Version: 1, Names: []string{"a", "bc"}, Transforms: []string{"log1p", "identity"}}
	if got, want := s.ComputeHash(), "afc6f50cc53f36584e3ab9c470cbde62d743eef07123b460bde1bb08bcab16c5"; got != want {
		t.Errorf("hash: got %s, want %s", got, want)
	}
	full, err := NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	masked, err := NewSchema([]string{"tenure_days", "recency_days"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := masked.Names, []string{"recency_days", "tenure_days"}; !slices.Equal(got, want) {
		t.Errorf("masked names: got %v, want %v", got, want)
	}
	if masked.Hash == full.Hash {
		t.Error("masked schema has the full schema's hash")
	}
	if _, err := NewSchema([]string{"nope"}); !errors.Is(err, ErrUnknownFeature) {
		t.Errorf("unknown feature: got %v, want ErrUnknownFeature", err)
	}
	b, _ := NewBuilder(Config{Cutoffs: []time.Time{day(2000, 1, 1, 0)}, Allow: []string{"recency_days"}})
	_ = b.Add(model.Event{Customer: "x", Time: day(1999, 12, 31, 0), Kind: model.Purchase})
	if got := b.Rows()[0].X; !slices.Equal(got, []float64{math.Log1p(1)}) {
		t.Errorf("masked row: got %v, want [log1p(1)]", got)
	}
}

// TestSchemaHashPinned pins the full and a masked schema hash of
// SchemaVersion 2, computed outside Go from the canonical encoding (a Python
// sha256 over "kairos feature schema v1\x00" "2\x00" and each
// "len:name\x00len:transform\x00"): models in the field carry these values.
// Version 1's were ab5c182f… (full) and 9746bc72… (masked).
func TestSchemaHashPinned(t *testing.T) {
	tests := []struct {
		allow []string
		want  string
	}{
		{nil, "7b09396266749681a5e99cc661d120aa62da7ecc6bc0409149ae26e0c98a4c31"},
		{[]string{"tenure_days", "recency_days"}, "fe4090ec83933c1cb6d3f2e111ed7d6c284dd1dff23da6082076148eca9af631"},
	}
	for _, tt := range tests {
		s, err := NewSchema(tt.allow)
		if err != nil {
			t.Fatal(err)
		}
		if s.Hash != tt.want {
			t.Errorf("NewSchema(%v).Hash: got %s, want %s", tt.allow, s.Hash, tt.want)
		}
		if got := s.ComputeHash(); got != tt.want {
			t.Errorf("NewSchema(%v).ComputeHash(): got %s, want %s", tt.allow, got, tt.want)
		}
		b, err := NewBuilder(Config{Cutoffs: []time.Time{day(2000, 1, 1, 0)}, Allow: tt.allow})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Schema().Hash; got != tt.want {
			t.Errorf("builder schema hash for %v: got %s, want %s", tt.allow, got, tt.want)
		}
	}
}

// TestSchemaCopies: the schema is computed once, so a caller that changes
// the slices it was given must not change anyone else's schema.
func TestSchemaCopies(t *testing.T) {
	s, _ := NewSchema(nil)
	want := s.Names[0]
	s.Names[0], s.Transforms[0] = "mutated", "mutated"
	b, _ := NewBuilder(Config{Cutoffs: []time.Time{day(2000, 1, 1, 0)}})
	bs := b.Schema()
	bs.Names[0] = "mutated too"
	for _, got := range []Schema{func() Schema { s, _ := NewSchema(nil); return s }(), b.Schema()} {
		if got.Names[0] != want || got.Transforms[0] != tLog1p {
			t.Errorf("schema after a caller's change: got %s/%s, want %s/%s", got.Names[0], got.Transforms[0], want, tLog1p)
		}
		if h := got.ComputeHash(); h != got.Hash {
			t.Errorf("schema hash after a caller's change: got %s, recomputed %s", got.Hash, h)
		}
	}
}

func TestAddRejects(t *testing.T) {
	b, _ := NewBuilder(Config{Cutoffs: []time.Time{day(2000, 1, 1, 0)}})
	if err := b.Add(model.Event{Customer: "x", Time: day(1999, 1, 1, 0), Kind: 9}); err == nil {
		t.Error("invalid kind: got nil error")
	}
	if err := b.Add(model.Event{Customer: "x", Kind: model.View}); err == nil {
		t.Error("zero time: got nil error")
	}
	if _, err := NewBuilder(Config{}); err == nil {
		t.Error("no cutoffs: got nil error")
	}
}

func randomEvent(r *rand.Rand, cust string, lo, hi time.Time) model.Event {
	span := hi.Sub(lo)
	return model.Event{
		Customer:  cust,
		Time:      lo.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Second),
		Kind:      model.Kind(1 + r.IntN(4)),
		Amount:    math.Round(r.Float64()*10000) / 100,
		HasAmount: r.IntN(4) > 0,
	}
}

// TestNoLeak is the point-in-time property: changing, adding or removing any event
// at or after τ changes no feature of any customer at τ.
func TestNoLeak(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := day(2017, 1, 1, 0), day(2017, 12, 31, 0)
	loc, _ := time.LoadLocation("Asia/Shanghai")
	if loc == nil {
		loc = time.FixedZone("UTC+8", 8*3600)
	}
	for iter := range 300 {
		tau := lo.Add(time.Duration(r.Int64N(int64(hi.Sub(lo)))))
		cutoffs := []time.Time{tau, tau.Add(-45 * model.Day)}
		var events []model.Event
		for c := range 1 + r.IntN(5) {
			for range r.IntN(30) {
				events = append(events, randomEvent(r, string(rune('a'+c)), lo, hi))
			}
		}
		// Perturb: drop, change or add events at or after τ.
		var perturbed []model.Event
		for _, e := range events {
			if !e.Time.Before(tau) {
				switch r.IntN(3) {
				case 0:
					continue
				case 1:
					e = randomEvent(r, e.Customer, tau, hi.Add(100*model.Day))
				}
			}
			perturbed = append(perturbed, e)
		}
		for range r.IntN(5) {
			perturbed = append(perturbed, randomEvent(r, string(rune('a'+r.IntN(6))), tau, hi))
		}
		r.Shuffle(len(perturbed), func(i, j int) { perturbed[i], perturbed[j] = perturbed[j], perturbed[i] })
		a, b := features(t, cutoffs, loc, events), features(t, cutoffs, loc, perturbed)
		if len(a) != len(b) {
			t.Fatalf("iteration %d: got %d rows after perturbation, want %d", iter, len(b), len(a))
		}
		for i := range a {
			if a[i].Customer != b[i].Customer || a[i].Cutoff != b[i].Cutoff || !slices.Equal(a[i].X, b[i].X) {
				t.Fatalf("iteration %d: row %d changed: got %+v, want %+v", iter, i, b[i], a[i])
			}
		}
	}
}

func features(t *testing.T, cutoffs []time.Time, loc *time.Location, events []model.Event) []Row {
	t.Helper()
	b, err := NewBuilder(Config{Cutoffs: cutoffs, Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return b.Rows()
}

// TestExtremeEventsGiveFiniteFeatures: no event stream may produce a non-finite
// feature. Two purchases of 1e308 used to make spend_total +Inf (and the model's
// gradient NaN); amounts now saturate at ±model.MaxAmount, so the spend features
// are those of two purchases of 10^12. Events at the ends of time.Time's range
// used to overflow int64 differences (an Inf decayed count, or a panic indexing
// the active months); every feature is finite and the spend features keep their
// saturated values.
func TestExtremeEventsGiveFiniteFeatures(t *testing.T) {
	tau := day(1997, 2, 10, 0)
	buy := func(at time.Time, amount float64) model.Event {
		return model.Event{Customer: "x", Time: at, Kind: model.Purchase, Amount: amount, HasAmount: true}
	}
	tests := []struct {
		name      string
		events    []model.Event
		spend     float64 // raw spend_total, computed by hand
		spendLast float64
	}{
		{"two purchases of 1e308", []model.Event{buy(day(1997, 1, 5, 10), 1e308), buy(day(1997, 1, 20, 10), 1e308)}, 2 * model.MaxAmount, model.MaxAmount},
		{"largest float", []model.Event{buy(day(1997, 1, 5, 10), math.MaxFloat64), buy(day(1997, 1, 20, 10), math.MaxFloat64)}, 2 * model.MaxAmount, model.MaxAmount},
		{"refunds of -1e308", []model.Event{buy(day(1997, 1, 5, 10), 5), buy(day(1997, 1, 20, 10), -1e308)}, 0, 0},
		{"infinite amount", []model.Event{buy(day(1997, 1, 20, 10), math.Inf(1))}, model.MaxAmount, model.MaxAmount},
		{"NaN amount", []model.Event{buy(day(1997, 1, 20, 10), math.NaN())}, 0, 0},
		{"earliest time", []model.Event{buy(time.Unix(math.MinInt64, 0), 1e308), buy(day(1997, 1, 20, 10), 1e308)}, 2 * model.MaxAmount, model.MaxAmount},
		{"latest time", []model.Event{buy(day(1997, 1, 20, 10), 7), buy(time.Unix(math.MaxInt64-1e11, 0), 1e308),
			{Customer: "x", Time: time.Unix(math.MaxInt64-1e11, 0), Kind: model.View}}, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, loc := range []*time.Location{time.UTC, time.FixedZone("UTC-14", -14*3600), time.FixedZone("UTC+14", 14*3600)} {
				b, err := NewBuilder(Config{Cutoffs: []time.Time{tau}, Location: loc})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range tt.events {
					if err := b.Add(e); err != nil {
						t.Fatal(err)
					}
				}
				rows := b.Rows()
				if len(rows) != 1 {
					t.Fatalf("%s: got %d rows, want 1", loc, len(rows))
				}
				x := rows[0].X
				for i, v := range x {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("%s: %s = %v, want finite", loc, b.Schema().Names[i], v)
					}
				}
				s := b.Schema()
				if got, want := valueOf(t, s, x, "spend_total"), math.Log1p(tt.spend); got != want {
					t.Errorf("%s: spend_total = %v, want log1p(%v) = %v", loc, got, tt.spend, want)
				}
				if got, want := valueOf(t, s, x, "spend_last"), math.Log1p(tt.spendLast); got != want {
					t.Errorf("%s: spend_last = %v, want log1p(%v) = %v", loc, got, tt.spendLast, want)
				}
			}
		})
	}
}

// TestGates checks which indicator gates a feature, by position in the schema,
// and that masking the indicator out leaves the feature ungated.
func TestGates(t *testing.T) {
	full, err := NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := full.Gates()
	for _, tc := range []struct{ feature, gate string }{
		{"view_recency_days", "has_view"},
		{"views_30d", "has_view"},
		{"cart_not_bought", "has_cart"},
		{"favorites_total", "has_favorite"},
		{"spend_total", "has_amount"},
		{"spend_365d", "has_amount"},
		{"gap_mean_days", "has_gap"},
		{"gap_due_share", "has_gap"},
		{"first_purchase_age_days", "has_purchase"},
		{"purchase_share_hour_00_06", "has_purchase"},
		{"recency_days", ""},
		{"has_view", ""},
		{"purchases_total", ""},
	} {
		i := slices.Index(full.Names, tc.feature)
		want := -1
		if tc.gate != "" {
			want = slices.Index(full.Names, tc.gate)
		}
		if i < 0 || g[i] != want {
			t.Errorf("%s (at %d): got gate %d, want %d (%q)", tc.feature, i, g[i], want, tc.gate)
		}
	}
	masked, err := NewSchema([]string{"view_recency_days", "spend_total", "has_amount"})
	if err != nil {
		t.Fatal(err)
	}
	// Schema order: spend_total, has_amount, view_recency_days (has_view masked out).
	if got, want := masked.Gates(), []int{1, -1, -1}; !slices.Equal(got, want) {
		t.Errorf("masked %v: got gates %v, want %v", masked.Names, got, want)
	}
	old := full
	old.Version = 1
	for i, v := range old.Gates() {
		if v != -1 {
			t.Fatalf("a version-1 schema has gate %d on %s, want none", v, old.Names[i])
		}
	}
}

// TestHasAmount: a log without amounts (the BTYDplus grocery log) says so in
// has_amount instead of reporting a spend of 0.
func TestHasAmount(t *testing.T) {
	tau := day(2007, 12, 1, 0)
	b, err := NewBuilder(Config{Cutoffs: []time.Time{tau}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []model.Event{
		{Customer: "grocery", Time: day(2007, 11, 3, 0), Kind: model.Purchase},
		{Customer: "shop", Time: day(2007, 11, 3, 0), Kind: model.Purchase, Amount: 0, HasAmount: true},
	} {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	s := b.Schema()
	want := map[string]float64{"grocery": 0, "shop": 1}
	for _, r := range b.Rows() {
		if got := valueOf(t, s, r.X, "has_amount"); got != want[r.Customer] {
			t.Errorf("%s: has_amount got %v, want %v", r.Customer, got, want[r.Customer])
		}
	}
}

// TestUntransformUnits builds one customer whose raw values are worked out
// by hand — purchases at noon UTC on 2024-01-01 (10), 2024-04-01 (20) and
// 2024-11-01 (30), cutoff 2024-12-01 — and checks that Untransform of each
// built value gives it back in its unit: the last gap is 214 days (April to
// November), the mean gap (91 + 214)/2 = 152.5, recency 29.5 days, overdue
// 29.5 − 152.5 = −123 days (the signed transform), spend 60.
func TestUntransformUnits(t *testing.T) {
	tau := time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)
	b, err := NewBuilder(Config{Cutoffs: []time.Time{tau}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		day    string
		amount float64
	}{{"2024-01-01", 10}, {"2024-04-01", 20}, {"2024-11-01", 30}} {
		at, _ := time.Parse(time.DateOnly, p.day)
		if err := b.Add(model.Event{Customer: "c", Kind: model.Purchase, Time: at.Add(12 * time.Hour), Amount: p.amount, HasAmount: true}); err != nil {
			t.Fatal(err)
		}
	}
	rows := b.Rows()
	sc := b.Schema()
	want := map[string]struct {
		raw  float64
		unit string
	}{
		"gap_last_days":   {214, UnitDays},
		"gap_mean_days":   {152.5, UnitDays},
		"recency_days":    {29.5, UnitDays},
		"overdue_days":    {-123, UnitDays},
		"purchases_total": {3, UnitCount},
		"spend_total":     {60, UnitCurrency},
		"has_gap":         {1, UnitFlag},
		"recency_years":   {29.5 / 365, UnitYears},
	}
	seen := 0
	for j, name := range sc.Names {
		w, ok := want[name]
		if !ok {
			if Unit(name) == "" {
				t.Errorf("%s: no unit", name)
			}
			continue
		}
		seen++
		got := Untransform(sc.Transforms[j], rows[0].X[j])
		if math.Abs(got-w.raw) > 1e-9*math.Max(1, math.Abs(w.raw)) || Unit(name) != w.unit {
			t.Errorf("%s: raw %v %s, want %v %s (built value %v)", name, got, Unit(name), w.raw, w.unit, rows[0].X[j])
		}
	}
	if seen != len(want) {
		t.Errorf("checked %d features, want %d", seen, len(want))
	}
	if Unit("no_such_feature") != "" {
		t.Error("unknown feature has a unit")
	}
}
