package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/postgres"
	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

// TestTwoReplicasConcurrentOneChainPostgres: two logs (two serve replicas),
// each with its own pool on one PostgreSQL database, append concurrently
// from several goroutines each. Every Append succeeds, the seqs handed out
// are 1…n with none twice, and the stored chain and its checkpoints verify.
func TestTwoReplicasConcurrentOneChainPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	sa := open()
	if err := sa.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sb := open()
	logs := []*audit.Log{newLog(t, sa, nil), newLog(t, sb, nil)}
	const workers, each = 4, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[uint64]string{}
		errs []error
	)
	for li, l := range logs {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					who := fmt.Sprintf("log %d worker %d append %d", li, w, i)
					e, err := l.Append(ctx, rec(i))
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", who, err))
					} else if prev, dup := seqs[e.Seq]; dup {
						errs = append(errs, fmt.Errorf("%s got seq %d, already given to %s", who, e.Seq, prev))
					} else {
						seqs[e.Seq] = who
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const n = 2 * workers * each
	for s := uint64(1); s <= n; s++ {
		if _, ok := seqs[s]; !ok && len(errs) == 0 {
			t.Errorf("seq %d handed to no Append", s)
		}
	}
	mustVerify(t, sa, uint64(len(seqs)))
}
