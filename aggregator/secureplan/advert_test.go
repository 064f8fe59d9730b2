package secureplan

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/secagg"
)

// TestAdvertStatement: the signed statement is the hand-worked layout (label,
// then length-prefixed aggregator, round, seed, merchant, then the secagg id
// and the two keys); a signature verifies for exactly that statement and for
// no other aggregator, round, plan seed, merchant, id or key; Decode always
// asks for signed adverts.
func TestAdvertStatement(t *testing.T) {
	p := testPlan(t)
	var c, s [secagg.KeySize]byte
	c[0], s[0] = 1, 2
	got := AdvertStatement("age1x", "r-7", p, "b", 2, c, s)
	want := []byte("kairos secagg advertise v1\x00")
	want = append(want, 0, 0, 0, 5, 'a', 'g', 'e', '1', 'x')
	want = append(want, 0, 0, 0, 3, 'r', '-', '7')
	want = append(want, 0, 0, 0, 64)
	want = append(want, p.Seed...)
	want = append(want, 0, 0, 0, 1, 'b', 0, 0, 0, 2)
	want = append(append(want, c[:]...), s[:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("statement\n%q\nwant\n%q", got, want)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := secagg.AdvertiseMsg{From: 2, CPub: c, SPub: s}
	SignAdvert(priv, "age1x", "r-7", p, "b", &m)
	if err := VerifyAdvert(pub, "age1x", "r-7", p, "b", 2, c, s, m.Sig); err != nil {
		t.Fatal(err)
	}
	other := *p
	other.Seed = "ff" + p.Seed[2:]
	var c2 [secagg.KeySize]byte
	c2[0] = 3
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for name, err := range map[string]error{
		"aggregator": VerifyAdvert(pub, "age1y", "r-7", p, "b", 2, c, s, m.Sig),
		"round":      VerifyAdvert(pub, "age1x", "r-8", p, "b", 2, c, s, m.Sig),
		"seed":       VerifyAdvert(pub, "age1x", "r-7", &other, "b", 2, c, s, m.Sig),
		"merchant":   VerifyAdvert(pub, "age1x", "r-7", p, "c", 2, c, s, m.Sig),
		"id":         VerifyAdvert(pub, "age1x", "r-7", p, "b", 3, c, s, m.Sig),
		"keys":       VerifyAdvert(pub, "age1x", "r-7", p, "b", 2, c2, s, m.Sig),
		"signer":     VerifyAdvert(otherPub, "age1x", "r-7", p, "b", 2, c, s, m.Sig),
		"no key":     VerifyAdvert(nil, "age1x", "r-7", p, "b", 2, c, s, m.Sig),
	} {
		if !errors.Is(err, ErrAdvertSignature) {
			t.Errorf("another %s: %v, want ErrAdvertSignature", name, err)
		}
	}
	r, err := Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Config.SignedAdverts {
		t.Error("decoded config without signed adverts: a live round must always need them")
	}
}
