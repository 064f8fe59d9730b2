package audit

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// HashSize is the size of entry and chain hashes in bytes.
const HashSize = sha256.Size

// Hash is a SHA-256 chain hash.
type Hash [HashSize]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Outcome is how an audited action ended.
type Outcome string

// The outcomes an entry may record.
const (
	OutcomeOK     Outcome = "ok"
	OutcomeDenied Outcome = "denied"
	OutcomeError  Outcome = "error"
)

func (o Outcome) valid() bool {
	return o == OutcomeOK || o == OutcomeDenied || o == OutcomeError
}

// IdentifierPrefix starts every stored identifier value.
const IdentifierPrefix = "hmac-sha256:"

// HashIdentifier returns value as stored in the log under the audit key:
// "hmac-sha256:" followed by the lower-case hex HMAC-SHA256 of value.
// A reviewer who knows a customer id, merchant id or token id computes this
// to find the entries that mention it.
func HashIdentifier(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return IdentifierPrefix + hex.EncodeToString(m.Sum(nil))
}

// validIdentifier reports whether s has the stored identifier form.
func validIdentifier(s string) bool {
	h, ok := strings.CutPrefix(s, IdentifierPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Record is what a caller asks the log to append. Identifiers hold the clear
// values; the log stores only their HMACs. The entry's time is set by the
// log when it commits the batch (never earlier than the previous entry's),
// so times along the chain do not decrease.
type Record struct {
	Actor       string            // "role:subject" of the caller
	Action      string            // e.g. "round.update.accept"
	Object      string            // what was acted on, e.g. "round/42"
	Outcome     Outcome           // ok, denied or error
	Reason      string            // why, for denied and error
	Identifiers map[string]string // name → clear value; stored as HMACs
	Details     map[string]string // non-identifying key/values
}

func (r Record) validate() error {
	// Every stored form (JSON, Postgres text) must hold the exact bytes that
	// were hashed, so text must be valid UTF-8 without NUL.
	for _, f := range []struct{ name, v string }{
		{"actor", r.Actor}, {"action", r.Action}, {"object", r.Object}, {"reason", r.Reason},
	} {
		if !cleanText(f.v) {
			return fmt.Errorf("%s is not valid UTF-8 without NUL", f.name)
		}
	}
	for k, v := range r.Details {
		if !cleanText(k) || !cleanText(v) {
			return fmt.Errorf("detail %q is not valid UTF-8 without NUL", k)
		}
	}
	for k := range r.Identifiers {
		if !cleanText(k) {
			return fmt.Errorf("identifier name %q is not valid UTF-8 without NUL", k)
		}
	}
	if r.Actor == "" {
		return errors.New("actor is empty")
	}
	if r.Action == "" {
		return errors.New("action is empty")
	}
	if !r.Outcome.valid() {
		return fmt.Errorf("outcome %q is not ok, denied or error", r.Outcome)
	}
	for k := range r.Identifiers {
		if k == "" {
			return errors.New("identifier with an empty name")
		}
	}
	for k := range r.Details {
		if k == "" {
			return errors.New("detail with an empty name")
		}
	}
	return nil
}

func cleanText(s string) bool { return ValidText(s) }

// ValidText reports whether s may be a text field of a record (actor,
// action, object, reason, detail): valid UTF-8 without NUL, so that every
// stored form (JSON, PostgreSQL text) holds the exact bytes that were hashed.
// Callers check free text they take from others with it before acting on it.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Entry is one stored, chained audit entry.
type Entry struct {
	Seq         uint64
	Time        time.Time // UTC, millisecond precision
	Actor       string
	Action      string
	Object      string
	Outcome     Outcome
	Reason      string
	Identifiers map[string]string // name → "hmac-sha256:<hex>"
	Details     map[string]string
	PrevHash    Hash
	Hash        Hash
}

// Checkpoint is a signed statement that the chain of log LogID had hash Hash
// at entry Seq.
type Checkpoint struct {
	LogID     string
	Seq       uint64
	Hash      Hash
	Time      time.Time // UTC, millisecond precision
	Signature []byte    // Ed25519 over CheckpointMessage
}

// Head is the durable end of a log.
type Head struct {
	Seq            uint64    // last entry, 0 when the log is empty
	Hash           Hash      // hash of the last entry, zero when empty
	Time           time.Time // time of the last entry
	CheckpointSeq  uint64    // seq of the last checkpoint, 0 when none
	CheckpointTime time.Time // time of the last checkpoint
}

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func appendMap(b []byte, m map[string]string) []byte {
	var arr [8]string // no allocation for small maps
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go string order is byte order
	b = appendU32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, m[k])
	}
	return b
}

// AppendCanonical appends the canonical encoding of e (see the package
// documentation) to b. PrevHash and Hash are not part of it.
func AppendCanonical(b []byte, e *Entry) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	b = appendStr(b, e.Actor)
	b = appendStr(b, e.Action)
	b = appendStr(b, e.Object)
	b = appendStr(b, string(e.Outcome))
	b = appendStr(b, e.Reason)
	b = appendMap(b, e.Identifiers)
	b = appendMap(b, e.Details)
	return b
}

// EntryHash returns SHA-256(0x00 ‖ prev ‖ canonical(e)); e.PrevHash and
// e.Hash are ignored.
func EntryHash(prev Hash, e *Entry) Hash {
	h, _ := entryHash(make([]byte, 0, 256), prev, e)
	return h
}

// entryHash is EntryHash reusing buf; it returns the grown buffer.
func entryHash(buf []byte, prev Hash, e *Entry) (Hash, []byte) {
	buf = append(buf[:0], 0x00)
	buf = append(buf, prev[:]...)
	buf = AppendCanonical(buf, e)
	return sha256.Sum256(buf), buf
}

// CheckpointMessage returns the bytes a checkpoint signature covers:
// 0x01 ‖ str(log id) ‖ u64(seq) ‖ hash ‖ i64(time in Unix milliseconds).
func CheckpointMessage(c *Checkpoint) []byte {
	b := make([]byte, 0, 1+4+len(c.LogID)+8+HashSize+8)
	b = append(b, 0x01)
	b = appendStr(b, c.LogID)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = append(b, c.Hash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
	return b
}

// SignCheckpoint sets c.Signature to the Ed25519 signature of
// CheckpointMessage(c) under key.
func SignCheckpoint(key ed25519.PrivateKey, c *Checkpoint) {
	c.Signature = ed25519.Sign(key, CheckpointMessage(c))
}

// VerifyCheckpoint reports whether c carries a valid signature under pub.
func VerifyCheckpoint(pub ed25519.PublicKey, c *Checkpoint) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, CheckpointMessage(c), c.Signature)
}

// millis truncates t to milliseconds in UTC, the precision entries keep.
func millis(t time.Time) time.Time {
	return time.UnixMilli(t.UnixMilli()).UTC()
}
