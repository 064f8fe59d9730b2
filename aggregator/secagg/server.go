package secagg

import (
	"crypto/ecdh"
	"fmt"
	"slices"
)

// Stage is where a server's round stands.
type Stage int

// Server stages, in order.
const (
	StageAdvertise   Stage = iota // collecting public keys
	StageShare                    // collecting encrypted shares
	StageMask                     // collecting masked inputs
	StageConsistency              // collecting attestations of the unmask request (Config.Consistency)
	StageUnmask                   // collecting unmask responses
	StageDone                     // the sum is out
)

func (s Stage) String() string {
	switch s {
	case StageAdvertise:
		return "advertise"
	case StageShare:
		return "share"
	case StageMask:
		return "mask"
	case StageConsistency:
		return "consistency"
	case StageUnmask:
		return "unmask"
	case StageDone:
		return "done"
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// Server is the aggregator's side of a round. It keeps only what the protocol
// hands it: public keys, boxes it cannot open, the running sum of masked
// inputs and the unmask shares.
type Server struct {
	cfg        Config
	neighbours map[uint32][]uint32
	stage      Stage

	keys     map[uint32]AdvertiseMsg // U1
	boxes    map[uint32][]Box        // by recipient, Peer = sender
	shared   map[uint32]bool         // U2
	survived map[uint32]bool         // U3
	sum      []uint32
	request  UnmaskRequest
	answered map[uint32]bool
	seeds    map[uint32][]Share // shares of each survivor's seed
	skeys    map[uint32][]Share // shares of each dropout's mask key
	attests  map[uint32][]Tag   // each survivor's attestation tags (consistency.go)

	// accepted are the clients' messages as accepted, in order, for
	// MarshalBinary: a restored server replays them.
	accepted struct {
		advertise []AdvertiseMsg
		shares    []SharesMsg
		attest    []AttestMsg
		unmask    []UnmaskResponse
	}
}

// NewServer starts the server's side of the round cfg.
func NewServer(cfg Config) (*Server, error) {
	g, err := cfg.Neighbours()
	if err != nil {
		return nil, fmt.Errorf("secagg server: %w", err)
	}
	return &Server{
		cfg: cfg, neighbours: g,
		keys: map[uint32]AdvertiseMsg{}, boxes: map[uint32][]Box{}, shared: map[uint32]bool{},
		survived: map[uint32]bool{}, sum: make([]uint32, cfg.Length), answered: map[uint32]bool{},
		seeds: map[uint32][]Share{}, skeys: map[uint32][]Share{},
	}, nil
}

// Stage is the server's current stage.
func (s *Server) Stage() Stage { return s.stage }

// Config is the round's configuration.
func (s *Server) Config() Config { return s.cfg }

func (s *Server) want(st Stage, what string) error {
	if s.stage != st {
		return fmt.Errorf("secagg server: %s in stage %s: %w", what, s.stage, ErrStage)
	}
	return nil
}

// AddAdvertise records a client's public keys (stage 1).
func (s *Server) AddAdvertise(m AdvertiseMsg) error {
	if err := s.want(StageAdvertise, "keys"); err != nil {
		return err
	}
	if _, ok := s.neighbours[m.From]; !ok {
		return fmt.Errorf("secagg server: keys from %d, not in the cohort", m.From)
	}
	if _, dup := s.keys[m.From]; dup {
		return fmt.Errorf("secagg server: keys from %d twice", m.From)
	}
	if m.CPub == m.SPub {
		return fmt.Errorf("secagg server: client %d advertised one key for both uses", m.From)
	}
	if err := checkSig(m.From, m.Sig); err != nil {
		return fmt.Errorf("secagg server: %w", err)
	}
	if s.cfg.SignedAdverts && len(m.Sig) == 0 {
		return fmt.Errorf("secagg server: keys from %d without a signature, in a round that needs one", m.From)
	}
	for _, k := range [][KeySize]byte{m.CPub, m.SPub} {
		if _, err := ecdh.X25519().NewPublicKey(k[:]); err != nil {
			return fmt.Errorf("secagg server: keys from %d: %w", m.From, err)
		}
	}
	m.Sig = slices.Clone(m.Sig)
	s.keys[m.From] = m
	s.accepted.advertise = append(s.accepted.advertise, m)
	return nil
}

// EndAdvertise closes stage 1; the round fails with ErrTooFewSurvivors when
// fewer than MinSurvivors clients advertised.
func (s *Server) EndAdvertise() error {
	if err := s.want(StageAdvertise, "end of advertising"); err != nil {
		return err
	}
	if len(s.keys) < s.cfg.MinSurvivors {
		return fmt.Errorf("secagg server: %d clients advertised keys, %d needed: %w", len(s.keys), s.cfg.MinSurvivors, ErrTooFewSurvivors)
	}
	s.stage = StageShare
	return nil
}

// KeysFor is the stage-2 message to client id: its advertised neighbours' keys.
func (s *Server) KeysFor(id uint32) (KeysMsg, error) {
	if err := s.want(StageShare, "keys"); err != nil {
		return KeysMsg{}, err
	}
	if _, ok := s.keys[id]; !ok {
		return KeysMsg{}, fmt.Errorf("secagg server: keys for %d, which did not advertise", id)
	}
	m := KeysMsg{To: id}
	for _, v := range s.neighbours[id] {
		if k, ok := s.keys[v]; ok {
			m.Peers = append(m.Peers, PeerKeys{ID: v, CPub: k.CPub, SPub: k.SPub, Sig: slices.Clone(k.Sig)})
		}
	}
	return m, nil
}

// AddShares records a client's boxes (stage 2): exactly one for each of its
// neighbours that advertised.
func (s *Server) AddShares(m SharesMsg) error {
	if err := s.want(StageShare, "shares"); err != nil {
		return err
	}
	if _, ok := s.keys[m.From]; !ok {
		return fmt.Errorf("secagg server: shares from %d, which did not advertise", m.From)
	}
	if s.shared[m.From] {
		return fmt.Errorf("secagg server: shares from %d twice", m.From)
	}
	var want []uint32
	for _, v := range s.neighbours[m.From] {
		if _, ok := s.keys[v]; ok {
			want = append(want, v)
		}
	}
	got := make([]uint32, len(m.Boxes))
	for i, b := range m.Boxes {
		got[i] = b.Peer
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("secagg server: shares from %d for %v, want one for each of %v", m.From, got, want)
	}
	for _, b := range m.Boxes {
		s.boxes[b.Peer] = append(s.boxes[b.Peer], Box{Peer: m.From, Data: slices.Clone(b.Data)})
	}
	s.shared[m.From] = true
	s.accepted.shares = append(s.accepted.shares, SharesMsg{From: m.From, Boxes: slices.Clone(m.Boxes)})
	return nil
}

// EndShare closes stage 2 (ErrTooFewSurvivors below MinSurvivors).
func (s *Server) EndShare() error {
	if err := s.want(StageShare, "end of sharing"); err != nil {
		return err
	}
	if len(s.shared) < s.cfg.MinSurvivors {
		return fmt.Errorf("secagg server: %d clients shared keys, %d needed: %w", len(s.shared), s.cfg.MinSurvivors, ErrTooFewSurvivors)
	}
	s.stage = StageMask
	return nil
}

// DeliveryFor is the stage-3 message to client id: the boxes addressed to it
// by neighbours that shared.
func (s *Server) DeliveryFor(id uint32) (DeliveryMsg, error) {
	if err := s.want(StageMask, "delivery"); err != nil {
		return DeliveryMsg{}, err
	}
	if !s.shared[id] {
		return DeliveryMsg{}, fmt.Errorf("secagg server: delivery for %d, which did not share", id)
	}
	m := DeliveryMsg{To: id}
	for _, b := range s.boxes[id] {
		if s.shared[b.Peer] {
			m.Boxes = append(m.Boxes, b)
		}
	}
	return m, nil
}

// AddMasked adds a client's masked input to the running sum (stage 3); the
// input itself is not kept.
func (s *Server) AddMasked(m MaskedMsg) error {
	if err := s.want(StageMask, "masked input"); err != nil {
		return err
	}
	switch {
	case !s.shared[m.From]:
		return fmt.Errorf("secagg server: masked input from %d, which did not share", m.From)
	case s.survived[m.From]:
		return fmt.Errorf("secagg server: masked input from %d twice", m.From)
	case len(m.Words) != s.cfg.Length:
		return fmt.Errorf("secagg server: masked input from %d has %d words, want %d", m.From, len(m.Words), s.cfg.Length)
	}
	for i, w := range m.Words {
		if w&^s.cfg.mask() != 0 {
			return fmt.Errorf("secagg server: masked input from %d: word %d is %d, not below 2^%d", m.From, i, w, s.cfg.Bits)
		}
	}
	for i, w := range m.Words {
		s.sum[i] += w
	}
	s.survived[m.From] = true
	return nil
}

// EndMask closes stage 3 and returns the unmask request for every survivor;
// with Config.Consistency the survivors attest it first (StageConsistency,
// AddAttest), otherwise they answer it (StageUnmask). It fails with ErrTooFewSurvivors, and the round cannot be unmasked, when the
// survivors are fewer than MinSurvivors or some client that shared keeps fewer
// than Threshold surviving neighbours to hold its shares.
func (s *Server) EndMask() (UnmaskRequest, error) {
	if err := s.want(StageMask, "end of masking"); err != nil {
		return UnmaskRequest{}, err
	}
	if len(s.survived) < s.cfg.MinSurvivors {
		return UnmaskRequest{}, fmt.Errorf("secagg server: %d masked inputs, %d needed: %w", len(s.survived), s.cfg.MinSurvivors, ErrTooFewSurvivors)
	}
	var req UnmaskRequest
	for id := range s.shared {
		n := 0
		for _, v := range s.neighbours[id] {
			if s.survived[v] {
				n++
			}
		}
		if n < s.cfg.Threshold {
			return UnmaskRequest{}, fmt.Errorf("secagg server: client %d has %d surviving neighbours, threshold %d: %w", id, n, s.cfg.Threshold, ErrTooFewSurvivors)
		}
		if s.survived[id] {
			req.Survivors = append(req.Survivors, id)
		} else {
			req.Dropouts = append(req.Dropouts, id)
		}
	}
	slices.Sort(req.Survivors)
	slices.Sort(req.Dropouts)
	s.request, s.stage = req, StageUnmask
	if s.cfg.Consistency {
		s.stage = StageConsistency
	}
	return req, nil
}

// Request is the unmask request of stage 4.
func (s *Server) Request() UnmaskRequest { return s.request }

// AddUnmask records a survivor's shares (stage 4): seed shares of surviving
// neighbours and key shares of dropped ones, each at the responder's point.
func (s *Server) AddUnmask(m UnmaskResponse) error {
	if err := s.want(StageUnmask, "unmask response"); err != nil {
		return err
	}
	if !s.survived[m.From] {
		return fmt.Errorf("secagg server: unmask response from %d, not a survivor", m.From)
	}
	if s.cfg.Consistency && s.attests[m.From] == nil {
		return fmt.Errorf("secagg server: unmask response from %d, which did not attest the request", m.From)
	}
	if s.answered[m.From] {
		return fmt.Errorf("secagg server: unmask response from %d twice", m.From)
	}
	nb := s.neighbours[m.From]
	check := func(o OwnedShare, wantSurvivor bool) error {
		switch {
		case !slices.Contains(nb, o.Owner):
			return fmt.Errorf("share of %d, not a neighbour", o.Owner)
		case !s.shared[o.Owner] || s.survived[o.Owner] != wantSurvivor:
			return fmt.Errorf("share of the wrong kind for %d", o.Owner)
		case o.Share.X != m.From:
			return fmt.Errorf("share of %d at point %d", o.Owner, o.Share.X)
		}
		return nil
	}
	seen := map[uint32]bool{}
	for _, list := range []struct {
		shares   []OwnedShare
		survivor bool
	}{{m.Seeds, true}, {m.Keys, false}} {
		for _, o := range list.shares {
			if err := check(o, list.survivor); err != nil {
				return fmt.Errorf("secagg server: unmask response from %d: %w", m.From, err)
			}
			if seen[o.Owner] {
				return fmt.Errorf("secagg server: unmask response from %d: two shares of %d", m.From, o.Owner)
			}
			seen[o.Owner] = true
		}
	}
	for _, o := range m.Seeds {
		s.seeds[o.Owner] = append(s.seeds[o.Owner], o.Share)
	}
	for _, o := range m.Keys {
		s.skeys[o.Owner] = append(s.skeys[o.Owner], o.Share)
	}
	s.answered[m.From] = true
	s.accepted.unmask = append(s.accepted.unmask, m)
	return nil
}

// Result rebuilds every survivor's self mask and every dropout's pairwise
// masks with its surviving neighbours, removes them, and returns the sum of the
// survivors' inputs modulo 2^Bits. Until Threshold shares of every secret have
// arrived it returns ErrTooFewShares and the round stays in stage 4.
func (s *Server) Result() ([]uint32, error) {
	if err := s.want(StageUnmask, "result"); err != nil {
		return nil, err
	}
	out, err := s.cfg.RemoveMasks(Unmasking{
		Sum: s.sum, Survivors: s.request.Survivors, Dropouts: s.request.Dropouts,
		Keys: s.keys, Seeds: s.seeds, MaskKeys: s.skeys,
	})
	if err != nil {
		return nil, fmt.Errorf("secagg server: %w", err)
	}
	s.stage = StageDone
	return out, nil
}

// Unmasking is what removing the masks from a sum of masked inputs takes.
type Unmasking struct {
	// Sum is the sum of the survivors' masked inputs.
	Sum []uint32
	// Survivors sent the masked inputs in Sum; Dropouts shared their keys and
	// sent none.
	Survivors, Dropouts []uint32
	// Keys are the advertised public keys, by client.
	Keys map[uint32]AdvertiseMsg
	// Seeds are shares of each survivor's self-mask seed, MaskKeys shares of
	// each dropout's mask key.
	Seeds, MaskKeys map[uint32][]Share
}

// RemoveMasks rebuilds each survivor's self mask from Threshold shares of its
// seed and each dropout's pairwise masks with its surviving neighbours from
// Threshold shares of its mask key (checked against its advertised key),
// removes them from u.Sum and returns the result modulo 2^Bits: the
// survivors' sum when every mask in u.Sum is accounted for. Server.Result is
// this over the round's state; a test uses it on the shares a deviating
// aggregator gathered to show what they would reveal (docs/privacy.md §16).
func (c Config) RemoveMasks(u Unmasking) ([]uint32, error) {
	if len(u.Sum) != c.Length {
		return nil, fmt.Errorf("remove masks: sum of %d words, want %d", len(u.Sum), c.Length)
	}
	g, err := c.Neighbours()
	if err != nil {
		return nil, fmt.Errorf("remove masks: %w", err)
	}
	survived := make(map[uint32]bool, len(u.Survivors))
	for _, id := range u.Survivors {
		survived[id] = true
	}
	out := slices.Clone(u.Sum)
	for _, id := range u.Survivors {
		b, err := combine(u.Seeds[id], c.Threshold)
		if err != nil {
			return nil, fmt.Errorf("seed of %d: %w", id, err)
		}
		key, err := selfKey(b, c.Seed, id)
		if err != nil {
			return nil, err
		}
		if err := addMask(out, key, true); err != nil {
			return nil, err
		}
	}
	for _, v := range u.Dropouts {
		sk, err := combine(u.MaskKeys[v], c.Threshold)
		if err != nil {
			return nil, fmt.Errorf("mask key of dropout %d: %w", v, err)
		}
		priv, err := ecdh.X25519().NewPrivateKey(sk[:])
		if err != nil {
			return nil, fmt.Errorf("mask key of dropout %d: %w", v, err)
		}
		if adv := u.Keys[v]; string(priv.PublicKey().Bytes()) != string(adv.SPub[:]) {
			return nil, fmt.Errorf("mask key of dropout %d rebuilt from its shares does not match its advertised key", v)
		}
		for _, w := range g[v] {
			if !survived[w] {
				continue
			}
			adv := u.Keys[w]
			pub, err := ecdh.X25519().NewPublicKey(adv.SPub[:])
			if err != nil {
				return nil, fmt.Errorf("mask key of survivor %d: %w", w, err)
			}
			shared, err := priv.ECDH(pub)
			if err != nil {
				return nil, fmt.Errorf("pairwise mask %d–%d: %w", v, w, err)
			}
			key, err := pairKey(shared, c.Seed, w, v)
			if err != nil {
				return nil, err
			}
			// w added +PRG when w < v and −PRG when w > v: remove that.
			if err := addMask(out, key, w < v); err != nil {
				return nil, err
			}
		}
	}
	for i := range out {
		out[i] &= c.mask()
	}
	return out, nil
}
