package seal

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestWithGeneratedKeys seals with a merchant's keys from crypto/keys to an
// aggregator's published recipient and opens with its identity.
func TestWithGeneratedKeys(t *testing.T) {
	for _, classic := range []bool{false, true} {
		agg, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: classic})
		if err != nil {
			t.Fatal(err)
		}
		m, err := keys.GenerateMerchant(rand.Reader, "shop-42")
		if err != nil {
			t.Fatal(err)
		}
		enrolled := map[string]ed25519.PublicKey{m.ID: m.Public().Signing}
		r, err := agg.Public().AgeRecipient()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		env, err := Seal(rand.Reader, Header{MerchantID: m.ID, Round: "r1", ModelVersion: "m1", CreatedAt: now}, []byte("update"), m.Signing, r)
		if err != nil {
			t.Fatal(err)
		}
		o := OpenOptions{
			Identity: agg.Identity,
			Signers: func(id string) (ed25519.PublicKey, error) {
				if k, ok := enrolled[id]; ok {
					return k, nil
				}
				return nil, ErrUnknownSigner
			},
			Round:              "r1",
			SeenNonce:          func(string, [NonceSize]byte) bool { return false },
			Now:                now,
			MaxSkew:            time.Minute,
			RequirePostQuantum: !classic,
		}
		h, payload, err := Open(env, o)
		if err != nil {
			t.Fatalf("classic=%v: %v", classic, err)
		}
		wantKind := PostQuantum
		if classic {
			wantKind = Classic
		}
		if string(payload) != "update" || h.MerchantID != "shop-42" || h.Recipient != wantKind {
			t.Errorf("classic=%v: got %q from %q (%v), want %q from shop-42 (%v)", classic, payload, h.MerchantID, h.Recipient, "update", wantKind)
		}
		delete(enrolled, m.ID)
		if _, _, err := Open(env, o); !errors.Is(err, ErrUnknownSigner) {
			t.Errorf("classic=%v: after unenrolment got %v, want ErrUnknownSigner", classic, err)
		}
	}
}
