package secagg

import (
	"bytes"
	"encoding"
	"testing"
)

// decoders names a fresh value of every message type.
func decoders() []interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
} {
	return []interface {
		encoding.BinaryMarshaler
		encoding.BinaryUnmarshaler
	}{&AdvertiseMsg{}, &KeysMsg{}, &SharesMsg{}, &DeliveryMsg{}, &MaskedMsg{}, &UnmaskRequest{}, &UnmaskResponse{},
		&AttestMsg{}, &ConsistencyMsg{}}
}

// FuzzDecode feeds every decoder arbitrary bytes: no panic, and whatever
// decodes re-encodes to exactly the same bytes (one encoding per message).
func FuzzDecode(f *testing.F) {
	cfg := testConfig(5, 4, 3, 3, 16, 4)
	rd, err := runRound(f, cfg, nil, 16)
	if err != nil {
		f.Fatal(err)
	}
	add := func(m encoding.BinaryMarshaler) {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	add(rd.seen.advertise[0])
	add(rd.seen.shares[0])
	add(rd.seen.masked[0])
	add(rd.seen.request)
	k, _ := rd.server.KeysFor(cfg.Clients[0])
	add(k)
	resp, _ := rd.clients[cfg.Clients[0]].Unmask(rd.seen.request)
	add(resp)
	add(DeliveryMsg{To: 1, Boxes: []Box{{Peer: 2, Data: []byte{1, 2, 3}}}})
	add(AttestMsg{From: 3, Tags: []Tag{{Peer: 4, MAC: [TagSize]byte{1}}}})
	add(ConsistencyMsg{To: 4, Tags: []Tag{{Peer: 3}, {Peer: 5, MAC: [TagSize]byte{31: 7}}}})
	f.Add([]byte{1, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range decoders() {
			if err := m.UnmarshalBinary(data); err != nil {
				continue
			}
			again, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("%T: decoded and re-encoded\n%x\nto\n%x", m, data, again)
			}
		}
	})
}

// FuzzClientUnmask hands an honest client arbitrary unmask requests after a
// real round: no panic, and whatever it answers never holds both a seed
// share and a key share of one client, across every request it answers.
func FuzzClientUnmask(f *testing.F) {
	cfg := testConfig(6, 4, 3, 3, 16, 4)
	add := func(r UnmaskRequest) {
		b, _ := r.MarshalBinary()
		f.Add(b, []byte(nil))
	}
	add(UnmaskRequest{Survivors: cfg.Clients})
	add(UnmaskRequest{Survivors: cfg.Clients[:4], Dropouts: cfg.Clients[4:]})
	add(UnmaskRequest{Survivors: cfg.Clients[1:], Dropouts: cfg.Clients[:1]})
	rd, err := runRound(f, cfg, nil, 16)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		c := new(Client)
		*c = *rd.clients[cfg.Clients[0]] // a fresh copy in the unmask stage: Unmask writes no map
		seeds, keys := map[uint32]bool{}, map[uint32]bool{}
		for _, data := range [][]byte{first, second} {
			var req UnmaskRequest
			if req.UnmarshalBinary(data) != nil {
				continue
			}
			resp, err := c.Unmask(req)
			if err != nil {
				continue
			}
			for _, o := range resp.Seeds {
				seeds[o.Owner] = true
			}
			for _, o := range resp.Keys {
				keys[o.Owner] = true
			}
		}
		for v := range seeds {
			if keys[v] {
				t.Fatalf("client answered both shares of %d", v)
			}
		}
	})
}

// FuzzServer hands a server, at each stage of a real round, one arbitrary
// message of that stage's kind before the honest ones: no panic, and when
// the server refuses the forged message the round still yields the
// survivors' sum.
func FuzzServer(f *testing.F) {
	cfg := testConfig(5, 4, 3, 3, 16, 4)
	rd, err := runRound(f, cfg, nil, 16)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []encoding.BinaryMarshaler{rd.seen.advertise[1], rd.seen.shares[1], rd.seen.masked[1]} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	resp, _ := rd.clients[cfg.Clients[1]].Unmask(rd.seen.request)
	b, _ := resp.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		srv, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		forged := false
		try := func(add func() error) {
			if add() == nil {
				forged = true
			}
		}
		var adv AdvertiseMsg
		if adv.UnmarshalBinary(data) == nil {
			try(func() error { return srv.AddAdvertise(adv) })
		}
		for _, m := range rd.seen.advertise {
			_ = srv.AddAdvertise(m)
		}
		if srv.EndAdvertise() != nil {
			return
		}
		var sh SharesMsg
		if sh.UnmarshalBinary(data) == nil {
			try(func() error { return srv.AddShares(sh) })
		}
		for _, m := range rd.seen.shares {
			_ = srv.AddShares(m)
		}
		if srv.EndShare() != nil {
			return
		}
		var mk MaskedMsg
		if mk.UnmarshalBinary(data) == nil {
			try(func() error { return srv.AddMasked(mk) })
		}
		for _, m := range rd.seen.masked {
			_ = srv.AddMasked(m)
		}
		if _, err := srv.EndMask(); err != nil {
			return
		}
		var ur UnmaskResponse
		if ur.UnmarshalBinary(data) == nil {
			try(func() error { return srv.AddUnmask(ur) })
		}
		for _, id := range srv.Request().Survivors {
			r, err := rd.clients[id].Unmask(srv.Request())
			if err == nil {
				_ = srv.AddUnmask(r)
			}
		}
		sum, err := srv.Result()
		if forged || err != nil {
			return
		}
		for j := range sum {
			var want uint32
			for _, u := range srv.Request().Survivors {
				want += rd.inputs[u][j]
			}
			if sum[j] != want&cfg.mask() {
				t.Fatalf("word %d = %d, want %d", j, sum[j], want&cfg.mask())
			}
		}
	})
}
