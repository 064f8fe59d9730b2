package auth

import (
	"errors"
	"testing"
	"time"
)

// TestVerifyLifetime: a token whose exp − iat exceeds its role's bound is
// refused with ErrTokenLifetime (an ErrTokenInvalid) while it is otherwise
// valid; DefaultMaxTTL is 30 days, 90 for merchants; VerifierOptions.MaxTTL
// replaces it, and a bound of 0 leaves the role unbounded.
func TestVerifyLifetime(t *testing.T) {
	const day = 24 * time.Hour
	iat := testNow.Add(-time.Minute)
	token := func(role string, life time.Duration, merchants ...string) string {
		c := with(goodClaims(), "role", role, "iat", iat.Unix(), "exp", iat.Add(life).Unix(), "merchants", nil)
		if len(merchants) > 0 {
			c["merchants"] = merchants
		}
		if role == "merchant" {
			c["sub"] = merchants[0]
		}
		return forge(t, goodHeader(), c, edSign(key1))
	}
	century := 100 * 365 * day
	tests := []struct {
		name   string
		tok    string
		maxTTL func(Role) time.Duration
		ok     bool
	}{
		{"partner, 100 years", token("partner", century, "m1"), nil, false},
		{"partner, 30 days + 1 s", token("partner", 30*day+time.Second, "m1"), nil, false},
		{"partner, 30 days", token("partner", 30*day, "m1"), nil, true},
		{"admin, 31 days", token("admin", 31*day), nil, false},
		{"compliance, 30 days", token("compliance", 30*day), nil, true},
		{"merchant, 90 days", token("merchant", 90*day, "m1"), nil, true},
		{"merchant, 91 days", token("merchant", 91*day, "m1"), nil, false},
		{"policy: partner 1h, token 2h", token("partner", 2*time.Hour, "m1"), func(Role) time.Duration { return time.Hour }, false},
		{"policy: partner 1h, token 1h", token("partner", time.Hour, "m1"), func(Role) time.Duration { return time.Hour }, true},
		{"unbounded role", token("partner", century, "m1"), func(Role) time.Duration { return 0 }, true},
	}
	for _, tt := range tests {
		v, err := NewVerifier(VerifierOptions{
			Keys: []PublicKey{pub(key1)}, Issuer: DefaultIssuer, Audience: DefaultAudience,
			Revocations: NewMemoryRevocations(nil), Now: func() time.Time { return testNow }, MaxTTL: tt.maxTTL,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(t.Context(), tt.tok)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: got %v, want accepted", tt.name, err)
		case !tt.ok && (!errors.Is(err, ErrTokenLifetime) || !errors.Is(err, ErrTokenInvalid)):
			t.Errorf("%s: got %v, want ErrTokenLifetime (an ErrTokenInvalid)", tt.name, err)
		}
	}
}
