package secagg

import (
	"errors"
	"slices"
	"testing"
)

// TestClientRefusesBadMessages mutates each field of the honest messages a
// client receives; every mutation is refused with an error and no answer.
func TestClientRefusesBadMessages(t *testing.T) {
	cfg := testConfig(6, 4, 3, 3, 8, 4)
	g, _ := cfg.Neighbours()
	me := cfg.Clients[0]
	srv, _ := NewServer(cfg)
	clients := map[uint32]*Client{}
	for i, id := range cfg.Clients {
		clients[id], _ = NewClient(cfg, id, testRand(byte(i+1)))
		m, err := clients[id].Advertise()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddAdvertise(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.EndAdvertise(); err != nil {
		t.Fatal(err)
	}
	keys, _ := srv.KeysFor(me)
	var outsider uint32
	for _, id := range cfg.Clients {
		if id != me && !slices.Contains(g[me], id) {
			outsider = id
		}
	}
	fresh := func() *Client {
		c, _ := NewClient(cfg, me, testRand(1))
		if _, err := c.Advertise(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	mutate := func(f func(k *KeysMsg)) KeysMsg {
		k := KeysMsg{To: keys.To, Peers: slices.Clone(keys.Peers)}
		f(&k)
		return k
	}
	for name, k := range map[string]KeysMsg{
		"addressed to another": mutate(func(k *KeysMsg) { k.To = outsider }),
		"a non-neighbour":      mutate(func(k *KeysMsg) { k.Peers[0].ID = outsider }),
		"a neighbour twice":    mutate(func(k *KeysMsg) { k.Peers[1] = k.Peers[0] }),
		"one key for both":     mutate(func(k *KeysMsg) { k.Peers[0].SPub = k.Peers[0].CPub }),
		"fewer than t":         mutate(func(k *KeysMsg) { k.Peers = k.Peers[:2] }),
	} {
		if m, err := fresh().Share(k); err == nil || len(m.Boxes) > 0 {
			t.Errorf("keys with %s: accepted", name)
		}
	}
	if _, err := fresh().Share(mutate(func(k *KeysMsg) { k.Peers = k.Peers[:2] })); !errors.Is(err, ErrTooFewSurvivors) {
		t.Errorf("2 neighbours, threshold 3: err %v, want ErrTooFewSurvivors", err)
	}

	// Mask stage: every client shares; then mutate the delivery and the input.
	for _, id := range cfg.Clients {
		k, _ := srv.KeysFor(id)
		m, err := clients[id].Share(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddShares(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.EndShare(); err != nil {
		t.Fatal(err)
	}
	del, _ := srv.DeliveryFor(me)
	honest := clients[me]
	tryMask := func(name string, d DeliveryMsg, x []uint32) {
		t.Helper()
		c := new(Client)
		*c = *honest // Mask writes only held and stage, which the copy replaces
		if m, err := c.Mask(d, x); err == nil || m.Words != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	mutDel := func(f func(d *DeliveryMsg)) DeliveryMsg {
		d := DeliveryMsg{To: del.To}
		for _, b := range del.Boxes {
			d.Boxes = append(d.Boxes, Box{Peer: b.Peer, Data: slices.Clone(b.Data)})
		}
		f(&d)
		return d
	}
	x := make([]uint32, cfg.Length)
	tryMask("delivery to another", mutDel(func(d *DeliveryMsg) { d.To = outsider }), x)
	tryMask("a box from a non-neighbour", mutDel(func(d *DeliveryMsg) { d.Boxes[0].Peer = outsider }), x)
	tryMask("a box twice", mutDel(func(d *DeliveryMsg) { d.Boxes[1] = d.Boxes[0] }), x)
	tryMask("a box with a flipped byte", mutDel(func(d *DeliveryMsg) { d.Boxes[0].Data[20] ^= 1 }), x)
	tryMask("a box under another sender", mutDel(func(d *DeliveryMsg) { d.Boxes[0].Peer, d.Boxes[1].Peer = d.Boxes[1].Peer, d.Boxes[0].Peer }), x)
	tryMask("a truncated box", mutDel(func(d *DeliveryMsg) { d.Boxes[0].Data = d.Boxes[0].Data[:5] }), x)
	tryMask("fewer than t boxes", mutDel(func(d *DeliveryMsg) { d.Boxes = d.Boxes[:2] }), x)
	tryMask("an input word of 2^Bits", del, []uint32{0, 256, 0, 0})
	tryMask("a short input", del, x[:3])
	if _, err := honest.Mask(del, x); err != nil {
		t.Errorf("the honest delivery: %v", err)
	}
}

// TestServerRefusesBadMessages mutates the honest messages a server receives
// at each stage; each mutation is refused and leaves the round able to finish
// with the right sum.
func TestServerRefusesBadMessages(t *testing.T) {
	cfg := testConfig(6, 4, 3, 3, 8, 4)
	rd, err := runRound(t, cfg, map[uint32]int{cfg.Clients[5]: dropMask}, 8)
	if err != nil {
		t.Fatal(err)
	}
	// Replay the round on a fresh server, offering a bad message before each honest one.
	srv, _ := NewServer(cfg)
	bad := func(name string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a := rd.seen.advertise[0]
	bad("keys from outside the cohort", srv.AddAdvertise(AdvertiseMsg{From: 1, CPub: a.CPub, SPub: a.SPub}))
	bad("one key for both uses", srv.AddAdvertise(AdvertiseMsg{From: a.From, CPub: a.CPub, SPub: a.CPub}))
	for _, m := range rd.seen.advertise {
		if err := srv.AddAdvertise(m); err != nil {
			t.Fatal(err)
		}
	}
	bad("keys twice", srv.AddAdvertise(a))
	if err := srv.EndAdvertise(); err != nil {
		t.Fatal(err)
	}
	s := rd.seen.shares[0]
	bad("a box missing", srv.AddShares(SharesMsg{From: s.From, Boxes: s.Boxes[1:]}))
	bad("a box for a non-neighbour", srv.AddShares(SharesMsg{From: s.From, Boxes: append(slices.Clone(s.Boxes[1:]), Box{Peer: s.From, Data: s.Boxes[0].Data})}))
	for _, m := range rd.seen.shares {
		if err := srv.AddShares(m); err != nil {
			t.Fatal(err)
		}
	}
	bad("shares twice", srv.AddShares(s))
	if err := srv.EndShare(); err != nil {
		t.Fatal(err)
	}
	m := rd.seen.masked[0]
	bad("a short masked input", srv.AddMasked(MaskedMsg{From: m.From, Words: m.Words[:3]}))
	bad("a word of 2^Bits", srv.AddMasked(MaskedMsg{From: m.From, Words: []uint32{256, 0, 0, 0}}))
	bad("a masked input from a client that did not share", srv.AddMasked(MaskedMsg{From: 1, Words: m.Words}))
	for _, mm := range rd.seen.masked {
		if err := srv.AddMasked(mm); err != nil {
			t.Fatal(err)
		}
	}
	bad("a masked input twice", srv.AddMasked(m))
	if _, err := srv.EndMask(); err != nil {
		t.Fatal(err)
	}
	r := rd.seen.responses
	if len(r) == 0 {
		rd.unmask(t, nil)
		r = rd.seen.responses
	}
	first := r[0]
	wrongKind := UnmaskResponse{From: first.From, Keys: first.Seeds} // seed shares offered as key shares
	bad("seed shares offered as key shares", srv.AddUnmask(wrongKind))
	moved := UnmaskResponse{From: first.From, Seeds: slices.Clone(first.Seeds)}
	moved.Seeds[0].Share.X++
	bad("a share at another point", srv.AddUnmask(moved))
	bad("a response from a dropout", srv.AddUnmask(UnmaskResponse{From: cfg.Clients[5]}))
	for _, resp := range r {
		if err := srv.AddUnmask(resp); err != nil {
			t.Fatal(err)
		}
	}
	bad("a response twice", srv.AddUnmask(first))
	sum, err := srv.Result()
	if err != nil {
		t.Fatal(err)
	}
	for j := range sum {
		var want uint32
		for _, id := range cfg.Clients[:5] {
			want += rd.inputs[id][j]
		}
		if sum[j] != want&cfg.mask() {
			t.Fatalf("word %d = %d, want %d", j, sum[j], want&cfg.mask())
		}
	}
}
