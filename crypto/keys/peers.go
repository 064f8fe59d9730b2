package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxPeerKeysSize bounds a peer keys file (about 150 bytes a merchant).
const MaxPeerKeysSize = 4 << 20

// ParsePeerKeys parses a peer keys file: the cohort's Ed25519 signing keys
// by merchant id, which a merchant's client checks its neighbours' signed
// adverts with in secure rounds (the client's secure.peer_keys). The operator
// distributes it out of band, like SSH's known_hosts, so that it does not come
// from the aggregator. Each entry is a line holding the merchant id followed by
// the merchant's signing.pub exactly as WriteMerchant writes it (a PKIX PEM
// "PUBLIC KEY" block):
//
//	m2
//	-----BEGIN PUBLIC KEY-----
//	MCowBQYDK2VwAyEA…
//	-----END PUBLIC KEY-----
//
// Blank lines and lines starting with # between entries are ignored. An id
// twice, a key listed for two ids, or anything else is refused, naming the line.
func ParsePeerKeys(data []byte) (map[string]ed25519.PublicKey, error) {
	out := map[string]ed25519.PublicKey{}
	owner := map[string]string{} // key bytes → id
	line := 1
	rest := data
	for len(rest) > 0 {
		l, after, _ := bytes.Cut(rest, []byte("\n"))
		id := string(bytes.TrimSpace(l))
		if id == "" || id[0] == '#' {
			rest, line = after, line+1
			continue
		}
		if err := CheckMerchantID(id); err != nil {
			return nil, fmt.Errorf("peer keys: line %d: %w", line, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("peer keys: line %d: merchant %s listed twice", line, id)
		}
		block, next := pem.Decode(after)
		if block == nil || !bytes.HasPrefix(bytes.TrimLeft(after, " \t\r\n"), []byte("-----BEGIN")) {
			return nil, fmt.Errorf("peer keys: line %d: merchant %s is not followed by a PEM block", line, id)
		}
		raw := after[:len(after)-len(next)]
		if bytes.Count(raw, []byte("-----BEGIN")) != 1 {
			// pem.Decode skips a block it cannot parse and returns the next
			// one: this entry would take the next entry's key, and that
			// entry's id would vanish.
			return nil, fmt.Errorf("peer keys: line %d: the PEM block of %s does not parse (no END line before the next block?)", line, id)
		}
		pub, err := parsePublicPEM(raw)
		if err != nil {
			return nil, fmt.Errorf("peer keys: line %d: key of %s: %w", line, id, err)
		}
		if other, ok := owner[string(pub)]; ok {
			return nil, fmt.Errorf("peer keys: line %d: %s has the key of %s", line, id, other)
		}
		out[id], owner[string(pub)] = pub, id
		line += 1 + bytes.Count(raw, []byte("\n"))
		rest = next
	}
	if len(out) == 0 {
		return nil, errors.New("peer keys: no entries")
	}
	return out, nil
}

// LoadPeerKeys reads and parses the peer keys file at path.
func LoadPeerKeys(path string) (map[string]ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load peer keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPeerKeysSize+1))
	if err != nil {
		return nil, fmt.Errorf("load peer keys: %s: %w", path, err)
	}
	if len(data) > MaxPeerKeysSize {
		return nil, fmt.Errorf("load peer keys: %s: larger than %d bytes", path, MaxPeerKeysSize)
	}
	out, err := ParsePeerKeys(data)
	if err != nil {
		return nil, fmt.Errorf("load peer keys: %s: %w", path, err)
	}
	return out, nil
}
