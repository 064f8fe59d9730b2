package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RFC 8037 appendix A: the example Ed25519 key, its thumbprint and a JWS.
const (
	rfcD          = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfcX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfcThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	rfcJWS        = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc." +
		"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func TestJWKSRFC8037(t *testing.T) {
	keys, err := ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfcX + `","kid":"rfc"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := base64.RawURLEncoding.DecodeString(rfcD)
	if err != nil {
		t.Fatal(err)
	}
	want := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if len(keys) != 1 || keys[0].ID != "rfc" || !keys[0].Key.Equal(want) {
		t.Fatalf("ParseJWKS: got %+v, want kid rfc with the public key of RFC 8037 A.1's d", keys)
	}
	if got := Thumbprint(keys[0].Key); got != rfcThumbprint {
		t.Errorf("Thumbprint: got %s, want %s (RFC 8037 A.3)", got, rfcThumbprint)
	}
	p := strings.Split(rfcJWS, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(p[2])
	if err := jwt.SigningMethodEdDSA.Verify(p[0]+"."+p[1], sig, keys[0].Key); err != nil {
		t.Errorf("RFC 8037 A.4 JWS does not verify with the parsed key: %v", err)
	}
	// And our own JWKS writes x exactly as the RFC does.
	s := NewJWKS([]PublicKey{{ID: "rfc", Key: want}})
	if s.Keys[0].X != rfcX || s.Keys[0].Kty != "OKP" || s.Keys[0].Crv != "Ed25519" || s.Keys[0].Alg != "EdDSA" || s.Keys[0].Use != "sig" {
		t.Errorf("NewJWKS: got %+v, want kty OKP, crv Ed25519, x %s, alg EdDSA, use sig", s.Keys[0], rfcX)
	}
}

// TestJWKSRoundTrip: a verifier built from a published JWKS accepts tokens
// of the issuer's active key.
func TestJWKSRoundTrip(t *testing.T) {
	doc, err := json.Marshal(NewJWKS([]PublicKey{pub(key1), pub(key2)}))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "k2" || !keys[1].Key.Equal(pub(key2).Key) {
		t.Fatalf("round trip: got %+v", keys)
	}
	iss := newTestIssuer(t, key2)
	tok, _, err := iss.Issue(Grant{Subject: "a", Role: RoleAdmin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTestVerifier(t, nil, keys...).Verify(context.Background(), tok); err != nil {
		t.Errorf("verify with keys from JWKS: %v", err)
	}
}

func TestParseJWKSErrors(t *testing.T) {
	okKey := `"kty":"OKP","crv":"Ed25519","x":"` + rfcX + `"`
	tests := []struct {
		name, doc, want string
	}{
		{"not JSON", `{`, "parse jwks: unexpected EOF"},
		{"no keys member", `{}`, `parse jwks: no "keys" member`},
		{"trailing data", `{"keys":[]} {}`, "parse jwks: trailing data"},
		{"private key", `{"keys":[{` + okKey + `,"kid":"a","d":"` + rfcD + `"}]}`, `parse jwks: key 0: holds a private key ("d")`},
		{"RSA", `{"keys":[{"kty":"RSA","kid":"a"}]}`, `parse jwks: key 0: kty "RSA", want "OKP"`},
		{"X25519", `{"keys":[{"kty":"OKP","crv":"X25519","x":"` + rfcX + `","kid":"a"}]}`, `parse jwks: key 0: crv "X25519", want "Ed25519"`},
		{"no kid", `{"keys":[{` + okKey + `}]}`, "parse jwks: key 0: no kid"},
		{"wrong alg", `{"keys":[{` + okKey + `,"kid":"a","alg":"ES256"}]}`, `parse jwks: key 0: kid "a": alg "ES256", want "EdDSA"`},
		{"enc use", `{"keys":[{` + okKey + `,"kid":"a","use":"enc"}]}`, `parse jwks: key 0: kid "a": use "enc", want "sig"`},
		{"short x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`, `parse jwks: key 0: kid "a": x has 3 bytes, want 32`},
		{"padded x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfcX + `=","kid":"a"}]}`, `parse jwks: key 0: kid "a": x: illegal base64 data at input byte 43`},
		{"kid not a string", `{"keys":[{` + okKey + `,"kid":7}]}`, `parse jwks: key 0: "kid" is not a string`},
		{"repeated kid", `{"keys":[{` + okKey + `,"kid":"a"},{` + okKey + `,"kid":"a"}]}`, `parse jwks: key 1: kid "a" repeated`},
	}
	for _, tt := range tests {
		_, err := ParseJWKS([]byte(tt.doc))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	doc, _ := json.Marshal(NewJWKS([]PublicKey{pub(key1)}))
	f.Add(doc)
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfcX + `","kid":"rfc"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","d":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes and parses to the same keys.
		again, err := ParseJWKS(mustJSON(t, NewJWKS(keys)))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(again) != len(keys) {
			t.Fatalf("re-parse: got %d keys, want %d", len(again), len(keys))
		}
		for i := range keys {
			if again[i].ID != keys[i].ID || !again[i].Key.Equal(keys[i].Key) || len(keys[i].Key) != ed25519.PublicKeySize {
				t.Fatalf("re-parse key %d: got %+v, want %+v", i, again[i], keys[i])
			}
		}
	})
}

func TestJWKSHandler(t *testing.T) {
	h := JWKSHandler([]PublicKey{pub(key1)})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("GET: got %d %q, want 200 application/jwk-set+json", w.Code, w.Header().Get("Content-Type"))
	}
	keys, err := ParseJWKS(w.Body.Bytes())
	if err != nil || len(keys) != 1 || keys[0].ID != "k1" || !keys[0].Key.Equal(pub(key1).Key) {
		t.Errorf("GET body: got %+v, %v; want key k1", keys, err)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", w.Code)
	}
}
