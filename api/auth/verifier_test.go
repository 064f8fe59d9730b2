package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The fixed clock of every test.
var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const testLeeway = 30 * time.Second

func seedKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

var (
	key1 = SigningKey{ID: "k1", Private: seedKey(1)}
	key2 = SigningKey{ID: "k2", Private: seedKey(100)}
)

func pub(k SigningKey) PublicKey {
	return PublicKey{ID: k.ID, Key: k.Private.Public().(ed25519.PublicKey)}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forge builds a compact JWS by hand, without the jwt library, so tests can
// make tokens the library would refuse to make. sign gets the signing input.
func forge(t testing.TB, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	return input + "." + b64(sign([]byte(input)))
}

func edSign(k SigningKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(k.Private, in) }
}

func goodHeader() map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "kairos+jwt", "kid": "k1"}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss":       DefaultIssuer,
		"aud":       []string{DefaultAudience},
		"sub":       "crm-app",
		"exp":       testNow.Add(time.Hour).Unix(),
		"iat":       testNow.Add(-time.Minute).Unix(),
		"nbf":       testNow.Add(-time.Minute).Unix(),
		"jti":       "jti-1",
		"role":      "partner",
		"merchants": []string{"m1", "m2"},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(m, k)
		} else {
			m[k] = kv[i+1]
		}
	}
	return m
}

func newTestVerifier(t testing.TB, store RevocationStore, keys ...PublicKey) *Verifier {
	t.Helper()
	if len(keys) == 0 {
		keys = []PublicKey{pub(key1)}
	}
	if store == nil {
		store = NewMemoryRevocations(func() time.Time { return testNow })
	}
	v, err := NewVerifier(VerifierOptions{
		Keys:        keys,
		Issuer:      DefaultIssuer,
		Audience:    DefaultAudience,
		Leeway:      testLeeway,
		Revocations: store,
		Now:         func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// replacePart swaps one dot-separated segment of a token.
func replacePart(tok string, i int, seg string) string {
	p := strings.Split(tok, ".")
	p[i] = seg
	return strings.Join(p, ".")
}

func TestVerifyMatrix(t *testing.T) {
	pubBytes := []byte(key1.Private.Public().(ed25519.PublicKey))
	good := forge(t, goodHeader(), goodClaims(), edSign(key1))

	store := NewMemoryRevocations(func() time.Time { return testNow })
	if err := store.RevokeToken(context.Background(), "revoked-jti", testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// A tampered payload: the same signature over a token that now claims admin.
	tamperedPayload := replacePart(good, 1, b64(mustJSON(t, with(goodClaims(), "role", "admin", "merchants", nil))))
	// A tampered signature: flip one bit of the first signature byte.
	sig, err := base64.RawURLEncoding.DecodeString(strings.Split(good, ".")[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[0] ^= 1
	tamperedSig := replacePart(good, 2, b64(sig))

	tests := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"valid partner", good, nil},
		{"valid merchant",
			forge(t, goodHeader(), with(goodClaims(), "sub", "m1", "role", "merchant", "merchants", []string{"m1"}), edSign(key1)), nil},
		{"valid admin without nbf",
			forge(t, goodHeader(), with(goodClaims(), "role", "admin", "merchants", nil, "nbf", nil), edSign(key1)), nil},
		{"aud as a single string",
			forge(t, goodHeader(), with(goodClaims(), "aud", DefaultAudience), edSign(key1)), nil},
		{"expired within leeway",
			forge(t, goodHeader(), with(goodClaims(), "exp", testNow.Add(-testLeeway/2).Unix()), edSign(key1)), nil},

		{"alg none", forge(t, with(goodHeader(), "alg", "none"), goodClaims(),
			func([]byte) []byte { return nil }), ErrWrongAlgorithm},
		{"alg None mixed case", forge(t, with(goodHeader(), "alg", "None"), goodClaims(),
			func([]byte) []byte { return nil }), ErrWrongAlgorithm},
		{"HS256 keyed with the public key", forge(t, with(goodHeader(), "alg", "HS256"), goodClaims(),
			func(in []byte) []byte { m := hmac.New(sha256.New, pubBytes); m.Write(in); return m.Sum(nil) }), ErrWrongAlgorithm},
		{"RS256 header", forge(t, with(goodHeader(), "alg", "RS256"), goodClaims(),
			func([]byte) []byte { return make([]byte, 256) }), ErrWrongAlgorithm},
		{"ES256 header over an Ed25519 signature", forge(t, with(goodHeader(), "alg", "ES256"), goodClaims(), edSign(key1)), ErrWrongAlgorithm},
		{"missing alg", forge(t, with(goodHeader(), "alg", nil), goodClaims(), edSign(key1)), ErrWrongAlgorithm},

		{"wrong aud", forge(t, goodHeader(), with(goodClaims(), "aud", []string{"other-api"}), edSign(key1)), ErrWrongAudience},
		{"missing aud", forge(t, goodHeader(), with(goodClaims(), "aud", nil), edSign(key1)), ErrMissingClaim},
		{"empty aud", forge(t, goodHeader(), with(goodClaims(), "aud", []string{}), edSign(key1)), ErrMissingClaim},
		{"wrong iss", forge(t, goodHeader(), with(goodClaims(), "iss", "evil"), edSign(key1)), ErrWrongIssuer},
		{"missing iss", forge(t, goodHeader(), with(goodClaims(), "iss", nil), edSign(key1)), ErrMissingClaim},
		{"missing exp", forge(t, goodHeader(), with(goodClaims(), "exp", nil), edSign(key1)), ErrMissingClaim},
		{"missing sub", forge(t, goodHeader(), with(goodClaims(), "sub", nil), edSign(key1)), ErrMissingClaim},
		{"missing jti", forge(t, goodHeader(), with(goodClaims(), "jti", nil), edSign(key1)), ErrMissingClaim},
		{"jti too long", forge(t, goodHeader(), with(goodClaims(), "jti", strings.Repeat("j", MaxTokenIDSize+1)), edSign(key1)), ErrTokenMalformed},
		{"jti at the limit", forge(t, goodHeader(), with(goodClaims(), "jti", strings.Repeat("j", MaxTokenIDSize)), edSign(key1)), nil},
		{"missing iat", forge(t, goodHeader(), with(goodClaims(), "iat", nil), edSign(key1)), ErrMissingClaim},
		{"expired beyond leeway",
			forge(t, goodHeader(), with(goodClaims(), "exp", testNow.Add(-2*testLeeway).Unix()), edSign(key1)), ErrTokenExpired},
		{"nbf in the future",
			forge(t, goodHeader(), with(goodClaims(), "nbf", testNow.Add(time.Hour).Unix()), edSign(key1)), ErrTokenNotYetValid},
		{"iat in the future",
			forge(t, goodHeader(), with(goodClaims(), "iat", testNow.Add(time.Hour).Unix()), edSign(key1)), ErrTokenNotYetValid},
		{"exp is a string",
			forge(t, goodHeader(), with(goodClaims(), "exp", "tomorrow"), edSign(key1)), ErrTokenMalformed},

		{"unknown kid", forge(t, with(goodHeader(), "kid", "nope"), goodClaims(), edSign(key1)), ErrUnknownKey},
		{"missing kid", forge(t, with(goodHeader(), "kid", nil), goodClaims(), edSign(key1)), ErrUnknownKey},
		{"kid not a string", forge(t, with(goodHeader(), "kid", 1), goodClaims(), edSign(key1)), ErrUnknownKey},
		{"rotated-out key", forge(t, with(goodHeader(), "kid", "k2"), goodClaims(), edSign(key2)), ErrUnknownKey},
		{"known kid, other key's signature", forge(t, goodHeader(), goodClaims(), edSign(key2)), ErrBadSignature},
		{"typ with media type prefix, any case",
			forge(t, with(goodHeader(), "typ", "Application/Kairos+JWT"), goodClaims(), edSign(key1)), nil},
		{"typ JWT", forge(t, with(goodHeader(), "typ", "JWT"), goodClaims(), edSign(key1)), ErrWrongType},
		{"typ application/jwt", forge(t, with(goodHeader(), "typ", "application/jwt"), goodClaims(), edSign(key1)), ErrWrongType},
		{"typ with a suffix", forge(t, with(goodHeader(), "typ", "kairos+jwt2"), goodClaims(), edSign(key1)), ErrWrongType},
		{"typ not a string", forge(t, with(goodHeader(), "typ", 1), goodClaims(), edSign(key1)), ErrWrongType},
		{"missing typ", forge(t, with(goodHeader(), "typ", nil), goodClaims(), edSign(key1)), ErrWrongType},
		{"crit header", forge(t, with(goodHeader(), "crit", []string{"exp"}), goodClaims(), edSign(key1)), ErrTokenMalformed},

		{"tampered payload", tamperedPayload, ErrBadSignature},
		{"tampered signature", tamperedSig, ErrBadSignature},
		{"truncated signature", replacePart(good, 2, b64(sig[:32])), ErrBadSignature},
		{"revoked jti", forge(t, goodHeader(), with(goodClaims(), "jti", "revoked-jti"), edSign(key1)), ErrTokenRevoked},

		{"merchant with zero merchants",
			forge(t, goodHeader(), with(goodClaims(), "sub", "m1", "role", "merchant", "merchants", nil), edSign(key1)), ErrInvalidMerchants},
		{"merchant with two merchants",
			forge(t, goodHeader(), with(goodClaims(), "sub", "m1", "role", "merchant", "merchants", []string{"m1", "m2"}), edSign(key1)), ErrInvalidMerchants},
		{"merchant scoped to another merchant",
			forge(t, goodHeader(), with(goodClaims(), "sub", "m1", "role", "merchant", "merchants", []string{"m2"}), edSign(key1)), ErrInvalidMerchants},
		{"partner with no merchants",
			forge(t, goodHeader(), with(goodClaims(), "merchants", []string{}), edSign(key1)), ErrInvalidMerchants},
		{"partner with a repeated merchant",
			forge(t, goodHeader(), with(goodClaims(), "merchants", []string{"m1", "m1"}), edSign(key1)), ErrInvalidMerchants},
		{"admin with merchants",
			forge(t, goodHeader(), with(goodClaims(), "role", "admin"), edSign(key1)), ErrInvalidMerchants},
		{"unknown role", forge(t, goodHeader(), with(goodClaims(), "role", "root"), edSign(key1)), ErrInvalidRole},
		{"missing role", forge(t, goodHeader(), with(goodClaims(), "role", nil), edSign(key1)), ErrInvalidRole},
		{"role in upper case", forge(t, goodHeader(), with(goodClaims(), "role", "ADMIN", "merchants", nil), edSign(key1)), ErrInvalidRole},

		{"two segments", strings.Join(strings.Split(good, ".")[:2], "."), ErrTokenMalformed},
		{"four segments", good + ".x", ErrTokenMalformed},
		{"empty", "", ErrTokenMalformed},
		{"padded signature", good + "==", ErrTokenMalformed},
		{"header not JSON", replacePart(good, 0, b64([]byte("{"))), ErrTokenMalformed},
		{"oversized", good + strings.Repeat("A", MaxTokenSize), ErrTokenMalformed},
	}
	v := newTestVerifier(t, store)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: got error %v, want accepted", err)
				}
				if got.Subject == "" || !got.Role.Valid() {
					t.Errorf("Verify: got claims %+v, want a subject and a valid role", got)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: got error %v, want %v", err, tt.want)
			}
			if !errors.Is(err, ErrTokenInvalid) {
				t.Errorf("Verify: got error %v, want it to match ErrTokenInvalid", err)
			}
			if got != nil {
				t.Errorf("Verify: got claims %+v with an error, want nil", got)
			}
		})
	}
}

// TestVerifyClaimsValues checks the decoded claims against the values put into
// a hand-made token.
func TestVerifyClaimsValues(t *testing.T) {
	v := newTestVerifier(t, nil)
	got, err := v.Verify(context.Background(), forge(t, goodHeader(), goodClaims(), edSign(key1)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "crm-app" || got.Role != RolePartner || got.ID != "jti-1" ||
		strings.Join(got.Merchants, ",") != "m1,m2" || !got.ExpiresAt.Equal(testNow.Add(time.Hour)) {
		t.Errorf("claims: got %+v, want sub crm-app, role partner, jti-1, merchants m1,m2, exp now+1h", got)
	}
}

type failingStore struct{}

func (failingStore) RevokeToken(context.Context, string, time.Time) error { return errors.New("down") }
func (failingStore) IsTokenRevoked(context.Context, string) (bool, error) {
	return false, errors.New("connection refused")
}

func TestVerifyRevocationStoreDown(t *testing.T) {
	v := newTestVerifier(t, failingStore{})
	_, err := v.Verify(context.Background(), forge(t, goodHeader(), goodClaims(), edSign(key1)))
	if !errors.Is(err, ErrRevocationUnavailable) {
		t.Fatalf("got error %v, want ErrRevocationUnavailable", err)
	}
	if errors.Is(err, ErrTokenInvalid) {
		t.Errorf("got error %v matching ErrTokenInvalid, want a store failure kept apart from a bad token", err)
	}
}

// TestRotation walks through a key rotation: both keys verify while the old
// one is still published, and the old one's tokens fail once it is removed.
func TestRotation(t *testing.T) {
	old := forge(t, goodHeader(), goodClaims(), edSign(key1))
	newer := forge(t, with(goodHeader(), "kid", "k2"), goodClaims(), edSign(key2))
	steps := []struct {
		name      string
		keys      []PublicKey
		oldWant   error
		newerWant error
	}{
		{"before", []PublicKey{pub(key1)}, nil, ErrUnknownKey},
		{"overlap", []PublicKey{pub(key1), pub(key2)}, nil, nil},
		{"after", []PublicKey{pub(key2)}, ErrUnknownKey, nil},
	}
	for _, s := range steps {
		v := newTestVerifier(t, nil, s.keys...)
		if _, err := v.Verify(context.Background(), old); !errors.Is(err, s.oldWant) {
			t.Errorf("%s: old-key token: got %v, want %v", s.name, err, s.oldWant)
		}
		if _, err := v.Verify(context.Background(), newer); !errors.Is(err, s.newerWant) {
			t.Errorf("%s: new-key token: got %v, want %v", s.name, err, s.newerWant)
		}
	}
}

func TestNewVerifierOptions(t *testing.T) {
	store := NewMemoryRevocations(nil)
	base := func() VerifierOptions {
		return VerifierOptions{Keys: []PublicKey{pub(key1)}, Issuer: "i", Audience: "a", Revocations: store}
	}
	tests := []struct {
		name   string
		mutate func(*VerifierOptions)
		ok     bool
	}{
		{"valid", func(*VerifierOptions) {}, true},
		{"no keys", func(o *VerifierOptions) { o.Keys = nil }, false},
		{"duplicate kid", func(o *VerifierOptions) { o.Keys = append(o.Keys, pub(key1)) }, false},
		{"empty kid", func(o *VerifierOptions) { o.Keys[0].ID = "" }, false},
		{"short key", func(o *VerifierOptions) { o.Keys[0].Key = o.Keys[0].Key[:31] }, false},
		{"no issuer", func(o *VerifierOptions) { o.Issuer = "" }, false},
		{"no audience", func(o *VerifierOptions) { o.Audience = "" }, false},
		{"negative leeway", func(o *VerifierOptions) { o.Leeway = -time.Second }, false},
		{"huge leeway", func(o *VerifierOptions) { o.Leeway = time.Hour }, false},
		{"no revocation store", func(o *VerifierOptions) { o.Revocations = nil }, false},
		{"cache off", func(o *VerifierOptions) { o.CacheSize = -1 }, true},
		{"negative cache ttl", func(o *VerifierOptions) { o.CacheTTL = -time.Second }, false},
		{"revocation checked every time", func(o *VerifierOptions) { o.RevocationTTL = -1 }, true},
	}
	for _, tt := range tests {
		o := base()
		tt.mutate(&o)
		_, err := NewVerifier(o)
		if got := err == nil; got != tt.ok {
			t.Errorf("%s: NewVerifier error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestMayAccess(t *testing.T) {
	tests := []struct {
		role      Role
		merchants []string
		merchant  string
		want      bool
	}{
		{RoleAdmin, nil, "m1", true},
		{RoleMerchant, []string{"m1"}, "m1", true},
		{RoleMerchant, []string{"m1"}, "m2", false},
		{RolePartner, []string{"m1", "m2"}, "m2", true},
		{RolePartner, []string{"m1", "m2"}, "m3", false},
		{RolePartner, []string{"m1"}, "", false},
		{RoleCompliance, nil, "m1", false},
		{Role("root"), []string{"m1"}, "m1", false},
	}
	for _, tt := range tests {
		c := &Claims{Role: tt.role, Merchants: tt.merchants}
		if got := c.MayAccess(tt.merchant); got != tt.want {
			t.Errorf("MayAccess(%s %v, %q): got %v, want %v", tt.role, tt.merchants, tt.merchant, got, tt.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good := forge(f, goodHeader(), goodClaims(), edSign(key1))
	f.Add(good)
	f.Add(forge(f, with(goodHeader(), "alg", "none"), goodClaims(), func([]byte) []byte { return nil }))
	f.Add(replacePart(good, 1, b64([]byte(`{"exp":1e309}`))))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	v := newTestVerifier(f, nil)
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			if c != nil {
				t.Fatalf("claims %+v returned with error %v", c, err)
			}
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("error %v does not match ErrTokenInvalid", err)
			}
			return
		}
		// Anything accepted must carry a signature by key1 over its first two
		// segments: check it independently of the jwt library.
		p := strings.Split(tok, ".")
		sig, err := base64.RawURLEncoding.DecodeString(p[2])
		if err != nil || !ed25519.Verify(key1.Private.Public().(ed25519.PublicKey), []byte(p[0]+"."+p[1]), sig) {
			t.Fatalf("accepted %q without a valid key1 signature", tok)
		}
	})
}

// TestSubjectControlCharacters: a token's subject and merchant ids become
// the actor ("role:subject") and the merchant of audit entries, which must
// be text without NUL. A subject or merchant id holding a control character
// (NUL, newline, escape) was issued and verified; an admin token so made left
// every action of its holder unloggable (its reloads took effect with their
// audit entry refused). Issue and Verify now refuse them.
func TestSubjectControlCharacters(t *testing.T) {
	iss, err := NewIssuer(IssuerOptions{Key: key1, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, nil)
	for _, c := range []struct {
		subject   string
		merchants []string
	}{
		{"ops\x00", nil}, {"ops\nINFO forged log line", nil}, {"crm-app", []string{"m1\x1b[31m"}},
	} {
		role := RoleAdmin
		if c.merchants != nil {
			role = RolePartner
		}
		if _, _, err := iss.Issue(Grant{Subject: c.subject, Role: role, Merchants: c.merchants, TTL: time.Hour}); err == nil {
			t.Errorf("Issue(%q, %q): issued", c.subject, c.merchants)
		}
		claims := with(goodClaims(), "sub", c.subject, "role", string(role), "merchants", c.merchants)
		tok := forge(t, goodHeader(), claims, edSign(key1))
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("Verify(sub %q, merchants %q): %v, want refused", c.subject, c.merchants, err)
		}
	}
	// Printable non-ASCII is fine.
	if _, _, err := iss.Issue(Grant{Subject: "café-app", Role: RolePartner, Merchants: []string{"m1"}, TTL: time.Hour}); err != nil {
		t.Errorf("printable subject refused: %v", err)
	}
}
