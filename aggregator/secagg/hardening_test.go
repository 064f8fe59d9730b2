package secagg

import (
	"crypto/ecdh"
	"errors"
	"slices"
	"testing"
)

// TestUnmaskRefusesPhantomSurvivors (hardening review, session 18): a
// malicious aggregator pads each unmask request with ids that are not in the
// cohort so that the request reaches MinSurvivors while naming every real
// neighbour but the target a dropout. Five clients, complete graph,
// threshold 3: client Z ≠ X is asked with survivors {Z, X, 1, 2} and every
// other client a dropout, so Z returns its share of X's self-mask seed and
// its shares of the others' mask keys. Four such answers hold four seed
// shares of X and three key shares of every other client: enough to strip
// every mask from X's masked input and read it. Before the fix every client
// answered and the test recovered X's input word for word; now each refuses
// a request naming a client outside the cohort.
func TestUnmaskRefusesPhantomSurvivors(t *testing.T) {
	cfg := testConfig(5, 4, 3, 3, 32, 16)
	rd, err := runRound(t, cfg, nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	x := cfg.Clients[0]
	seeds := []Share{}
	keys := map[uint32][]Share{}
	for _, z := range cfg.Clients[1:] {
		req := UnmaskRequest{Survivors: []uint32{1, 2, x, z}}
		for _, v := range cfg.Clients[1:] {
			if v != z {
				req.Dropouts = append(req.Dropouts, v)
			}
		}
		slices.Sort(req.Survivors)
		resp, err := rd.clients[z].Unmask(req)
		if err == nil {
			t.Errorf("client %d answered a request naming phantom survivors 1 and 2", z)
		} else if !errors.Is(err, ErrRefused) {
			t.Errorf("client %d: %v, want ErrRefused", z, err)
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
	// The attacker's reconstruction, from whatever it was given.
	b, err := combine(seeds, cfg.Threshold)
	if err != nil {
		return // too few seed shares of X: the attack failed
	}
	var masked []uint32
	for _, m := range rd.seen.masked {
		if m.From == x {
			masked = slices.Clone(m.Words)
		}
	}
	key, _ := selfKey(b, cfg.Seed, x)
	if err := addMask(masked, key, true); err != nil {
		t.Fatal(err)
	}
	for _, v := range cfg.Clients[1:] {
		sk, err := combine(keys[v], cfg.Threshold)
		if err != nil {
			return // a pairwise mask stays: the attack failed
		}
		priv, _ := ecdh.X25519().NewPrivateKey(sk[:])
		adv := rd.server.keys[x]
		pub, _ := ecdh.X25519().NewPublicKey(adv.SPub[:])
		shared, _ := priv.ECDH(pub)
		key, _ := pairKey(shared, cfg.Seed, x, v)
		if err := addMask(masked, key, x < v); err != nil {
			t.Fatal(err)
		}
	}
	for i := range masked {
		masked[i] &= cfg.mask()
	}
	if slices.Equal(masked, rd.inputs[x]) {
		t.Errorf("client %d's input recovered from its masked input: %v", x, masked)
	}
}
