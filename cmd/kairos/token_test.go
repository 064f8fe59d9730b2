package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// runToken runs `kairos token args...` and returns its standard output.
func runToken(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newTokenCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	return out.String(), err
}

func TestTokenCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agg")
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregator(dir, agg, nil); err != nil {
		t.Fatal(err)
	}

	tok, err := runToken(t, "issue", "--keys", dir, "--role", "partner", "--subject", "crm", "--merchants", "m1,m2", "--ttl", "2h")
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)

	// The JWKS names the active key, and the token verifies against it with
	// crypto/ed25519 directly.
	doc, err := runToken(t, "jwks", "--keys", dir)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	pubs, err := auth.ParseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	active, _ := agg.Active()
	if len(pubs) != 1 || pubs[0].ID != active.ID || pubs[0].ID != keys.KeyID(pubs[0].Key) {
		t.Fatalf("jwks: got %+v, want the one key %s", pubs, active.ID)
	}
	p := strings.Split(tok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(p[2])
	if len(p) != 3 || !ed25519.Verify(pubs[0].Key, []byte(p[0]+"."+p[1]), sig) {
		t.Fatalf("issued token %q does not verify with the JWKS key", tok)
	}

	for _, src := range [][]string{{"--keys", dir}, {"--jwks", jwksFile}} {
		out, err := runToken(t, append(append([]string{"verify"}, src...), tok)...)
		if err != nil {
			t.Fatalf("verify %v: %v", src, err)
		}
		var c struct {
			Sub, Role, Iss string
			Aud, Merchants []string
			Exp, Iat       int64
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("verify output %q: %v", out, err)
		}
		if c.Sub != "crm" || c.Role != "partner" || c.Iss != "kairos-aggregator" || strings.Join(c.Aud, ",") != "kairos-api" ||
			strings.Join(c.Merchants, ",") != "m1,m2" || c.Exp-c.Iat != 7200 {
			t.Errorf("verify %v: got %+v, want sub crm, partner, m1,m2, default iss/aud, 2h lifetime", src, c)
		}
	}

	if _, err := runToken(t, "verify", "--keys", dir, "--audience", "other", tok); !errors.Is(err, auth.ErrWrongAudience) {
		t.Errorf("verify with another audience: got %v, want ErrWrongAudience", err)
	}
	if _, err := runToken(t, "issue", "--keys", dir, "--role", "merchant", "--subject", "m1", "--merchants", "m2"); !errors.Is(err, auth.ErrInvalidMerchants) {
		t.Errorf("issue merchant token for another merchant: got %v, want ErrInvalidMerchants", err)
	}

	// Rotate: the old token still verifies while its key is kept, and fails
	// once the key is removed.
	if _, err := agg.RotateJWT(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregator(dir, agg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := runToken(t, "verify", "--keys", dir, tok); err != nil {
		t.Errorf("verify after rotation: %v", err)
	}
	if err := agg.RemoveJWT(active.ID); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregator(dir, agg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := runToken(t, "verify", "--keys", dir, tok); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("verify after removing the key: got %v, want ErrUnknownKey", err)
	}
}

func TestTokenIssuePassphrase(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "agg")
	agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteAggregatorWithOptions(dir, agg, keys.WriteOptions{Passphrase: []byte("hunter2"), ScryptWorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	right, wrong := filepath.Join(tmp, "right"), filepath.Join(tmp, "wrong")
	if err := os.WriteFile(right, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("hunter3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"issue", "--keys", dir, "--role", "admin", "--subject", "ops", "--passphrase-file"}
	if _, err := runToken(t, append(args, wrong)...); !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Errorf("issue with the wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
	tok, err := runToken(t, append(args, right)...)
	if err != nil {
		t.Fatal(err)
	}
	// verify needs only the public files, so no passphrase.
	if _, err := runToken(t, "verify", "--keys", dir, strings.TrimSpace(tok)); err != nil {
		t.Errorf("verify: %v", err)
	}
}
