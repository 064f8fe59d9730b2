package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Domain-separation labels of the keys derived in a round.
const (
	labelPair  = "kairos secagg v1 pairwise mask"
	labelSelf  = "kairos secagg v1 self mask"
	labelShare = "kairos secagg v1 share encryption"
)

// deriveKey is HKDF-SHA256(secret, salt = round seed, info = label ‖ a ‖ b),
// a 32-byte key.
func deriveKey(secret []byte, seed [32]byte, label string, a, b uint32) ([]byte, error) {
	info := make([]byte, 0, len(label)+9)
	info = append(info, label...)
	info = append(info, 0)
	info = binary.BigEndian.AppendUint32(info, a)
	info = binary.BigEndian.AppendUint32(info, b)
	k, err := hkdf.Key(sha256.New, secret, seed[:], string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", label, err)
	}
	return k, nil
}

// addMask adds sign·PRG(key) to dst word by word modulo 2^32 (the caller masks
// to Bits at the end: reduction mod 2^Bits commutes with addition). The PRG is
// AES-256 in counter mode from a zero counter; each key masks one vector.
func addMask(dst []uint32, key []byte, negate bool) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	var iv [aes.BlockSize]byte
	stream := cipher.NewCTR(block, iv[:])
	const chunk = 4096
	buf := make([]byte, 4*min(len(dst), chunk))
	for off := 0; off < len(dst); off += chunk {
		part := dst[off:min(off+chunk, len(dst))]
		b := buf[:4*len(part)]
		clear(b)
		stream.XORKeyStream(b, b)
		for i := range part {
			w := binary.LittleEndian.Uint32(b[4*i:])
			if negate {
				part[i] -= w
			} else {
				part[i] += w
			}
		}
	}
	return nil
}

// pairKey is the key of the pairwise mask of clients u and v from their X25519
// secret; both derive the same key.
func pairKey(shared []byte, seed [32]byte, u, v uint32) ([]byte, error) {
	return deriveKey(shared, seed, labelPair, min(u, v), max(u, v))
}

// selfKey is the key of u's self mask from its seed b.
func selfKey(b [SecretSize]byte, seed [32]byte, u uint32) ([]byte, error) {
	return deriveKey(b[:], seed, labelSelf, u, 0)
}
