package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

var created = time.UnixMilli(1700000000123).UTC()

// fixture holds the keys of one aggregator and one merchant.
type fixture struct {
	pq       *age.HybridIdentity
	classic  *age.X25519Identity
	merchant ed25519.PrivateKey
	other    ed25519.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		pq:       pq,
		classic:  cl,
		merchant: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)),
		other:    ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)),
	}
}

func (f *fixture) header() Header {
	return Header{MerchantID: "shop-1", Round: "round-7", ModelVersion: "v3", CreatedAt: created}
}

func (f *fixture) seal(t testing.TB, payload []byte, pq bool) []byte {
	t.Helper()
	var r age.Recipient = f.classic.Recipient()
	if pq {
		r = f.pq.Recipient()
	}
	env, err := Seal(rand.Reader, f.header(), payload, f.merchant, r)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// opts accepts envelopes from shop-1 signed by f.merchant, for round-7, now.
func (f *fixture) opts(pq bool) OpenOptions {
	var id age.Identity = f.classic
	if pq {
		id = f.pq
	}
	return OpenOptions{
		Identity: id,
		Signers: func(m string) (ed25519.PublicKey, error) {
			if m != "shop-1" {
				return nil, ErrUnknownSigner
			}
			return f.merchant.Public().(ed25519.PublicKey), nil
		},
		Round:     "round-7",
		SeenNonce: func(string, [NonceSize]byte) bool { return false },
		Now:       created.Add(time.Minute),
		MaxSkew:   5 * time.Minute,
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, pq := range []bool{true, false} {
		for _, payload := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("kairos"), 20000)} {
			env := f.seal(t, payload, pq)
			h, got, err := Open(env, f.opts(pq))
			if err != nil {
				t.Fatalf("pq=%v len=%d: %v", pq, len(payload), err)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("pq=%v: payload of %d bytes, want %d", pq, len(got), len(payload))
			}
			want := Header{Version: 1, MerchantID: "shop-1", Round: "round-7", ModelVersion: "v3",
				Nonce: h.Nonce, CreatedAt: created, PayloadSHA256: sha256.Sum256(payload), Recipient: Classic}
			if pq {
				want.Recipient = PostQuantum
			}
			if h != want {
				t.Errorf("pq=%v: header %+v, want %+v", pq, h, want)
			}
			if h.Nonce == ([NonceSize]byte{}) {
				t.Error("nonce is all zero")
			}
			ph, err := ParseHeader(env)
			if err != nil || ph != h {
				t.Errorf("ParseHeader = %+v, %v; want %+v", ph, err, h)
			}
		}
	}
}

func TestNonceFromRand(t *testing.T) {
	f := newFixture(t)
	nonce := []byte("0123456789abcdef")
	env, err := Seal(bytes.NewReader(nonce), f.header(), []byte("p"), f.merchant, f.classic.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHeader(env)
	if !bytes.Equal(h.Nonce[:], nonce) {
		t.Errorf("nonce %q, want %q", h.Nonce[:], nonce)
	}
	if _, err := Seal(bytes.NewReader(nonce[:5]), f.header(), []byte("p"), f.merchant, f.classic.Recipient()); err == nil {
		t.Error("short rand: got no error")
	}
}

func TestHeaderEncodingGolden(t *testing.T) {
	h := Header{Version: 1, MerchantID: "m1", Round: "r7", ModelVersion: "v3", CreatedAt: created, Recipient: PostQuantum}
	for i := range h.Nonce {
		h.Nonce[i] = byte(i)
	}
	for i := range h.PayloadSHA256 {
		h.PayloadSHA256[i] = 0xaa
	}
	// Written out by hand from the format in the package documentation.
	want := "01" + "00026d31" + "00027237" + "00027633" +
		"000102030405060708090a0b0c0d0e0f" + "0000018bcfe5687b" +
		strings.Repeat("aa", 32) + "01"
	got, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Errorf("MarshalBinary = %x, want %s", got, want)
	}
	back, err := unmarshalHeader(got, 0)
	if err != nil || back != h {
		t.Errorf("unmarshal = %+v, %v; want %+v", back, err, h)
	}
}

// assemble builds an envelope by hand from the documented wire format, signing
// with key (nil: no signature).
func assemble(t testing.TB, hdr, ct []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var sig []byte
	if key != nil {
		ctHash := sha256.Sum256(ct)
		msg := []byte("KAIROS-SEAL/1 signature\x00")
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(hdr)))
		msg = append(msg, hdr...)
		msg = append(msg, ctHash[:]...)
		sig = ed25519.Sign(key, msg)
	}
	return frame(hdr, sig, ct)
}

// frame lays out the documented wire format around the given parts.
func frame(hdr, sig, ct []byte) []byte {
	env := []byte("KAIROS-SEAL/1")
	env = binary.BigEndian.AppendUint32(env, uint32(len(hdr)))
	env = append(env, hdr...)
	env = binary.BigEndian.AppendUint16(env, uint16(len(sig)))
	env = append(env, sig...)
	env = binary.BigEndian.AppendUint32(env, uint32(len(ct)))
	return append(env, ct...)
}

// split returns the raw header and ciphertext of a valid envelope.
func split(t testing.TB, env []byte) (hdr, ct []byte) {
	t.Helper()
	e, err := parse(env)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(e.rawHeader), bytes.Clone(e.ct)
}

func TestSealMatchesDocumentedFormat(t *testing.T) {
	// Re-assembling Seal's output with the test's own encoder and the
	// documented signature input gives the same bytes (Ed25519 is deterministic).
	f := newFixture(t)
	env := f.seal(t, []byte("payload"), true)
	hdr, ct := split(t, env)
	if got := assemble(t, hdr, ct, f.merchant); !bytes.Equal(got, env) {
		t.Error("envelope differs from the documented format")
	}
}

func ageEncrypt(t testing.TB, payload []byte, r ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r...)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(payload)
	_ = w.Close()
	return buf.Bytes()
}

func TestRejections(t *testing.T) {
	f := newFixture(t)
	payload := []byte("model update")
	pqEnv := f.seal(t, payload, true)
	clEnv := f.seal(t, payload, false)
	hdrPQ, ctPQ := split(t, pqEnv)
	hdrCl, _ := split(t, clEnv)
	sigPQ := pqEnv[13+4+len(hdrPQ)+2 : 13+4+len(hdrPQ)+2+64]
	if _, _, err := Open(frame(hdrPQ, sigPQ, ctPQ), f.opts(true)); err != nil {
		t.Fatalf("reframed original: %v", err)
	}

	otherPQ, _ := age.GenerateHybridIdentity()
	scryptR, _ := age.NewScryptRecipient("pw")
	scryptR.SetWorkFactor(10)

	withHeader := func(mut func(*Header)) []byte {
		h := f.header()
		h.Version, h.Recipient, h.PayloadSHA256 = 1, PostQuantum, sha256.Sum256(payload)
		mut(&h)
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sentinels := []error{ErrMalformed, ErrTooLarge, ErrMissingSignature, ErrUnknownSigner, ErrRevokedSigner,
		ErrBadSignature, ErrRoundMismatch, ErrStale, ErrRecipientKind, ErrReplay, ErrDecrypt, ErrDigestMismatch}

	tests := []struct {
		name string
		env  []byte
		opts func(o *OpenOptions)
		want error
	}{
		{"too large", pqEnv, func(o *OpenOptions) { o.MaxSize = len(pqEnv) - 1 }, ErrTooLarge},
		{"bad magic", append([]byte("KAIROS-SEAL/2"), pqEnv[13:]...), nil, ErrMalformed},
		{"empty", nil, nil, ErrMalformed},
		{"truncated", pqEnv[:len(pqEnv)-1], nil, ErrMalformed},
		{"trailing byte", append(bytes.Clone(pqEnv), 0), nil, ErrMalformed},
		{"no signature", assemble(t, hdrPQ, ctPQ, nil), nil, ErrMissingSignature},
		{"unknown signer", pqEnv, func(o *OpenOptions) {
			o.Signers = func(string) (ed25519.PublicKey, error) { return nil, ErrUnknownSigner }
		}, ErrUnknownSigner},
		{"revoked signer", pqEnv, func(o *OpenOptions) {
			o.Signers = func(string) (ed25519.PublicKey, error) { return nil, ErrRevokedSigner }
		}, ErrRevokedSigner},
		{"signed by another key", assemble(t, hdrPQ, ctPQ, f.other), nil, ErrBadSignature},
		{"merchant id swapped", assemble(t, withHeader(func(h *Header) { h.MerchantID = "shop-2" }), ctPQ, f.merchant),
			func(o *OpenOptions) {
				o.Signers = func(string) (ed25519.PublicKey, error) { return f.other.Public().(ed25519.PublicKey), nil }
			}, ErrBadSignature},
		{"ciphertext swapped under the old signature", frame(hdrPQ, sigPQ, ageEncrypt(t, payload, f.pq.Recipient())), nil, ErrBadSignature},
		{"round", pqEnv, func(o *OpenOptions) { o.Round = "round-8" }, ErrRoundMismatch},
		{"too old", pqEnv, func(o *OpenOptions) { o.Now = created.Add(6 * time.Minute) }, ErrStale},
		{"from the future", pqEnv, func(o *OpenOptions) { o.Now = created.Add(-6 * time.Minute) }, ErrStale},
		{"classic envelope, pq identity", clEnv, nil, ErrRecipientKind},
		{"pq envelope, classic identity", pqEnv, func(o *OpenOptions) { o.Identity = f.classic }, ErrRecipientKind},
		{"classic refused", clEnv, func(o *OpenOptions) { o.Identity = f.classic; o.RequirePostQuantum = true }, ErrRecipientKind},
		{"header says pq, stanza is X25519", assemble(t, hdrPQ, ageEncrypt(t, payload, f.classic.Recipient()), f.merchant),
			func(o *OpenOptions) { o.Identity = f.classic }, ErrRecipientKind},
		{"header says classic, stanza is pq", assemble(t, hdrCl, ctPQ, f.merchant), func(o *OpenOptions) { o.Identity = f.classic }, ErrRecipientKind},
		{"scrypt stanza", assemble(t, hdrPQ, ageEncrypt(t, payload, scryptR), f.merchant), nil, ErrRecipientKind},
		{"replay", pqEnv, func(o *OpenOptions) { o.SeenNonce = func(string, [NonceSize]byte) bool { return true } }, ErrReplay},
		{"other aggregator", pqEnv, func(o *OpenOptions) { o.Identity = otherPQ }, ErrDecrypt},
		{"digest", assemble(t, withHeader(func(h *Header) { h.PayloadSHA256[0] ^= 1 }), ctPQ, f.merchant), nil, ErrDigestMismatch},
		{"ciphertext re-encrypted and re-signed", assemble(t, hdrPQ, ageEncrypt(t, []byte("model updatE"), f.pq.Recipient()), f.merchant), nil, ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.opts(true)
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, got, err := Open(tt.env, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("got a payload with an error")
			}
			for _, s := range sentinels {
				if errors.Is(err, s) && !errors.Is(tt.want, s) {
					t.Errorf("error %v also matches %v", err, s)
				}
			}
		})
	}
}

func TestMalformedOffsets(t *testing.T) {
	f := newFixture(t)
	env := f.seal(t, []byte("p"), false)
	hdr, ct := split(t, env)
	sigLenAt := 13 + 4 + len(hdr)
	ctLenAt := sigLenAt + 2 + 64
	badKind := bytes.Clone(hdr)
	badKind[len(badKind)-1] = 3
	badVersion := bytes.Clone(hdr)
	badVersion[0] = 2
	tests := []struct {
		name string
		env  []byte
		off  int
	}{
		{"magic", []byte("KAIROS"), 0},
		{"header length zero", append([]byte("KAIROS-SEAL/1"), 0, 0, 0, 0), 13},
		{"header length huge", append([]byte("KAIROS-SEAL/1"), 0xff, 0xff, 0xff, 0xff), 13},
		{"version", assemble(t, badVersion, ct, f.merchant), 17},
		{"recipient kind", assemble(t, badKind, ct, f.merchant), 17 + len(hdr) - 1},
		{"trailing", append(bytes.Clone(env), 'x'), ctLenAt},
		{"signature length 63", func() []byte {
			b := bytes.Clone(env)
			binary.BigEndian.PutUint16(b[sigLenAt:], 63)
			return b
		}(), sigLenAt},
		{"not age", assemble(t, hdr, []byte("hello\n"), f.merchant), ctLenAt + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Open(tt.env, f.opts(false))
			var me *MalformedError
			if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want a MalformedError", err)
			}
			if me.Offset != tt.off {
				t.Errorf("offset %d, want %d (%v)", me.Offset, tt.off, err)
			}
		})
	}
}

func TestSeenNonceOnlyAfterSignature(t *testing.T) {
	f := newFixture(t)
	env := f.seal(t, []byte("p"), true)
	hdr, ct := split(t, env)
	calls := 0
	o := f.opts(true)
	o.SeenNonce = func(string, [NonceSize]byte) bool { calls++; return false }
	if _, _, err := Open(assemble(t, hdr, ct, f.other), o); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
	if calls != 0 {
		t.Errorf("SeenNonce called %d times for a forged envelope, want 0", calls)
	}
	if _, _, err := Open(env, o); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("SeenNonce called %d times for a valid envelope, want 1", calls)
	}
}

func TestInvalidOptions(t *testing.T) {
	f := newFixture(t)
	env := f.seal(t, []byte("p"), true)
	muts := map[string]func(*OpenOptions){
		"identity": func(o *OpenOptions) { o.Identity = nil },
		"signers":  func(o *OpenOptions) { o.Signers = nil },
		"round":    func(o *OpenOptions) { o.Round = "" },
		"seen":     func(o *OpenOptions) { o.SeenNonce = nil },
		"now":      func(o *OpenOptions) { o.Now = time.Time{} },
		"skew":     func(o *OpenOptions) { o.MaxSkew = 0 },
		"size":     func(o *OpenOptions) { o.MaxSize = -1 },
	}
	for name, mut := range muts {
		o := f.opts(true)
		mut(&o)
		if _, _, err := Open(env, o); err == nil || !strings.Contains(err.Error(), "invalid options") {
			t.Errorf("%s: got %v, want an invalid options error", name, err)
		}
	}
}

func TestSealRejectsBadHeaders(t *testing.T) {
	f := newFixture(t)
	tests := map[string]func(*Header){
		"empty merchant": func(h *Header) { h.MerchantID = "" },
		"long round":     func(h *Header) { h.Round = strings.Repeat("r", MaxFieldLen+1) },
		"control char":   func(h *Header) { h.ModelVersion = "v\n3" },
		"invalid utf8":   func(h *Header) { h.MerchantID = "\xff" },
		"no created-at":  func(h *Header) { h.CreatedAt = time.Time{} },
	}
	for name, mut := range tests {
		h := f.header()
		mut(&h)
		if _, err := Seal(rand.Reader, h, []byte("p"), f.merchant, f.pq.Recipient()); err == nil {
			t.Errorf("%s: Seal succeeded", name)
		}
	}
	if _, err := Seal(rand.Reader, f.header(), nil, f.merchant[:10], f.pq.Recipient()); err == nil {
		t.Error("short signing key: Seal succeeded")
	}
	if _, err := Seal(rand.Reader, f.header(), nil, f.merchant, (*age.ScryptRecipient)(nil)); err == nil {
		t.Error("scrypt recipient: Seal succeeded")
	}
	// The longest allowed fields give exactly MaxHeaderSize bytes, and open.
	h := f.header()
	h.MerchantID, h.Round, h.ModelVersion = strings.Repeat("m", MaxFieldLen), strings.Repeat("r", MaxFieldLen), strings.Repeat("v", MaxFieldLen)
	env, err := Seal(rand.Reader, h, []byte("p"), f.merchant, f.pq.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(env[13:]); got != MaxHeaderSize {
		t.Errorf("longest header is %d bytes, want MaxHeaderSize %d", got, MaxHeaderSize)
	}
	o := f.opts(true)
	o.Round = h.Round
	o.Signers = func(string) (ed25519.PublicKey, error) { return f.merchant.Public().(ed25519.PublicKey), nil }
	if _, _, err := Open(env, o); err != nil {
		t.Errorf("longest header: %v", err)
	}
}

// TestMutations flips every bit of valid envelopes (PQ and classic) and
// requires Open to reject each one.
func TestMutations(t *testing.T) {
	f := newFixture(t)
	for _, pq := range []bool{true, false} {
		env := f.seal(t, []byte("a small model update"), pq)
		o := f.opts(pq)
		if _, _, err := Open(env, o); err != nil {
			t.Fatalf("pq=%v: unmutated envelope: %v", pq, err)
		}
		step := 1
		if testing.Short() {
			step = 8 // one bit per byte
		}
		accepted := 0
		for bit := 0; bit < 8*len(env); bit += step {
			env[bit/8] ^= 1 << (bit % 8)
			_, _, err := Open(env, o)
			env[bit/8] ^= 1 << (bit % 8)
			if err == nil {
				accepted++
				if accepted < 5 {
					t.Errorf("pq=%v: flipping bit %d (byte %d) was accepted", pq, bit, bit/8)
				}
			}
		}
		if accepted > 0 {
			t.Errorf("pq=%v: %d of %d mutations accepted", pq, accepted, 8*len(env)/step)
		}
		t.Logf("pq=%v: %d-byte envelope, %d mutations, all rejected", pq, len(env), 8*len(env)/step)
	}
}

func TestSignerLookupFailure(t *testing.T) {
	// An error of the caller's own (say, the enrolment store is down) is
	// passed through and is not mistaken for a rejection of the envelope.
	f := newFixture(t)
	env := f.seal(t, []byte("p"), true)
	errStore := errors.New("enrolment store unavailable")
	o := f.opts(true)
	o.Signers = func(string) (ed25519.PublicKey, error) { return nil, errStore }
	_, _, err := Open(env, o)
	if !errors.Is(err, errStore) {
		t.Fatalf("got %v, want the store error", err)
	}
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			t.Errorf("store error also matches %v", s)
		}
	}
	o.Signers = func(string) (ed25519.PublicKey, error) { return make(ed25519.PublicKey, 5), nil }
	if _, _, err := Open(env, o); !errors.Is(err, ErrUnknownSigner) {
		t.Errorf("malformed enrolled key: got %v, want ErrUnknownSigner", err)
	}
}
