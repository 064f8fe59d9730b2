package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"slices"
)

// Witnessed returns src with the checkpoints a witness kept outside the
// database (witness) added to src's own, so that Verify checks them too.
//
// The log alone cannot show that its tail was cut together with the
// checkpoints that covered it, nor that it was rewritten and re-chained
// after its checkpoints were deleted: an attacker with write access to the
// database can do both and still present a consistent chain. A checkpoint a
// reviewer copied out earlier (kairos compliance audit witness) still names
// the entry hash it signed: Verify then reports "missing … (truncated tail)"
// when the log ends before it, or the entry it names as altered when the
// chain was rewritten. This is the role Certificate Transparency's monitors
// play for signed tree heads.
func Witnessed(src Source, witness []Checkpoint) Source {
	return &witnessed{Source: src, witness: slices.Clone(witness)}
}

type witnessed struct {
	Source
	witness []Checkpoint
}

// AuditCheckpoints returns src's checkpoints and every witnessed one that
// src does not hold identically.
func (w *witnessed) AuditCheckpoints(ctx context.Context) ([]Checkpoint, error) {
	own, err := w.Source.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(own)
	for _, c := range w.witness {
		if !slices.ContainsFunc(own, func(o Checkpoint) bool { return sameCheckpoint(&o, &c) }) {
			out = append(out, c)
		}
	}
	return out, nil
}

func sameCheckpoint(a, b *Checkpoint) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.LogID == b.LogID && a.Time.Equal(b.Time) && bytes.Equal(a.Signature, b.Signature)
}

// ReadWitness reads a witness file: checkpoint lines as WriteExport writes
// them (entry lines are refused). Every checkpoint's signature must verify
// under pub.
func ReadWitness(r io.Reader, pub ed25519.PublicKey) ([]Checkpoint, error) {
	s, err := ReadExport(r)
	if err != nil {
		return nil, fmt.Errorf("read witness: %w", err)
	}
	if n, _ := s.Len(); n > 0 {
		return nil, fmt.Errorf("read witness: %d entry lines; a witness holds checkpoints only", n)
	}
	for i := range s.checkpoints {
		if !VerifyCheckpoint(pub, &s.checkpoints[i]) {
			return nil, fmt.Errorf("read witness: checkpoint at entry %d: bad signature", s.checkpoints[i].Seq)
		}
	}
	return slices.Clone(s.checkpoints), nil
}

// WriteWitness writes checkpoints, in seq order, as checkpoint lines of the
// export format.
func WriteWitness(w io.Writer, cps []Checkpoint) error {
	return Export(context.Background(), NewSnapshot(nil, cps), w)
}

// MergeWitness adds the checkpoints of fresh (read from the log) to a witness
// held so far, after checking that the log is consistent with it: every
// checkpoint fresh and held name for the same entry must sign the same hash,
// and fresh must reach at least the last entry held (a log whose checkpoints
// stop short of a held one lost its tail). Every fresh checkpoint's
// signature must verify under pub. It returns the merged witness and how
// many checkpoints were new.
func MergeWitness(held, fresh []Checkpoint, pub ed25519.PublicKey) ([]Checkpoint, int, error) {
	bySeq := map[uint64]*Checkpoint{}
	var last uint64
	for i := range held {
		bySeq[held[i].Seq] = &held[i]
		last = max(last, held[i].Seq)
	}
	out := slices.Clone(held)
	var freshLast uint64
	added := 0
	for i := range fresh {
		c := &fresh[i]
		if !VerifyCheckpoint(pub, c) {
			return nil, 0, fmt.Errorf("witness: the log's checkpoint at entry %d has a bad signature", c.Seq)
		}
		freshLast = max(freshLast, c.Seq)
		if h, ok := bySeq[c.Seq]; ok {
			if h.Hash != c.Hash {
				return nil, 0, fmt.Errorf("witness: %w: the log's checkpoint at entry %d signs %s, the witness holds %s (history rewritten)", ErrTampered, c.Seq, c.Hash, h.Hash)
			}
			continue
		}
		out = append(out, *c)
		added++
	}
	if freshLast < last {
		return nil, 0, fmt.Errorf("witness: %w: the log's checkpoints end at entry %d, the witness holds one at entry %d (truncated)", ErrTampered, freshLast, last)
	}
	slices.SortStableFunc(out, func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, added, nil
}
