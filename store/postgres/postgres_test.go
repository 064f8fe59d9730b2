package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/store/postgres/pgtest"
	"github.com/kairos-fl/kairos/store/storetest"
)

// openTest opens and migrates a store on a fresh database of the test server
// (pgtest), dropped when the test ends.
func openTest(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close) // runs before the drop: cleanups are last in, first out
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTest(t) })
}

var storeTestTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
