package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/store/storetest"
)

// testURL returns KAIROS_TEST_POSTGRES_URL, skipping the test without it
// unless CI=true, where a missing database is a failure.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KAIROS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KAIROS_TEST_POSTGRES_URL is not set but CI=true: PostgreSQL tests must run in CI")
		}
		t.Skip("KAIROS_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

// openTest creates a fresh, randomly named database on the test server,
// opens and migrates a store on it, and drops the database afterwards.
func openTest(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	base := testURL(t)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer admin.Close(ctx)
	var b [8]byte
	rand.Read(b[:])
	name := "kairos_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse KAIROS_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	s, err := Open(ctx, u.String())
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
