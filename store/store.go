// Package store opens Kairos's persistence by URL: PostgreSQL for
// "postgres://" and "postgresql://" URLs, otherwise an SQLite file (an
// optional "sqlite:" prefix is stripped). The backends live in store/sqlite
// and store/postgres and pass the same conformance suite, store/storetest.
package store

import (
	"context"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/postgres"
	"github.com/kairos-fl/kairos/store/sqlite"
)

// Store is what every backend provides.
type Store interface {
	audit.Store
	// Migrate applies the pending embedded schema migrations.
	Migrate(ctx context.Context) error
	// RevokeToken records that the JWT with this id is revoked until expiresAt.
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// IsTokenRevoked reports whether the JWT with this id was revoked.
	IsTokenRevoked(ctx context.Context, jti string) (bool, error)
	// PurgeRevokedTokens forgets revocations of tokens that expired before t.
	PurgeRevokedTokens(ctx context.Context, t time.Time) (int64, error)
	Close()
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// IsPostgres reports whether url names a PostgreSQL database.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens the store url names; it does not migrate.
func Open(ctx context.Context, url string) (Store, error) {
	if IsPostgres(url) {
		return postgres.Open(ctx, url)
	}
	return sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"))
}
