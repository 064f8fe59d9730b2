package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"filippo.io/age"
)

// Every loader must return an error (never panic) on bad input, and whatever
// it accepts must re-encode to a form it accepts again as the same key.

func FuzzParsePrivatePEM(f *testing.F) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	good, _ := encodePrivatePEM(k)
	pub, _ := encodePublicPEM(k.Public().(ed25519.PublicKey))
	f.Add(good)
	f.Add(pub)
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		priv, err := parsePrivatePEM(b)
		if err != nil {
			return
		}
		if len(priv) != ed25519.PrivateKeySize {
			t.Fatalf("accepted key of %d bytes", len(priv))
		}
		again, err := encodePrivatePEM(priv)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parsePrivatePEM(again)
		if err != nil || !back.Equal(priv) {
			t.Fatalf("re-encoded key does not round trip: %v", err)
		}
	})
}

func FuzzParsePublicPEM(f *testing.F) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	good, _ := encodePublicPEM(k.Public().(ed25519.PublicKey))
	priv, _ := encodePrivatePEM(k)
	f.Add(good)
	f.Add(priv)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := parsePublicPEM(b)
		if err != nil {
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("accepted public key of %d bytes", len(pub))
		}
		again, _ := encodePublicPEM(pub)
		if back, err := parsePublicPEM(again); err != nil || !back.Equal(pub) {
			t.Fatalf("re-encoded public key does not round trip: %v", err)
		}
	})
}

func FuzzParseHexKey(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte(strings.Repeat("AB", 32) + "\n"))
	f.Add([]byte(strings.Repeat("0", 64) + "\r\n"))
	f.Add([]byte(strings.Repeat("0", 63)))
	f.Add([]byte("0123456789abcdef\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range []int{8, 32} {
			k, err := parseHexKey(b, n)
			if err != nil {
				continue
			}
			if len(k) != n {
				t.Fatalf("n=%d: got %d bytes", n, len(k))
			}
			// Only the canonical form (lower-case hex, optional newline) is accepted.
			canon := hex.EncodeToString(k)
			if s := string(b); s != canon && s != canon+"\n" && s != canon+"\r\n" {
				t.Fatalf("n=%d: accepted non-canonical %q", n, b)
			}
		}
		if kid, err := parseKID(b); err == nil && len(kid) != 16 {
			t.Fatalf("kid %q is not 16 hex digits", kid)
		}
	})
}

func FuzzParsePseudonymFile(f *testing.F) {
	f.Add([]byte("# kairos pseudonym key 0011223344556677\n" + strings.Repeat("5a", 32) + "\n"))
	f.Add([]byte(strings.Repeat("5a", 32)))
	f.Add([]byte(strings.Repeat("5a", 32) + "\n" + strings.Repeat("5a", 32) + "\n"))
	f.Add([]byte("#\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := parsePseudonymFile(b)
		if err != nil {
			return
		}
		if len(raw) != PseudonymKeySize {
			t.Fatalf("got %d bytes", len(raw))
		}
		if !bytes.Contains(b, []byte(hex.EncodeToString(raw))) {
			t.Fatalf("key %x is not written in %q", raw, b)
		}
	})
}

func FuzzParseAgeIdentity(f *testing.F) {
	for _, classic := range []bool{false, true} {
		id, _, err := newAgeIdentity(&seqRand{label: "fuzz"}, classic)
		if err != nil {
			f.Fatal(err)
		}
		s, _ := identityString(id)
		f.Add(s)
		f.Add(strings.ToLower(s))
	}
	f.Add("AGE-SECRET-KEY-1")
	f.Add("AGE-SECRET-KEY-PQ-1QQQQ")
	f.Add("age1pq1qqqq")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseAgeIdentity(s)
		if err != nil {
			return
		}
		str, err := identityString(id)
		if err != nil {
			t.Fatalf("accepted identity cannot be stored: %v", err)
		}
		if !strings.EqualFold(str, s) {
			t.Fatalf("accepted %q but it encodes as %q", s, str)
		}
		if _, err := recipientOf(id); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecryptPassphrase(f *testing.F) {
	plain := []byte(strings.Repeat("ab", 32) + "\n")
	pass := []byte("fuzz passphrase")
	armored, err := encryptPassphrase(plain, WriteOptions{Passphrase: pass, ScryptWorkFactor: 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(armored)
	// The same plaintext as a binary age file.
	r, _ := age.NewScryptRecipient(string(pass))
	r.SetWorkFactor(10)
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, r)
	_, _ = w.Write(plain)
	_ = w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte(armorHeader + "\n"))
	f.Fuzz(func(t *testing.T, enc []byte) {
		// A low work-factor cap keeps each attempt cheap; larger ones are refused.
		got, err := decryptPassphrase(enc, pass, 12)
		if err != nil {
			return
		}
		// age authenticates the file, so only the original plaintext can come out.
		if !bytes.Equal(got, plain) {
			t.Fatalf("decrypted %q, want %q", got, plain)
		}
	})
}

func FuzzParseRecipient(f *testing.F) {
	for _, classic := range []bool{false, true} {
		_, r, err := newAgeIdentity(&seqRand{label: "fuzz-r"}, classic)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r)
	}
	f.Add("age1pq1")
	f.Add("age1qqqq")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecipient(s)
		if err != nil {
			return
		}
		var str string
		switch r := r.(type) {
		case *age.HybridRecipient:
			str = r.String()
		case *age.X25519Recipient:
			str = r.String()
		default:
			t.Fatalf("parsed to %T", r)
		}
		if !strings.EqualFold(str, s) {
			t.Fatalf("accepted %q but it encodes as %q", s, str)
		}
	})
}
