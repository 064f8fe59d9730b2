package secagg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
)

// Client is one client's side of a round. Its methods are the stages, called
// in order; each checks what the server sent before answering.
type Client struct {
	cfg        Config
	id         uint32
	neighbours map[uint32]bool
	// cohort is the round's clients: an unmask request naming anyone else is
	// refused (phantom survivors would let it reach MinSurvivors while
	// calling every real neighbour a dropout).
	cohort map[uint32]bool
	rand   io.Reader
	stage  int

	cPriv, sPriv *ecdh.PrivateKey
	// peers are the neighbours' advertised keys (stage 2), and boxSecrets the
	// X25519 secrets of this client's c key with each neighbour's, which seal
	// the boxes both ways.
	peers      map[uint32]PeerKeys
	boxSecrets map[uint32][]byte
	// b is the self-mask seed (stage 2).
	b [SecretSize]byte
	// held are the shares neighbours gave this client (stage 3): the seed share
	// and the key share of each neighbour that shared.
	held map[uint32][2]Share
	// answered is the encoded unmask request answered, and its answer (stage 4).
	answered []byte
	response UnmaskResponse
	// attested is the encoded unmask request this client attested, and its
	// attestation (Config.Consistency, consistency.go).
	attested    []byte
	attestation AttestMsg
}

// Client stages.
const (
	clientAdvertise = iota
	clientShare
	clientMask
	clientUnmask
	clientDone
)

// NewClient starts client id's side of the round cfg. A nil r means crypto/rand.
func NewClient(cfg Config, id uint32, r io.Reader) (*Client, error) {
	nb, err := cfg.NeighboursOf(id)
	if err != nil {
		return nil, fmt.Errorf("secagg client: %w", err)
	}
	if r == nil {
		r = rand.Reader
	}
	c := &Client{cfg: cfg, id: id, rand: r, neighbours: map[uint32]bool{}, cohort: make(map[uint32]bool, len(cfg.Clients))}
	for _, v := range nb {
		c.neighbours[v] = true
	}
	for _, v := range cfg.Clients {
		c.cohort[v] = true
	}
	return c, nil
}

// ID is the client's id.
func (c *Client) ID() uint32 { return c.id }

func (c *Client) newKey() (*ecdh.PrivateKey, error) {
	var k [32]byte
	if _, err := io.ReadFull(c.rand, k[:]); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(k[:])
}

// Advertise is stage 1: draw the round's two key pairs and publish them.
func (c *Client) Advertise() (AdvertiseMsg, error) {
	if c.stage != clientAdvertise {
		return AdvertiseMsg{}, fmt.Errorf("secagg client %d: advertise: %w", c.id, ErrStage)
	}
	var err error
	if c.cPriv, err = c.newKey(); err != nil {
		return AdvertiseMsg{}, fmt.Errorf("secagg client %d: advertise: %w", c.id, err)
	}
	if c.sPriv, err = c.newKey(); err != nil {
		return AdvertiseMsg{}, fmt.Errorf("secagg client %d: advertise: %w", c.id, err)
	}
	m := AdvertiseMsg{From: c.id}
	copy(m.CPub[:], c.cPriv.PublicKey().Bytes())
	copy(m.SPub[:], c.sPriv.PublicKey().Bytes())
	c.stage = clientShare
	return m, nil
}

// Share is stage 2: given the neighbours' keys, draw the self-mask seed and
// send each neighbour its encrypted shares of the seed and of the mask key.
// It refuses keys from a non-neighbour, twice from one, or fewer neighbours
// than the threshold (its secrets could not be rebuilt).
func (c *Client) Share(k KeysMsg) (SharesMsg, error) {
	fail := func(err error) (SharesMsg, error) {
		return SharesMsg{}, fmt.Errorf("secagg client %d: share: %w", c.id, err)
	}
	if c.stage != clientShare {
		return fail(ErrStage)
	}
	if k.To != c.id {
		return fail(fmt.Errorf("keys addressed to %d", k.To))
	}
	peers := make(map[uint32]PeerKeys, len(k.Peers))
	for _, p := range k.Peers {
		_, dup := peers[p.ID]
		switch {
		case !c.neighbours[p.ID]:
			return fail(fmt.Errorf("keys of %d, not a neighbour", p.ID))
		case dup:
			return fail(fmt.Errorf("keys of %d twice", p.ID))
		case p.CPub == p.SPub:
			return fail(fmt.Errorf("neighbour %d advertised one key for both uses", p.ID))
		case c.cfg.SignedAdverts && len(p.Sig) != SigSize:
			// The caller checks the signature; an unsigned key is refused here
			// too, so that forgetting to sign cannot pass unnoticed.
			return fail(fmt.Errorf("keys of %d without a signature, in a round that needs one", p.ID))
		}
		for _, key := range [][KeySize]byte{p.CPub, p.SPub} {
			if _, err := ecdh.X25519().NewPublicKey(key[:]); err != nil {
				return fail(fmt.Errorf("keys of %d: %w", p.ID, err))
			}
		}
		peers[p.ID] = p
	}
	if len(peers) < c.cfg.Threshold {
		return fail(fmt.Errorf("%d neighbours advertised, threshold %d: %w", len(peers), c.cfg.Threshold, ErrTooFewSurvivors))
	}
	if _, err := io.ReadFull(c.rand, c.b[:]); err != nil {
		return fail(err)
	}
	ids := make([]uint32, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sk [SecretSize]byte
	copy(sk[:], c.sPriv.Bytes())
	seedShares, err := split(c.b, c.cfg.Threshold, ids, c.rand)
	if err != nil {
		return fail(err)
	}
	keyShares, err := split(sk, c.cfg.Threshold, ids, c.rand)
	if err != nil {
		return fail(err)
	}
	out := SharesMsg{From: c.id}
	secrets := make(map[uint32][]byte, len(ids))
	for i, id := range ids {
		p := peers[id]
		pub, _ := ecdh.X25519().NewPublicKey(p.CPub[:]) // checked above
		shared, err := c.cPriv.ECDH(pub)
		if err != nil {
			return fail(fmt.Errorf("share box for %d: %w", id, err))
		}
		secrets[id] = shared
		aead, err := boxAEADShared(shared, c.cfg.Seed, c.id, id)
		if err != nil {
			return fail(err)
		}
		box, err := seal(aead, c.cfg.Seed, c.id, id, seedShares[i], keyShares[i], c.rand)
		if err != nil {
			return fail(err)
		}
		out.Boxes = append(out.Boxes, Box{Peer: id, Data: box})
	}
	c.peers, c.boxSecrets = peers, secrets
	c.stage = clientMask
	return out, nil
}

// Mask is stage 3: open the shares the neighbours sent and return x masked
// with the self mask and a pairwise mask for each neighbour that shared.
// x holds cfg.Length words below 2^Bits.
func (c *Client) Mask(d DeliveryMsg, x []uint32) (MaskedMsg, error) {
	fail := func(err error) (MaskedMsg, error) {
		return MaskedMsg{}, fmt.Errorf("secagg client %d: mask: %w", c.id, err)
	}
	if c.stage != clientMask {
		return fail(ErrStage)
	}
	if d.To != c.id {
		return fail(fmt.Errorf("shares addressed to %d", d.To))
	}
	if len(x) != c.cfg.Length {
		return fail(fmt.Errorf("input of %d words, want %d", len(x), c.cfg.Length))
	}
	for i, w := range x {
		if w&^c.cfg.mask() != 0 {
			return fail(fmt.Errorf("input word %d is %d, not below 2^%d", i, w, c.cfg.Bits))
		}
	}
	held := make(map[uint32][2]Share, len(d.Boxes))
	for _, b := range d.Boxes {
		shared, ok := c.boxSecrets[b.Peer]
		if !ok {
			return fail(fmt.Errorf("shares from %d, a neighbour that did not advertise", b.Peer))
		}
		if _, dup := held[b.Peer]; dup {
			return fail(fmt.Errorf("shares from %d twice", b.Peer))
		}
		aead, err := boxAEADShared(shared, c.cfg.Seed, b.Peer, c.id)
		if err != nil {
			return fail(err)
		}
		ss, ks, err := unseal(aead, c.cfg.Seed, b.Peer, c.id, b.Data)
		if err != nil {
			return fail(err)
		}
		held[b.Peer] = [2]Share{ss, ks}
	}
	if len(held) < c.cfg.Threshold {
		return fail(fmt.Errorf("%d neighbours shared, threshold %d: %w", len(held), c.cfg.Threshold, ErrTooFewSurvivors))
	}
	y := slices.Clone(x)
	key, err := selfKey(c.b, c.cfg.Seed, c.id)
	if err != nil {
		return fail(err)
	}
	if err := addMask(y, key, false); err != nil {
		return fail(err)
	}
	for v := range held {
		p := c.peers[v]
		pub, _ := ecdh.X25519().NewPublicKey(p.SPub[:])
		shared, err := c.sPriv.ECDH(pub)
		if err != nil {
			return fail(fmt.Errorf("pairwise mask with %d: %w", v, err))
		}
		key, err := pairKey(shared, c.cfg.Seed, c.id, v)
		if err != nil {
			return fail(err)
		}
		if err := addMask(y, key, c.id > v); err != nil {
			return fail(err)
		}
	}
	for i := range y {
		y[i] &= c.cfg.mask()
	}
	c.held = held
	c.stage = clientUnmask
	return MaskedMsg{From: c.id, Words: y}, nil
}

// Unmask is stage 4: for each neighbour that shared, return its seed share if
// the request names it a survivor and its key share if a dropout. The client
// answers one request per round (the same request again gets the same
// answer) and refuses, with ErrRefused, a request that names a client on both
// sides or twice, names one outside the cohort, leaves a neighbour that shared
// unaccounted, calls this client a dropout, or has fewer survivors than
// MinSurvivors: each could let the server rebuild both secrets of one client
// and with them its input. In a round with Config.Consistency, Unmask refuses
// (ErrRefused): the answer needs the neighbours' attestations
// (UnmaskConsistent, consistency.go).
func (c *Client) Unmask(req UnmaskRequest) (UnmaskResponse, error) {
	if c.cfg.Consistency && c.stage != clientDone {
		return UnmaskResponse{}, fmt.Errorf("secagg client %d: unmask: the round checks consistency, the request needs its neighbours' attestations: %w", c.id, ErrRefused)
	}
	return c.unmask(req, nil)
}

// unmask answers req after check (when not nil) accepted its encoding.
func (c *Client) unmask(req UnmaskRequest, check func(enc []byte) error) (UnmaskResponse, error) {
	fail := func(err error) (UnmaskResponse, error) {
		return UnmaskResponse{}, fmt.Errorf("secagg client %d: unmask: %w", c.id, err)
	}
	enc, _ := req.MarshalBinary()
	if c.stage == clientDone {
		if bytes.Equal(enc, c.answered) {
			return c.response, nil
		}
		return fail(fmt.Errorf("a second, different request: %w", ErrRefused))
	}
	if c.stage != clientUnmask {
		return fail(ErrStage)
	}
	survivor, dropout, err := c.checkRequest(req)
	if err != nil {
		return fail(err)
	}
	if check != nil {
		if err := check(enc); err != nil {
			return fail(err)
		}
	}
	resp := UnmaskResponse{From: c.id}
	for _, v := range c.heldIDs() {
		switch {
		case survivor[v]:
			resp.Seeds = append(resp.Seeds, OwnedShare{Owner: v, Share: c.held[v][0]})
		case dropout[v]:
			resp.Keys = append(resp.Keys, OwnedShare{Owner: v, Share: c.held[v][1]})
		}
	}
	c.answered, c.response, c.stage = enc, resp, clientDone
	return resp, nil
}

// heldIDs are the neighbours whose shares this client holds, sorted.
func (c *Client) heldIDs() []uint32 {
	ids := make([]uint32, 0, len(c.held))
	for v := range c.held {
		ids = append(ids, v)
	}
	slices.Sort(ids)
	return ids
}

// checkRequest applies Unmask's rules to req and returns its two sides.
func (c *Client) checkRequest(req UnmaskRequest) (survivor, dropout map[uint32]bool, err error) {
	survivor, dropout = map[uint32]bool{}, map[uint32]bool{}
	for _, side := range []struct {
		ids []uint32
		set map[uint32]bool
	}{{req.Survivors, survivor}, {req.Dropouts, dropout}} {
		for _, id := range side.ids {
			if !c.cohort[id] {
				return nil, nil, fmt.Errorf("client %d is not in the round's cohort: %w", id, ErrRefused)
			}
			if survivor[id] || dropout[id] {
				return nil, nil, fmt.Errorf("client %d named twice: %w", id, ErrRefused)
			}
			side.set[id] = true
		}
	}
	switch {
	case !survivor[c.id]:
		return nil, nil, fmt.Errorf("this client is not named a survivor: %w", ErrRefused)
	case len(survivor) < c.cfg.MinSurvivors:
		return nil, nil, fmt.Errorf("%d survivors, at least %d needed: %w", len(survivor), c.cfg.MinSurvivors, ErrRefused)
	}
	for v := range c.held {
		if !survivor[v] && !dropout[v] {
			return nil, nil, fmt.Errorf("neighbour %d shared but is named neither survivor nor dropout: %w", v, ErrRefused)
		}
	}
	return survivor, dropout, nil
}
