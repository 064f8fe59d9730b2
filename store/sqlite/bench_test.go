package sqlite

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

// BenchmarkAppendParallel measures durable appends per second through
// audit.Log (group commit) from 32 goroutines.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	l, err := audit.New(ctx, audit.Options{Store: s, HMACKey: storetest.HMACKey, SigningKey: storetest.Key()})
	if err != nil {
		b.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((32 + procs - 1) / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, audit.Record{Actor: "merchant:m-1", Action: "update.submit", Object: "round/1",
				Outcome: audit.OutcomeOK, Identifiers: map[string]string{"customer": "c-1"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	st := l.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(st.Entries)/float64(max(st.Batches, 1)), "entries/tx")
}

// BenchmarkVerify100k verifies a 100,000-entry log read from the SQLite
// file (checkpoints every 1,000).
func BenchmarkVerify100k(b *testing.B) {
	ctx := context.Background()
	s := openTest(b)
	es, cps := storetest.Chain(audit.Head{}, 100_000, 1000, storeTestTime)
	for i := 0; i < len(es); i += 10_000 {
		if err := s.AppendAudit(ctx, es[i:i+10_000], cps[i/1000:i/1000+10]); err != nil {
			b.Fatal(err)
		}
	}
	pub := storetest.Key().Public().(ed25519.PublicKey)
	b.ResetTimer()
	for b.Loop() {
		res, err := audit.Verify(ctx, s, pub)
		if err != nil || res.Entries != 100_000 || res.Checkpoints != 100 {
			b.Fatalf("Verify = %+v, %v", res, err)
		}
	}
}
