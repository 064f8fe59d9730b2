package secagg

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// MaxLength bounds a round's vector length (2^24 words, 64 MiB of masks).
const MaxLength = 1 << 24

// MaxDegree bounds a client's neighbours. Each client shares its secrets
// with every neighbour (Degree × Threshold field operations), agrees a key
// and seals a box with each, and answers for each at unmasking: a plan
// naming a complete graph of 100,000 clients would hold every client for
// hours. ChooseDegree gives 366 neighbours for a million clients.
const MaxDegree = 1024

// Config is a round's public parameters; server and every client must hold the
// same one.
type Config struct {
	// Seed is the round's public random seed: it fixes the neighbour graph and
	// separates this round's key derivations from every other round's. It must be
	// fresh for every round.
	Seed [32]byte
	// Clients are the ids of the cohort, distinct and non-zero (an id is also the
	// point of the Shamir shares its holder receives).
	Clients []uint32
	// Degree is the number of neighbours of each client: even, at least 2; a
	// Degree ≥ len(Clients)−1 makes the complete graph (plain SecAgg).
	Degree int
	// Threshold is the number of a client's neighbours whose shares rebuild its
	// secrets: more than half of the effective degree and at most all of it, so
	// that two disjoint groups of neighbours can never rebuild both of its secrets.
	Threshold int
	// MinSurvivors is the smallest cohort whose sum may be unmasked: honest
	// clients refuse to unmask fewer survivors, and the server does not ask.
	MinSurvivors int
	// Bits is the modulus exponent: inputs and sums are words modulo 2^Bits, 1 ≤ Bits ≤ 32.
	Bits int
	// Length is the number of words in each input.
	Length int
	// Consistency adds the consistency check of Bonawitz et al. (2017) before
	// unmasking (consistency.go): each survivor attests the unmask request it
	// got to each of its neighbours, and a client reveals shares only for a
	// request that Threshold of its neighbours attested. Without it, an
	// aggregator that sends different requests to different clients can read
	// one client's input (docs/privacy.md §16); with it, honest answers all
	// follow one request.
	Consistency bool
	// SignedAdverts has the server refuse an advert without a signature
	// (AdvertiseMsg.Sig) and relay each advert's signature with its keys, so
	// that every client can check its neighbours' keys against their
	// long-term keys before sharing (the caller checks: it holds those keys).
	// Without it an aggregator can hand a client keys of its own for its
	// neighbours and read its input (docs/privacy.md §14a).
	SignedAdverts bool
}

// Validate checks c.
func (c Config) Validate() error {
	n := len(c.Clients)
	switch {
	case n < 2:
		return fmt.Errorf("secagg config: %d clients, want at least 2", n)
	case c.Degree < 2 || (c.Degree%2 == 1 && c.Degree < n-1):
		return fmt.Errorf("secagg config: degree %d, want an even number ≥ 2 or ≥ clients−1 (%d)", c.Degree, n-1)
	case c.Bits < 1 || c.Bits > 32:
		return fmt.Errorf("secagg config: bits %d, want 1…32", c.Bits)
	case c.Length < 1 || c.Length > MaxLength:
		return fmt.Errorf("secagg config: length %d, want 1…%d", c.Length, MaxLength)
	case c.degree() > MaxDegree:
		return fmt.Errorf("secagg config: degree %d (%d clients), want at most %d neighbours", c.degree(), n, MaxDegree)
	}
	d := c.degree()
	if 2*c.Threshold <= d || c.Threshold > d {
		return fmt.Errorf("secagg config: threshold %d with %d neighbours, want more than %d and at most %d", c.Threshold, d, d/2, d)
	}
	if c.MinSurvivors < c.Threshold || c.MinSurvivors > n {
		return fmt.Errorf("secagg config: min survivors %d, want %d (threshold) … %d (clients)", c.MinSurvivors, c.Threshold, n)
	}
	seen := make(map[uint32]bool, n)
	for i, id := range c.Clients {
		if id == 0 {
			return fmt.Errorf("secagg config: client %d has id 0", i)
		}
		if seen[id] {
			return fmt.Errorf("secagg config: client id %d twice", id)
		}
		seen[id] = true
	}
	return nil
}

// degree is the number of neighbours each client actually has.
func (c Config) degree() int { return min(c.Degree, len(c.Clients)-1) }

// mask is 2^Bits − 1.
func (c Config) mask() uint32 { return uint32(1<<c.Bits - 1) }

// Neighbours returns the neighbour lists of the round's graph, keyed by id and
// sorted. The graph is a Harary graph H(Degree, n) on a ring whose order is a
// random permutation of the clients drawn from the seed: each client's
// neighbours are the Degree/2 clients on each side of it (Bell et al. 2020,
// §3). Anyone holding the config computes the same graph.
func (c Config) Neighbours() (map[uint32][]uint32, error) {
	ring, err := c.ring()
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]uint32, len(ring))
	for p, id := range ring {
		out[id] = c.around(ring, p)
	}
	return out, nil
}

// NeighboursOf returns id's sorted neighbours (Neighbours for one client, in
// O(n) rather than O(n·Degree)).
func (c Config) NeighboursOf(id uint32) ([]uint32, error) {
	ring, err := c.ring()
	if err != nil {
		return nil, err
	}
	p := slices.Index(ring, id)
	if p < 0 {
		return nil, fmt.Errorf("secagg config: id %d is not in the round's cohort", id)
	}
	return c.around(ring, p), nil
}

// ring is the clients in the graph's ring order.
func (c Config) ring() ([]uint32, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ids := slices.Clone(c.Clients)
	slices.Sort(ids)
	h := sha256.Sum256(append([]byte("kairos secagg v1 neighbour graph\x00"), c.Seed[:]...))
	rand.New(rand.NewChaCha8(h)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids, nil
}

// around returns the sorted neighbours of the client at ring position p.
func (c Config) around(ring []uint32, p int) []uint32 {
	n, d := len(ring), c.degree()
	var nb []uint32
	if d >= n-1 {
		nb = append(slices.Clone(ring[:p]), ring[p+1:]...)
	} else {
		for k := 1; k <= d/2; k++ {
			nb = append(nb, ring[(p+k)%n], ring[(p-k+n)%n])
		}
	}
	slices.Sort(nb)
	return nb
}

// Errors a caller acts on.
var (
	// ErrStage: the message or call does not belong to the current stage.
	ErrStage = errors.New("not in this stage")
	// ErrTooFewSurvivors: the cohort fell below MinSurvivors, or some client's
	// surviving neighbours below Threshold; the round cannot be unmasked.
	ErrTooFewSurvivors = errors.New("too few survivors to unmask")
	// ErrRefused: an honest client refuses an unmask request that could reveal
	// an individual input.
	ErrRefused = errors.New("unmask request refused")
)
