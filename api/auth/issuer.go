package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SigningKey is an Ed25519 private key and its key id ("kid").
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// IssuerOptions configure NewIssuer.
type IssuerOptions struct {
	// Key signs every token; its ID goes into the "kid" header. Required.
	Key SigningKey
	// Issuer is the "iss" claim; DefaultIssuer when empty.
	Issuer string
	// Audience is the "aud" claim; DefaultAudience when empty.
	Audience string
	// Rand supplies the token ids; crypto/rand when nil.
	Rand io.Reader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Issuer signs Kairos tokens with one key.
type Issuer struct {
	key      SigningKey
	issuer   string
	audience string
	rand     io.Reader
	now      func() time.Time
}

// NewIssuer checks opts and returns an Issuer.
func NewIssuer(opts IssuerOptions) (*Issuer, error) {
	if opts.Key.ID == "" {
		return nil, errors.New("new issuer: key id is empty")
	}
	if len(opts.Key.Private) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new issuer: key %q: private key has %d bytes, want %d",
			opts.Key.ID, len(opts.Key.Private), ed25519.PrivateKeySize)
	}
	i := &Issuer{
		key:      opts.Key,
		issuer:   opts.Issuer,
		audience: opts.Audience,
		rand:     opts.Rand,
		now:      opts.Now,
	}
	if i.issuer == "" {
		i.issuer = DefaultIssuer
	}
	if i.audience == "" {
		i.audience = DefaultAudience
	}
	if i.rand == nil {
		i.rand = rand.Reader
	}
	if i.now == nil {
		i.now = time.Now
	}
	return i, nil
}

// Grant is what a new token says about its holder.
type Grant struct {
	Subject   string
	Role      Role
	Merchants []string
	// TTL is the lifetime from now; must be positive.
	TTL time.Duration
}

// Issue signs a token for g and returns it with its claims. It refuses grants
// that Verify would reject (unknown role, merchant scope that does not fit).
func (i *Issuer) Issue(g Grant) (string, *Claims, error) {
	if g.Subject == "" {
		return "", nil, errors.New("issue token: subject is empty")
	}
	if g.TTL <= 0 {
		return "", nil, fmt.Errorf("issue token: ttl %v is not positive", g.TTL)
	}
	if err := validateScope(g.Role, g.Subject, g.Merchants); err != nil {
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	var id [16]byte
	if _, err := io.ReadFull(i.rand, id[:]); err != nil {
		return "", nil, fmt.Errorf("issue token: token id: %w", err)
	}
	// JWT times have second precision; truncate so the returned claims equal
	// what a verifier will decode.
	now := i.now().UTC().Truncate(time.Second)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   g.Subject,
			Audience:  jwt.ClaimStrings{i.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(g.TTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		},
		Role:      g.Role,
		Merchants: append([]string(nil), g.Merchants...),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = i.key.ID
	t.Header["typ"] = TokenType
	s, err := t.SignedString(i.key.Private)
	if err != nil {
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	return s, c, nil
}
