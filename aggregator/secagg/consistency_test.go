package secagg

import (
	"context"
	"crypto/ecdh"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// splitRequests plays a malicious aggregator against five honest clients X,
// v1…v4 (complete graph, t = MinSurvivors = 3): it delivers X only the share
// boxes of v1–v3, so X masks with three pairwise masks, then sends each
// client its own unmask request — each valid for the client that gets it:
//
//	v1: survivors {v1, X, v4}, dropouts {v2, v3}
//	v2: survivors {v2, X, v4}, dropouts {v1, v3}
//	v3: survivors {v3, X, v4}, dropouts {v1, v2}
//	v4: survivors {v4, X, v3}, dropouts {v1, v2}
//	X:  survivors {X, v1, v2}, dropouts {v3}
//
// Together the answers would hold four seed shares of X and three key
// shares each of v1, v2 and v3. With consistency set, every client first
// attests its request and the aggregator hands each client every tag
// addressed to it. It returns whether X's input came out and how many
// clients refused.
func splitRequests(t *testing.T, consistency bool) (recovered bool, refused int) {
	t.Helper()
	cfg := testConfig(5, 4, 3, 3, 32, 16)
	cfg.Consistency = consistency
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[uint32]*Client{}
	inputs := map[uint32][]uint32{}
	rng := rand.New(rand.NewPCG(7, 8))
	for i, id := range cfg.Clients {
		if clients[id], err = NewClient(cfg, id, testRand(byte(i+1))); err != nil {
			t.Fatal(err)
		}
		m, err := clients[id].Advertise()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddAdvertise(m); err != nil {
			t.Fatal(err)
		}
		inputs[id] = make([]uint32, cfg.Length)
		for j := range inputs[id] {
			inputs[id][j] = rng.Uint32()
		}
	}
	if err := srv.EndAdvertise(); err != nil {
		t.Fatal(err)
	}
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
	x, v := cfg.Clients[0], cfg.Clients[1:]
	masked := map[uint32][]uint32{}
	for _, id := range cfg.Clients {
		d, _ := srv.DeliveryFor(id)
		if id == x {
			d.Boxes = slices.DeleteFunc(d.Boxes, func(b Box) bool { return b.Peer == v[3] })
		}
		m, err := clients[id].Mask(d, inputs[id])
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddMasked(m); err != nil {
			t.Fatal(err)
		}
		masked[id] = m.Words
	}
	if _, err := srv.EndMask(); err != nil {
		t.Fatal(err)
	}
	req := func(surv, drop []uint32) UnmaskRequest {
		r := UnmaskRequest{Survivors: slices.Sorted(slices.Values(surv)), Dropouts: slices.Sorted(slices.Values(drop))}
		return r
	}
	reqs := map[uint32]UnmaskRequest{
		v[0]: req([]uint32{v[0], x, v[3]}, []uint32{v[1], v[2]}),
		v[1]: req([]uint32{v[1], x, v[3]}, []uint32{v[0], v[2]}),
		v[2]: req([]uint32{v[2], x, v[3]}, []uint32{v[0], v[1]}),
		v[3]: req([]uint32{v[3], x, v[2]}, []uint32{v[0], v[1]}),
		x:    req([]uint32{x, v[0], v[1]}, []uint32{v[2]}),
	}
	// The aggregator relays every attestation tag to its addressee.
	tags := map[uint32][]Tag{}
	if consistency {
		for _, id := range cfg.Clients {
			a, err := clients[id].Attest(reqs[id])
			if err != nil {
				t.Fatalf("client %d refused to attest its own valid request: %v", id, err)
			}
			for _, tg := range a.Tags {
				tags[tg.Peer] = append(tags[tg.Peer], Tag{Peer: id, MAC: tg.MAC})
			}
		}
	}
	var seeds []Share
	keys := map[uint32][]Share{}
	for _, id := range cfg.Clients {
		var resp UnmaskResponse
		var err error
		if consistency {
			resp, err = clients[id].UnmaskConsistent(reqs[id], ConsistencyMsg{To: id, Tags: tags[id]})
		} else {
			resp, err = clients[id].Unmask(reqs[id])
		}
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Errorf("client %d: %v, want ErrRefused", id, err)
			}
			refused++
			continue
		}
		for _, o := range resp.Seeds {
			if o.Owner == x {
				seeds = append(seeds, o.Share)
			}
		}
		for _, o := range resp.Keys {
			keys[o.Owner] = append(keys[o.Owner], o.Share)
		}
	}
	b, err := combine(seeds, cfg.Threshold)
	if err != nil {
		return false, refused
	}
	z := slices.Clone(masked[x])
	key, _ := selfKey(b, cfg.Seed, x)
	if err := addMask(z, key, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range v[:3] {
		sk, err := combine(keys[w], cfg.Threshold)
		if err != nil {
			return false, refused
		}
		priv, _ := ecdh.X25519().NewPrivateKey(sk[:])
		adv := srv.keys[x]
		pub, _ := ecdh.X25519().NewPublicKey(adv.SPub[:])
		shared, _ := priv.ECDH(pub)
		pk, _ := pairKey(shared, cfg.Seed, x, w)
		if err := addMask(z, pk, x < w); err != nil {
			t.Fatal(err)
		}
	}
	return slices.Equal(z, inputs[x]), refused
}

// TestConsistencyStopsSplitRequests (hardening review, session 18): without
// the consistency check, five requests that are each valid for the client
// that gets them give a deviating aggregator one client's input word for
// word (the attack the check exists for); with it, no client finds t
// neighbours that attested its request, all five refuse, and nothing comes
// out.
func TestConsistencyStopsSplitRequests(t *testing.T) {
	if got, refused := splitRequests(t, false); !got || refused != 0 {
		t.Fatalf("without the check: input recovered %v, %d refusals; the attack construction is wrong", got, refused)
	}
	if got, refused := splitRequests(t, true); got || refused != 5 {
		t.Errorf("with the check: input recovered %v, %d of 5 clients refused; want nothing and 5", got, refused)
	}
}

// TestInProcessConsistency: with the check, a round with a client dropping
// at each stage still yields the exact sum of the clients that masked, and
// the attestations are counted in the bytes exchanged.
func TestInProcessConsistency(t *testing.T) {
	cfg := testConfig(16, 10, 6, 8, 20, 33)
	rng := rand.New(rand.NewPCG(5, 6))
	in := map[uint32][]uint32{}
	for _, id := range cfg.Clients {
		x := make([]uint32, cfg.Length)
		for j := range x {
			x[j] = uint32(rng.Uint64N(1 << 20))
		}
		in[id] = x
	}
	drop := map[uint32]Dropout{cfg.Clients[0]: DropAdvertise, cfg.Clients[3]: DropShare, cfg.Clients[6]: DropMask, cfg.Clients[9]: DropUnmask}
	plain, err := InProcess(context.Background(), cfg, InProcessOptions{Inputs: in, Drop: drop, Rand: testRand(3)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Consistency = true
	res, err := InProcess(context.Background(), cfg, InProcessOptions{Inputs: in, Drop: drop, Rand: testRand(3)})
	if err != nil {
		t.Fatal(err)
	}
	for j := range cfg.Length {
		var want uint32
		for _, id := range cfg.Clients {
			if d := drop[id]; d == DropNone || d == DropUnmask {
				want += in[id][j]
			}
		}
		if res.Sum[j] != want%(1<<20) {
			t.Fatalf("word %d = %d, want %d", j, res.Sum[j], want%(1<<20))
		}
	}
	if res.ClientBytes <= plain.ClientBytes || res.ServerBytes <= plain.ServerBytes {
		t.Errorf("bytes with the check %d/%d, without %d/%d: want more", res.ClientBytes, res.ServerBytes, plain.ClientBytes, plain.ServerBytes)
	}
}

// TestConsistencyRefusals: a client with the check refuses to answer
// without its neighbours' attestations, for a request it did not attest,
// with forged, duplicated or foreign tags below the threshold, and refuses
// to attest a second request; honest tags at the threshold are accepted.
func TestConsistencyRefusals(t *testing.T) {
	cfg := testConfig(6, 4, 3, 3, 16, 4)
	cfg.Consistency = true
	rd, err := runRound(t, cfg, nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	req := rd.seen.request
	g, _ := cfg.Neighbours()
	me := cfg.Clients[0]
	honest := map[uint32]Tag{}
	for _, id := range cfg.Clients {
		a, err := rd.clients[id].Attest(req)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := rd.clients[id].Attest(req)
		if !slices.Equal(again.Tags, a.Tags) {
			t.Errorf("client %d: a second attestation of the same request differs", id)
		}
		if err := rd.server.AddAttest(a); err != nil {
			t.Fatal(err)
		}
		for _, tg := range a.Tags {
			if tg.Peer == me {
				honest[id] = Tag{Peer: id, MAC: tg.MAC}
			}
		}
	}
	if _, err := rd.server.ConsistencyFor(me); !errors.Is(err, ErrStage) {
		t.Errorf("consistency message before the stage closed: %v, want ErrStage", err)
	}
	if err := rd.server.EndConsistency(); err != nil {
		t.Fatal(err)
	}
	other := UnmaskRequest{Survivors: req.Survivors[1:], Dropouts: append(slices.Clone(req.Dropouts), req.Survivors[0])}
	if _, err := rd.clients[cfg.Clients[1]].Attest(other); !errors.Is(err, ErrRefused) {
		t.Errorf("attest a second request: %v, want ErrRefused", err)
	}
	nb := g[me]
	fresh := func() *Client {
		c := new(Client)
		*c = *rd.clients[me] // unmask writes only answered, response and stage
		return c
	}
	tagsOf := func(ids ...uint32) []Tag {
		var out []Tag
		for _, id := range ids {
			out = append(out, honest[id])
		}
		return out
	}
	forged := honest[nb[2]]
	forged.MAC[0] ^= 1
	outsider := Tag{Peer: 9999, MAC: honest[nb[2]].MAC}
	for name, tc := range map[string]struct {
		req  UnmaskRequest
		cons ConsistencyMsg
	}{
		"no attestations":         {req, ConsistencyMsg{To: me}},
		"t − 1 honest tags":       {req, ConsistencyMsg{To: me, Tags: tagsOf(nb[0], nb[1])}},
		"a forged third tag":      {req, ConsistencyMsg{To: me, Tags: append(tagsOf(nb[0], nb[1]), forged)}},
		"one tag three times":     {req, ConsistencyMsg{To: me, Tags: tagsOf(nb[0], nb[0], nb[0])}},
		"a tag from a non-member": {req, ConsistencyMsg{To: me, Tags: append(tagsOf(nb[0], nb[1]), outsider)}},
		"addressed to another":    {req, ConsistencyMsg{To: nb[0], Tags: tagsOf(nb...)}},
		"a request not attested":  {other, ConsistencyMsg{To: me, Tags: tagsOf(nb...)}},
	} {
		if resp, err := fresh().UnmaskConsistent(tc.req, tc.cons); !errors.Is(err, ErrRefused) || len(resp.Seeds)+len(resp.Keys) > 0 {
			t.Errorf("%s: err %v, %d shares; want ErrRefused and none", name, err, len(resp.Seeds)+len(resp.Keys))
		}
	}
	if _, err := fresh().Unmask(req); !errors.Is(err, ErrRefused) {
		t.Errorf("Unmask in a round with the check: %v, want ErrRefused", err)
	}
	cons, err := rd.server.ConsistencyFor(me)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh().UnmaskConsistent(req, cons); err != nil {
		t.Errorf("the server's honest consistency message: %v", err)
	}
	if _, err := fresh().UnmaskConsistent(req, ConsistencyMsg{To: me, Tags: tagsOf(nb[:cfg.Threshold]...)}); err != nil {
		t.Errorf("exactly t honest tags: %v", err)
	}
	if err := rd.server.AddAttest(AttestMsg{From: me}); err == nil {
		t.Error("server: a second attestation from one client accepted")
	}
}

// FuzzClientUnmaskConsistent hands a client that attested the honest request
// arbitrary requests and consistency messages: it never panics and answers
// only the request it attested.
func FuzzClientUnmaskConsistent(f *testing.F) {
	cfg := testConfig(6, 4, 3, 3, 16, 4)
	cfg.Consistency = true
	rd, err := runRound(f, cfg, nil, 16)
	if err != nil {
		f.Fatal(err)
	}
	me := cfg.Clients[0]
	for _, id := range cfg.Clients {
		a, err := rd.clients[id].Attest(rd.seen.request)
		if err != nil {
			f.Fatal(err)
		}
		if err := rd.server.AddAttest(a); err != nil {
			f.Fatal(err)
		}
	}
	if err := rd.server.EndConsistency(); err != nil {
		f.Fatal(err)
	}
	cons, _ := rd.server.ConsistencyFor(me)
	honestReq, _ := rd.seen.request.MarshalBinary()
	honestCons, _ := cons.MarshalBinary()
	f.Add(honestReq, honestCons)
	f.Add(honestReq, []byte{1, 9, 0, 0, 0, 100, 0, 0, 0, 0})
	f.Add([]byte{1, 6, 0, 0, 0, 0, 0, 0, 0, 0}, honestCons)
	f.Fuzz(func(t *testing.T, reqData, consData []byte) {
		var req UnmaskRequest
		var cm ConsistencyMsg
		if req.UnmarshalBinary(reqData) != nil || cm.UnmarshalBinary(consData) != nil {
			return
		}
		c := new(Client)
		*c = *rd.clients[me]
		if _, err := c.UnmaskConsistent(req, cm); err == nil {
			if enc, _ := req.MarshalBinary(); string(enc) != string(honestReq) {
				t.Fatalf("answered a request it did not attest: %+v", req)
			}
		}
	})
}

// TestEndConsistency: the consistency stage closes only when the request can
// still be answered by clients that attested it — at least MinSurvivors of
// them, and Threshold attesting neighbours around every client that shared —
// and afterwards the server takes unmask responses from attesters only. With
// one survivor that never attests, the result is still the exact sum of all
// eight inputs (its seed comes from its neighbours).
func TestEndConsistency(t *testing.T) {
	cfg := testConfig(8, 4, 3, 4, 16, 4)
	cfg.Consistency = true
	rd, err := runRound(t, cfg, nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	if rd.server.Stage() != StageConsistency {
		t.Fatalf("after EndMask: stage %s, want consistency", rd.server.Stage())
	}
	snap, _ := rd.server.MarshalBinary()
	g, _ := cfg.Neighbours()
	attestations := map[uint32]AttestMsg{}
	for _, id := range cfg.Clients {
		if attestations[id], err = rd.clients[id].Attest(rd.seen.request); err != nil {
			t.Fatal(err)
		}
	}
	// attesting restores the snapshot taken after EndMask and records the
	// attestations of every client but those in skip.
	attesting := func(skip ...uint32) *Server {
		t.Helper()
		srv, err := RestoreServer(cfg, snap)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range cfg.Clients {
			if !slices.Contains(skip, id) {
				if err := srv.AddAttest(attestations[id]); err != nil {
					t.Fatal(err)
				}
			}
		}
		return srv
	}
	x := cfg.Clients[0]
	for name, skip := range map[string][]uint32{
		"6 of 8 attest (MinSurvivors 4), but X keeps 2 of its 4 neighbours (threshold 3)": {g[x][0], g[x][1]},
		"3 of 8 attest, MinSurvivors 4": cfg.Clients[3:],
	} {
		srv := attesting(skip...)
		if err := srv.EndConsistency(); !errors.Is(err, ErrTooFewSurvivors) || srv.Stage() != StageConsistency {
			t.Errorf("%s: EndConsistency %v, stage %s; want ErrTooFewSurvivors, still consistency", name, err, srv.Stage())
		}
	}
	y := cfg.Clients[5]
	srv := attesting(y)
	if err := srv.AddUnmask(UnmaskResponse{From: x}); !errors.Is(err, ErrStage) {
		t.Errorf("unmask response before the consistency stage closed: %v, want ErrStage", err)
	}
	if err := srv.EndConsistency(); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddAttest(attestations[y]); !errors.Is(err, ErrStage) {
		t.Errorf("attestation after the stage closed: %v, want ErrStage", err)
	}
	if _, err := srv.ConsistencyFor(y); err == nil {
		t.Error("a consistency message for a survivor that did not attest")
	}
	if got := srv.Attested(); len(got) != 7 || slices.Contains(got, y) {
		t.Errorf("attested %v, want every client but %d", got, y)
	}
	for _, id := range cfg.Clients {
		if id == y {
			// y never attested: even a valid answer of it is not taken.
			c := new(Client)
			*c = *rd.clients[id]
			c.cfg.Consistency = false
			resp, err := c.Unmask(rd.seen.request)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.AddUnmask(resp); err == nil {
				t.Error("server took the unmask response of a survivor that did not attest")
			}
			continue
		}
		cons, err := srv.ConsistencyFor(id)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rd.clients[id].UnmaskConsistent(rd.seen.request, cons)
		if err != nil {
			t.Fatalf("client %d: %v", id, err)
		}
		if err := srv.AddUnmask(resp); err != nil {
			t.Fatal(err)
		}
	}
	got, err := srv.Result()
	if err != nil {
		t.Fatal(err)
	}
	for j := range cfg.Length {
		var want uint32
		for _, id := range cfg.Clients {
			want += rd.inputs[id][j]
		}
		if got[j] != want&(1<<16-1) {
			t.Fatalf("word %d = %d, want %d", j, got[j], want&(1<<16-1))
		}
	}
	// A snapshot in the consistency stage does not restore into a round
	// without the check.
	plain := cfg
	plain.Consistency = false
	if _, err := RestoreServer(plain, snap); err == nil {
		t.Error("a consistency-stage snapshot restored into a round without the check")
	}
}
