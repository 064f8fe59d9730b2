package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// JWK is one public key in a JWKS, in the RFC 8037 form for Ed25519:
// kty "OKP", crv "Ed25519", x the base64url public key.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKS is a JSON Web Key Set (RFC 7517 section 5), as served at
// /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWKS returns the key set of keys, in the order given.
func NewJWKS(keys []PublicKey) JWKS {
	s := JWKS{Keys: make([]JWK, 0, len(keys))}
	for _, k := range keys {
		s.Keys = append(s.Keys, JWK{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.Key),
			Kid: k.ID,
			Alg: Algorithm,
			Use: "sig",
		})
	}
	return s
}

// MaxJWKSSize bounds the document ParseJWKS reads.
const MaxJWKSSize = 1 << 20

// ParseJWKS reads a key set and returns its keys. It accepts only Ed25519
// signing keys for EdDSA (alg and use may be absent), refuses a set that
// carries private key material or repeats a kid, and names the offending key
// in its errors.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("parse jwks: %d bytes, limit %d", len(data), MaxJWKSSize)
	}
	var raw struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse jwks: trailing data after the key set")
	}
	if raw.Keys == nil {
		return nil, errors.New("parse jwks: no \"keys\" member")
	}
	keys := make([]PublicKey, 0, len(raw.Keys))
	seen := make(map[string]bool, len(raw.Keys))
	for i, m := range raw.Keys {
		k, err := parseJWK(m)
		if err != nil {
			return nil, fmt.Errorf("parse jwks: key %d: %w", i, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("parse jwks: key %d: kid %q repeated", i, k.ID)
		}
		seen[k.ID] = true
		keys = append(keys, k)
	}
	return keys, nil
}

func parseJWK(m map[string]json.RawMessage) (PublicKey, error) {
	if _, ok := m["d"]; ok {
		return PublicKey{}, errors.New("holds a private key (\"d\")")
	}
	str := func(name string) (string, error) {
		v, ok := m[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%q is not a string", name)
		}
		return s, nil
	}
	var f [6]string
	for i, name := range []string{"kty", "crv", "x", "kid", "alg", "use"} {
		s, err := str(name)
		if err != nil {
			return PublicKey{}, err
		}
		f[i] = s
	}
	kty, crv, x, kid, alg, use := f[0], f[1], f[2], f[3], f[4], f[5]
	switch {
	case kty != "OKP":
		return PublicKey{}, fmt.Errorf("kty %q, want \"OKP\"", kty)
	case crv != "Ed25519":
		return PublicKey{}, fmt.Errorf("crv %q, want \"Ed25519\"", crv)
	case kid == "":
		return PublicKey{}, errors.New("no kid")
	case alg != "" && alg != Algorithm:
		return PublicKey{}, fmt.Errorf("kid %q: alg %q, want %q", kid, alg, Algorithm)
	case use != "" && use != "sig":
		return PublicKey{}, fmt.Errorf("kid %q: use %q, want \"sig\"", kid, use)
	}
	pub, err := base64.RawURLEncoding.Strict().DecodeString(x)
	if err != nil {
		return PublicKey{}, fmt.Errorf("kid %q: x: %w", kid, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("kid %q: x has %d bytes, want %d", kid, len(pub), ed25519.PublicKeySize)
	}
	return PublicKey{ID: kid, Key: pub}, nil
}

// Thumbprint returns the RFC 7638 thumbprint of an Ed25519 public key: the
// base64url SHA-256 of its required JWK members in lexicographic order
// (RFC 8037 appendix A.3).
func Thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKSHandler serves the key set of keys as application/jwk-set+json, for
// GET /.well-known/jwks.json. Clients may cache it for five minutes, so a
// new key should be published that long before it starts signing.
func JWKSHandler(keys []PublicKey) http.Handler {
	doc, err := json.Marshal(NewJWKS(keys))
	if err != nil {
		// NewJWKS produces only strings.
		panic("auth: encode jwks: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(doc)
	})
}
