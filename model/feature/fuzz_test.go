package feature

import (
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// FuzzBuilderFinite: whatever the events' times, kinds and amounts and the time
// zone, building rows does not panic and every feature is finite.
func FuzzBuilderFinite(f *testing.F) {
	tau := time.Date(1997, 2, 10, 0, 0, 0, 0, time.UTC).Unix()
	f.Add(tau-86400, tau-40*86400, tau+86400, 1e308, 1e308, uint8(0x44), int32(0))
	f.Add(int64(math.MinInt64), tau-1, int64(math.MaxInt64-1e11), math.MaxFloat64, -math.MaxFloat64, uint8(0x14), int32(-14*3600))
	f.Add(tau-1800, tau-3600, tau-90000, math.Inf(1), math.NaN(), uint8(0x24), int32(14*3600))
	f.Fuzz(func(t *testing.T, s1, s2, s3 int64, a1, a2 float64, kinds uint8, offset int32) {
		loc := time.FixedZone("fuzz", int(offset%(18*3600)))
		b, err := NewBuilder(Config{Cutoffs: []time.Time{time.Unix(tau, 0), time.Unix(tau-60*86400, 0)}, Location: loc})
		if err != nil {
			t.Fatal(err)
		}
		kind := func(i int) model.Kind { return model.Kind(1 + (kinds>>(2*i))&3) }
		for i, e := range []model.Event{
			{Customer: "a", Time: time.Unix(s1, 0), Kind: kind(0), Amount: a1, HasAmount: true},
			{Customer: "a", Time: time.Unix(s2, 0), Kind: kind(1), Amount: a2, HasAmount: true},
			{Customer: "b", Time: time.Unix(s3, 0), Kind: kind(2), Amount: a1 * a2, HasAmount: kinds&0x80 != 0},
			{Customer: "a", Time: time.Unix(s3, 0), Kind: kind(3), Amount: a2, HasAmount: true},
		} {
			if e.Time.IsZero() {
				continue
			}
			if err := b.Add(e); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		names := b.Schema().Names
		for _, r := range b.Rows() {
			for i, v := range r.X {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("customer %s cutoff %d: %s = %v", r.Customer, r.Cutoff, names[i], v)
				}
			}
			if r.Label < 0 || r.Label > model.Horizon {
				t.Fatalf("label %d", r.Label)
			}
		}
	})
}

// TestLongHistoryOfLargestAmounts: a thousand purchases of the largest amount
// sum to 10^15, exactly, and every feature stays finite.
func TestLongHistoryOfLargestAmounts(t *testing.T) {
	tau := day(1997, 2, 10, 0)
	b, err := NewBuilder(Config{Cutoffs: []time.Time{tau}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		e := model.Event{Customer: "x", Time: tau.Add(-time.Duration(i+1) * time.Hour), Kind: model.Purchase, Amount: math.MaxFloat64, HasAmount: true}
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	rows := b.Rows()
	if len(rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows))
	}
	for i, v := range rows[0].X {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want finite", b.Schema().Names[i], v)
		}
	}
	if got, want := valueOf(t, b.Schema(), rows[0].X, "spend_total"), math.Log1p(1000*model.MaxAmount); got != want {
		t.Errorf("spend_total = %v, want log1p(10^15) = %v", got, want)
	}
}
