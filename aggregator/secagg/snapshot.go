package secagg

import (
	"errors"
	"fmt"
	"slices"
)

// A server snapshot lets the aggregator persist a round between messages and
// resume it after a restart. It holds what the server was handed — the
// clients' accepted key, share, attestation and unmask messages, and the running sum of
// the masked inputs with the ids that sent one — never an individual masked
// input; RestoreServer replays it through the same checks that accepted it.
const kindSnapshot byte = 0x10

// wireStages are the stages' numbers in a snapshot: the consistency stage,
// added after the others, keeps the numbers stored before it came.
var wireStages = []Stage{StageAdvertise, StageShare, StageMask, StageUnmask, StageDone, StageConsistency}

// MarshalBinary encodes the server's state.
func (s *Server) MarshalBinary() ([]byte, error) {
	w := header(kindSnapshot).u32(uint32(slices.Index(wireStages, s.stage)))
	w = w.u32(uint32(len(s.accepted.advertise)))
	for _, m := range s.accepted.advertise {
		b, _ := m.MarshalBinary()
		w = w.bytes(b)
	}
	w = w.u32(uint32(len(s.accepted.shares)))
	for _, m := range s.accepted.shares {
		b, _ := m.MarshalBinary()
		w = w.bytes(b)
	}
	survived := s.Survivors()
	w = w.u32(uint32(len(survived)))
	for _, id := range survived {
		w = w.u32(id)
	}
	w = w.u32(uint32(len(s.sum)))
	for _, x := range s.sum {
		w = w.u32(x & s.cfg.mask()) // the server adds without reducing
	}
	w = w.u32(uint32(len(s.accepted.attest)))
	for _, m := range s.accepted.attest {
		b, _ := m.MarshalBinary()
		w = w.bytes(b)
	}
	w = w.u32(uint32(len(s.accepted.unmask)))
	for _, m := range s.accepted.unmask {
		b, _ := m.MarshalBinary()
		w = w.bytes(b)
	}
	return w, nil
}

// maxSnapshotMessage bounds one message inside a snapshot (a shares message
// of MaxBox-byte boxes for a large neighbourhood).
const maxSnapshotMessage = 64 << 20

// RestoreServer rebuilds the server of round cfg from a MarshalBinary
// snapshot, replaying every message through the checks that accepted it; a
// snapshot that does not replay (corrupt, or of another config) is refused.
func RestoreServer(cfg Config, data []byte) (*Server, error) {
	fail := func(err error) (*Server, error) { return nil, fmt.Errorf("restore secagg server: %w", err) }
	s, err := NewServer(cfg)
	if err != nil {
		return fail(err)
	}
	r, err := open(data, kindSnapshot, "server snapshot")
	if err != nil {
		return fail(err)
	}
	stage := StageAdvertise
	if n := r.u32(); r.err == nil {
		if n >= uint32(len(wireStages)) {
			return fail(fmt.Errorf("stage %d", n))
		}
		stage = wireStages[n]
	}
	if stage == StageConsistency && !cfg.Consistency {
		return fail(errors.New("a consistency stage in a round without the check"))
	}
	messages := func() [][]byte {
		n := r.count(4)
		out := make([][]byte, 0, n)
		for range n {
			l := r.u32()
			if r.err == nil && l > maxSnapshotMessage {
				r.err = fmt.Errorf("message of %d bytes", l)
			}
			out = append(out, r.take(int(l)))
		}
		return out
	}
	adverts := messages()
	shares := messages()
	survived := r.ids()
	sum := r.ids()
	attests := messages()
	unmask := messages()
	if err := r.done("server snapshot"); err != nil {
		return fail(err)
	}
	step := func(at Stage, end func() error) error {
		if stage > at {
			return end()
		}
		return nil
	}
	for _, b := range adverts {
		var m AdvertiseMsg
		if err := m.UnmarshalBinary(b); err != nil {
			return fail(err)
		}
		if err := s.AddAdvertise(m); err != nil {
			return fail(err)
		}
	}
	if err := step(StageAdvertise, s.EndAdvertise); err != nil {
		return fail(err)
	}
	if stage == StageAdvertise && len(shares) > 0 {
		return fail(errors.New("shares in the advertise stage"))
	}
	for _, b := range shares {
		var m SharesMsg
		if err := m.UnmarshalBinary(b); err != nil {
			return fail(err)
		}
		if err := s.AddShares(m); err != nil {
			return fail(err)
		}
	}
	if err := step(StageShare, s.EndShare); err != nil {
		return fail(err)
	}
	if err := s.restoreSum(stage, survived, sum); err != nil {
		return fail(err)
	}
	if err := step(StageMask, func() error { _, err := s.EndMask(); return err }); err != nil {
		return fail(err)
	}
	if stage < StageConsistency && len(attests) > 0 || !cfg.Consistency && len(attests) > 0 {
		return fail(errors.New("attestations before the consistency stage, or in a round without the check"))
	}
	if stage < StageUnmask && len(unmask) > 0 {
		return fail(errors.New("unmask responses before the unmask stage"))
	}
	for _, b := range attests {
		var m AttestMsg
		if err := m.UnmarshalBinary(b); err != nil {
			return fail(err)
		}
		if err := s.AddAttest(m); err != nil {
			return fail(err)
		}
	}
	if cfg.Consistency {
		if err := step(StageConsistency, s.EndConsistency); err != nil {
			return fail(err)
		}
	}
	for _, b := range unmask {
		var m UnmaskResponse
		if err := m.UnmarshalBinary(b); err != nil {
			return fail(err)
		}
		if err := s.AddUnmask(m); err != nil {
			return fail(err)
		}
	}
	if stage == StageDone {
		if _, err := s.Result(); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// restoreSum sets the running sum of the masked inputs and who sent them.
func (s *Server) restoreSum(stage Stage, survived, sum []uint32) error {
	if len(sum) != s.cfg.Length {
		return fmt.Errorf("sum of %d words, want %d", len(sum), s.cfg.Length)
	}
	if len(survived) > 0 && stage < StageMask {
		return fmt.Errorf("masked inputs in the %s stage", stage)
	}
	for _, id := range survived {
		if !s.shared[id] || s.survived[id] {
			return fmt.Errorf("masked input from %d, which did not share or is listed twice", id)
		}
		s.survived[id] = true
	}
	for i, w := range sum {
		if w&^s.cfg.mask() != 0 {
			return fmt.Errorf("sum word %d is %d, not below 2^%d", i, w, s.cfg.Bits)
		}
	}
	copy(s.sum, sum)
	return nil
}

// Survivors returns the ids whose masked input was added, sorted.
func (s *Server) Survivors() []uint32 { return sortedKeys(s.survived) }

// Advertised returns the ids that advertised keys, sorted.
func (s *Server) Advertised() []uint32 {
	ids := make([]uint32, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Shared returns the ids that sent their shares, sorted.
func (s *Server) Shared() []uint32 { return sortedKeys(s.shared) }

// Answered returns the survivors that answered the unmask request, sorted.
func (s *Server) Answered() []uint32 { return sortedKeys(s.answered) }

func sortedKeys(m map[uint32]bool) []uint32 {
	ids := make([]uint32, 0, len(m))
	for id, ok := range m {
		if ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
