package secagg

import (
	"crypto/ecdh"
	"errors"
	"math/bits"
	"slices"
	"testing"
)

// TestCuriousAggregator plays an aggregator that keeps every message it
// received (each masked input included, as if it logged them all) and its own
// state, and tries every way the protocol leaves it to isolate one client's
// input. Each attempt must fail; the honest sum must still come out.
func TestCuriousAggregator(t *testing.T) {
	cfg := testConfig(12, 8, 5, 6, 32, 512)
	drop := map[uint32]int{cfg.Clients[2]: dropMask, cfg.Clients[5]: dropMask, cfg.Clients[9]: dropMask}
	rd, err := runRound(t, cfg, drop, 16)
	if err != nil {
		t.Fatal(err)
	}
	rd.unmask(t, nil)
	srv := rd.server
	g, _ := cfg.Neighbours()

	// 1. What it legitimately rebuilds: each survivor's seed and each dropout's
	// mask key. Strip from every masked input its self mask and every pairwise
	// mask with a dropout; what is left still differs from the input in
	// (nearly) every word, and looks uniform.
	dropKeys := map[uint32]*ecdh.PrivateKey{}
	for _, v := range rd.seen.request.Dropouts {
		sk, err := combine(srv.skeys[v], cfg.Threshold)
		if err != nil {
			t.Fatal(err)
		}
		dropKeys[v], _ = ecdh.X25519().NewPrivateKey(sk[:])
	}
	for _, m := range rd.seen.masked {
		u := m.From
		b, err := combine(srv.seeds[u], cfg.Threshold)
		if err != nil {
			t.Fatal(err)
		}
		z := slices.Clone(m.Words)
		key, _ := selfKey(b, cfg.Seed, u)
		if err := addMask(z, key, true); err != nil {
			t.Fatal(err)
		}
		for v, priv := range dropKeys {
			if !slices.Contains(g[u], v) {
				continue
			}
			adv := srv.keys[u]
			pub, _ := ecdh.X25519().NewPublicKey(adv.SPub[:])
			shared, _ := priv.ECDH(pub)
			key, _ := pairKey(shared, cfg.Seed, u, v)
			if err := addMask(z, key, u < v); err != nil {
				t.Fatal(err)
			}
		}
		x := rd.inputs[u]
		equal, ones := 0, 0
		for j := range z {
			if z[j] == x[j] {
				equal++
			}
			ones += bits.OnesCount32(z[j] - x[j])
		}
		if equal > 0 {
			t.Errorf("client %d: %d of %d words of its input recovered", u, equal, len(z))
		}
		// The residue is the sum of pairwise masks with surviving neighbours: its
		// 16,384 bits have mean 8,192 and standard deviation 64 if uniform.
		if ones < 8192-6*64 || ones > 8192+6*64 {
			t.Errorf("client %d: residue has %d one bits of 16384, not uniform", u, ones)
		}
	}

	// 2. It holds no key share of a survivor and no seed share of a dropout.
	for _, u := range rd.seen.request.Survivors {
		if len(srv.skeys[u]) > 0 {
			t.Errorf("server holds %d mask-key shares of survivor %d", len(srv.skeys[u]), u)
		}
	}
	for _, v := range rd.seen.request.Dropouts {
		if len(srv.seeds[v]) > 0 {
			t.Errorf("server holds %d seed shares of dropout %d", len(srv.seeds[v]), v)
		}
	}

	// 3. It asks again, now naming one survivor a dropout, to get its mask key:
	// every honest neighbour refuses, so it gets none of the shares.
	target := rd.seen.request.Survivors[0]
	flipped := UnmaskRequest{
		Survivors: slices.DeleteFunc(slices.Clone(rd.seen.request.Survivors), func(v uint32) bool { return v == target }),
		Dropouts:  append(slices.Clone(rd.seen.request.Dropouts), target),
	}
	slices.Sort(flipped.Dropouts)
	var got []Share
	for _, w := range flipped.Survivors {
		resp, err := rd.clients[w].Unmask(flipped)
		if err == nil {
			for _, o := range resp.Keys {
				if o.Owner == target {
					got = append(got, o.Share)
				}
			}
		} else if !errors.Is(err, ErrRefused) {
			t.Errorf("client %d: %v, want ErrRefused", w, err)
		}
	}
	if len(got) > 0 {
		t.Errorf("a second request yielded %d key shares of survivor %d", len(got), target)
	}

	// 4. Threshold − 1 colluding neighbours pool their key shares of the target
	// with it: still too few.
	var pooled []Share
	for _, w := range g[target][:cfg.Threshold-1] {
		pooled = append(pooled, rd.clients[w].held[target][1])
	}
	if _, err := combine(pooled, cfg.Threshold); !errors.Is(err, ErrTooFewShares) {
		t.Errorf("combine %d colluders' shares: %v, want ErrTooFewShares", len(pooled), err)
	}

	// 5. The boxes it relays are sealed under the c keys, which it never sees:
	// none opens with a rebuilt mask key in place of either side's c key.
	for to, boxes := range srv.boxes {
		for _, b := range boxes {
			for _, priv := range dropKeys {
				for _, peer := range []uint32{to, b.Peer} {
					adv := srv.keys[peer]
					pub, _ := ecdh.X25519().NewPublicKey(adv.CPub[:])
					aead, err := boxAEAD(priv, pub, cfg.Seed, b.Peer, to)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := unseal(aead, cfg.Seed, b.Peer, to, b.Data); err == nil {
						t.Fatalf("box %d → %d opened with a rebuilt mask key", b.Peer, to)
					}
				}
			}
		}
	}

	// The honest result is still the survivors' sum.
	sum, err := srv.Result()
	if err != nil {
		t.Fatal(err)
	}
	for j := range sum {
		var want uint32
		for _, u := range rd.seen.request.Survivors {
			want += rd.inputs[u][j]
		}
		if sum[j] != want {
			t.Fatalf("sum word %d = %d, want %d", j, sum[j], want)
		}
	}
}
