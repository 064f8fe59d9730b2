package feature

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// liveLog is a synthetic three-year log: customers with purchase rhythms from
// days to months, browsing, carts, favourites, repeated identical events, and
// amounts that are missing for some customers. The events come in time order
// except that each is displaced by up to maxLate days (out-of-order arrival).
func liveLog(seed uint64, customers int, maxLate float64) []model.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	start := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(3, 0, 0)
	type ev struct {
		model.Event
		arrive time.Time
	}
	var evs []ev
	add := func(e model.Event) {
		late := time.Duration(r.Float64() * maxLate * float64(model.Day))
		evs = append(evs, ev{e, e.Time.Add(late)})
	}
	for c := range customers {
		id := "c" + strconv.Itoa(c)
		gap := []float64{2, 7, 30, 90, 200}[c%5]
		withAmount := c%4 != 0
		t := start.Add(time.Duration(r.Float64() * 200 * float64(model.Day)))
		for t.Before(end) {
			kinds := r.IntN(4)
			for range kinds {
				k := []model.Kind{model.View, model.Cart, model.Favorite}[r.IntN(3)]
				add(model.Event{Customer: id, Time: t.Add(-time.Duration(r.IntN(5*86400)) * time.Second), Kind: k})
			}
			// Whole-cent amounts held as multiples of 1/4 keep every sum
			// exact in any order, except for the folded decayed sums and
			// gap_std_days; ties in time get distinct amounts below.
			p := model.Event{Customer: id, Time: t, Kind: model.Purchase}
			if withAmount {
				p.Amount, p.HasAmount = float64(r.IntN(400))/4+1, true
			}
			add(p)
			if r.IntN(10) == 0 { // a second, identical order in the same second
				add(p)
			}
			if r.IntN(6) == 0 { // a second purchase the same day
				q := p
				q.Time = t.Add(time.Duration(1+r.IntN(5*3600)) * time.Second)
				add(q)
			}
			t = t.Add(time.Duration(r.ExpFloat64() * gap * float64(model.Day)))
		}
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return a.arrive.Compare(b.arrive) })
	out := make([]model.Event, len(evs))
	for i, e := range evs {
		out[i] = e.Event
	}
	return out
}

// floatSums are the features whose value a bounded state reaches by another
// summation order than Builder (see live.go): compared to a relative 1e-12.
func floatSum(name string) bool {
	return strings.HasPrefix(name, "purchases_decayed_") || name == "gap_std_days"
}

// TestLiveMatchesBatch feeds one out-of-order log with duplicates to Builder
// and to LiveEngine and compares every feature of every customer at several
// cutoffs: bit for bit, except the floatSum features.
func TestLiveMatchesBatch(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, loc := range []*time.Location{time.UTC, ny} {
		t.Run(loc.String(), func(t *testing.T) {
			events := liveLog(1, 60, 40)
			cutoffs := []time.Time{
				time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2022, 6, 15, 13, 30, 0, 0, time.UTC),
				time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2024, 2, 10, 7, 0, 0, 0, time.UTC),
			}
			b, err := NewBuilder(Config{Cutoffs: cutoffs, Location: loc})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				if err := b.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			rows := b.Rows()
			eng, err := NewLiveEngine(LiveConfig{Location: loc})
			if err != nil {
				t.Fatal(err)
			}
			names := eng.Schema().Names
			compared, folded := 0, 0
			for ci, tau := range cutoffs {
				// The live states see, in arrival order, the events before τ.
				states := map[string]*LiveState{}
				for _, e := range events {
					if !e.Time.Before(tau) {
						continue
					}
					s := states[e.Customer]
					if s == nil {
						s = &LiveState{}
						states[e.Customer] = s
					}
					if err := eng.Apply(s, e); err != nil {
						t.Fatalf("apply %v: %v", e, err)
					}
				}
				n := 0
				for _, r := range rows {
					if r.Cutoff != ci {
						continue
					}
					n++
					s := states[r.Customer]
					if s == nil {
						t.Fatalf("cutoff %d: customer %s has a batch row but no live state", ci, r.Customer)
					}
					if s.fold.n > 0 {
						folded++
					}
					// A round trip through the store encoding on the way.
					enc, _ := s.MarshalBinary()
					var s2 LiveState
					if err := s2.UnmarshalBinary(enc); err != nil {
						t.Fatalf("round trip: %v", err)
					}
					x, err := eng.Features(&s2, tau, nil)
					if err != nil {
						t.Fatal(err)
					}
					for i, name := range names {
						got, want := x[i], r.X[i]
						ok := got == want
						if floatSum(name) {
							ok = math.Abs(got-want) <= 1e-12*math.Max(1, math.Abs(want))
						}
						if !ok {
							t.Errorf("cutoff %s customer %s %s: live %v, batch %v", tau.Format(time.DateOnly), r.Customer, name, got, want)
						}
						compared++
					}
				}
				if n != len(states) {
					t.Errorf("cutoff %d: %d batch rows, %d live customers", ci, n, len(states))
				}
			}
			if folded == 0 {
				t.Fatal("no state folded any purchase: the test does not reach the bounded part")
			}
			t.Logf("%d feature values compared, %d customer-cutoffs with folded history", compared, folded)
		})
	}
}

// TestLiveStateBounded: a customer buying daily for 30 years keeps at most
// liveKeepDays+1 days of exact purchases, one gap bucket, and a
// fixed-size rest.
func TestLiveStateBounded(t *testing.T) {
	eng, _ := NewLiveEngine(LiveConfig{})
	var s LiveState
	t0 := time.Date(1990, 1, 1, 12, 0, 0, 0, time.UTC)
	for d := range 30 * 365 {
		if err := eng.Apply(&s, model.Event{Customer: "a", Time: t0.AddDate(0, 0, d), Kind: model.Purchase}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(s.recent); got > liveKeepDays+1 {
		t.Errorf("exact purchases: got %d, want at most %d", got, liveKeepDays+1)
	}
	if got := len(s.fold.gaps); got != 1 {
		t.Errorf("gap buckets: got %d, want 1 (every gap is one day)", got)
	}
	if got, want := s.fold.n+int64(len(s.recent)), int64(30*365); got != want {
		t.Errorf("purchases counted: got %d, want %d", got, want)
	}
}

// TestLiveLate: a purchase on a folded day is refused with ErrLate and leaves
// the state as it was; a view that old is still counted (its windows are long
// past).
func TestLiveLate(t *testing.T) {
	eng, _ := NewLiveEngine(LiveConfig{})
	var s LiveState
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []int{0, 10, 500} {
		if err := eng.Apply(&s, model.Event{Customer: "a", Time: t0.AddDate(0, 0, d), Kind: model.Purchase}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.MarshalBinary()
	err := eng.Apply(&s, model.Event{Customer: "a", Time: t0.AddDate(0, 0, 5), Kind: model.Purchase})
	if !errors.Is(err, ErrLate) {
		t.Fatalf("late purchase: got %v, want ErrLate", err)
	}
	after, _ := s.MarshalBinary()
	if string(before) != string(after) {
		t.Error("a refused late purchase changed the state")
	}
	if err := eng.Apply(&s, model.Event{Customer: "a", Time: t0.AddDate(0, 0, 5), Kind: model.View}); err != nil {
		t.Fatalf("late view: %v", err)
	}
	if s.act[0].total != 1 || len(s.act[0].recent) != 0 {
		t.Errorf("late view: total %d, kept %d; want 1, 0", s.act[0].total, len(s.act[0].recent))
	}
	// A purchase after the folded days but long before the latest is fine.
	if err := eng.Apply(&s, model.Event{Customer: "a", Time: t0.AddDate(0, 0, 300), Kind: model.Purchase}); err != nil {
		t.Errorf("purchase inside the exact window: %v", err)
	}
	if _, err := eng.Features(&s, t0.AddDate(0, 0, 500), nil); !errors.Is(err, ErrCutoffNotAfter) {
		t.Errorf("cutoff at the latest event: got %v, want ErrCutoffNotAfter", err)
	}
}

// FuzzLiveStateDecode: any bytes decode to an error or to a state that
// re-encodes to the same bytes and yields finite features.
func FuzzLiveStateDecode(f *testing.F) {
	eng, _ := NewLiveEngine(LiveConfig{})
	for _, evs := range [][]model.Event{nil, liveLog(3, 2, 5)} {
		var s LiveState
		for _, e := range evs {
			if e.Customer == "c0" {
				_ = eng.Apply(&s, e)
			}
		}
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s LiveState
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		b, _ := s.MarshalBinary()
		if string(b) != string(data) {
			// Varints have one canonical form; anything else must not decode.
			var s2 LiveState
			if err := s2.UnmarshalBinary(b); err != nil {
				t.Fatalf("re-encoded state does not decode: %v", err)
			}
		}
		if latest, ok := s.Latest(); ok {
			x, err := eng.Features(&s, latest.Add(time.Hour), nil)
			if err != nil {
				return
			}
			for i, v := range x {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("feature %d is %v", i, v)
				}
			}
		}
	})
}
