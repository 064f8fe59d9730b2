// Package pseudonym replaces customer ids by keyed pseudonyms before any event
// reaches the model: HMAC-SHA256 under a per-merchant secret key, so the same
// shopper at two merchants gets unrelated pseudonyms and nobody without the key
// can test a guessed id.
//
// A pseudonym is "p1:" followed by the unpadded lower-case base32 encoding of
// the first 16 bytes (128 bits) of HMAC-SHA256(key, "kairos/pseudonym/v1" ||
// 0x00 || id). The domain prefix keeps these MACs apart from any other use of
// the key; "p1" names that construction so a later one can coexist. Truncating
// to 128 bits keeps pseudonyms short (29 characters) while collisions stay
// negligible: among n distinct ids the chance that any two share a pseudonym
// is about n²/2¹²⁹, 1.5·10⁻²¹ for a billion ids.
//
// Key rotation: a new key gives every customer a new pseudonym, and nothing
// links the two without both keys. Anything stored under old pseudonyms (local
// scores, per-customer state, cached features) must be rebuilt from the raw
// data under the new key, or translated with Rotate, which maps old to new
// pseudonyms for a list of raw ids the merchant still holds. Federated models
// hold no pseudonyms and need no change; per-customer predictions made under
// the old key must be rescored. KeyID names a key in outputs so a reader can
// tell which key made a pseudonym.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/kairos-fl/kairos/model"
)

// KeySize is the length of a pseudonym key in bytes.
const KeySize = 32

// Prefix starts every pseudonym made by this package's construction.
const Prefix = "p1:"

// domain separates pseudonym MACs from any other use of the key.
const domain = "kairos/pseudonym/v1\x00"

// Key is a merchant's secret pseudonym key. Its String method prints only the
// key id, so a Key that slips into a log does not leak.
type Key struct {
	b [KeySize]byte
}

// ErrZeroKey is returned for an all-zero key, which is never a generated key
// and almost always an uninitialised one.
var ErrZeroKey = errors.New("pseudonym key is all zeros")

// NewKey reads a fresh key from rand (crypto/rand.Reader in production).
func NewKey(rand io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand, k.b[:]); err != nil {
		return Key{}, fmt.Errorf("new pseudonym key: %w", err)
	}
	if k.isZero() {
		return Key{}, fmt.Errorf("new pseudonym key: %w", ErrZeroKey)
	}
	return k, nil
}

// KeyFromBytes makes a Key from exactly KeySize bytes.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("pseudonym key: %d bytes, want %d", len(b), KeySize)
	}
	copy(k.b[:], b)
	if k.isZero() {
		return Key{}, ErrZeroKey
	}
	return k, nil
}

func (k Key) isZero() bool { return k.b == [KeySize]byte{} }

// ID is a short public name of the key: the first 8 bytes, in hex, of
// SHA-256("kairos/pseudonym/key-id/v1" || 0x00 || key). It reveals nothing
// useful about the key and lets outputs say which key made them.
func (k Key) ID() string {
	h := sha256.New()
	h.Write([]byte("kairos/pseudonym/key-id/v1\x00"))
	h.Write(k.b[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// String returns "pseudonym.Key(" + ID + ")", never the key.
func (k Key) String() string { return "pseudonym.Key(" + k.ID() + ")" }

// GoString is String, so %#v does not print the key either.
func (k Key) GoString() string { return k.String() }

// b32 is RFC 4648 base32 in lower case without padding.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DefaultCacheSize is the number of ids a Pseudonymizer remembers by default,
// about 25 MB for short ids.
const DefaultCacheSize = 1 << 18

// Pseudonymizer maps raw ids to pseudonyms under one key. It remembers up to
// its cache size of recent ids, so an id seen again costs a map lookup; when
// the cache is full it is emptied and refilled, which bounds memory whatever
// the number of customers. A Pseudonymizer is not safe for concurrent use;
// make one per goroutine.
type Pseudonymizer struct {
	key   Key
	mac   hash.Hash
	in    []byte
	sum   []byte
	out   []byte
	cache map[string]string
	max   int
}

// New returns a Pseudonymizer for k remembering up to cacheSize ids;
// cacheSize 0 means DefaultCacheSize and a negative size disables the cache.
func New(k Key, cacheSize int) (*Pseudonymizer, error) {
	if k.isZero() {
		return nil, fmt.Errorf("new pseudonymizer: %w", ErrZeroKey)
	}
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	p := &Pseudonymizer{key: k, mac: hmac.New(sha256.New, k.b[:]), max: cacheSize}
	if cacheSize > 0 {
		p.cache = make(map[string]string)
	}
	return p, nil
}

// KeyID is the ID of the key p uses.
func (p *Pseudonymizer) KeyID() string { return p.key.ID() }

// Pseudonym returns the pseudonym of id.
func (p *Pseudonymizer) Pseudonym(id string) string {
	if s, ok := p.cache[id]; ok {
		return s
	}
	p.mac.Reset()
	p.in = append(append(p.in[:0], domain...), id...)
	p.mac.Write(p.in)
	p.sum = p.mac.Sum(p.sum[:0])
	p.out = append(p.out[:0], Prefix...)
	p.out = b32.AppendEncode(p.out, p.sum[:16])
	s := string(p.out)
	if p.cache != nil {
		if len(p.cache) >= p.max {
			clear(p.cache)
		}
		p.cache[id] = s
	}
	return s
}

// Wrap returns an emit function that replaces each event's Customer by its
// pseudonym and passes the event to emit. Put it directly around the sink, so
// raw ids never travel further than the reader.
func (p *Pseudonymizer) Wrap(emit func(model.Event) error) func(model.Event) error {
	return func(ev model.Event) error {
		ev.Customer = p.Pseudonym(ev.Customer)
		return emit(ev)
	}
}

// Rotate maps the pseudonyms of ids under old to their pseudonyms under next,
// for translating stored per-customer data to a new key.
func Rotate(old, next Key, ids []string) (map[string]string, error) {
	po, err := New(old, -1)
	if err != nil {
		return nil, fmt.Errorf("rotate: old key: %w", err)
	}
	pn, err := New(next, -1)
	if err != nil {
		return nil, fmt.Errorf("rotate: new key: %w", err)
	}
	if old == next {
		return nil, errors.New("rotate: old and new key are the same")
	}
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		m[po.Pseudonym(id)] = pn.Pseudonym(id)
	}
	return m, nil
}
