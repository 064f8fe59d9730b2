package seal

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"testing"

	"filippo.io/age"
)

// benchPayload is a 1,000-parameter float64 model update (8,000 bytes).
func benchPayload() []byte {
	b := make([]byte, 0, 8000)
	for i := range 1000 {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(i)*1e-3))
	}
	return b
}

func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	payload := benchPayload()
	for _, tc := range []struct {
		name string
		r    age.Recipient
	}{{"pq", f.pq.Recipient()}, {"classic", f.classic.Recipient()}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := Seal(rand.Reader, f.header(), payload, f.merchant, tc.r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	payload := benchPayload()
	for _, pq := range []bool{true, false} {
		name := "classic"
		if pq {
			name = "pq"
		}
		b.Run(name, func(b *testing.B) {
			env := f.seal(b, payload, pq)
			o := f.opts(pq)
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, _, err := Open(env, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(env)), "envelope-bytes")
		})
	}
}

// BenchmarkOpenParallel measures Open on every core (GOMAXPROCS goroutines),
// the aggregator's accepted-updates throughput ceiling from this step alone.
func BenchmarkOpenParallel(b *testing.B) {
	f := newFixture(b)
	env := f.seal(b, benchPayload(), true)
	o := f.opts(true)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := Open(env, o); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
