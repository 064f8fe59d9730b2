package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryRevocations is an in-memory RevocationStore for tests and one-shot
// tools. Entries are dropped once their token has expired.
type MemoryRevocations struct {
	now func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // jti → token expiry
}

var _ RevocationStore = (*MemoryRevocations)(nil)

// NewMemoryRevocations returns an empty store. now is the clock used to drop
// expired entries; time.Now when nil.
func NewMemoryRevocations(now func() time.Time) *MemoryRevocations {
	if now == nil {
		now = time.Now
	}
	return &MemoryRevocations{now: now, revoked: make(map[string]time.Time)}
}

// RevokeToken records jti as revoked until expiresAt.
func (m *MemoryRevocations) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if jti == "" {
		return errors.New("revoke token: empty jti")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for id, exp := range m.revoked {
		if !exp.After(now) {
			delete(m.revoked, id)
		}
	}
	if old, ok := m.revoked[jti]; !ok || expiresAt.After(old) {
		m.revoked[jti] = expiresAt
	}
	return nil
}

// IsTokenRevoked reports whether jti was revoked. An entry whose expiry has
// passed may be forgotten: the token it named is rejected as expired anyway.
func (m *MemoryRevocations) IsTokenRevoked(ctx context.Context, jti string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.revoked[jti]
	return ok, nil
}
