package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kairos-fl/kairos/store/sqlite"
)

func TestIsPostgres(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"postgres://u@h/db", true},
		{"postgresql://h/db?sslmode=disable", true},
		{"sqlite:kairos.db", false},
		{"kairos.db", false},
		{"/var/lib/postgres://x", false},
		{"POSTGRES://h/db", false},
	} {
		if got := IsPostgres(tc.url); got != tc.want {
			t.Errorf("IsPostgres(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, url := range []string{"sqlite:" + filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")} {
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Errorf("Open(%q) = %T, want *sqlite.Store", url, s)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Errorf("Migrate: %v", err)
		}
		s.Close()
	}
	if _, err := Open(ctx, "sqlite:"); err == nil {
		t.Error(`Open("sqlite:") err = nil, want an error`)
	}
	// A postgres URL goes to the postgres backend (and fails to connect here).
	if _, err := Open(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"); err == nil {
		t.Error("Open(unreachable postgres) err = nil, want an error")
	}
}
