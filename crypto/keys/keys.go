package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"filippo.io/age"

	"github.com/kairos-fl/kairos/crypto/pseudonym"
)

// Sizes of the secrets this package generates.
const (
	// AuditHMACSize is the length in bytes of the audit log's HMAC key.
	AuditHMACSize = 32
	// PseudonymKeySize is the length in bytes of a merchant's pseudonym key.
	PseudonymKeySize = pseudonym.KeySize
	// MaxMerchantIDLen bounds a merchant id so that it fits every header and file.
	MaxMerchantIDLen = 64
)

// Errors a caller acts on. They are matched with errors.Is.
var (
	// ErrInsecureMode: a private key file is accessible by group or others.
	ErrInsecureMode = errors.New("key file is accessible by group or others")
	// ErrWrongPassphrase: a passphrase-protected file did not open with the passphrase given.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrPassphraseRequired: the key files are passphrase-protected and no passphrase was given.
	ErrPassphraseRequired = errors.New("key files are passphrase-protected; a passphrase is required")
	// ErrNotEncrypted: a passphrase was given but the key file is stored in the clear.
	ErrNotEncrypted = errors.New("key file is not passphrase-protected")
	// ErrUnknownKID: no JWT key has the requested key id.
	ErrUnknownKID = errors.New("unknown jwt key id")
)

// JWTKey is one Ed25519 key that signs JWTs. ID is its kid, KeyID of the public key.
type JWTKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// JWTPublic is the public half of a JWTKey, as published in the JWKS.
type JWTPublic struct {
	ID  string            `json:"kid"`
	Key ed25519.PublicKey `json:"key"`
}

// Aggregator holds every secret the aggregator needs.
type Aggregator struct {
	// Identity decrypts sealed updates: an *age.HybridIdentity (ML-KEM-768 +
	// X25519) by default, an *age.X25519Identity when generated Classic.
	Identity age.Identity
	// Recipient is the age recipient string merchants encrypt to.
	Recipient string
	// JWT holds every known signing key; ActiveJWT names the one that signs new tokens.
	JWT       []JWTKey
	ActiveJWT string
	// AuditHMAC keys the HMAC that hides identifiers in the audit log (AuditHMACSize bytes).
	AuditHMAC []byte
	// Checkpoint signs audit log checkpoints.
	Checkpoint ed25519.PrivateKey
}

// AggregatorOptions selects how GenerateAggregator builds the keys.
type AggregatorOptions struct {
	// Classic selects an X25519 age identity instead of the post-quantum hybrid.
	Classic bool
}

// AggregatorPublic is what the aggregator publishes for enrolment.
type AggregatorPublic struct {
	Recipient  string            `json:"recipient"`
	JWT        []JWTPublic       `json:"jwt"`
	ActiveJWT  string            `json:"active_jwt"`
	Checkpoint ed25519.PublicKey `json:"checkpoint"`
}

// Merchant holds every secret a merchant needs.
type Merchant struct {
	ID      string
	Signing ed25519.PrivateKey
	// Pseudonym keys the HMAC that pseudonymizes customer ids. Change it only
	// with SetPseudonym or RotatePseudonym: writing it needs the key bytes,
	// which a pseudonym.Key keeps to itself.
	Pseudonym pseudonym.Key

	pseudonymRaw []byte // the bytes of Pseudonym
}

// MerchantPublic is what a merchant hands the aggregator at enrolment.
type MerchantPublic struct {
	ID      string            `json:"id"`
	Signing ed25519.PublicKey `json:"signing"`
}

// KeyID returns the key id of an Ed25519 public key: the first 16 hex digits
// of the SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PostQuantum reports whether id is a post-quantum hybrid age identity.
func PostQuantum(id age.Identity) bool {
	_, ok := id.(*age.HybridIdentity)
	return ok
}

// GenerateAggregator creates a fresh set of aggregator keys, every secret drawn from rand.
func GenerateAggregator(rand io.Reader, opts AggregatorOptions) (*Aggregator, error) {
	id, rcpt, err := newAgeIdentity(rand, opts.Classic)
	if err != nil {
		return nil, fmt.Errorf("generate aggregator: %w", err)
	}
	a := &Aggregator{Identity: id, Recipient: rcpt}
	if _, err := a.RotateJWT(rand); err != nil {
		return nil, fmt.Errorf("generate aggregator: %w", err)
	}
	if a.AuditHMAC, err = readSecret(rand, AuditHMACSize); err != nil {
		return nil, fmt.Errorf("generate aggregator: audit hmac key: %w", err)
	}
	if a.Checkpoint, err = newEd25519(rand); err != nil {
		return nil, fmt.Errorf("generate aggregator: checkpoint key: %w", err)
	}
	return a, nil
}

// RotateJWT adds a new JWT signing key and makes it active. Older keys stay in
// a.JWT, so tokens they signed still verify, until RemoveJWT drops them.
func (a *Aggregator) RotateJWT(rand io.Reader) (JWTKey, error) {
	priv, err := newEd25519(rand)
	if err != nil {
		return JWTKey{}, fmt.Errorf("rotate jwt key: %w", err)
	}
	k := JWTKey{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv}
	if slices.ContainsFunc(a.JWT, func(o JWTKey) bool { return o.ID == k.ID }) {
		return JWTKey{}, fmt.Errorf("rotate jwt key: key id %s already present", k.ID)
	}
	a.JWT = append(a.JWT, k)
	a.ActiveJWT = k.ID
	return k, nil
}

// RemoveJWT drops the key with the given kid; tokens it signed stop verifying.
// The active key cannot be removed.
func (a *Aggregator) RemoveJWT(kid string) error {
	if kid == a.ActiveJWT {
		return fmt.Errorf("remove jwt key %s: it is the active key; rotate first", kid)
	}
	i := slices.IndexFunc(a.JWT, func(k JWTKey) bool { return k.ID == kid })
	if i < 0 {
		return fmt.Errorf("remove jwt key %s: %w", kid, ErrUnknownKID)
	}
	a.JWT = slices.Delete(a.JWT, i, i+1)
	return nil
}

// Active returns the JWT key that signs new tokens.
func (a *Aggregator) Active() (JWTKey, error) {
	for _, k := range a.JWT {
		if k.ID == a.ActiveJWT {
			return k, nil
		}
	}
	return JWTKey{}, fmt.Errorf("active jwt key %q: %w", a.ActiveJWT, ErrUnknownKID)
}

// Public returns the parts of a that may be published.
func (a *Aggregator) Public() AggregatorPublic {
	p := AggregatorPublic{Recipient: a.Recipient, ActiveJWT: a.ActiveJWT}
	for _, k := range a.JWT {
		p.JWT = append(p.JWT, JWTPublic{ID: k.ID, Key: k.Private.Public().(ed25519.PublicKey)})
	}
	if a.Checkpoint != nil {
		p.Checkpoint = a.Checkpoint.Public().(ed25519.PublicKey)
	}
	return p
}

// AgeRecipient parses p.Recipient: an *age.HybridRecipient ("age1pq1…") or
// an *age.X25519Recipient ("age1…"), ready for seal.Seal.
func (p AggregatorPublic) AgeRecipient() (age.Recipient, error) {
	return ParseRecipient(p.Recipient)
}

// ParseRecipient parses one hybrid or X25519 age recipient string.
func ParseRecipient(s string) (age.Recipient, error) {
	if strings.HasPrefix(s, "age1pq1") {
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("parse age recipient: %w", err)
		}
		return r, nil
	}
	if strings.HasPrefix(s, "age1") {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("parse age recipient: %w", err)
		}
		return r, nil
	}
	return nil, errors.New("parse age recipient: not an age1pq1… or age1… recipient")
}

// Validate checks that a is complete and self-consistent.
func (a *Aggregator) Validate() error {
	if a.Identity == nil {
		return errors.New("aggregator keys: no age identity")
	}
	if _, err := identityString(a.Identity); err != nil {
		return fmt.Errorf("aggregator keys: %w", err)
	}
	if want, _ := recipientOf(a.Identity); want != a.Recipient {
		return fmt.Errorf("aggregator keys: recipient %q does not match the identity", a.Recipient)
	}
	if len(a.JWT) == 0 {
		return errors.New("aggregator keys: no jwt key")
	}
	seen := map[string]bool{}
	for i, k := range a.JWT {
		if len(k.Private) != ed25519.PrivateKeySize {
			return fmt.Errorf("aggregator keys: jwt key %d: wrong length %d", i, len(k.Private))
		}
		if want := KeyID(k.Private.Public().(ed25519.PublicKey)); k.ID != want {
			return fmt.Errorf("aggregator keys: jwt key %d: kid %q, want %q", i, k.ID, want)
		}
		if seen[k.ID] {
			return fmt.Errorf("aggregator keys: jwt key id %s appears twice", k.ID)
		}
		seen[k.ID] = true
	}
	if !seen[a.ActiveJWT] {
		return fmt.Errorf("aggregator keys: active jwt key %q: %w", a.ActiveJWT, ErrUnknownKID)
	}
	if len(a.AuditHMAC) != AuditHMACSize {
		return fmt.Errorf("aggregator keys: audit hmac key is %d bytes, want %d", len(a.AuditHMAC), AuditHMACSize)
	}
	if len(a.Checkpoint) != ed25519.PrivateKeySize {
		return fmt.Errorf("aggregator keys: checkpoint key is %d bytes, want %d", len(a.Checkpoint), ed25519.PrivateKeySize)
	}
	return nil
}

// GenerateMerchant creates a fresh set of keys for the merchant with the given id.
func GenerateMerchant(rand io.Reader, id string) (*Merchant, error) {
	if err := CheckMerchantID(id); err != nil {
		return nil, fmt.Errorf("generate merchant: %w", err)
	}
	sig, err := newEd25519(rand)
	if err != nil {
		return nil, fmt.Errorf("generate merchant: signing key: %w", err)
	}
	m := &Merchant{ID: id, Signing: sig}
	if _, err := m.RotatePseudonym(rand); err != nil {
		return nil, fmt.Errorf("generate merchant: %w", err)
	}
	return m, nil
}

// SetPseudonym sets the pseudonym key from its PseudonymKeySize bytes.
func (m *Merchant) SetPseudonym(raw []byte) error {
	k, err := pseudonym.KeyFromBytes(raw)
	if err != nil {
		return fmt.Errorf("set pseudonym key: %w", err)
	}
	m.Pseudonym, m.pseudonymRaw = k, bytes.Clone(raw)
	return nil
}

// RotatePseudonym replaces the pseudonym key with a fresh one from rand and
// returns the old one (pseudonym.Rotate translates stored pseudonyms).
func (m *Merchant) RotatePseudonym(rand io.Reader) (old pseudonym.Key, err error) {
	raw, err := readSecret(rand, PseudonymKeySize)
	if err != nil {
		return pseudonym.Key{}, fmt.Errorf("rotate pseudonym key: %w", err)
	}
	old = m.Pseudonym
	if err := m.SetPseudonym(raw); err != nil {
		return pseudonym.Key{}, fmt.Errorf("rotate pseudonym key: %w", err)
	}
	return old, nil
}

// Public returns the parts of m the aggregator needs at enrolment.
func (m *Merchant) Public() MerchantPublic {
	return MerchantPublic{ID: m.ID, Signing: m.Signing.Public().(ed25519.PublicKey)}
}

// Validate checks that m is complete.
func (m *Merchant) Validate() error {
	if err := CheckMerchantID(m.ID); err != nil {
		return fmt.Errorf("merchant keys: %w", err)
	}
	if len(m.Signing) != ed25519.PrivateKeySize {
		return fmt.Errorf("merchant keys: signing key is %d bytes, want %d", len(m.Signing), ed25519.PrivateKeySize)
	}
	k, err := pseudonym.KeyFromBytes(m.pseudonymRaw)
	if err != nil || k.ID() != m.Pseudonym.ID() {
		return errors.New("merchant keys: pseudonym key not set with SetPseudonym or RotatePseudonym")
	}
	return nil
}

// CheckMerchantID reports whether id is a usable merchant id: 1 to
// MaxMerchantIDLen characters from [A-Za-z0-9._-], not starting with '.' or '-'.
func CheckMerchantID(id string) error {
	if id == "" {
		return errors.New("merchant id is empty")
	}
	if len(id) > MaxMerchantIDLen {
		return fmt.Errorf("merchant id is %d bytes, at most %d allowed", len(id), MaxMerchantIDLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("merchant id %q starts with %q", id, id[0])
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("merchant id %q: character %q at byte %d not allowed", id, c, i)
		}
	}
	return nil
}

func readSecret(rand io.Reader, n int) ([]byte, error) {
	if rand == nil {
		return nil, errors.New("nil random source")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	return b, nil
}

// newEd25519 derives the key from a seed read from rand: since Go 1.26
// ed25519.GenerateKey ignores its rand argument, and callers (tests, key
// ceremonies) rely on rand being honoured.
func newEd25519(rand io.Reader) (ed25519.PrivateKey, error) {
	seed, err := readSecret(rand, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Bech32 prefixes of age secret keys.
const (
	hybridSecretHRP = "AGE-SECRET-KEY-PQ-"
	x25519SecretHRP = "AGE-SECRET-KEY-"
)

// newAgeIdentity builds an age identity from a 32-byte seed read from rand
// (the secret key of both the hybrid and the X25519 identity is 32 bytes).
func newAgeIdentity(rand io.Reader, classic bool) (age.Identity, string, error) {
	seed, err := readSecret(rand, 32)
	if err != nil {
		return nil, "", fmt.Errorf("age identity: %w", err)
	}
	var id age.Identity
	if classic {
		id, err = age.ParseX25519Identity(bech32Encode(x25519SecretHRP, seed))
	} else {
		id, err = age.ParseHybridIdentity(bech32Encode(hybridSecretHRP, seed))
	}
	if err != nil {
		return nil, "", fmt.Errorf("age identity: %w", err)
	}
	r, err := recipientOf(id)
	if err != nil {
		return nil, "", err
	}
	return id, r, nil
}

// parseAgeIdentity accepts exactly one hybrid or X25519 age secret key.
func parseAgeIdentity(s string) (age.Identity, error) {
	switch {
	case strings.HasPrefix(s, hybridSecretHRP+"1"):
		return age.ParseHybridIdentity(s)
	case strings.HasPrefix(s, x25519SecretHRP+"1"):
		return age.ParseX25519Identity(s)
	}
	return nil, errors.New("not an age hybrid (AGE-SECRET-KEY-PQ-1…) or X25519 (AGE-SECRET-KEY-1…) secret key")
}

func identityString(id age.Identity) (string, error) {
	switch id := id.(type) {
	case *age.HybridIdentity:
		return id.String(), nil
	case *age.X25519Identity:
		return id.String(), nil
	}
	return "", fmt.Errorf("age identity of type %T cannot be stored", id)
}

func recipientOf(id age.Identity) (string, error) {
	switch id := id.(type) {
	case *age.HybridIdentity:
		return id.Recipient().String(), nil
	case *age.X25519Identity:
		return id.Recipient().String(), nil
	}
	return "", fmt.Errorf("age identity of type %T has no known recipient", id)
}
