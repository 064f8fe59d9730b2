package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
)

// Test-only keys, fixed so that the envelopes in testdata/fuzz stay openable.
const (
	fuzzPQIdentity      = "AGE-SECRET-KEY-PQ-10EKPQ55AWUZSMFMHQ9PU4Z2KNLNLZQ8W5KUT3RJKQ6HF8XZW7KPQQSCTDG"
	fuzzClassicIdentity = "AGE-SECRET-KEY-1ATDG6G7E6HP5NX4T7EAQ0PJDS8CMK25H0TY7XUF4DST5TKHDF2XQEQPEZA"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz")

func fuzzKeys(t testing.TB) (*age.HybridIdentity, *age.X25519Identity, ed25519.PrivateKey) {
	t.Helper()
	pq, err := age.ParseHybridIdentity(fuzzPQIdentity)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := age.ParseX25519Identity(fuzzClassicIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return pq, cl, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
}

func fuzzOpts(id age.Identity, signer ed25519.PrivateKey) OpenOptions {
	return OpenOptions{
		Identity:  id,
		Signers:   func(string) (ed25519.PublicKey, error) { return signer.Public().(ed25519.PublicKey), nil },
		Round:     "round-7",
		SeenNonce: func(string, [NonceSize]byte) bool { return false },
		Now:       created.Add(time.Minute),
		MaxSkew:   5 * time.Minute,
	}
}

// seedEnvelopes are valid envelopes (and a few near misses) under the fuzz keys.
func seedEnvelopes(t testing.TB) map[string][]byte {
	t.Helper()
	pq, cl, signer := fuzzKeys(t)
	h := Header{MerchantID: "shop-1", Round: "round-7", ModelVersion: "v3", CreatedAt: created}
	out := map[string][]byte{}
	for name, r := range map[string]age.Recipient{"pq": pq.Recipient(), "classic": cl.Recipient()} {
		for _, size := range []int{0, 16, 8000} {
			env, err := Seal(rand.Reader, h, bytes.Repeat([]byte{0x3f}, size), signer, r)
			if err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("%s-%d", name, size)] = env
		}
	}
	hdr, ct := split(t, out["pq-16"])
	out["unsigned"] = frame(hdr, nil, ct)
	out["truncated"] = out["classic-16"][:100]
	return out
}

// TestWriteFuzzCorpus regenerates testdata/fuzz when run with -update-corpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz")
	}
	for _, target := range []string{"FuzzOpen", "FuzzParseHeader"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, env := range seedEnvelopes(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", env)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var allSentinels = []error{ErrMalformed, ErrTooLarge, ErrMissingSignature, ErrUnknownSigner, ErrRevokedSigner,
	ErrBadSignature, ErrRoundMismatch, ErrStale, ErrRecipientKind, ErrReplay, ErrDecrypt, ErrDigestMismatch}

func FuzzOpen(f *testing.F) {
	pq, cl, signer := fuzzKeys(f)
	f.Add([]byte("KAIROS-SEAL/1"))
	f.Fuzz(func(t *testing.T, env []byte) {
		for _, id := range []age.Identity{pq, cl} {
			h, payload, err := Open(env, fuzzOpts(id, signer))
			if err != nil {
				matched := 0
				for _, s := range allSentinels {
					if errors.Is(err, s) {
						matched++
					}
				}
				if matched != 1 {
					t.Fatalf("error %v matches %d sentinels, want 1", err, matched)
				}
				continue
			}
			// Accepted: the envelope must be canonical and carry a valid
			// signature under the documented input, and the payload its digest.
			raw, ct := split(t, env)
			canon, err := h.MarshalBinary()
			if err != nil || !bytes.Equal(canon, raw) {
				t.Fatalf("accepted a non-canonical header (%v)", err)
			}
			if got := assemble(t, raw, ct, signer); !bytes.Equal(got, env) {
				t.Fatal("accepted envelope is not the one the signer would produce")
			}
			if sha256.Sum256(payload) != h.PayloadSHA256 {
				t.Fatal("accepted payload does not match its digest")
			}
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, env []byte) {
		h, err := ParseHeader(env)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		raw, _ := split(t, env)
		canon, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed header does not encode: %v", err)
		}
		if !bytes.Equal(canon, raw) {
			t.Fatalf("header re-encodes as %x, was %x", canon, raw)
		}
	})
}
