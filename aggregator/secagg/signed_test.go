package secagg

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestSignedAdverts: with Config.SignedAdverts the server refuses an
// unsigned advert and relays each advert's signature, byte for byte, with
// its keys; the client refuses a neighbour's keys without one. The encodings
// are the hand-worked layout (version, kind, u32 id, c_pk, s_pk, signature),
// and an unsigned advert keeps its old encoding, so stored ones still decode.
func TestSignedAdverts(t *testing.T) {
	cfg := testConfig(3, 2, 2, 2, 16, 4)
	cfg.SignedAdverts, cfg.Clients = true, []uint32{1, 2, 3}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var advs []AdvertiseMsg
	for id := uint32(1); id <= 3; id++ {
		c, err := NewClient(cfg, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.Advertise()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddAdvertise(a); err == nil || !strings.Contains(err.Error(), "without a signature") {
			t.Errorf("unsigned advert of %d: %v, want refused", id, err)
		}
		a.Sig = bytes.Repeat([]byte{byte(id)}, SigSize)
		if err := srv.AddAdvertise(a); err != nil {
			t.Fatal(err)
		}
		advs = append(advs, a)
	}
	enc, err := advs[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{wireVersion, kindSignedAdvertise, 0, 0, 0, 1}, advs[0].CPub[:]...)
	want = append(append(want, advs[0].SPub[:]...), advs[0].Sig...)
	if !bytes.Equal(enc, want) {
		t.Errorf("signed advert encodes as %x, want %x", enc, want)
	}
	var back AdvertiseMsg
	if err := back.UnmarshalBinary(enc); err != nil || !bytes.Equal(back.Sig, advs[0].Sig) || back.CPub != advs[0].CPub {
		t.Errorf("signed advert decodes as %+v, %v", back, err)
	}
	unsigned := advs[0]
	unsigned.Sig = nil
	enc, _ = unsigned.MarshalBinary()
	if enc[1] != kindAdvertise || len(enc) != 2+4+2*KeySize {
		t.Errorf("unsigned advert encodes as kind %d, %d bytes; want the old kind %d, %d bytes", enc[1], len(enc), kindAdvertise, 2+4+2*KeySize)
	}
	if _, err := (AdvertiseMsg{From: 1, Sig: make([]byte, 10)}).MarshalBinary(); err == nil {
		t.Error("a 10-byte signature encoded")
	}
	if err := srv.EndAdvertise(); err != nil {
		t.Fatal(err)
	}
	k, err := srv.KeysFor(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range k.Peers {
		if !bytes.Equal(p.Sig, advs[p.ID-1].Sig) {
			t.Errorf("keys of %d relayed with signature %x, want %x", p.ID, p.Sig[:4], advs[p.ID-1].Sig[:4])
		}
	}
	enc, err = k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if enc[1] != kindSignedKeys || len(enc) != 2+4+4+len(k.Peers)*(4+2*KeySize+SigSize) {
		t.Errorf("signed keys message: kind %d, %d bytes", enc[1], len(enc))
	}
	var kb KeysMsg
	if err := kb.UnmarshalBinary(enc); err != nil || !slices.EqualFunc(kb.Peers, k.Peers, func(a, b PeerKeys) bool {
		return a.ID == b.ID && a.CPub == b.CPub && a.SPub == b.SPub && bytes.Equal(a.Sig, b.Sig)
	}) {
		t.Errorf("keys message decodes as %+v, %v", kb, err)
	}
	mixed := KeysMsg{To: 1, Peers: slices.Clone(k.Peers)}
	mixed.Peers[1].Sig = nil
	if _, err := mixed.MarshalBinary(); err == nil {
		t.Error("a keys message with signed and unsigned peers encoded")
	}
	// The client refuses unsigned keys in a round that needs signatures.
	c, err := NewClient(cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Advertise(); err != nil {
		t.Fatal(err)
	}
	bare := KeysMsg{To: 1}
	for _, p := range k.Peers {
		p.Sig = nil
		bare.Peers = append(bare.Peers, p)
	}
	if _, err := c.Share(bare); err == nil || !strings.Contains(err.Error(), "without a signature") {
		t.Errorf("unsigned keys: %v, want refused", err)
	}
	// A snapshot keeps the signatures; one whose adverts are unsigned does
	// not restore under SignedAdverts (a round stored before the change).
	snap, err := srv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	again, err := RestoreServer(cfg, snap)
	if err != nil {
		t.Fatal(err)
	}
	if k2, _ := again.KeysFor(1); !bytes.Equal(k2.Peers[0].Sig, k.Peers[0].Sig) {
		t.Error("restored server lost the signatures")
	}
	old := cfg
	old.SignedAdverts = false
	oldSrv, _ := NewServer(old)
	if err := oldSrv.AddAdvertise(unsigned); err != nil {
		t.Fatal(err)
	}
	snap, _ = oldSrv.MarshalBinary()
	if _, err := RestoreServer(cfg, snap); err == nil || !strings.Contains(err.Error(), "without a signature") {
		t.Errorf("unsigned stored adverts restored under SignedAdverts: %v", err)
	}
}
