package auth

import (
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verified-token cache defaults (VerifierOptions.CacheSize, CacheTTL and
// RevocationTTL).
const (
	// DefaultCacheSize is how many verified tokens a Verifier remembers.
	DefaultCacheSize = 10_000
	// DefaultCacheTTL is the longest a verified token is trusted without
	// checking its signature and claims again.
	DefaultCacheTTL = 30 * time.Second
	// DefaultRevocationTTL is the longest a revocation store's "not revoked"
	// answer is reused: a token revoked in the store is refused by every
	// Verifier at most this long afterwards.
	DefaultRevocationTTL = time.Second
)

// tokenCache maps SHA-256(raw token) to the claims that verified. Only
// tokens that passed every check enter it. An entry lives until the token's
// exp or its insertion plus the TTL, whichever comes first, and carries the
// time of its last revocation check so that Verify can ask the store again
// once that answer is older than the revocation TTL.
//
// Keying by the digest of the whole token means a token that differs in any
// byte (a forged signature, a tampered payload) never hits: it is verified in
// full like any other unknown token.
type tokenCache struct {
	size int
	ttl  time.Duration

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*cacheEntry

	hits atomic.Uint64 // lookups answered from the cache (tests read it)
}

type cacheEntry struct {
	claims    *Claims
	expires   time.Time    // min(exp, inserted + ttl)
	revokedAt atomic.Int64 // unix nanoseconds of the last "not revoked" answer
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	return &tokenCache{size: size, ttl: ttl, entries: make(map[[sha256.Size]byte]*cacheEntry)}
}

// get returns the live entry for key, or nil; an entry past its expiry is
// dropped.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) *cacheEntry {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		c.drop(key, e)
		return nil
	}
	c.hits.Add(1)
	return e
}

// put remembers claims under key, checked for revocation at now. When the
// cache is full it first drops expired entries and then, if that freed
// nothing, one arbitrary entry: the cache only ever holds tokens that
// verified, so an arbitrary victim costs one extra verification at most.
func (c *tokenCache) put(key [sha256.Size]byte, claims *Claims, now time.Time) {
	expires := now.Add(c.ttl)
	if exp := claims.ExpiresAt; exp != nil && exp.Before(expires) {
		expires = exp.Time
	}
	if !now.Before(expires) {
		return
	}
	e := &cacheEntry{claims: claims, expires: expires}
	e.revokedAt.Store(now.UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// drop removes key if it still maps to e.
func (c *tokenCache) drop(key [sha256.Size]byte, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[key] == e {
		delete(c.entries, key)
	}
}

// len is the number of entries, expired ones included.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// cloneClaims copies c so that a caller who changes the claims it was given
// cannot change what the cache hands to the next request.
func cloneClaims(c *Claims) *Claims {
	out := *c
	out.Audience = slices.Clone(c.Audience)
	out.Merchants = slices.Clone(c.Merchants)
	for _, d := range []**jwt.NumericDate{&out.ExpiresAt, &out.NotBefore, &out.IssuedAt} {
		if *d != nil {
			v := **d
			*d = &v
		}
	}
	return &out
}
