package secagg

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Stages at which a client can drop out in a test round.
const (
	stayAll       = iota
	dropAdvertise // never advertises
	dropShare     // advertises, never shares
	dropMask      // shares, never sends its masked input (a dropout)
	dropUnmask    // sends its masked input, never answers the unmask request
)

// transcript is everything a server sees in a round: the messages, encoded
// as they travel.
type transcript struct {
	advertise []AdvertiseMsg
	shares    []SharesMsg
	masked    []MaskedMsg
	responses []UnmaskResponse
	request   UnmaskRequest
}

type round struct {
	cfg     Config
	server  *Server
	clients map[uint32]*Client
	inputs  map[uint32][]uint32
	seen    transcript
}

func testConfig(n, degree, threshold, minSurvivors, bits, length int) Config {
	cfg := Config{Degree: degree, Threshold: threshold, MinSurvivors: minSurvivors, Bits: bits, Length: length}
	cfg.Seed[0] = byte(n)
	for i := range n {
		cfg.Clients = append(cfg.Clients, uint32(100+7*i)) // ids need not be 1…n
	}
	return cfg
}

// runRound plays a round to the end of masking, clients dropping as drop says,
// with inputs drawn below 2^inputBits, and sends the unmask request.
func runRound(t testing.TB, cfg Config, drop map[uint32]int, inputBits int) (*round, error) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rd := &round{cfg: cfg, server: srv, clients: map[uint32]*Client{}, inputs: map[uint32][]uint32{}}
	rng := rand.New(rand.NewPCG(uint64(len(cfg.Clients)), 3))
	for i, id := range cfg.Clients {
		c, err := NewClient(cfg, id, testRand(byte(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		rd.clients[id] = c
		x := make([]uint32, cfg.Length)
		for j := range x {
			x[j] = uint32(rng.Uint64N(1 << inputBits))
		}
		rd.inputs[id] = x
	}
	for _, id := range cfg.Clients {
		if drop[id] == dropAdvertise {
			continue
		}
		m, err := rd.clients[id].Advertise()
		if err != nil {
			t.Fatal(err)
		}
		m = wire(t, m, &AdvertiseMsg{})
		rd.seen.advertise = append(rd.seen.advertise, m)
		if err := srv.AddAdvertise(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.EndAdvertise(); err != nil {
		return rd, err
	}
	for _, id := range cfg.Clients {
		if drop[id] == dropAdvertise || drop[id] == dropShare {
			continue
		}
		k, err := srv.KeysFor(id)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rd.clients[id].Share(wire(t, k, &KeysMsg{}))
		if err != nil {
			return rd, err
		}
		m = wire(t, m, &SharesMsg{})
		rd.seen.shares = append(rd.seen.shares, m)
		if err := srv.AddShares(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.EndShare(); err != nil {
		return rd, err
	}
	for _, id := range cfg.Clients {
		if d := drop[id]; d == dropAdvertise || d == dropShare || d == dropMask {
			continue
		}
		dm, err := srv.DeliveryFor(id)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rd.clients[id].Mask(wire(t, dm, &DeliveryMsg{}), rd.inputs[id])
		if err != nil {
			return rd, err
		}
		m = wire(t, m, &MaskedMsg{})
		rd.seen.masked = append(rd.seen.masked, m)
		if err := srv.AddMasked(m); err != nil {
			t.Fatal(err)
		}
	}
	req, err := srv.EndMask()
	if err != nil {
		return rd, err
	}
	rd.seen.request = wire(t, req, &UnmaskRequest{})
	return rd, nil
}

// unmask has every survivor but those dropping at unmask answer the request.
func (rd *round) unmask(t testing.TB, drop map[uint32]int) {
	t.Helper()
	for _, id := range rd.seen.request.Survivors {
		if drop[id] == dropUnmask {
			continue
		}
		resp, err := rd.clients[id].Unmask(rd.seen.request)
		if err != nil {
			t.Fatal(err)
		}
		resp = wire(t, resp, &UnmaskResponse{})
		rd.seen.responses = append(rd.seen.responses, resp)
		if err := rd.server.AddUnmask(resp); err != nil {
			t.Fatal(err)
		}
	}
}

type binaryMessage interface{ MarshalBinary() ([]byte, error) }

// wire sends m through its encoding and returns what the other side decodes.
func wire[T binaryMessage, P interface {
	*T
	UnmarshalBinary([]byte) error
}](t testing.TB, m T, into P) T {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := into.UnmarshalBinary(b); err != nil {
		t.Fatalf("decode %T: %v", m, err)
	}
	return *into
}

// TestSumWithThirtyPercentDropouts: 100 clients, each with 60 neighbours and
// threshold 31; 30 (30%) share their keys and then drop before sending their
// masked input, and 3 survivors drop before answering the unmask request. The
// result equals the exact integer sum of the 70 survivors' inputs, computed here in int64 (inputs below 2^20, so the sum
// below 2^32 does not wrap).
func TestSumWithThirtyPercentDropouts(t *testing.T) {
	cfg := testConfig(100, 60, 31, 50, 32, 257)
	drop := map[uint32]int{}
	for i, id := range cfg.Clients {
		switch {
		case i%3 == 2 && i < 92:
			drop[id] = dropMask // i = 2, 5, …, 89: 30 clients
		case i == 3 || i == 7 || i == 10:
			drop[id] = dropUnmask
		}
	}
	nMask := 0
	for _, d := range drop {
		if d == dropMask {
			nMask++
		}
	}
	if nMask != 30 {
		t.Fatalf("test setup: %d mask-stage dropouts, want 30", nMask)
	}
	rd, err := runRound(t, cfg, drop, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.seen.request.Survivors) != 70 || len(rd.seen.request.Dropouts) != 30 {
		t.Fatalf("request names %d survivors and %d dropouts, want 70 and 30", len(rd.seen.request.Survivors), len(rd.seen.request.Dropouts))
	}
	rd.unmask(t, drop)
	got, err := rd.server.Result()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int64, cfg.Length)
	for _, id := range cfg.Clients {
		if d := drop[id]; d == stayAll || d == dropUnmask {
			for j, x := range rd.inputs[id] {
				want[j] += int64(x)
			}
		}
	}
	for j := range want {
		if int64(got[j]) != want[j] {
			t.Fatalf("sum word %d = %d, want %d (exact sum of the survivors)", j, got[j], want[j])
		}
	}
}

// TestSumWraps: with 8-bit words and full-range inputs the sum is taken
// modulo 256, computed here independently; sparse and complete graphs (degree ≥
// n−1, plain SecAgg), a client that never advertises, one that never shares
// and one that drops before masking.
func TestSumWraps(t *testing.T) {
	for _, tc := range []struct{ n, degree, threshold int }{{5, 4, 3}, {12, 6, 4}, {9, 100, 5}} {
		t.Run(fmt.Sprintf("n%d_d%d", tc.n, tc.degree), func(t *testing.T) {
			cfg := testConfig(tc.n, tc.degree, tc.threshold, tc.threshold, 8, 64)
			drop := map[uint32]int{cfg.Clients[1]: dropMask}
			if tc.n > 10 {
				drop[cfg.Clients[4]], drop[cfg.Clients[8]] = dropAdvertise, dropShare
			}
			rd, err := runRound(t, cfg, drop, 8)
			if err != nil {
				t.Fatal(err)
			}
			rd.unmask(t, nil)
			got, err := rd.server.Result()
			if err != nil {
				t.Fatal(err)
			}
			for j := range cfg.Length {
				var want int
				for _, id := range cfg.Clients {
					if drop[id] == stayAll {
						want += int(rd.inputs[id][j])
					}
				}
				if int(got[j]) != want%256 {
					t.Fatalf("word %d = %d, want %d mod 256 = %d", j, got[j], want, want%256)
				}
			}
		})
	}
}

// TestTooFewSurvivorsRefuse: below MinSurvivors the server does not ask, and
// a server that asks anyway is refused by every honest client.
func TestTooFewSurvivorsRefuse(t *testing.T) {
	cfg := testConfig(10, 4, 3, 7, 16, 8)
	drop := map[uint32]int{}
	for _, i := range []int{0, 3, 6, 9} {
		drop[cfg.Clients[i]] = dropMask
	}
	rd, err := runRound(t, cfg, drop, 16)
	if !errors.Is(err, ErrTooFewSurvivors) {
		t.Fatalf("EndMask with 6 of 10 survivors (min 7): err %v, want ErrTooFewSurvivors", err)
	}
	if _, err := rd.server.Result(); !errors.Is(err, ErrStage) {
		t.Errorf("Result after a refused EndMask: err %v, want ErrStage", err)
	}
	var req UnmaskRequest
	for _, id := range cfg.Clients {
		if drop[id] == dropMask {
			req.Dropouts = append(req.Dropouts, id)
		} else {
			req.Survivors = append(req.Survivors, id)
		}
	}
	for _, id := range req.Survivors {
		if _, err := rd.clients[id].Unmask(req); !errors.Is(err, ErrRefused) {
			t.Errorf("client %d asked to unmask 6 survivors: err %v, want ErrRefused", id, err)
		}
	}
	// Too few surviving neighbours for one client: the server stops too.
	cfg = testConfig(10, 4, 3, 5, 16, 8)
	drop = map[uint32]int{}
	nb, _ := cfg.Neighbours()
	victim := cfg.Clients[0]
	for _, v := range nb[victim][:2] {
		drop[v] = dropMask
	}
	if _, err := runRound(t, cfg, drop, 16); !errors.Is(err, ErrTooFewSurvivors) {
		t.Errorf("a client with 2 of 4 neighbours surviving (threshold 3): err %v, want ErrTooFewSurvivors", err)
	}
}

// TestBothKindsOfShareRefused: an aggregator that asks for the seed share and
// the key share of one client, in one request or in two, is refused.
func TestBothKindsOfShareRefused(t *testing.T) {
	cfg := testConfig(8, 4, 3, 4, 16, 8)
	drop := map[uint32]int{cfg.Clients[2]: dropMask}
	rd, err := runRound(t, cfg, drop, 16)
	if err != nil {
		t.Fatal(err)
	}
	honest := rd.seen.request
	target := honest.Survivors[0]
	nb, _ := cfg.Neighbours()
	asker := nb[target][0]
	if drop[asker] != stayAll {
		asker = nb[target][1]
	}
	both := UnmaskRequest{Survivors: honest.Survivors, Dropouts: append(slices.Clone(honest.Dropouts), target)}
	flipped := UnmaskRequest{Survivors: slices.DeleteFunc(slices.Clone(honest.Survivors), func(v uint32) bool { return v == target }),
		Dropouts: append(slices.Clone(honest.Dropouts), target)}
	missing := UnmaskRequest{Survivors: slices.DeleteFunc(slices.Clone(honest.Survivors), func(v uint32) bool { return v == target }),
		Dropouts: honest.Dropouts}
	twice := UnmaskRequest{Survivors: append(slices.Clone(honest.Survivors), honest.Survivors[1]), Dropouts: honest.Dropouts}
	selfDrop := UnmaskRequest{Survivors: slices.DeleteFunc(slices.Clone(honest.Survivors), func(v uint32) bool { return v == asker }),
		Dropouts: append(slices.Clone(honest.Dropouts), asker)}
	for name, req := range map[string]UnmaskRequest{"both sides in one request": both, "named twice": twice,
		"a neighbour unaccounted": missing, "this client a dropout": selfDrop} {
		if _, err := rd.clients[asker].Unmask(req); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err %v, want ErrRefused", name, err)
		}
	}
	first, err := rd.clients[asker].Unmask(honest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(first.Seeds, func(o OwnedShare) bool { return o.Owner == target }) {
		t.Fatalf("honest answer of %d holds no seed share of %d", asker, target)
	}
	if _, err := rd.clients[asker].Unmask(flipped); !errors.Is(err, ErrRefused) {
		t.Errorf("second request naming survivor %d a dropout: err %v, want ErrRefused", target, err)
	}
	again, err := rd.clients[asker].Unmask(honest)
	if err != nil || !slices.Equal(again.Seeds, first.Seeds) || !slices.Equal(again.Keys, first.Keys) {
		t.Errorf("the same request again: %v, want the same answer", err)
	}
}

// TestStagesInOrder: messages out of stage are refused on both sides.
func TestStagesInOrder(t *testing.T) {
	cfg := testConfig(4, 2, 2, 3, 8, 4)
	srv, _ := NewServer(cfg)
	c, _ := NewClient(cfg, cfg.Clients[0], testRand(1))
	if _, err := c.Share(KeysMsg{To: c.ID()}); !errors.Is(err, ErrStage) {
		t.Errorf("share before advertise: %v", err)
	}
	if _, err := c.Mask(DeliveryMsg{To: c.ID()}, make([]uint32, 4)); !errors.Is(err, ErrStage) {
		t.Errorf("mask before advertise: %v", err)
	}
	if _, err := c.Unmask(UnmaskRequest{}); !errors.Is(err, ErrStage) {
		t.Errorf("unmask before advertise: %v", err)
	}
	if err := srv.AddMasked(MaskedMsg{From: cfg.Clients[0]}); !errors.Is(err, ErrStage) {
		t.Errorf("masked input while advertising: %v", err)
	}
	if _, err := srv.EndMask(); !errors.Is(err, ErrStage) {
		t.Errorf("end mask while advertising: %v", err)
	}
	if err := srv.EndAdvertise(); !errors.Is(err, ErrTooFewSurvivors) {
		t.Errorf("end advertise with no keys: %v", err)
	}
	if _, err := NewClient(cfg, 1, nil); err == nil {
		t.Error("client outside the cohort accepted")
	}
}

// TestConfigValidate refuses each bad field.
func TestConfigValidate(t *testing.T) {
	good := testConfig(10, 4, 3, 5, 16, 8)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"one client":          func(c *Config) { c.Clients = c.Clients[:1] },
		"odd degree":          func(c *Config) { c.Degree = 5 },
		"threshold half":      func(c *Config) { c.Threshold = 2 },
		"threshold above":     func(c *Config) { c.Threshold = 5 },
		"min below threshold": func(c *Config) { c.MinSurvivors = 2 },
		"min above clients":   func(c *Config) { c.MinSurvivors = 11 },
		"bits 0":              func(c *Config) { c.Bits = 0 },
		"bits 33":             func(c *Config) { c.Bits = 33 },
		"length 0":            func(c *Config) { c.Length = 0 },
		"id 0":                func(c *Config) { c.Clients[3] = 0 },
		"duplicate id":        func(c *Config) { c.Clients[3] = c.Clients[4] },
		"length over the max": func(c *Config) { c.Length = MaxLength + 1 },
	} {
		c := good
		c.Clients = slices.Clone(good.Clients)
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestNeighbourGraph: the graph is symmetric, every client has exactly Degree
// neighbours, never itself, it is fixed by the seed, and another seed draws
// another graph.
func TestNeighbourGraph(t *testing.T) {
	cfg := testConfig(50, 8, 5, 25, 16, 1)
	g, err := cfg.Neighbours()
	if err != nil {
		t.Fatal(err)
	}
	for u, nb := range g {
		if len(nb) != 8 {
			t.Errorf("client %d has %d neighbours, want 8", u, len(nb))
		}
		for _, v := range nb {
			if v == u || !slices.Contains(g[v], u) {
				t.Fatalf("edge %d–%d not symmetric or a loop", u, v)
			}
		}
	}
	for _, u := range cfg.Clients[:5] {
		if nb, err := cfg.NeighboursOf(u); err != nil || !slices.Equal(nb, g[u]) {
			t.Errorf("NeighboursOf(%d) = %v, %v; want %v", u, nb, err, g[u])
		}
	}
	if _, err := cfg.NeighboursOf(1); err == nil {
		t.Error("NeighboursOf an id outside the cohort: no error")
	}
	g2, _ := cfg.Neighbours()
	cfg.Seed[1] = 1
	g3, _ := cfg.Neighbours()
	same, differ := true, false
	for u := range g {
		same = same && slices.Equal(g[u], g2[u])
		differ = differ || !slices.Equal(g[u], g3[u])
	}
	if !same || !differ {
		t.Errorf("graph deterministic %v, differs with another seed %v; want both", same, differ)
	}
}
