package secagg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Wire format: every message is version (1 byte) ‖ kind (1 byte) ‖ body, with
// big-endian integers and u32 counts before lists. Decoders reject trailing
// bytes, so each message has exactly one encoding (it is what gets signed).
const wireVersion = 1

// Message kinds.
const (
	kindAdvertise byte = 1 + iota
	kindKeys
	kindShares
	kindDelivery
	kindMasked
	kindUnmaskRequest
	kindUnmaskResponse
)

// Kinds of the signed key messages (after the consistency stage's kinds):
// an advert and a keys message whose keys carry their owner's signature.
const (
	kindSignedAdvertise byte = kindConsistency + 1 + iota
	kindSignedKeys
)

// KeySize is the size of an X25519 public key.
const KeySize = 32

// SigSize is the size of an advert's signature (Ed25519).
const SigSize = 64

// AdvertiseMsg is a client's stage-1 message: its two public keys.
type AdvertiseMsg struct {
	From uint32
	// CPub encrypts the shares sent to this client; SPub agrees its pairwise masks.
	CPub, SPub [KeySize]byte
	// Sig, empty or SigSize bytes, is the client's signature of its keys
	// with a long-term key its neighbours hold (Config.SignedAdverts). The
	// package carries it and cannot check it: the caller knows whose key
	// signs and what the signed statement binds (aggregator/secureplan).
	Sig []byte
}

// PeerKeys are one neighbour's advertised keys, with its advert's signature.
type PeerKeys struct {
	ID         uint32
	CPub, SPub [KeySize]byte
	Sig        []byte
}

// KeysMsg is the server's stage-2 message to client To: the keys of its
// neighbours that advertised.
type KeysMsg struct {
	To    uint32
	Peers []PeerKeys
}

// Box is an encrypted pair of shares between two clients; Peer is the
// recipient in a SharesMsg and the sender in a DeliveryMsg.
type Box struct {
	Peer uint32
	Data []byte
}

// SharesMsg is a client's stage-2 message: one box for each neighbour.
type SharesMsg struct {
	From  uint32
	Boxes []Box
}

// DeliveryMsg is the server's stage-3 message to client To: the boxes its
// neighbours addressed to it.
type DeliveryMsg struct {
	To    uint32
	Boxes []Box
}

// MaskedMsg is a client's stage-3 message: its masked input modulo 2^Bits.
type MaskedMsg struct {
	From  uint32
	Words []uint32
}

// UnmaskRequest is the server's stage-4 message, the same to every survivor:
// who sent a masked input and who shared its keys but sent none.
type UnmaskRequest struct {
	Survivors, Dropouts []uint32
}

// OwnedShare is a share of the secret of client Owner.
type OwnedShare struct {
	Owner uint32
	Share Share
}

// UnmaskResponse is a client's stage-4 message: shares of its surviving
// neighbours' self-mask seeds and of its dropped neighbours' mask keys.
type UnmaskResponse struct {
	From  uint32
	Seeds []OwnedShare
	Keys  []OwnedShare
}

// Sizes used by the decoders to bound list counts before allocating.
const (
	shareSize      = 4 + 8*secretChunks
	ownedShareSize = 4 + shareSize
	peerKeysSize   = 4 + 2*KeySize
	// MaxBox bounds an encrypted share box.
	MaxBox = 1024
)

type wbuf []byte

func header(kind byte) wbuf        { return wbuf{wireVersion, kind} }
func (w wbuf) u32(v uint32) wbuf   { return binary.BigEndian.AppendUint32(w, v) }
func (w wbuf) u64(v uint64) wbuf   { return binary.BigEndian.AppendUint64(w, v) }
func (w wbuf) raw(b []byte) wbuf   { return append(w, b...) }
func (w wbuf) bytes(b []byte) wbuf { return w.u32(uint32(len(b))).raw(b) }
func (w wbuf) share(s Share) wbuf {
	w = w.u32(s.X)
	for _, y := range s.Y {
		w = w.u64(y)
	}
	return w
}

var errShort = errors.New("truncated")

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *rbuf) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *rbuf) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// count reads a list count and checks that the rest of the message can hold
// that many items of at least minSize bytes, so a forged count cannot make the
// decoder allocate.
func (r *rbuf) count(minSize int) int {
	n := r.u32()
	if r.err == nil && uint64(n)*uint64(minSize) > uint64(len(r.b)) {
		r.err = fmt.Errorf("list of %d items in %d bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *rbuf) key() (k [KeySize]byte) {
	copy(k[:], r.take(KeySize))
	return k
}

func (r *rbuf) share() Share {
	s := Share{X: r.u32()}
	for i := range s.Y {
		s.Y[i] = r.u64()
		if r.err == nil && s.Y[i] >= fieldP {
			r.err = fmt.Errorf("share value %d outside the field", s.Y[i])
		}
	}
	return s
}

func (r *rbuf) box() Box {
	b := Box{Peer: r.u32()}
	n := r.u32()
	if r.err == nil && n > MaxBox {
		r.err = fmt.Errorf("box of %d bytes, at most %d", n, MaxBox)
	}
	b.Data = slices.Clone(r.take(int(n)))
	return b
}

func (r *rbuf) ids() []uint32 {
	n := r.count(4)
	out := make([]uint32, 0, n)
	for range n {
		out = append(out, r.u32())
	}
	return out
}

// open checks the header and returns a reader over the body.
func open(data []byte, kind byte, what string) (*rbuf, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("decode %s: %w", what, errShort)
	}
	if data[0] != wireVersion {
		return nil, fmt.Errorf("decode %s: version %d, want %d", what, data[0], wireVersion)
	}
	if data[1] != kind {
		return nil, fmt.Errorf("decode %s: message kind %d, want %d", what, data[1], kind)
	}
	return &rbuf{b: data[2:]}, nil
}

func (r *rbuf) done(what string) error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("decode %s: %w", what, r.err)
	}
	return nil
}

// checkSig refuses a signature that is neither absent nor SigSize bytes.
func checkSig(id uint32, sig []byte) error {
	if len(sig) != 0 && len(sig) != SigSize {
		return fmt.Errorf("signature of %d's keys has %d bytes, want %d", id, len(sig), SigSize)
	}
	return nil
}

// MarshalBinary encodes m: a signed advert as its own kind, so that an
// unsigned one (stored before adverts were signed) still decodes as such.
func (m AdvertiseMsg) MarshalBinary() ([]byte, error) {
	if err := checkSig(m.From, m.Sig); err != nil {
		return nil, fmt.Errorf("encode advertise message: %w", err)
	}
	if len(m.Sig) == 0 {
		return header(kindAdvertise).u32(m.From).raw(m.CPub[:]).raw(m.SPub[:]), nil
	}
	return header(kindSignedAdvertise).u32(m.From).raw(m.CPub[:]).raw(m.SPub[:]).raw(m.Sig), nil
}

// UnmarshalBinary decodes m, signed or not.
func (m *AdvertiseMsg) UnmarshalBinary(data []byte) error {
	kind := kindAdvertise
	if len(data) >= 2 && data[1] == kindSignedAdvertise {
		kind = kindSignedAdvertise
	}
	r, err := open(data, kind, "advertise message")
	if err != nil {
		return err
	}
	var v AdvertiseMsg
	v.From, v.CPub, v.SPub = r.u32(), r.key(), r.key()
	if kind == kindSignedAdvertise {
		v.Sig = slices.Clone(r.take(SigSize))
	}
	if err := r.done("advertise message"); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalBinary encodes m: with every peer's signature when they are signed
// (all or none).
func (m KeysMsg) MarshalBinary() ([]byte, error) {
	signed := len(m.Peers) > 0 && len(m.Peers[0].Sig) > 0
	kind := kindKeys
	if signed {
		kind = kindSignedKeys
	}
	w := header(kind).u32(m.To).u32(uint32(len(m.Peers)))
	for _, p := range m.Peers {
		if err := checkSig(p.ID, p.Sig); err != nil {
			return nil, fmt.Errorf("encode keys message: %w", err)
		}
		if (len(p.Sig) > 0) != signed {
			return nil, fmt.Errorf("encode keys message: signed and unsigned keys mixed (peer %d)", p.ID)
		}
		w = w.u32(p.ID).raw(p.CPub[:]).raw(p.SPub[:]).raw(p.Sig)
	}
	return w, nil
}

// UnmarshalBinary decodes m, signed or not.
func (m *KeysMsg) UnmarshalBinary(data []byte) error {
	kind, size := kindKeys, peerKeysSize
	if len(data) >= 2 && data[1] == kindSignedKeys {
		kind, size = kindSignedKeys, peerKeysSize+SigSize
	}
	r, err := open(data, kind, "keys message")
	if err != nil {
		return err
	}
	v := KeysMsg{To: r.u32()}
	n := r.count(size)
	for range n {
		p := PeerKeys{ID: r.u32(), CPub: r.key(), SPub: r.key()}
		if kind == kindSignedKeys {
			p.Sig = slices.Clone(r.take(SigSize))
		}
		v.Peers = append(v.Peers, p)
	}
	if err := r.done("keys message"); err != nil {
		return err
	}
	*m = v
	return nil
}

func marshalBoxes(kind byte, id uint32, boxes []Box) []byte {
	w := header(kind).u32(id).u32(uint32(len(boxes)))
	for _, b := range boxes {
		w = w.u32(b.Peer).bytes(b.Data)
	}
	return w
}

func unmarshalBoxes(data []byte, kind byte, what string) (uint32, []Box, error) {
	r, err := open(data, kind, what)
	if err != nil {
		return 0, nil, err
	}
	id := r.u32()
	n := r.count(8)
	var boxes []Box
	for range n {
		boxes = append(boxes, r.box())
	}
	if err := r.done(what); err != nil {
		return 0, nil, err
	}
	return id, boxes, nil
}

// MarshalBinary encodes m.
func (m SharesMsg) MarshalBinary() ([]byte, error) {
	return marshalBoxes(kindShares, m.From, m.Boxes), nil
}

// UnmarshalBinary decodes m.
func (m *SharesMsg) UnmarshalBinary(data []byte) error {
	id, boxes, err := unmarshalBoxes(data, kindShares, "shares message")
	if err != nil {
		return err
	}
	*m = SharesMsg{From: id, Boxes: boxes}
	return nil
}

// MarshalBinary encodes m.
func (m DeliveryMsg) MarshalBinary() ([]byte, error) {
	return marshalBoxes(kindDelivery, m.To, m.Boxes), nil
}

// UnmarshalBinary decodes m.
func (m *DeliveryMsg) UnmarshalBinary(data []byte) error {
	id, boxes, err := unmarshalBoxes(data, kindDelivery, "delivery message")
	if err != nil {
		return err
	}
	*m = DeliveryMsg{To: id, Boxes: boxes}
	return nil
}

// MarshalBinary encodes m.
func (m MaskedMsg) MarshalBinary() ([]byte, error) {
	w := header(kindMasked).u32(m.From).u32(uint32(len(m.Words)))
	for _, x := range m.Words {
		w = w.u32(x)
	}
	return w, nil
}

// UnmarshalBinary decodes m.
func (m *MaskedMsg) UnmarshalBinary(data []byte) error {
	r, err := open(data, kindMasked, "masked input")
	if err != nil {
		return err
	}
	v := MaskedMsg{From: r.u32()}
	v.Words = r.ids()
	if err := r.done("masked input"); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalBinary encodes m.
func (m UnmaskRequest) MarshalBinary() ([]byte, error) {
	w := header(kindUnmaskRequest).u32(uint32(len(m.Survivors)))
	for _, id := range m.Survivors {
		w = w.u32(id)
	}
	w = w.u32(uint32(len(m.Dropouts)))
	for _, id := range m.Dropouts {
		w = w.u32(id)
	}
	return w, nil
}

// UnmarshalBinary decodes m.
func (m *UnmaskRequest) UnmarshalBinary(data []byte) error {
	r, err := open(data, kindUnmaskRequest, "unmask request")
	if err != nil {
		return err
	}
	var v UnmaskRequest
	v.Survivors = r.ids()
	v.Dropouts = r.ids()
	if err := r.done("unmask request"); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalBinary encodes m.
func (m UnmaskResponse) MarshalBinary() ([]byte, error) {
	w := header(kindUnmaskResponse).u32(m.From)
	for _, list := range [][]OwnedShare{m.Seeds, m.Keys} {
		w = w.u32(uint32(len(list)))
		for _, s := range list {
			w = w.u32(s.Owner).share(s.Share)
		}
	}
	return w, nil
}

// UnmarshalBinary decodes m.
func (m *UnmaskResponse) UnmarshalBinary(data []byte) error {
	r, err := open(data, kindUnmaskResponse, "unmask response")
	if err != nil {
		return err
	}
	v := UnmaskResponse{From: r.u32()}
	for _, list := range []*[]OwnedShare{&v.Seeds, &v.Keys} {
		n := r.count(ownedShareSize)
		for range n {
			*list = append(*list, OwnedShare{Owner: r.u32(), Share: r.share()})
		}
	}
	if err := r.done("unmask response"); err != nil {
		return err
	}
	*m = v
	return nil
}
