package auth

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxLeeway bounds VerifierOptions.Leeway: clock skew beyond a few minutes is a
// misconfiguration, not something to paper over.
const MaxLeeway = 5 * time.Minute

// MaxTokenSize bounds the length of a token Verify will look at.
const MaxTokenSize = 8 << 10

// MaxTokenIDSize bounds the jti Verify passes to the revocation store.
const MaxTokenIDSize = 128

// PublicKey is an Ed25519 verification key and its key id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// RevocationStore records revoked token ids until the tokens expire.
// The store packages implement it; MemoryRevocations is for tests and tools.
type RevocationStore interface {
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	IsTokenRevoked(ctx context.Context, jti string) (bool, error)
}

// VerifierOptions configure NewVerifier.
type VerifierOptions struct {
	// Keys are the accepted verification keys by kid. A key removed after a
	// rotation is simply left out. At least one is required.
	Keys []PublicKey
	// Issuer is the required "iss"; Audience the audience that "aud" must
	// contain. Both required.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat; 0 means none.
	Leeway time.Duration
	// Revocations answers whether a jti was revoked. Required: a verifier that
	// silently skipped revocation would fail open.
	Revocations RevocationStore
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// MaxTTL returns the longest lifetime (exp − iat) a token of role may
	// have; a longer-lived one is refused with ErrTokenLifetime even before
	// it expires. DefaultMaxTTL when nil; a result of 0 or less leaves the
	// role unbounded (for tools that inspect tokens, not for servers).
	MaxTTL func(role Role) time.Duration

	// CacheSize bounds the verified-token cache: a token that passed every
	// check is remembered by the SHA-256 of its bytes, and the same token is
	// then accepted without parsing it or checking its signature again.
	// 0 means DefaultCacheSize; negative turns the cache off.
	CacheSize int
	// CacheTTL is the longest a cached token is trusted; it is never trusted
	// past its exp either. 0 means DefaultCacheTTL.
	CacheTTL time.Duration
	// RevocationTTL is the longest a cached token's "not revoked" answer from
	// Revocations is reused before the store is asked again, and so the
	// longest a revoked token can still be accepted by this Verifier.
	// 0 means DefaultRevocationTTL (1 s); negative asks the store on every
	// Verify (the signature check is still cached). Without the cache the
	// store is asked on every Verify.
	RevocationTTL time.Duration
}

// verificationKey is what a kid maps to: the key and the one alg it may be
// used with.
type verificationKey struct {
	key ed25519.PublicKey
	alg string
}

// Verifier checks Kairos tokens. It is safe for concurrent use.
type Verifier struct {
	keys    map[string]verificationKey
	revoked RevocationStore
	parser  *jwt.Parser
	now     func() time.Time
	cache   *tokenCache // nil when off
	revTTL  time.Duration
	maxTTL  func(Role) time.Duration
}

// NewVerifier checks opts and returns a Verifier.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("new verifier: no keys")
	}
	keys := make(map[string]verificationKey, len(opts.Keys))
	for _, k := range opts.Keys {
		if k.ID == "" {
			return nil, errors.New("new verifier: key with empty id")
		}
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("new verifier: key %q: public key has %d bytes, want %d", k.ID, len(k.Key), ed25519.PublicKeySize)
		}
		if _, dup := keys[k.ID]; dup {
			return nil, fmt.Errorf("new verifier: key %q listed twice", k.ID)
		}
		keys[k.ID] = verificationKey{key: append(ed25519.PublicKey(nil), k.Key...), alg: Algorithm}
	}
	if opts.Issuer == "" {
		return nil, errors.New("new verifier: issuer is empty")
	}
	if opts.Audience == "" {
		return nil, errors.New("new verifier: audience is empty")
	}
	if opts.Leeway < 0 || opts.Leeway > MaxLeeway {
		return nil, fmt.Errorf("new verifier: leeway %v outside [0, %v]", opts.Leeway, MaxLeeway)
	}
	if opts.Revocations == nil {
		return nil, errors.New("new verifier: no revocation store")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.CacheTTL < 0 {
		return nil, fmt.Errorf("new verifier: negative cache ttl %v", opts.CacheTTL)
	}
	var cache *tokenCache
	if opts.CacheSize >= 0 {
		cache = newTokenCache(cmp.Or(opts.CacheSize, DefaultCacheSize), cmp.Or(opts.CacheTTL, DefaultCacheTTL))
	}
	maxTTL := opts.MaxTTL
	if maxTTL == nil {
		maxTTL = DefaultMaxTTL
	}
	return &Verifier{
		maxTTL:  maxTTL,
		keys:    keys,
		revoked: opts.Revocations,
		now:     now,
		cache:   cache,
		revTTL:  cmp.Or(opts.RevocationTTL, DefaultRevocationTTL),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{Algorithm}),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// Verify checks token and returns its claims. Errors match ErrTokenInvalid
// when the token is bad, and ErrRevocationUnavailable when the revocation
// store failed; either way the token must be refused.
//
// A token that verified is cached (see VerifierOptions.CacheSize): until
// min(its exp, CacheTTL after it was verified) the same bytes skip parsing
// and the signature check, and the revocation store is asked again only when
// its last answer for the token is older than RevocationTTL.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("verify token: %w: %d bytes, limit %d", ErrTokenMalformed, len(token), MaxTokenSize)
	}
	if v.cache == nil {
		return v.verify(ctx, token)
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if e := v.cache.get(key, now); e != nil {
		if now.UnixNano()-e.revokedAt.Load() < int64(v.revTTL) {
			return cloneClaims(e.claims), nil
		}
		if err := v.checkRevoked(ctx, e.claims.ID); err != nil {
			if errors.Is(err, ErrTokenRevoked) {
				v.cache.drop(key, e)
			}
			return nil, err
		}
		e.revokedAt.Store(now.UnixNano())
		return cloneClaims(e.claims), nil
	}
	claims, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.cache.put(key, cloneClaims(claims), now)
	return claims, nil
}

// checkRevoked asks the revocation store about jti.
func (v *Verifier) checkRevoked(ctx context.Context, jti string) error {
	revoked, err := v.revoked.IsTokenRevoked(ctx, jti)
	if err != nil {
		return fmt.Errorf("verify token: %w: %w", ErrRevocationUnavailable, err)
	}
	if revoked {
		return fmt.Errorf("verify token: %w", ErrTokenRevoked)
	}
	return nil
}

// verify checks token in full: parse, signature, claims, revocation.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	claims := new(Claims)
	t, err := v.parser.ParseWithClaims(token, claims, v.keyFor)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", classify(t, err))
	}
	// The parser checked exp (required), nbf and iat (when present), iss and
	// aud. What it leaves to us: the claims it treats as optional, and ours.
	switch {
	case claims.Subject == "":
		return nil, fmt.Errorf("verify token: %w: sub", ErrMissingClaim)
	case claims.ID == "":
		return nil, fmt.Errorf("verify token: %w: jti", ErrMissingClaim)
	case claims.IssuedAt == nil:
		return nil, fmt.Errorf("verify token: %w: iat", ErrMissingClaim)
	case len(claims.ID) > MaxTokenIDSize:
		// The jti goes to the revocation store; keep it to a sane key size.
		return nil, fmt.Errorf("verify token: %w: jti of %d bytes, limit %d", ErrTokenMalformed, len(claims.ID), MaxTokenIDSize)
	}
	if err := validateScope(claims.Role, claims.Subject, claims.Merchants); err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	if max := v.maxTTL(claims.Role); max > 0 {
		if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > max {
			return nil, fmt.Errorf("verify token: %w: %v, at most %v for role %s", ErrTokenLifetime, life, max, claims.Role)
		}
	}
	if err := v.checkRevoked(ctx, claims.ID); err != nil {
		return nil, err
	}
	return claims, nil
}

// keyFor checks the header fields the library leaves alone (typ, kid, crit)
// and returns the key for the kid. The parser has already pinned alg.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !isTokenType(typ) {
		return nil, ErrWrongType
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 section 4.1.11: extensions we do not understand must be refused.
		return nil, fmt.Errorf("%w: crit header", ErrTokenMalformed)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	k, ok := v.keys[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	if t.Method == nil || t.Method.Alg() != k.alg {
		return nil, ErrWrongAlgorithm
	}
	return k.key, nil
}

// isTokenType reports whether a typ header names TokenType. RFC 7515
// section 4.1.9: media types compare case-insensitively, and a typ without
// a slash stands for "application/" and the value.
func isTokenType(typ string) bool {
	return strings.TrimPrefix(strings.ToLower(typ), "application/") == TokenType
}

// classify turns a parser error into one of the package's sentinels.
func classify(t *jwt.Token, err error) error {
	// Our own sentinels, returned from keyFor, come first.
	for _, e := range []error{ErrWrongType, ErrUnknownKey, ErrWrongAlgorithm, ErrTokenMalformed} {
		if errors.Is(err, e) {
			return e
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrTokenMalformed
	case t != nil && t.Header != nil && t.Header["alg"] != Algorithm:
		// alg none, HS256, RS256, missing or unregistered alg.
		return ErrWrongAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrWrongAudience
	}
	// Claims of the wrong JSON type and anything the library adds later.
	return ErrTokenMalformed
}
