package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/store/storetest"
)

// openTest returns a fresh migrated store in a temporary file.
func openTest(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "kairos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTest(t) })
}

var storeTestTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
