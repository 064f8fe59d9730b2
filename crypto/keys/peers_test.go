package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerKeys: a peer keys file built from the merchants' signing.pub files
// as WriteMerchant wrote them (each preceded by its merchant id, with a
// comment and blank lines) gives every merchant its own key; an id twice, one
// key under two ids, an id without a PEM block, a bad id or PEM, and an
// empty file are refused, naming the line.
func TestPeerKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString("# cohort of the spring federation\n\n")
	pubs := map[string]string{}
	for _, id := range []string{"m1", "shop.example_2"} {
		pem := signingPubPEM(t, id)
		b.WriteString(id + "\n" + pem + "\n")
		pubs[id] = pem
	}
	file := filepath.Join(t.TempDir(), "peers.pem")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPeerKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d keys, want 2", len(got))
	}
	for id, pem := range pubs {
		want, err := parsePublicPEM([]byte(pem))
		if err != nil {
			t.Fatal(err)
		}
		if !got[id].Equal(want) {
			t.Errorf("%s: key %x, want %x", id, got[id], want)
		}
	}
	m1, m2 := "m1\n"+pubs["m1"], "shop.example_2\n"+pubs["shop.example_2"]
	for _, c := range []struct{ name, data, want string }{
		{"id twice", m1 + m1, "line 5: merchant m1 listed twice"},
		{"key twice", m1 + "m3\n" + pubs["m1"], "line 5: m3 has the key of m1"},
		{"no PEM", m2 + "m1\n\nm3\n", "line 5: merchant m1 is not followed by a PEM block"},
		{"bad id", "m 1\n" + pubs["m1"], "line 1:"},
		{"bad PEM", "m1\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "line 1: key of m1"},
		{"empty", "# nothing\n", "no entries"},
	} {
		if _, err := ParsePeerKeys([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
