package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"encoding/binary"
	"fmt"
	"io"
)

// A box carries the two shares a client gives one neighbour, encrypted with
// AES-256-GCM under a key derived from the X25519 secret of their c keys and
// the direction (from, to); the additional data binds it to the round.
const (
	boxPlain = 8 + 2*shareSize
	boxNonce = 12
)

func boxAEAD(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, seed [32]byte, from, to uint32) (cipher.AEAD, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("share box: %w", err)
	}
	return boxAEADShared(shared, seed, from, to)
}

// boxAEADShared is boxAEAD from the X25519 secret of the two c keys.
func boxAEADShared(shared []byte, seed [32]byte, from, to uint32) (cipher.AEAD, error) {
	key, err := deriveKey(shared, seed, labelShare, from, to)
	if err != nil {
		return nil, fmt.Errorf("share box: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("share box: %w", err)
	}
	return cipher.NewGCM(block)
}

func boxAD(seed [32]byte, from, to uint32) []byte {
	ad := append([]byte(labelShare+"\x00"), seed[:]...)
	ad = binary.BigEndian.AppendUint32(ad, from)
	return binary.BigEndian.AppendUint32(ad, to)
}

// seal encrypts the shares of from's seed and key for to.
func seal(aead cipher.AEAD, seed [32]byte, from, to uint32, seedShare, keyShare Share, r io.Reader) ([]byte, error) {
	plain := header(0).u32(from).u32(to).share(seedShare).share(keyShare)[2:]
	nonce := make([]byte, boxNonce, boxNonce+len(plain)+aead.Overhead())
	if _, err := io.ReadFull(r, nonce); err != nil {
		return nil, fmt.Errorf("share box: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, boxAD(seed, from, to)), nil
}

// unseal decrypts a box from → to and returns its two shares.
func unseal(aead cipher.AEAD, seed [32]byte, from, to uint32, box []byte) (seedShare, keyShare Share, err error) {
	if len(box) < boxNonce {
		return Share{}, Share{}, fmt.Errorf("share box from %d: %d bytes", from, len(box))
	}
	plain, err := aead.Open(nil, box[:boxNonce], box[boxNonce:], boxAD(seed, from, to))
	if err != nil {
		return Share{}, Share{}, fmt.Errorf("share box from %d: %w", from, err)
	}
	r := &rbuf{b: plain}
	f, t := r.u32(), r.u32()
	seedShare, keyShare = r.share(), r.share()
	if err := r.done("share box"); err != nil {
		return Share{}, Share{}, err
	}
	if f != from || t != to || seedShare.X != to || keyShare.X != to {
		return Share{}, Share{}, fmt.Errorf("share box from %d: names %d → %d at x=%d/%d, want %d → %d", from, f, t, seedShare.X, keyShare.X, from, to)
	}
	return seedShare, keyShare, nil
}
