package keys

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signingPubPEM returns the signing.pub file WriteMerchant writes for a new
// merchant id.
func signingPubPEM(t testing.TB, id string) string {
	t.Helper()
	m, err := GenerateMerchant(rand.Reader, id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteMerchant(dir, m, nil); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, FileSigningPub))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem)
}

// TestPeerKeysBrokenBlockNotSkipped (review round 3): pem.Decode skips a
// block it cannot parse and returns the next one in the input, so an entry
// whose PEM block was cut short (a careless copy: no END line) took the key
// of the entry after it, and that entry's id vanished from the file: "m1"
// pinned to m2's key, m2 not pinned at all, no error. The broken block is
// refused, naming its entry's line.
func TestPeerKeysBrokenBlockNotSkipped(t *testing.T) {
	m2 := signingPubPEM(t, "m2")
	lines := strings.Split(strings.TrimSpace(signingPubPEM(t, "m1")), "\n")
	cut := strings.Join(lines[:len(lines)-1], "\n") + "\n" // m1's block without its END line
	data := "m1\n" + cut + "m2\n" + m2
	got, err := ParsePeerKeys([]byte(data))
	if err == nil {
		want, perr := parsePublicPEM([]byte(m2))
		if perr != nil {
			t.Fatal(perr)
		}
		t.Fatalf("a block without its END line was accepted: ids %v, m1 pinned to m2's key: %v", keysOf(got), got["m1"].Equal(want))
	}
	if !strings.Contains(err.Error(), "line 1: ") {
		t.Errorf("error %q, want it to name m1's entry (line 1)", err)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// FuzzParsePeerKeys: a peer keys file parses or is refused, never panics;
// what it accepts has valid merchant ids and distinct 32-byte keys, one PEM
// block per entry (no block skipped or shared), and written out again (id
// then signing.pub, in any order) parses to the same map.
func FuzzParsePeerKeys(f *testing.F) {
	m1, m2 := signingPubPEM(f, "m1"), signingPubPEM(f, "shop.example_2")
	f.Add([]byte("# cohort\n\nm1\n" + m1 + "\nshop.example_2\n" + m2))
	f.Add([]byte("m1\n" + m1 + "m1\n" + m1))
	f.Add([]byte("m1\n" + strings.Replace(m1, "-----END PUBLIC KEY-----\n", "", 1) + "m2\n" + m2))
	f.Add([]byte("m1\r\n" + strings.ReplaceAll(m1, "\n", "\r\n")))
	f.Add([]byte("m 1\n" + m1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParsePeerKeys(data)
		if err != nil {
			return
		}
		begins := 0
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "-----BEGIN") {
				begins++
			}
		}
		if begins != len(got) {
			t.Fatalf("%d entries from %d PEM blocks", len(got), begins)
		}
		owners := map[string]string{}
		var b strings.Builder
		for id, k := range got {
			if err := CheckMerchantID(id); err != nil {
				t.Fatalf("accepted id %q: %v", id, err)
			}
			if len(k) != 32 {
				t.Fatalf("%s: key of %d bytes", id, len(k))
			}
			if o, dup := owners[string(k)]; dup {
				t.Fatalf("%s and %s share a key", id, o)
			}
			owners[string(k)] = id
			pem, err := encodePublicPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(id + "\n" + string(pem))
		}
		back, err := ParsePeerKeys([]byte(b.String()))
		if err != nil || len(back) != len(got) {
			t.Fatalf("written again: %v (%d entries, want %d)", err, len(back), len(got))
		}
		for id, k := range got {
			if !back[id].Equal(k) {
				t.Fatalf("%s: key changed when written again", id)
			}
		}
	})
}
