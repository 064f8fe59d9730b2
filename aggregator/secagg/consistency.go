package secagg

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
)

// The consistency check (Config.Consistency; Bonawitz et al. 2017, §4): an
// honest client reveals shares only for an unmask request that it attested
// itself and that at least Threshold of its neighbours attested too. A
// client attests one request per round, to each neighbour whose shares it
// holds, with an HMAC under a key derived from the secret of their c keys,
// which the server never learns, so the server can relay attestations but
// not forge them.
//
// Why it is needed: each client sees only the request addressed to it, so an
// aggregator that sends different requests to different clients can collect
// one client's self-mask seed from some neighbours and its neighbours' mask
// keys from others, and unmask that client's input (docs/privacy.md §16 gives
// a five-client construction). With the check, a client answers request R
// only if t neighbours committed to R as well; each client commits to one
// request, and with t > k/2 (Config.Validate) two different requests cannot
// both reach t + 1 committed clients in a complete graph, so every honest
// answer follows the same request, where each client is either a survivor or
// a dropout. In a sparser graph the check is local to each client's
// neighbourhood, as in Bell et al. 2020.

// Message kinds of the consistency check.
const (
	kindAttest byte = kindUnmaskResponse + 1 + iota
	kindConsistency
)

// labelAttest separates the attestation keys from the other derived keys.
const labelAttest = "kairos secagg v1 consistency attestation"

// TagSize is the size of an attestation tag (HMAC-SHA256).
const TagSize = sha256.Size

// Tag is one attestation: Peer is the recipient in an AttestMsg and the
// attesting client in a ConsistencyMsg.
type Tag struct {
	Peer uint32
	MAC  [TagSize]byte
}

// AttestMsg is a survivor's attestation of the unmask request it received,
// one tag for each neighbour whose shares it holds.
type AttestMsg struct {
	From uint32
	Tags []Tag
}

// ConsistencyMsg is the server's message to client To: the tags its
// neighbours addressed to it.
type ConsistencyMsg struct {
	To   uint32
	Tags []Tag
}

// attestTag is the tag from → to over the encoded request enc.
func attestTag(shared []byte, seed [32]byte, from, to uint32, enc []byte) ([TagSize]byte, error) {
	var tag [TagSize]byte
	key, err := deriveKey(shared, seed, labelAttest, from, to)
	if err != nil {
		return tag, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(labelAttest + "\x00"))
	m.Write(enc)
	copy(tag[:], m.Sum(nil))
	return tag, nil
}

// Attest commits this client to req, the unmask request it received, and
// returns its attestation for the server to relay to its neighbours. The
// request must be one the client would answer (Unmask's rules). A client
// attests one request per round: the same request again gets the same
// message, another is refused (ErrRefused).
func (c *Client) Attest(req UnmaskRequest) (AttestMsg, error) {
	fail := func(err error) (AttestMsg, error) {
		return AttestMsg{}, fmt.Errorf("secagg client %d: attest: %w", c.id, err)
	}
	enc, _ := req.MarshalBinary()
	if c.attested != nil {
		if bytes.Equal(enc, c.attested) {
			return c.attestation, nil
		}
		return fail(fmt.Errorf("a second, different request: %w", ErrRefused))
	}
	if c.stage != clientUnmask {
		return fail(ErrStage)
	}
	if _, _, err := c.checkRequest(req); err != nil {
		return fail(err)
	}
	m := AttestMsg{From: c.id}
	for _, v := range c.heldIDs() {
		tag, err := attestTag(c.boxSecrets[v], c.cfg.Seed, c.id, v, enc)
		if err != nil {
			return fail(err)
		}
		m.Tags = append(m.Tags, Tag{Peer: v, MAC: tag})
	}
	c.attested, c.attestation = enc, m
	return m, nil
}

// UnmaskConsistent is Unmask for a round with the consistency check: it
// answers req only if this client attested exactly req (Attest) and at least
// Threshold distinct neighbours whose shares it holds attested it too (their
// tags in cons); otherwise ErrRefused.
func (c *Client) UnmaskConsistent(req UnmaskRequest, cons ConsistencyMsg) (UnmaskResponse, error) {
	return c.unmask(req, func(enc []byte) error {
		if !bytes.Equal(enc, c.attested) {
			return fmt.Errorf("not the request this client attested: %w", ErrRefused)
		}
		if cons.To != c.id {
			return fmt.Errorf("attestations addressed to %d: %w", cons.To, ErrRefused)
		}
		valid := map[uint32]bool{}
		for _, t := range cons.Tags {
			if _, ok := c.held[t.Peer]; !ok || valid[t.Peer] {
				continue
			}
			want, err := attestTag(c.boxSecrets[t.Peer], c.cfg.Seed, t.Peer, c.id, enc)
			if err != nil {
				return err
			}
			if hmac.Equal(want[:], t.MAC[:]) {
				valid[t.Peer] = true
			}
		}
		if len(valid) < c.cfg.Threshold {
			return fmt.Errorf("%d neighbours attested this request, threshold %d: %w", len(valid), c.cfg.Threshold, ErrRefused)
		}
		return nil
	})
}

// AddAttest records a survivor's attestation (StageConsistency, a round with
// the consistency check): once per survivor, tags only for its neighbours,
// one each.
func (s *Server) AddAttest(m AttestMsg) error {
	if err := s.want(StageConsistency, "attestation"); err != nil {
		return err
	}
	switch {
	case !s.survived[m.From]:
		return fmt.Errorf("secagg server: attestation from %d, not a survivor", m.From)
	case s.attests[m.From] != nil:
		return fmt.Errorf("secagg server: attestation from %d twice", m.From)
	}
	seen := map[uint32]bool{}
	for _, t := range m.Tags {
		if !slices.Contains(s.neighbours[m.From], t.Peer) || seen[t.Peer] {
			return fmt.Errorf("secagg server: attestation from %d: tag for %d, not a neighbour or twice", m.From, t.Peer)
		}
		seen[t.Peer] = true
	}
	if s.attests == nil {
		s.attests = map[uint32][]Tag{}
	}
	// Never nil once recorded, even without tags: AddUnmask and Attested
	// tell an attester by its entry.
	s.attests[m.From] = append([]Tag{}, m.Tags...)
	s.accepted.attest = append(s.accepted.attest, AttestMsg{From: m.From, Tags: slices.Clone(m.Tags)})
	return nil
}

// EndConsistency closes the consistency stage: only the survivors that
// attested will be asked for their shares (an honest client answers only a
// request it attested), so it fails with ErrTooFewSurvivors, and the round
// cannot be unmasked, when fewer than MinSurvivors attested or some client
// that shared keeps fewer than Threshold attesting neighbours to rebuild its
// secret from.
func (s *Server) EndConsistency() error {
	if err := s.want(StageConsistency, "end of consistency"); err != nil {
		return err
	}
	if len(s.attests) < s.cfg.MinSurvivors {
		return fmt.Errorf("secagg server: %d survivors attested the unmask request, %d needed: %w", len(s.attests), s.cfg.MinSurvivors, ErrTooFewSurvivors)
	}
	for _, id := range append(slices.Clone(s.request.Survivors), s.request.Dropouts...) {
		n := 0
		for _, v := range s.neighbours[id] {
			if s.attests[v] != nil {
				n++
			}
		}
		if n < s.cfg.Threshold {
			return fmt.Errorf("secagg server: client %d has %d attesting neighbours, threshold %d: %w", id, n, s.cfg.Threshold, ErrTooFewSurvivors)
		}
	}
	s.stage = StageUnmask
	return nil
}

// Attested returns the survivors whose attestation was recorded, sorted.
func (s *Server) Attested() []uint32 { return slices.Sorted(maps.Keys(s.attests)) }

// ConsistencyFor is the message to attesting survivor id once the
// consistency stage is closed: the tags its neighbours' attestations
// addressed to it, by attesting neighbour.
func (s *Server) ConsistencyFor(id uint32) (ConsistencyMsg, error) {
	if err := s.want(StageUnmask, "attestations"); err != nil {
		return ConsistencyMsg{}, err
	}
	if s.attests[id] == nil {
		return ConsistencyMsg{}, fmt.Errorf("secagg server: attestations for %d, which did not attest", id)
	}
	m := ConsistencyMsg{To: id}
	for _, from := range s.neighbours[id] {
		for _, t := range s.attests[from] {
			if t.Peer == id {
				m.Tags = append(m.Tags, Tag{Peer: from, MAC: t.MAC})
			}
		}
	}
	return m, nil
}

func marshalTags(kind byte, id uint32, tags []Tag) []byte {
	w := header(kind).u32(id).u32(uint32(len(tags)))
	for _, t := range tags {
		w = w.u32(t.Peer).raw(t.MAC[:])
	}
	return w
}

func unmarshalTags(data []byte, kind byte, what string) (uint32, []Tag, error) {
	r, err := open(data, kind, what)
	if err != nil {
		return 0, nil, err
	}
	id := r.u32()
	n := r.count(4 + TagSize)
	var tags []Tag
	for range n {
		t := Tag{Peer: r.u32()}
		copy(t.MAC[:], r.take(TagSize))
		tags = append(tags, t)
	}
	if err := r.done(what); err != nil {
		return 0, nil, err
	}
	return id, tags, nil
}

// MarshalBinary encodes m.
func (m AttestMsg) MarshalBinary() ([]byte, error) {
	return marshalTags(kindAttest, m.From, m.Tags), nil
}

// UnmarshalBinary decodes m.
func (m *AttestMsg) UnmarshalBinary(data []byte) error {
	id, tags, err := unmarshalTags(data, kindAttest, "attestation")
	if err != nil {
		return err
	}
	*m = AttestMsg{From: id, Tags: tags}
	return nil
}

// MarshalBinary encodes m.
func (m ConsistencyMsg) MarshalBinary() ([]byte, error) {
	return marshalTags(kindConsistency, m.To, m.Tags), nil
}

// UnmarshalBinary decodes m.
func (m *ConsistencyMsg) UnmarshalBinary(data []byte) error {
	id, tags, err := unmarshalTags(data, kindConsistency, "consistency message")
	if err != nil {
		return err
	}
	*m = ConsistencyMsg{To: id, Tags: tags}
	return nil
}
