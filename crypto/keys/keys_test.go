package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kairos-fl/kairos/crypto/pseudonym"
)

// seqRand is a deterministic byte stream for reproducible keys: SHA-256 in
// counter mode over a label. Not secure; tests only.
type seqRand struct {
	label string
	ctr   uint64
	buf   []byte
}

func (r *seqRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		sum := sha256.Sum256([]byte(r.label + ":" + string(rune(r.ctr))))
		r.ctr++
		r.buf = append(r.buf, sum[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBech32KnownVectors(t *testing.T) {
	// BIP 173 valid test vectors.
	if got, want := bech32Encode("A", nil), "A12UEL5L"; got != want {
		t.Errorf("bech32Encode(A, nil) = %q, want %q", got, want)
	}
	values := make([]byte, 32)
	for i := range values {
		values[i] = byte(i)
	}
	var b strings.Builder
	b.WriteString("abcdef1")
	for _, v := range append(values, bech32Checksum("abcdef", values)...) {
		b.WriteByte(bech32Charset[v])
	}
	if got, want := b.String(), "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"; got != want {
		t.Errorf("abcdef vector = %q, want %q", got, want)
	}
	// The 5-bit values 0..31 are the 20 bytes 00 44 32 14 c7 42 54 b6 35 cf 84 65 3a 56 d7 c6 75 be 77 df.
	packed := mustHex(t, "00443214c74254b635cf84653a56d7c675be77df")
	if got := toFiveBits(packed); !bytes.Equal(got, values) {
		t.Errorf("toFiveBits = %v, want %v", got, values)
	}
}

func TestAgeIdentityFromSeedMatchesAge(t *testing.T) {
	// age parses (and so checksums) our Bech32 and re-encodes from its own key
	// bytes; both must give back the same string.
	for _, classic := range []bool{false, true} {
		id, rcpt, err := newAgeIdentity(&seqRand{label: "age"}, classic)
		if err != nil {
			t.Fatal(err)
		}
		seed := make([]byte, 32)
		_, _ = (&seqRand{label: "age"}).Read(seed)
		hrp := hybridSecretHRP
		if classic {
			hrp = x25519SecretHRP
		}
		got, _ := identityString(id)
		if want := bech32Encode(hrp, seed); got != want {
			t.Errorf("classic=%v: identity = %q, want %q", classic, got, want)
		}
		if got, want := PostQuantum(id), !classic; got != want {
			t.Errorf("classic=%v: PostQuantum = %v, want %v", classic, got, want)
		}
		wantPrefix := "age1pq1"
		if classic {
			wantPrefix = "age1"
		}
		if !strings.HasPrefix(rcpt, wantPrefix) || (classic && strings.HasPrefix(rcpt, "age1pq1")) {
			t.Errorf("classic=%v: recipient %q, want prefix %q", classic, rcpt, wantPrefix)
		}
		// The recipient must decrypt with the identity.
		r1, err := ParseRecipient(rcpt)
		if err != nil {
			t.Fatal(err)
		}
		_, isPQ := r1.(*age.HybridRecipient)
		if isPQ == classic {
			t.Errorf("classic=%v: ParseRecipient gave %T", classic, r1)
		}
		r := []age.Recipient{r1}
		var ct bytes.Buffer
		w, _ := age.Encrypt(&ct, r...)
		_, _ = w.Write([]byte("hello"))
		_ = w.Close()
		dr, err := age.Decrypt(&ct, id)
		if err != nil {
			t.Fatalf("classic=%v: decrypt: %v", classic, err)
		}
		if got, _ := io.ReadAll(dr); string(got) != "hello" {
			t.Errorf("classic=%v: decrypted %q, want %q", classic, got, "hello")
		}
	}
}

func TestEd25519FromRandAndKeyID(t *testing.T) {
	// RFC 8032 section 7.1, test 1: the seed read from rand gives the published public key.
	seed := mustHex(t, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	m, err := GenerateMerchant(io.MultiReader(bytes.NewReader(seed), &seqRand{label: "p"}), "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	wantPub := mustHex(t, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	if got := m.Public().Signing; !bytes.Equal(got, wantPub) {
		t.Errorf("public key = %x, want %x", got, wantPub)
	}
	// sha256sum of those 32 bytes: 21fe31dfa154a261626bf854...
	if got, want := KeyID(wantPub), "21fe31dfa154a261"; got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	a1, err := GenerateAggregator(&seqRand{label: "x"}, AggregatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := GenerateAggregator(&seqRand{label: "x"}, AggregatorOptions{})
	a3, _ := GenerateAggregator(&seqRand{label: "y"}, AggregatorOptions{})
	if a1.Recipient != a2.Recipient || !a1.Checkpoint.Equal(a2.Checkpoint) || a1.ActiveJWT != a2.ActiveJWT {
		t.Errorf("same rand gave different keys")
	}
	if a1.Recipient == a3.Recipient || a1.ActiveJWT == a3.ActiveJWT || bytes.Equal(a1.AuditHMAC, a3.AuditHMAC) {
		t.Errorf("different rand gave equal keys")
	}
	// Every secret is distinct (no seed reuse between key kinds).
	secrets := [][]byte{a1.JWT[0].Private.Seed(), a1.AuditHMAC, a1.Checkpoint.Seed()}
	for i := range secrets {
		for j := i + 1; j < len(secrets); j++ {
			if bytes.Equal(secrets[i], secrets[j]) {
				t.Errorf("secrets %d and %d are equal", i, j)
			}
		}
	}
	if _, err := GenerateAggregator(bytes.NewReader(make([]byte, 10)), AggregatorOptions{}); err == nil {
		t.Error("short rand: got no error")
	}
}

func assertAggregatorEqual(t *testing.T, got, want *Aggregator) {
	t.Helper()
	gs, _ := identityString(got.Identity)
	ws, _ := identityString(want.Identity)
	if gs != ws || got.Recipient != want.Recipient {
		t.Errorf("identity/recipient differ: got %q, want %q", got.Recipient, want.Recipient)
	}
	if got.ActiveJWT != want.ActiveJWT {
		t.Errorf("ActiveJWT = %q, want %q", got.ActiveJWT, want.ActiveJWT)
	}
	wantJWT := slices.Clone(want.JWT)
	slices.SortFunc(wantJWT, func(a, b JWTKey) int { return strings.Compare(a.ID, b.ID) })
	if len(got.JWT) != len(wantJWT) {
		t.Fatalf("got %d jwt keys, want %d", len(got.JWT), len(wantJWT))
	}
	for i := range wantJWT {
		if got.JWT[i].ID != wantJWT[i].ID || !got.JWT[i].Private.Equal(wantJWT[i].Private) {
			t.Errorf("jwt key %d: got %s, want %s", i, got.JWT[i].ID, wantJWT[i].ID)
		}
	}
	if !bytes.Equal(got.AuditHMAC, want.AuditHMAC) {
		t.Errorf("AuditHMAC = %x, want %x", got.AuditHMAC, want.AuditHMAC)
	}
	if !got.Checkpoint.Equal(want.Checkpoint) {
		t.Error("Checkpoint differs")
	}
}

func TestAggregatorRoundTrip(t *testing.T) {
	for _, classic := range []bool{false, true} {
		a, err := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: classic})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "agg")
		if err := WriteAggregator(dir, a, nil); err != nil {
			t.Fatal(err)
		}
		got, err := LoadAggregator(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		assertAggregatorEqual(t, got, a)
		if PostQuantum(got.Identity) == classic {
			t.Errorf("classic=%v: loaded PostQuantum = %v", classic, PostQuantum(got.Identity))
		}
		pub, err := LoadAggregatorPublic(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := a.Public()
		if pub.Recipient != want.Recipient || pub.ActiveJWT != want.ActiveJWT || !pub.Checkpoint.Equal(want.Checkpoint) ||
			len(pub.JWT) != 1 || !pub.JWT[0].Key.Equal(want.JWT[0].Key) || pub.JWT[0].ID != want.JWT[0].ID {
			t.Errorf("LoadAggregatorPublic = %+v, want %+v", pub, want)
		}
		checkModes(t, dir)
	}
}

// checkModes asserts the documented modes: .pub files 0644, all others 0600, directory 0700.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm() &^ 0o700; got != 0 {
		t.Errorf("directory mode %#o, want 0700", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		want := os.FileMode(0o600)
		if strings.HasSuffix(e.Name(), ".pub") {
			want = 0o644
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", e.Name(), got, want)
		}
	}
}

func TestMerchantRoundTrip(t *testing.T) {
	m, err := GenerateMerchant(rand.Reader, "shop.example_1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteMerchant(dir, m, nil); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMerchant(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || !got.Signing.Equal(m.Signing) || got.Pseudonym.ID() != m.Pseudonym.ID() {
		t.Errorf("LoadMerchant = %+v, want %+v", got, m)
	}
	pub, err := LoadMerchantPublic(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID != m.ID || !pub.Signing.Equal(m.Signing.Public()) {
		t.Errorf("LoadMerchantPublic = %+v, want %+v", pub, m.Public())
	}
	// The pseudonym file is the one crypto/pseudonym reads, with the same key.
	pk, err := pseudonym.ReadKeyFile(filepath.Join(dir, FilePseudonym))
	if err != nil {
		t.Fatalf("pseudonym.ReadKeyFile: %v", err)
	}
	if pk.ID() != m.Pseudonym.ID() {
		t.Errorf("pseudonym.ReadKeyFile gave key %s, want %s", pk.ID(), m.Pseudonym.ID())
	}
	// And a file pseudonym.WriteKeyFile wrote loads here.
	k2, _ := pseudonym.NewKey(rand.Reader)
	_ = os.Remove(filepath.Join(dir, FilePseudonym))
	if err := pseudonym.WriteKeyFile(filepath.Join(dir, FilePseudonym), k2); err != nil {
		t.Fatal(err)
	}
	got, err = LoadMerchant(dir, nil)
	if err != nil {
		t.Fatalf("load a pseudonym.WriteKeyFile file: %v", err)
	}
	if got.Pseudonym.ID() != k2.ID() {
		t.Errorf("loaded pseudonym key %s, want %s", got.Pseudonym.ID(), k2.ID())
	}
	checkModes(t, dir)
}

func TestMerchantPseudonymKey(t *testing.T) {
	m, _ := GenerateMerchant(&seqRand{label: "m"}, "shop-9")
	// The key is the 32 bytes after the signing seed in the rand stream.
	stream := make([]byte, 64)
	_, _ = (&seqRand{label: "m"}).Read(stream)
	want, _ := pseudonym.KeyFromBytes(stream[32:])
	if m.Pseudonym.ID() != want.ID() {
		t.Errorf("pseudonym key %s, want %s", m.Pseudonym.ID(), want.ID())
	}
	old, err := m.RotatePseudonym(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if old.ID() != want.ID() || m.Pseudonym.ID() == want.ID() {
		t.Errorf("rotate: old %s new %s, want old %s and a new key", old.ID(), m.Pseudonym.ID(), want.ID())
	}
	dir := t.TempDir()
	if err := WriteMerchantWithOptions(dir, m, WriteOptions{Passphrase: []byte("p"), ScryptWorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMerchant(dir, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Pseudonym.ID() != m.Pseudonym.ID() {
		t.Errorf("loaded pseudonym key %s, want %s", got.Pseudonym.ID(), m.Pseudonym.ID())
	}
	// A key assigned directly cannot be written: its bytes are unknown.
	m.Pseudonym, _ = pseudonym.NewKey(rand.Reader)
	if err := WriteMerchant(t.TempDir(), m, nil); err == nil {
		t.Error("WriteMerchant with a directly assigned pseudonym key: got no error")
	}
	if err := m.SetPseudonym(make([]byte, 32)); err == nil {
		t.Error("SetPseudonym(all zero): got no error")
	}
}

func TestMerchantID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"shop-1", true},
		{"A.b_c-9", true},
		{strings.Repeat("x", MaxMerchantIDLen), true},
		{"", false},
		{strings.Repeat("x", MaxMerchantIDLen+1), false},
		{"-shop", false},
		{".shop", false},
		{"shop 1", false},
		{"shop/1", false},
		{"shöp", false},
		{"shop\n", false},
	}
	for _, tt := range tests {
		err := CheckMerchantID(tt.id)
		if got := err == nil; got != tt.ok {
			t.Errorf("CheckMerchantID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if _, err := GenerateMerchant(rand.Reader, tt.id); (err == nil) != tt.ok {
			t.Errorf("GenerateMerchant(%q) error = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestRefuseInsecureMode(t *testing.T) {
	a, _ := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	m, _ := GenerateMerchant(rand.Reader, "m1")
	aggDir, merDir := t.TempDir(), t.TempDir()
	if err := WriteAggregator(aggDir, a, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteMerchant(merDir, m, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir, file string
		mode      os.FileMode
		load      func(string) error
	}{
		{aggDir, FileAgeIdentity, 0o640, loadAgg},
		{aggDir, FileAgeIdentity, 0o604, loadAgg},
		{aggDir, FileAgeIdentity, 0o620, loadAgg},
		{aggDir, jwtPrivName(a.ActiveJWT), 0o644, loadAgg},
		{aggDir, FileJWTActive, 0o640, loadAgg},
		{aggDir, FileAuditHMAC, 0o660, loadAgg},
		{aggDir, FileCheckpoint, 0o601, loadAgg},
		{merDir, FileSigning, 0o640, loadMer},
		{merDir, FilePseudonym, 0o644, loadMer},
		{merDir, FileMerchantID, 0o644, loadMer},
	}
	for _, tt := range tests {
		path := filepath.Join(tt.dir, tt.file)
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		err := tt.load(tt.dir)
		var me *InsecureModeError
		if !errors.Is(err, ErrInsecureMode) || !errors.As(err, &me) {
			t.Errorf("%s mode %#o: got error %v, want ErrInsecureMode", tt.file, tt.mode, err)
		} else {
			if me.Path != path || me.Mode.Perm() != tt.mode {
				t.Errorf("%s: error names %s %#o, want %s %#o", tt.file, me.Path, me.Mode.Perm(), path, tt.mode)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
		}
		_ = os.Chmod(path, 0o600)
		if err := tt.load(tt.dir); err != nil {
			t.Errorf("%s back at 0600: %v", tt.file, err)
		}
	}
	// Public files may be world-readable.
	if err := os.Chmod(filepath.Join(aggDir, FileCheckpointPub), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAggregatorPublic(aggDir); err != nil {
		t.Errorf("LoadAggregatorPublic with 0644 .pub files: %v", err)
	}
}

func loadAgg(dir string) error { _, err := LoadAggregator(dir, nil); return err }
func loadMer(dir string) error { _, err := LoadMerchant(dir, nil); return err }

func TestPassphrase(t *testing.T) {
	a, _ := GenerateAggregator(rand.Reader, AggregatorOptions{})
	dir := t.TempDir()
	pass := []byte("correct horse battery staple")
	opts := WriteOptions{Passphrase: pass, ScryptWorkFactor: 10}
	if err := WriteAggregatorWithOptions(dir, a, opts); err != nil {
		t.Fatal(err)
	}
	// Secrets are only in armored age files; nothing secret in the clear.
	for _, name := range []string{FileAgeIdentity, jwtPrivName(a.ActiveJWT), FileAuditHMAC, FileCheckpoint} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: clear file exists (err %v)", name, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, name+EncryptedSuffix))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(armorHeader)) {
			t.Errorf("%s.age does not start with the age armor header", name)
		}
	}
	hmacHex := hex.EncodeToString(a.AuditHMAC)
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d != nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(hmacHex)) {
				t.Errorf("%s holds the audit key in the clear", p)
			}
		}
		return nil
	})
	got, err := LoadAggregator(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	assertAggregatorEqual(t, got, a)

	tests := []struct {
		name string
		pass []byte
		want error
	}{
		{"wrong", []byte("Correct horse battery staple"), ErrWrongPassphrase},
		{"missing", nil, ErrPassphraseRequired},
	}
	for _, tt := range tests {
		_, err := LoadAggregator(dir, tt.pass)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s passphrase: got %v, want %v", tt.name, err, tt.want)
		} else if !strings.Contains(err.Error(), filepath.Join(dir, FileAgeIdentity+EncryptedSuffix)) {
			t.Errorf("%s passphrase: error %q does not name the file", tt.name, err)
		}
	}
	// Public parts load without the passphrase.
	if _, err := LoadAggregatorPublic(dir); err != nil {
		t.Errorf("LoadAggregatorPublic: %v", err)
	}
	// Rewriting in the clear removes the encrypted copies, and a passphrase is then refused.
	if err := WriteAggregator(dir, a, nil); err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*"+EncryptedSuffix)); len(matches) != 0 {
		t.Errorf("encrypted files left after a clear rewrite: %v", matches)
	}
	if _, err := LoadAggregator(dir, pass); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("clear files with a passphrase: got %v, want ErrNotEncrypted", err)
	}
	if err := WriteAggregatorWithOptions(dir, a, WriteOptions{Passphrase: []byte{}}); err == nil {
		t.Error("empty passphrase: got no error")
	}
}

func TestMerchantPublicMismatch(t *testing.T) {
	m, _ := GenerateMerchant(rand.Reader, "m3")
	other, _ := GenerateMerchant(rand.Reader, "m4")
	dir := t.TempDir()
	if err := WriteMerchant(dir, m, nil); err != nil {
		t.Fatal(err)
	}
	pub, _ := encodePublicPEM(other.Signing.Public().(ed25519.PublicKey))
	if err := os.WriteFile(filepath.Join(dir, FileSigningPub), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMerchant(dir, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("replaced signing.pub: got %v, want a mismatch error", err)
	}
}

func TestPassphraseBinaryAgeFile(t *testing.T) {
	m, _ := GenerateMerchant(rand.Reader, "m2")
	dir := t.TempDir()
	pass := []byte("pw")
	if err := WriteMerchantWithOptions(dir, m, WriteOptions{Passphrase: pass, ScryptWorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	// Replace the armored signing key with a binary age file made directly with age.
	r, _ := age.NewScryptRecipient(string(pass))
	r.SetWorkFactor(10)
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, r)
	_, _ = w.Write(encodePrivatePEMForTest(t, m.Signing))
	_ = w.Close()
	if err := os.WriteFile(filepath.Join(dir, FileSigning+EncryptedSuffix), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMerchant(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Signing.Equal(m.Signing) {
		t.Error("signing key differs after binary age file")
	}
}

func encodePrivatePEMForTest(t *testing.T, k ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := encodePrivatePEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRotateJWT(t *testing.T) {
	a, _ := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	first := a.ActiveJWT
	k2, err := a.RotateJWT(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k3, _ := a.RotateJWT(rand.Reader)
	if a.ActiveJWT != k3.ID || len(a.JWT) != 3 {
		t.Fatalf("after two rotations: active %s with %d keys, want %s with 3", a.ActiveJWT, len(a.JWT), k3.ID)
	}
	if act, _ := a.Active(); act.ID != k3.ID {
		t.Errorf("Active() = %s, want %s", act.ID, k3.ID)
	}
	dir := t.TempDir()
	if err := WriteAggregator(dir, a, nil); err != nil {
		t.Fatal(err)
	}
	got, err := LoadAggregator(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertAggregatorEqual(t, got, a)
	// A signature by an old key still verifies against the loaded public set.
	msg := []byte("token")
	sig := ed25519.Sign(a.JWT[0].Private, msg)
	found := false
	for _, k := range got.Public().JWT {
		if k.ID == first && ed25519.Verify(k.Key, msg, sig) {
			found = true
		}
	}
	if !found {
		t.Error("old key's signature does not verify after rotation")
	}
	if err := got.RemoveJWT(k3.ID); err == nil {
		t.Error("RemoveJWT(active): got no error")
	}
	if err := got.RemoveJWT("0000000000000000"); !errors.Is(err, ErrUnknownKID) {
		t.Errorf("RemoveJWT(unknown) = %v, want ErrUnknownKID", err)
	}
	if err := got.RemoveJWT(k2.ID); err != nil {
		t.Fatal(err)
	}
	if err := WriteAggregator(dir, got, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{jwtPrivName(k2.ID), jwtPubName(k2.ID)} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still present after removal (err %v)", name, err)
		}
	}
	again, err := LoadAggregator(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.JWT) != 2 || again.ActiveJWT != k3.ID {
		t.Errorf("after removal: %d keys, active %s; want 2, %s", len(again.JWT), again.ActiveJWT, k3.ID)
	}
}

func TestLoadRejectsTampering(t *testing.T) {
	a, _ := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	b, _ := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	tests := []struct {
		name   string
		mutate func(dir string) error
	}{
		{"jwt file under another kid", func(dir string) error {
			return os.Rename(filepath.Join(dir, jwtPrivName(a.ActiveJWT)), filepath.Join(dir, jwtPrivName(b.ActiveJWT)))
		}},
		{"active kid not present", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, FileJWTActive), []byte(b.ActiveJWT+"\n"), 0o600)
		}},
		{"missing audit key", func(dir string) error { return os.Remove(filepath.Join(dir, FileAuditHMAC)) }},
		{"short audit key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, FileAuditHMAC), []byte("abcd\n"), 0o600)
		}},
		{"public key in private slot", func(dir string) error {
			pub, _ := os.ReadFile(filepath.Join(dir, FileCheckpointPub))
			return os.WriteFile(filepath.Join(dir, FileCheckpoint), pub, 0o600)
		}},
		{"recipient.pub of another aggregator", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, FileAgeRecipient), []byte(b.Recipient+"\n"), 0o644)
		}},
		{"checkpoint.pub of another aggregator", func(dir string) error {
			pub, _ := encodePublicPEM(b.Checkpoint.Public().(ed25519.PublicKey))
			return os.WriteFile(filepath.Join(dir, FileCheckpointPub), pub, 0o644)
		}},
		{"jwt .pub missing", func(dir string) error { return os.Remove(filepath.Join(dir, jwtPubName(a.ActiveJWT))) }},
		{"identity garbage", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, FileAgeIdentity), []byte("AGE-SECRET-KEY-1QQQ\n"), 0o600)
		}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := WriteAggregator(dir, a, nil); err != nil {
			t.Fatal(err)
		}
		if err := tt.mutate(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadAggregator(dir, nil); err == nil {
			t.Errorf("%s: LoadAggregator succeeded, want an error", tt.name)
		}
	}
}

func TestInterruptedRotation(t *testing.T) {
	// WriteAggregator writes a new key's .pub, then its .pem, then jwt-active;
	// a crash after any of these steps must leave a directory that loads.
	a, _ := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	dir := t.TempDir()
	if err := WriteAggregator(dir, a, nil); err != nil {
		t.Fatal(err)
	}
	oldActive := a.ActiveJWT
	k, _ := a.RotateJWT(rand.Reader)
	pub, _ := encodePublicPEM(k.Private.Public().(ed25519.PublicKey))
	if err := os.WriteFile(filepath.Join(dir, jwtPubName(k.ID)), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadAggregator(dir, nil)
	if err != nil {
		t.Fatalf("after the .pub step: %v", err)
	}
	if len(got.JWT) != 1 || got.ActiveJWT != oldActive {
		t.Errorf("after the .pub step: %d keys, active %s; want 1, %s", len(got.JWT), got.ActiveJWT, oldActive)
	}
	priv, _ := encodePrivatePEM(k.Private)
	if err := os.WriteFile(filepath.Join(dir, jwtPrivName(k.ID)), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	got2, err := LoadAggregator(dir, nil)
	if err != nil {
		t.Fatalf("after the .pem step: %v", err)
	}
	if len(got2.JWT) != 2 || got2.ActiveJWT != oldActive {
		t.Errorf("after the .pem step: %d keys, active %s; want 2, %s", len(got2.JWT), got2.ActiveJWT, oldActive)
	}
	// Rewriting the state loaded after the .pub step removes the orphan .pub.
	_ = os.Remove(filepath.Join(dir, jwtPrivName(k.ID)))
	if err := WriteAggregator(dir, got, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, jwtPubName(k.ID))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan .pub not removed (err %v)", err)
	}
}
