package pseudonym

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

// testKey is the bytes 0x00, 0x01, …, 0x1f.
func testKey(t testing.TB) Key {
	t.Helper()
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = byte(i)
	}
	k, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The vectors were computed outside Go:
//
//	printf 'kairos/pseudonym/v1\x0000001' | openssl dgst -sha256 -mac HMAC \
//	  -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
//	→ 02b7f99f006cc8c1f5b8b09e9159872c0b54c55e90796bd2a1d24f35ad8cf3c4
//
// and the pseudonyms with Python:
//
//	m = hmac.new(key, b'kairos/pseudonym/v1\x00' + id, hashlib.sha256).digest()
//	'p1:' + base64.b32encode(m[:16]).decode().lower().rstrip('=')
//	hashlib.sha256(b'kairos/pseudonym/key-id/v1\x00' + key).hexdigest()[:16]
func TestVectors(t *testing.T) {
	k := testKey(t)
	if got, want := k.ID(), "d70daf3669d27bd5"; got != want {
		t.Errorf("got key id %s, want %s", got, want)
	}
	p, err := New(k, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ id, want string }{
		{"00001", "p1:ak37thyantemd5nywcpjcwmhfq"},
		{"customer@example.com", "p1:qy24gg77ionrvzviozrvrvmjsu"},
		{"", "p1:r7zx2zh7wokehemnhqv4dkluti"},
	}
	for range 2 { // the second round is served from the cache
		for _, tt := range tests {
			if got := p.Pseudonym(tt.id); got != tt.want {
				t.Errorf("Pseudonym(%q): got %s, want %s", tt.id, got, tt.want)
			}
		}
	}
}

func TestKeysSeparateMerchants(t *testing.T) {
	k1, k2 := mustNewKey(t), mustNewKey(t)
	p1, _ := New(k1, 0)
	p2, _ := New(k2, 0)
	if a, b := p1.Pseudonym("alice"), p2.Pseudonym("alice"); a == b {
		t.Errorf("got the same pseudonym %s under two keys", a)
	}
	if k1.ID() == k2.ID() {
		t.Errorf("got the same key id %s for two keys", k1.ID())
	}
}

func mustNewKey(t *testing.T) Key {
	t.Helper()
	k, err := NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyNeverPrinted(t *testing.T) {
	k := testKey(t)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, "0102030405") || strings.Contains(s, "[0 1 2") {
			t.Errorf("formatted key leaks its bytes: %s", s)
		}
	}
	if got, want := k.String(), "pseudonym.Key(d70daf3669d27bd5)"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestZeroKey(t *testing.T) {
	if _, err := KeyFromBytes(make([]byte, KeySize)); !errors.Is(err, ErrZeroKey) {
		t.Errorf("KeyFromBytes(zeros): got %v, want ErrZeroKey", err)
	}
	if _, err := NewKey(bytes.NewReader(make([]byte, KeySize))); !errors.Is(err, ErrZeroKey) {
		t.Errorf("NewKey(zero reader): got %v, want ErrZeroKey", err)
	}
	if _, err := New(Key{}, 0); !errors.Is(err, ErrZeroKey) {
		t.Errorf("New(Key{}): got %v, want ErrZeroKey", err)
	}
	if _, err := NewKey(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Errorf("NewKey(short reader): got nil error")
	}
	if _, err := KeyFromBytes(make([]byte, 31)); err == nil {
		t.Errorf("KeyFromBytes(31 bytes): got nil error")
	}
}

func TestCacheBounded(t *testing.T) {
	k := testKey(t)
	p, _ := New(k, 3)
	ref, _ := New(k, -1)
	for i := range 100 {
		id := fmt.Sprint(i % 7)
		if got, want := p.Pseudonym(id), ref.Pseudonym(id); got != want {
			t.Fatalf("Pseudonym(%q) with a small cache: got %s, want %s", id, got, want)
		}
		if len(p.cache) > 3 {
			t.Fatalf("cache holds %d entries, want at most 3", len(p.cache))
		}
	}
	if ref.cache != nil {
		t.Errorf("got a cache with size -1")
	}
}

func TestWrap(t *testing.T) {
	p, _ := New(testKey(t), 0)
	var got []model.Event
	emit := p.Wrap(func(ev model.Event) error {
		got = append(got, ev)
		return nil
	})
	in := model.Event{Customer: "00001", Kind: model.Purchase, Amount: 3, HasAmount: true, Item: "x"}
	if err := emit(in); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Customer = "p1:ak37thyantemd5nywcpjcwmhfq"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %+v, want [%+v]", got, want)
	}
	stop := errors.New("stop")
	if err := p.Wrap(func(model.Event) error { return stop })(in); !errors.Is(err, stop) {
		t.Errorf("got %v, want the sink's error", err)
	}
}

func TestRotate(t *testing.T) {
	old, next := testKey(t), mustNewKey(t)
	ids := []string{"00001", "00002", "customer@example.com"}
	m, err := Rotate(old, next, ids)
	if err != nil {
		t.Fatal(err)
	}
	po, _ := New(old, -1)
	pn, _ := New(next, -1)
	if len(m) != len(ids) {
		t.Errorf("got %d entries, want %d", len(m), len(ids))
	}
	for _, id := range ids {
		if got, want := m[po.Pseudonym(id)], pn.Pseudonym(id); got != want {
			t.Errorf("Rotate: %s maps to %s, want %s", id, got, want)
		}
	}
	if got := m["p1:ak37thyantemd5nywcpjcwmhfq"]; got == "" || got == "p1:ak37thyantemd5nywcpjcwmhfq" {
		t.Errorf("got %q for the known old pseudonym of 00001, want a new one", got)
	}
	if _, err := Rotate(old, old, ids); err == nil {
		t.Errorf("Rotate with the same key: got nil error")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "merchant.key")
	k := testKey(t)
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("got mode %04o, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	wantRaw := "# kairos pseudonym key d70daf3669d27bd5\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
	if string(raw) != wantRaw {
		t.Errorf("got file %q, want %q", raw, wantRaw)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != k {
		t.Errorf("got key %v back, want %v", got, k)
	}
	if err := WriteKeyFile(path, mustNewKey(t)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: got %v, want fs.ErrExist", err)
	}
	if again, _ := ReadKeyFile(path); again != k {
		t.Errorf("the refused overwrite changed the key")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(path)
		if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", mode)) {
			t.Errorf("mode %04o: got %v, want ErrInsecureKeyFile naming the mode", mode, err)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}

func TestParseKeyFile(t *testing.T) {
	hexKey := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	tests := []struct {
		name, in, wantErr string
	}{
		{"plain", hexKey + "\n", ""},
		{"comments and blanks", "# x\n\n  " + hexKey + "  \r\n# y\n", ""},
		{"short", hexKey[:62] + "\n", "line 1: key is 62 hex digits, want 64"},
		{"not hex", "# c\n" + strings.Repeat("zz", 32) + "\n", "line 2: encoding/hex"},
		{"two keys", hexKey + "\n" + hexKey + "\n", "line 2: more than one key"},
		{"empty", "# only a comment\n", "no key in file"},
		{"zero", strings.Repeat("0", 64), "all zeros"},
	}
	for _, tt := range tests {
		k, err := parseKeyFile(strings.NewReader(tt.in))
		if tt.wantErr == "" {
			if err != nil || k != testKey(t) {
				t.Errorf("%s: got %v, %v; want the test key", tt.name, k, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add("# kairos pseudonym key d70daf3669d27bd5\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")
	f.Add("zz\n")
	f.Fuzz(func(t *testing.T, in string) {
		k, err := parseKeyFile(strings.NewReader(in))
		if err == nil && k.isZero() {
			t.Fatalf("accepted a zero key from %q", in)
		}
	})
}

func BenchmarkPseudonym(b *testing.B) {
	k := testKey(b)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("customer-%07d", i)
	}
	for _, tc := range []struct {
		name  string
		cache int
	}{{"uncached", -1}, {"cached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			p, _ := New(k, tc.cache)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Pseudonym(ids[i%len(ids)])
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "ids/s")
		})
	}
}
