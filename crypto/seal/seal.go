// Package seal builds and opens the envelope a merchant sends the aggregator:
// a signed, canonical header and the payload encrypted with age.
//
// # Wire format (all integers big-endian)
//
//	magic        13 bytes  "KAIROS-SEAL/1"
//	header len   uint32    1 … MaxHeaderSize
//	header       the canonical header below
//	sig len      uint16    0 (no signature) or 64
//	signature    Ed25519 over the signature input below
//	cipher len   uint32    must reach exactly the end of the envelope
//	ciphertext   a binary age file holding the payload
//
// # Canonical header (format version 1), fields in this order
//
//	version      uint8     1
//	merchant id  uint16 length + bytes (1 … MaxFieldLen, printable UTF-8)
//	round id     uint16 length + bytes (same rules)
//	model ver.   uint16 length + bytes (same rules)
//	nonce        16 bytes, random per envelope
//	created at   int64, Unix milliseconds
//	payload hash 32 bytes, SHA-256 of the plaintext payload
//	recipient    uint8, 1 = post-quantum hybrid (ML-KEM-768 + X25519), 2 = classic X25519
//
// Every field has exactly one encoding and parsing is strict (no trailing
// bytes anywhere), so equal headers are equal bytes.
//
// # Signature input
//
//	"KAIROS-SEAL/1 signature\x00" ‖ uint32 header len ‖ header ‖ SHA-256(ciphertext)
//
// The signature binds the ciphertext as well as the header: an envelope whose
// ciphertext was swapped is rejected before any decryption work.
//
// age does not authenticate senders (every merchant holds the aggregator's
// recipient), so Open verifies the signature against the merchant's enrolled
// key before it trusts any header field or decrypts, and after decrypting it
// checks the payload against the signed SHA-256.
//
// The payload hash travels in the clear, so anyone who sees an envelope can
// test a guess of the whole payload. For noised (differentially private)
// float vectors such a guess has no chance; do not seal low-entropy payloads.
//
// Seal and Open keep no state and are safe for concurrent use. age draws the
// file key and stream nonce from crypto/rand itself; the rand passed to Seal
// supplies the header nonce.
package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode"
	"unicode/utf8"

	"filippo.io/age"
)

// Limits of the format.
const (
	// Magic opens every envelope.
	Magic = "KAIROS-SEAL/1"
	// Version is the header format version this package writes and reads.
	Version = 1
	// MaxFieldLen bounds each string field of the header, in bytes.
	MaxFieldLen = 255
	// MaxHeaderSize is the largest canonical header.
	MaxHeaderSize = 1 + 3*(2+MaxFieldLen) + 16 + 8 + 32 + 1
	// DefaultMaxSize is the envelope size limit when OpenOptions.MaxSize is 0.
	DefaultMaxSize = 16 << 20
	// NonceSize is the length of the header nonce.
	NonceSize = 16

	sigDomain = "KAIROS-SEAL/1 signature\x00"
)

// Rejections. Every error Open returns for a bad envelope matches exactly one of
// these with errors.Is; other errors come from the caller's Signers callback.
var (
	ErrMalformed        = errors.New("malformed envelope")
	ErrTooLarge         = errors.New("envelope too large")
	ErrMissingSignature = errors.New("envelope is not signed")
	ErrUnknownSigner    = errors.New("unknown signer")
	ErrRevokedSigner    = errors.New("signer revoked")
	ErrBadSignature     = errors.New("bad signature")
	ErrRoundMismatch    = errors.New("envelope is for another round")
	ErrStale            = errors.New("envelope is stale or from the future")
	ErrRecipientKind    = errors.New("wrong age recipient kind")
	ErrReplay           = errors.New("envelope replayed")
	ErrDecrypt          = errors.New("payload does not decrypt")
	ErrDigestMismatch   = errors.New("payload does not match the signed digest")
)

// MalformedError reports where parsing an envelope failed. It matches ErrMalformed.
type MalformedError struct {
	Offset int    // byte offset in the envelope
	Reason string // what was wrong there
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed envelope at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// RecipientKind says which kind of age recipient the payload is encrypted to.
type RecipientKind uint8

// Recipient kinds.
const (
	PostQuantum RecipientKind = 1 // age hybrid ML-KEM-768 + X25519 (mlkem768x25519 stanza)
	Classic     RecipientKind = 2 // age X25519 (X25519 stanza)
)

func (k RecipientKind) String() string {
	switch k {
	case PostQuantum:
		return "pq"
	case Classic:
		return "classic"
	}
	return fmt.Sprintf("RecipientKind(%d)", uint8(k))
}

// Header is the signed, cleartext part of an envelope.
type Header struct {
	Version       uint8
	MerchantID    string
	Round         string
	ModelVersion  string
	Nonce         [NonceSize]byte
	CreatedAt     time.Time // millisecond precision, UTC
	PayloadSHA256 [sha256.Size]byte
	Recipient     RecipientKind
}

// Seal encrypts payload to recipient and signs the envelope with signer. From
// h it takes MerchantID, Round, ModelVersion and CreatedAt; it sets Version, a
// fresh Nonce read from rand, PayloadSHA256, and Recipient from the recipient's
// type (*age.HybridRecipient or *age.X25519Recipient).
func Seal(rand io.Reader, h Header, payload []byte, signer ed25519.PrivateKey, recipient age.Recipient) ([]byte, error) {
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal update: signing key is %d bytes, want %d", len(signer), ed25519.PrivateKeySize)
	}
	switch recipient.(type) {
	case *age.HybridRecipient:
		h.Recipient = PostQuantum
	case *age.X25519Recipient:
		h.Recipient = Classic
	default:
		return nil, fmt.Errorf("seal update: recipient of type %T: want *age.HybridRecipient or *age.X25519Recipient", recipient)
	}
	if rand == nil {
		return nil, errors.New("seal update: nil random source")
	}
	h.Version = Version
	if _, err := io.ReadFull(rand, h.Nonce[:]); err != nil {
		return nil, fmt.Errorf("seal update: read nonce: %w", err)
	}
	h.PayloadSHA256 = sha256.Sum256(payload)
	h.CreatedAt = h.CreatedAt.UTC().Truncate(time.Millisecond)
	hdr, err := h.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal update: %w", err)
	}

	ct := bytes.NewBuffer(make([]byte, 0, len(payload)+len(payload)/4096*16+2048))
	w, err := age.Encrypt(ct, recipient)
	if err != nil {
		return nil, fmt.Errorf("seal update: encrypt: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return nil, fmt.Errorf("seal update: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal update: encrypt: %w", err)
	}
	if ct.Len() > math.MaxUint32 {
		return nil, errors.New("seal update: ciphertext longer than 4 GiB")
	}
	ctHash := sha256.Sum256(ct.Bytes())
	sig := ed25519.Sign(signer, signatureInput(hdr, ctHash))

	env := make([]byte, 0, len(Magic)+4+len(hdr)+2+len(sig)+4+ct.Len())
	env = append(env, Magic...)
	env = binary.BigEndian.AppendUint32(env, uint32(len(hdr)))
	env = append(env, hdr...)
	env = binary.BigEndian.AppendUint16(env, uint16(len(sig)))
	env = append(env, sig...)
	env = binary.BigEndian.AppendUint32(env, uint32(ct.Len()))
	env = append(env, ct.Bytes()...)
	return env, nil
}

func signatureInput(hdr []byte, ctHash [sha256.Size]byte) []byte {
	in := make([]byte, 0, len(sigDomain)+4+len(hdr)+len(ctHash))
	in = append(in, sigDomain...)
	in = binary.BigEndian.AppendUint32(in, uint32(len(hdr)))
	in = append(in, hdr...)
	return append(in, ctHash[:]...)
}

// OpenOptions are what Open checks an envelope against. Every field except
// MaxSize and RequirePostQuantum is required.
type OpenOptions struct {
	// Identity decrypts the payload: the aggregator's age identity.
	Identity age.Identity
	// Signers returns the enrolled signing key of a merchant, or an error
	// matching ErrUnknownSigner or ErrRevokedSigner.
	Signers func(merchantID string) (ed25519.PublicKey, error)
	// Round is the round id the envelope must carry.
	Round string
	// SeenNonce reports whether this merchant already used nonce. It is called
	// only once the signature, round and time checks passed, so it may record
	// the nonce without letting forged envelopes burn nonces. Since Open
	// refuses envelopes older than MaxSkew, a record may be dropped after
	// 2×MaxSkew.
	SeenNonce func(merchantID string, nonce [NonceSize]byte) bool
	// Now and MaxSkew bound CreatedAt to [Now-MaxSkew, Now+MaxSkew].
	Now     time.Time
	MaxSkew time.Duration
	// MaxSize bounds the envelope and the payload in bytes; 0 means DefaultMaxSize.
	MaxSize int
	// RequirePostQuantum refuses payloads encrypted to a classic recipient.
	RequirePostQuantum bool
}

func (o *OpenOptions) validate() error {
	switch {
	case o.Identity == nil:
		return errors.New("no identity")
	case o.Signers == nil:
		return errors.New("no signers lookup")
	case o.Round == "":
		return errors.New("no round")
	case o.SeenNonce == nil:
		return errors.New("no replay check")
	case o.Now.IsZero():
		return errors.New("no current time")
	case o.MaxSkew <= 0:
		return fmt.Errorf("max skew %v is not positive", o.MaxSkew)
	case o.MaxSize < 0:
		return fmt.Errorf("max size %d is negative", o.MaxSize)
	}
	return nil
}

// envelope is a parsed but unverified envelope; its slices alias the input.
type envelope struct {
	header    Header
	rawHeader []byte
	sig       []byte
	ct        []byte
	ctOffset  int
}

// ParseHeader parses env strictly and returns its header without verifying
// anything, for routing and logging. Never trust what it returns.
func ParseHeader(env []byte) (Header, error) {
	e, err := parse(env)
	if err != nil {
		return Header{}, fmt.Errorf("parse update header: %w", err)
	}
	return e.header, nil
}

// Open verifies env and returns its header and payload. The checks run in this
// order, each failure matching one sentinel: size (ErrTooLarge), framing
// (ErrMalformed), signature present (ErrMissingSignature), signer enrolled
// (ErrUnknownSigner, ErrRevokedSigner), signature (ErrBadSignature), round
// (ErrRoundMismatch), time (ErrStale), recipient kinds (ErrRecipientKind),
// replay (ErrReplay), decryption (ErrDecrypt), payload digest (ErrDigestMismatch).
func Open(env []byte, opts OpenOptions) (Header, []byte, error) {
	if err := opts.validate(); err != nil {
		return Header{}, nil, fmt.Errorf("open update: invalid options: %w", err)
	}
	maxSize := opts.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if len(env) > maxSize {
		return Header{}, nil, fmt.Errorf("open update: %d bytes, limit %d: %w", len(env), maxSize, ErrTooLarge)
	}
	e, err := parse(env)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open update: %w", err)
	}
	h := e.header
	if len(e.sig) == 0 {
		return Header{}, nil, fmt.Errorf("open update from %q: %w", h.MerchantID, ErrMissingSignature)
	}
	pub, err := opts.Signers(h.MerchantID)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open update from %q: %w", h.MerchantID, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return Header{}, nil, fmt.Errorf("open update from %q: enrolled key is %d bytes: %w", h.MerchantID, len(pub), ErrUnknownSigner)
	}
	if !ed25519.Verify(pub, signatureInput(e.rawHeader, sha256.Sum256(e.ct)), e.sig) {
		return Header{}, nil, fmt.Errorf("open update from %q: %w", h.MerchantID, ErrBadSignature)
	}
	// From here on the header is the merchant's own statement.
	if h.Round != opts.Round {
		return Header{}, nil, fmt.Errorf("open update from %q: round %q, want %q: %w", h.MerchantID, h.Round, opts.Round, ErrRoundMismatch)
	}
	if d := h.CreatedAt.Sub(opts.Now); d > opts.MaxSkew || d < -opts.MaxSkew {
		return Header{}, nil, fmt.Errorf("open update from %q: created %s, now %s, allowed skew %s: %w",
			h.MerchantID, h.CreatedAt.Format(time.RFC3339Nano), opts.Now.UTC().Format(time.RFC3339Nano), opts.MaxSkew, ErrStale)
	}
	if err := checkRecipientKind(e, opts); err != nil {
		return Header{}, nil, fmt.Errorf("open update from %q: %w", h.MerchantID, err)
	}
	if opts.SeenNonce(h.MerchantID, h.Nonce) {
		return Header{}, nil, fmt.Errorf("open update from %q: nonce %x: %w", h.MerchantID, h.Nonce, ErrReplay)
	}
	r, err := age.Decrypt(bytes.NewReader(e.ct), opts.Identity)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open update from %q: %w: %w", h.MerchantID, ErrDecrypt, err)
	}
	// The plaintext is shorter than the ciphertext; size the buffer once.
	buf := bytes.NewBuffer(make([]byte, 0, min(len(e.ct), maxSize+1)))
	_, err = buf.ReadFrom(io.LimitReader(r, int64(maxSize)+1))
	payload := buf.Bytes()
	if err != nil {
		return Header{}, nil, fmt.Errorf("open update from %q: %w: %w", h.MerchantID, ErrDecrypt, err)
	}
	if len(payload) > maxSize {
		return Header{}, nil, fmt.Errorf("open update from %q: payload over %d bytes: %w", h.MerchantID, maxSize, ErrTooLarge)
	}
	if sha256.Sum256(payload) != h.PayloadSHA256 {
		return Header{}, nil, fmt.Errorf("open update from %q: %w", h.MerchantID, ErrDigestMismatch)
	}
	return h, payload, nil
}

// checkRecipientKind requires every age stanza, the signed header and the
// identity to agree on post-quantum versus classic.
func checkRecipientKind(e *envelope, opts OpenOptions) error {
	want := e.header.Recipient
	if opts.RequirePostQuantum && want != PostQuantum {
		return fmt.Errorf("header says %s, post-quantum required: %w", want, ErrRecipientKind)
	}
	switch opts.Identity.(type) {
	case *age.HybridIdentity:
		if want != PostQuantum {
			return fmt.Errorf("header says %s, identity is post-quantum: %w", want, ErrRecipientKind)
		}
	case *age.X25519Identity:
		if want != Classic {
			return fmt.Errorf("header says %s, identity is classic: %w", want, ErrRecipientKind)
		}
	}
	types, err := stanzaTypes(e.ct, e.ctOffset)
	if err != nil {
		return err
	}
	for _, t := range types {
		var got RecipientKind
		switch t {
		case "mlkem768x25519":
			got = PostQuantum
		case "X25519":
			got = Classic
		default:
			return fmt.Errorf("age stanza type %q: %w", t, ErrRecipientKind)
		}
		if got != want {
			return fmt.Errorf("age stanza type %q, header says %s: %w", t, want, ErrRecipientKind)
		}
	}
	return nil
}

const ageIntro = "age-encryption.org/v1\n"

// stanzaTypes lists the recipient stanza types in the header of a binary age
// file. Stanza bodies are unpadded standard base64, which cannot start a line
// with "-> " or "--- ", so scanning line starts is exact. base is ct's offset
// in the envelope, for error positions.
func stanzaTypes(ct []byte, base int) ([]string, error) {
	if !bytes.HasPrefix(ct, []byte(ageIntro)) {
		return nil, &MalformedError{Offset: base, Reason: "ciphertext is not a binary age v1 file"}
	}
	var types []string
	pos := len(ageIntro)
	for {
		nl := bytes.IndexByte(ct[pos:], '\n')
		if nl < 0 {
			return nil, &MalformedError{Offset: base + pos, Reason: "age header has no MAC line"}
		}
		line := ct[pos : pos+nl]
		switch {
		case bytes.HasPrefix(line, []byte("--- ")):
			if len(types) == 0 {
				return nil, &MalformedError{Offset: base + pos, Reason: "age header has no recipient stanza"}
			}
			return types, nil
		case bytes.HasPrefix(line, []byte("-> ")):
			args := bytes.Fields(line[3:])
			if len(args) == 0 {
				return nil, &MalformedError{Offset: base + pos, Reason: "age stanza without a type"}
			}
			types = append(types, string(args[0]))
		}
		pos += nl + 1
	}
}

// parse splits env into its parts, bounding every length before using it.
func parse(env []byte) (*envelope, error) {
	p := &parser{b: env}
	if len(env) < len(Magic) || string(env[:len(Magic)]) != Magic {
		return nil, &MalformedError{Offset: 0, Reason: fmt.Sprintf("does not start with %q", Magic)}
	}
	p.off = len(Magic)
	hlen, err := p.uint32("header length")
	if err != nil {
		return nil, err
	}
	if hlen == 0 || hlen > MaxHeaderSize {
		return nil, &MalformedError{Offset: p.off - 4, Reason: fmt.Sprintf("header length %d outside [1, %d]", hlen, MaxHeaderSize)}
	}
	hoff := p.off
	raw, err := p.bytes(int(hlen), "header")
	if err != nil {
		return nil, err
	}
	e := &envelope{rawHeader: raw}
	if e.header, err = unmarshalHeader(raw, hoff); err != nil {
		return nil, err
	}
	slen, err := p.uint16("signature length")
	if err != nil {
		return nil, err
	}
	if slen != 0 && slen != ed25519.SignatureSize {
		return nil, &MalformedError{Offset: p.off - 2, Reason: fmt.Sprintf("signature length %d, want 0 or %d", slen, ed25519.SignatureSize)}
	}
	if e.sig, err = p.bytes(int(slen), "signature"); err != nil {
		return nil, err
	}
	clen, err := p.uint32("ciphertext length")
	if err != nil {
		return nil, err
	}
	if rest := len(env) - p.off; uint64(clen) != uint64(rest) {
		return nil, &MalformedError{Offset: p.off - 4, Reason: fmt.Sprintf("ciphertext length %d, but %d bytes follow", clen, rest)}
	}
	if clen == 0 {
		return nil, &MalformedError{Offset: p.off - 4, Reason: "empty ciphertext"}
	}
	e.ctOffset = p.off
	e.ct = env[p.off:]
	return e, nil
}

// parser reads big-endian fields from b, reporting offsets relative to base.
type parser struct {
	b    []byte
	off  int
	base int
}

func (p *parser) need(n int, what string) error {
	if n > len(p.b)-p.off {
		return &MalformedError{Offset: p.base + p.off, Reason: fmt.Sprintf("%s: need %d bytes, %d left", what, n, len(p.b)-p.off)}
	}
	return nil
}

func (p *parser) bytes(n int, what string) ([]byte, error) {
	if err := p.need(n, what); err != nil {
		return nil, err
	}
	v := p.b[p.off : p.off+n]
	p.off += n
	return v, nil
}

func (p *parser) uint8(what string) (uint8, error) {
	b, err := p.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (p *parser) uint16(what string) (uint16, error) {
	b, err := p.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

func (p *parser) uint32(what string) (uint32, error) {
	b, err := p.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (p *parser) string(what string) (string, error) {
	start := p.base + p.off
	n, err := p.uint16(what + " length")
	if err != nil {
		return "", err
	}
	b, err := p.bytes(int(n), what)
	if err != nil {
		return "", err
	}
	if err := checkField(string(b)); err != nil {
		return "", &MalformedError{Offset: start, Reason: fmt.Sprintf("%s: %v", what, err)}
	}
	return string(b), nil
}

// checkField enforces the rules of a header string: 1 … MaxFieldLen bytes of
// printable UTF-8, so that ids are safe to log and route on.
func checkField(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxFieldLen {
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxFieldLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("unprintable %U at byte %d", r, i)
		}
	}
	return nil
}

// MarshalBinary returns the canonical encoding of h.
func (h Header) MarshalBinary() ([]byte, error) {
	if h.Version != Version {
		return nil, fmt.Errorf("encode header: version %d, want %d", h.Version, Version)
	}
	for _, f := range []struct{ name, v string }{{"merchant id", h.MerchantID}, {"round id", h.Round}, {"model version", h.ModelVersion}} {
		if err := checkField(f.v); err != nil {
			return nil, fmt.Errorf("encode header: %s %q: %w", f.name, f.v, err)
		}
	}
	if h.CreatedAt.IsZero() {
		return nil, errors.New("encode header: created-at not set")
	}
	if h.Recipient != PostQuantum && h.Recipient != Classic {
		return nil, fmt.Errorf("encode header: unknown %v", h.Recipient)
	}
	b := make([]byte, 0, MaxHeaderSize)
	b = append(b, h.Version)
	for _, s := range []string{h.MerchantID, h.Round, h.ModelVersion} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, h.Nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.CreatedAt.UnixMilli()))
	b = append(b, h.PayloadSHA256[:]...)
	b = append(b, byte(h.Recipient))
	return b, nil
}

// unmarshalHeader parses a canonical header; base is its offset in the envelope.
func unmarshalHeader(b []byte, base int) (Header, error) {
	p := &parser{b: b, base: base}
	var h Header
	var err error
	if h.Version, err = p.uint8("version"); err != nil {
		return Header{}, err
	}
	if h.Version != Version {
		return Header{}, &MalformedError{Offset: base, Reason: fmt.Sprintf("header version %d, want %d", h.Version, Version)}
	}
	if h.MerchantID, err = p.string("merchant id"); err != nil {
		return Header{}, err
	}
	if h.Round, err = p.string("round id"); err != nil {
		return Header{}, err
	}
	if h.ModelVersion, err = p.string("model version"); err != nil {
		return Header{}, err
	}
	nonce, err := p.bytes(NonceSize, "nonce")
	if err != nil {
		return Header{}, err
	}
	copy(h.Nonce[:], nonce)
	ms, err := p.bytes(8, "created-at")
	if err != nil {
		return Header{}, err
	}
	h.CreatedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(ms))).UTC()
	sum, err := p.bytes(sha256.Size, "payload hash")
	if err != nil {
		return Header{}, err
	}
	copy(h.PayloadSHA256[:], sum)
	kind, err := p.uint8("recipient kind")
	if err != nil {
		return Header{}, err
	}
	h.Recipient = RecipientKind(kind)
	if h.Recipient != PostQuantum && h.Recipient != Classic {
		return Header{}, &MalformedError{Offset: base + p.off - 1, Reason: fmt.Sprintf("recipient kind %d, want 1 (pq) or 2 (classic)", kind)}
	}
	if p.off != len(b) {
		return Header{}, &MalformedError{Offset: base + p.off, Reason: fmt.Sprintf("%d bytes after the header fields", len(b)-p.off)}
	}
	return h, nil
}
