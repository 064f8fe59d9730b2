package feature

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// benchEvents is a deterministic log: customers with about 40 events each over a
// year, a quarter of them purchases.
func benchEvents(n int) []model.Event {
	r := rand.New(rand.NewPCG(1, 1))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]model.Event, n)
	for i := range out {
		out[i] = model.Event{
			Customer: "c" + strconv.Itoa(i/40),
			Time:     start.Add(time.Duration(r.Int64N(int64(365 * model.Day)))),
			Kind:     model.Kind(1 + r.IntN(4)),
			Amount:   10, HasAmount: true,
		}
	}
	return out
}

func benchCutoffs() []time.Time {
	var cs []time.Time
	for m := 3; m <= 11; m++ {
		cs = append(cs, time.Date(2024, time.Month(m), 1, 0, 0, 0, 0, time.UTC))
	}
	return cs
}

// BenchmarkAdd measures streaming events into a builder with nine cutoffs.
func BenchmarkAdd(b *testing.B) {
	events := benchEvents(100_000)
	b.ResetTimer()
	for range b.N {
		bl, _ := NewBuilder(Config{Cutoffs: benchCutoffs()})
		for _, e := range events {
			_ = bl.Add(e)
		}
	}
	b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRows measures building rows (customer × cutoff vectors).
func BenchmarkRows(b *testing.B) {
	bl, _ := NewBuilder(Config{Cutoffs: benchCutoffs()})
	for _, e := range benchEvents(100_000) {
		_ = bl.Add(e)
	}
	b.ResetTimer()
	n := 0
	for range b.N {
		n += len(bl.Rows())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkOneCustomer measures what a predict request pays: a builder at one
// cutoff, one customer's 50 events, one row.
func BenchmarkOneCustomer(b *testing.B) {
	events := benchEvents(50)
	cut := []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		bl, err := NewBuilder(Config{Cutoffs: cut})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range events {
			_ = bl.Add(e)
		}
		if len(bl.Rows()) != 2 {
			b.Fatal("want two rows (customers c0 and c1)")
		}
	}
}
