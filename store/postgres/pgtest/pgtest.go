// Package pgtest gives tests a fresh PostgreSQL database on the server that
// KAIROS_TEST_POSTGRES_URL names. Without the variable a test is skipped, except
// under CI=true, where PostgreSQL tests must run and a missing URL is a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL is the environment variable naming the test server.
const EnvURL = "KAIROS_TEST_POSTGRES_URL"

// BaseURL returns the server URL from EnvURL, skipping t without it unless CI=true.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(EnvURL + " is not set but CI=true: PostgreSQL tests must run in CI")
		}
		t.Skip(EnvURL + " not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

// Database creates a randomly named database (prefix + 16 hex digits) on the server
// base names, drops it when t ends, and returns base with its path pointing at it.
// The query string of base (pool settings included) is kept.
func Database(t testing.TB, base, prefix string) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(base) // strips pool_* settings a plain connection would send
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	exec := func(sql string) error {
		c, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if err := exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// URL is Database on BaseURL with the prefix "kairos_test_".
func URL(t testing.TB) string {
	t.Helper()
	return Database(t, BaseURL(t), "kairos_test_")
}
