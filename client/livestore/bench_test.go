package livestore

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// cpuTime is the process's user+system CPU time: unlike wall time, it does
// not grow with the machine's load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommit commits batches of changed states (batch customers drawn
// from 10,000, states of 200 bytes, the size of a year's live state of the
// stream benchmark's shop) into a store already holding every customer.
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{64, 512, 4096} {
		b.Run("sqlite/batch="+strconv.Itoa(batch), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "live.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchCommit(b, s, batch)
		})
	}
	for _, batch := range []int{64, 512, 4096} {
		b.Run("postgres/batch="+strconv.Itoa(batch), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenPostgres(ctx, pgtest.Database(b, pgtest.BaseURL(b), "kairos_live_bench_"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchCommit(b, s, batch)
		})
	}
}

func benchCommit(b *testing.B, s Store, batch int) {
	ctx := context.Background()
	const customers = 10_000
	r := rand.New(rand.NewPCG(1, 2))
	state := func() []byte {
		v := make([]byte, 200)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		return v
	}
	all := map[string][]byte{}
	for i := range customers {
		all["c"+strconv.Itoa(i)] = state()
	}
	if err := s.Commit(ctx, "bench", Batch{Next: map[int32]int64{0: 1}, States: all}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		states := make(map[string][]byte, batch)
		for range batch {
			states["c"+strconv.Itoa(r.IntN(customers))] = state()
		}
		if err := s.Commit(ctx, "bench", Batch{Next: map[int32]int64{0: int64(i + 2)}, States: states}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/state")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/state")
}

// BenchmarkAddSnapshot stores a drift snapshot of 100,000 customers (2.5 MB:
// about 25 bytes per prediction with ids like "c12345"), keeping 3, as a
// daily drift check does.
func BenchmarkAddSnapshot(b *testing.B) {
	ctx := context.Background()
	open := map[string]func() (Store, error){
		"sqlite": func() (Store, error) { return OpenSQLite(ctx, filepath.Join(b.TempDir(), "live.db")) },
		"postgres": func() (Store, error) {
			return OpenPostgres(ctx, pgtest.Database(b, pgtest.BaseURL(b), "kairos_live_bench_"))
		},
	}
	data := make([]byte, 100_000*25)
	for i := range data {
		data[i] = byte(i * 7)
	}
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, err := open[name]()
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			cpu0, seq := cpuTime(), int64(0)
			for b.Loop() {
				seq++
				if err := s.AddSnapshot(ctx, "bench", Snapshot{Seq: seq, At: at.Add(time.Duration(seq) * 24 * time.Hour), Data: data}, 3); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
