package auth

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(testNow.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }
func (c *clock) set(t time.Time)         { c.t.Store(t.UnixNano()) }
func (c *clock) since0() time.Duration   { return c.now().Sub(testNow) }
func (s *countingStore) calls() int64    { return s.n.Load() }
func (s *countingStore) fail(on bool)    { s.down.Store(on) }

// countingStore counts revocation lookups and can be switched off.
type countingStore struct {
	*MemoryRevocations
	n    atomic.Int64
	down atomic.Bool
}

func (s *countingStore) IsTokenRevoked(ctx context.Context, jti string) (bool, error) {
	s.n.Add(1)
	if s.down.Load() {
		return false, errors.New("connection refused")
	}
	return s.MemoryRevocations.IsTokenRevoked(ctx, jti)
}

func newCachedVerifier(t *testing.T, c *clock, o VerifierOptions) (*Verifier, *countingStore) {
	t.Helper()
	st := &countingStore{MemoryRevocations: NewMemoryRevocations(c.now)}
	o.Keys = []PublicKey{pub(key1)}
	o.Issuer, o.Audience, o.Leeway = DefaultIssuer, DefaultAudience, testLeeway
	o.Revocations, o.Now = st, c.now
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v, st
}

// TestCacheHit: the second Verify of a token is answered from the cache,
// with the same claims and without asking the store inside RevocationTTL.
func TestCacheHit(t *testing.T) {
	c := newClock()
	v, st := newCachedVerifier(t, c, VerifierOptions{})
	tok := forge(t, goodHeader(), goodClaims(), edSign(key1))
	for i := range 3 {
		got, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
		if got.Subject != "crm-app" || got.ID != "jti-1" || len(got.Merchants) != 2 || got.Merchants[1] != "m2" {
			t.Fatalf("verify %d: got claims %+v, want crm-app jti-1 [m1 m2]", i, got)
		}
		// A caller that changes its claims must not change the cached ones.
		got.Merchants[0] = "evil"
		got.ExpiresAt.Time = got.ExpiresAt.Add(1000 * time.Hour)
	}
	if got, want := v.cache.hits.Load(), uint64(2); got != want {
		t.Errorf("cache hits: got %d, want %d", got, want)
	}
	if got, want := st.calls(), int64(1); got != want {
		t.Errorf("revocation lookups: got %d, want %d (one, by the full verification)", got, want)
	}
	got, _ := v.Verify(context.Background(), tok)
	if got.Merchants[0] != "m1" || !got.ExpiresAt.Equal(testNow.Add(time.Hour)) {
		t.Errorf("cached claims changed by a caller: got %v exp %v, want m1 exp %v", got.Merchants, got.ExpiresAt, testNow.Add(time.Hour))
	}
}

// TestCacheExpiry: a cached token is refused once it expires (exp plus the
// leeway, as without the cache), and no entry outlives CacheTTL.
func TestCacheExpiry(t *testing.T) {
	tests := []struct {
		name    string
		exp     time.Duration // token exp after testNow
		at      time.Duration // second Verify after testNow
		want    error
		wantHit bool
	}{
		{"fresh", time.Hour, 10 * time.Second, nil, true},
		{"past cache ttl, still valid", time.Hour, DefaultCacheTTL, nil, false},
		{"past exp, within leeway", 20 * time.Second, 25 * time.Second, nil, false},
		{"past exp and leeway", 20 * time.Second, 20*time.Second + testLeeway + time.Second, ErrTokenExpired, false},
		{"long past exp", 20 * time.Second, 2 * time.Hour, ErrTokenExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			v, _ := newCachedVerifier(t, c, VerifierOptions{})
			tok := forge(t, goodHeader(), with(goodClaims(), "exp", testNow.Add(tt.exp).Unix()), edSign(key1))
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("first verify: %v", err)
			}
			c.advance(tt.at)
			_, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("verify at +%v: got %v, want %v", c.since0(), err, tt.want)
			}
			if got := v.cache.hits.Load() == 1; got != tt.wantHit {
				t.Errorf("verify at +%v: cache hit %v, want %v", c.since0(), got, tt.wantHit)
			}
		})
	}
}

// TestCacheRevocation: a revoked token is refused within RevocationTTL of
// its revocation, at once when the TTL is negative, and for good once it has
// been refused.
func TestCacheRevocation(t *testing.T) {
	tests := []struct {
		name   string
		ttl    time.Duration // VerifierOptions.RevocationTTL
		bound  time.Duration // the documented bound
		cached bool          // accepted right after the revocation
	}{
		{"default", 0, DefaultRevocationTTL, true},
		{"200ms", 200 * time.Millisecond, 200 * time.Millisecond, true},
		{"every request", -1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			v, st := newCachedVerifier(t, c, VerifierOptions{RevocationTTL: tt.ttl})
			tok := forge(t, goodHeader(), goodClaims(), edSign(key1))
			ctx := context.Background()
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("verify before revocation: %v", err)
			}
			c.advance(tt.bound / 2)
			if err := st.RevokeToken(ctx, "jti-1", testNow.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			_, err := v.Verify(ctx, tok)
			if got := err == nil; got != tt.cached {
				t.Errorf("right after revocation: got error %v, want accepted=%v", err, tt.cached)
			}
			// The bound counts from the last store answer, which is at most
			// the revocation time: at testNow + bound the token is refused.
			c.set(testNow.Add(tt.bound))
			for i := range 2 {
				if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
					t.Errorf("verify %d at +%v after the revocation: got %v, want ErrTokenRevoked", i, tt.bound, err)
				}
			}
			if got := v.cache.len(); got != 0 {
				t.Errorf("cache entries after refusal: got %d, want 0", got)
			}
		})
	}
}

// TestCacheStoreDown: when the revocation store fails at a re-check, a
// cached token is refused with ErrRevocationUnavailable (fail closed) and
// accepted again once the store is back.
func TestCacheStoreDown(t *testing.T) {
	c := newClock()
	v, st := newCachedVerifier(t, c, VerifierOptions{})
	tok := forge(t, goodHeader(), goodClaims(), edSign(key1))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	st.fail(true)
	c.advance(DefaultRevocationTTL)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrRevocationUnavailable) {
		t.Errorf("store down: got %v, want ErrRevocationUnavailable", err)
	}
	st.fail(false)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("store back: got %v, want accepted", err)
	}
}

// TestCacheFlippedByte: after the good token is cached, changing any one of
// its characters gives a token that misses the cache and is refused.
func TestCacheFlippedByte(t *testing.T) {
	c := newClock()
	v, _ := newCachedVerifier(t, c, VerifierOptions{})
	tok := forge(t, goodHeader(), goodClaims(), edSign(key1))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	for i := range len(tok) {
		for _, flip := range []byte{1, 2, 0x20} {
			b := []byte(tok)
			b[i] ^= flip
			bad := string(b)
			if _, err := v.Verify(context.Background(), bad); err == nil {
				t.Fatalf("byte %d ^ %#x: accepted a token that differs from the good one", i, flip)
			}
		}
	}
	if got := v.cache.hits.Load(); got != 0 {
		t.Errorf("cache hits for altered tokens: got %d, want 0", got)
	}
	if got := v.cache.len(); got != 1 {
		t.Errorf("cache entries: got %d, want 1 (refused tokens are not cached)", got)
	}
}

// TestCacheBounded: the cache never holds more than CacheSize tokens, and
// an evicted token still verifies (in full).
func TestCacheBounded(t *testing.T) {
	c := newClock()
	const size = 3
	v, _ := newCachedVerifier(t, c, VerifierOptions{CacheSize: size})
	var toks []string
	for i := range 10 {
		toks = append(toks, forge(t, goodHeader(), with(goodClaims(), "jti", "jti-"+strconv.Itoa(i)), edSign(key1)))
	}
	for round := range 2 {
		for i, tok := range toks {
			got, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("round %d token %d: %v", round, i, err)
			}
			if want := "jti-" + strconv.Itoa(i); got.ID != want {
				t.Fatalf("round %d token %d: got jti %s, want %s", round, i, got.ID, want)
			}
			if n := v.cache.len(); n > size {
				t.Fatalf("round %d token %d: %d cache entries, want at most %d", round, i, n, size)
			}
		}
	}
}

// TestCacheOff: with CacheSize < 0 every Verify asks the store.
func TestCacheOff(t *testing.T) {
	c := newClock()
	v, st := newCachedVerifier(t, c, VerifierOptions{CacheSize: -1})
	tok := forge(t, goodHeader(), goodClaims(), edSign(key1))
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := st.calls(), int64(3); got != want {
		t.Errorf("revocation lookups: got %d, want %d", got, want)
	}
}

// TestCacheConcurrent exercises the cache from several goroutines (run with
// -race) while the clock moves past the revocation TTL.
func TestCacheConcurrent(t *testing.T) {
	c := newClock()
	v, _ := newCachedVerifier(t, c, VerifierOptions{CacheSize: 4})
	var toks []string
	for i := range 8 {
		toks = append(toks, forge(t, goodHeader(), with(goodClaims(), "jti", "j"+strconv.Itoa(i)), edSign(key1)))
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				if g == 0 && i%50 == 0 {
					c.advance(DefaultRevocationTTL)
				}
				if _, err := v.Verify(context.Background(), toks[(g+i)%len(toks)]); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := failed.Load(); got != 0 {
		t.Errorf("failed verifications: got %d, want 0", got)
	}
	if n := v.cache.len(); n > 4 {
		t.Errorf("cache entries: got %d, want at most 4", n)
	}
}
