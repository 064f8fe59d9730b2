package audit

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
)

// ErrTampered is matched (errors.Is) by every *VerifyError.
var ErrTampered = errors.New("audit log tampered")

// VerifyError names the first place where a log fails verification.
type VerifyError struct {
	Seq        uint64 // the entry seq at which verification failed
	Checkpoint bool   // the failure is in a checkpoint at Seq, not the entry
	Reason     string
}

func (e *VerifyError) Error() string {
	what := "entry"
	if e.Checkpoint {
		what = "checkpoint at entry"
	}
	return fmt.Sprintf("audit verify: %s %d: %s", what, e.Seq, e.Reason)
}

// Is reports whether target is ErrTampered.
func (e *VerifyError) Is(target error) bool { return target == ErrTampered }

// Result summarises a verification.
type Result struct {
	Entries     uint64 // entries that verified
	Checkpoints int    // checkpoints that verified
	Head        Hash   // hash of the last verified entry
	// LastCheckpointSeq is the seq of the last verified checkpoint; entries
	// after it are chained but not yet pinned by a signature.
	LastCheckpointSeq uint64
}

// verifyPage is how many entries Verify reads at a time.
const verifyPage = 4096

// Verify walks the entries and checkpoints of src and checks the chain and
// every checkpoint signature under pub. On the first failure it returns a
// *VerifyError (errors.Is ErrTampered) together with what verified before
// it; other errors come from reading src.
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey) (Result, error) {
	return verify(ctx, src, pub, 1)
}

// verify is Verify over the entries from seq from on: the entry at from
// chains from its own stored prev hash (a checkpoint at from pins it), and
// checkpoints before from are not checked. Result counts what was walked.
func verify(ctx context.Context, src Source, pub ed25519.PublicKey, from uint64) (Result, error) {
	var res Result
	if len(pub) != ed25519.PublicKeySize {
		return res, fmt.Errorf("audit verify: checkpoint public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	from = max(from, 1)
	first := from
	cps, err := src.AuditCheckpoints(ctx)
	if err != nil {
		return res, fmt.Errorf("audit verify: read checkpoints: %w", err)
	}
	if from > 1 {
		cps = slices.DeleteFunc(slices.Clone(cps), func(c Checkpoint) bool { return c.Seq < from })
	} else {
		cps = slices.Clone(cps)
	}
	slices.SortStableFunc(cps, func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	ci := 0

	var prev Entry // prev.Seq == 0 and zero hash before entry 1
	trustFirst := from > 1
	if trustFirst {
		prev.Seq = from - 1
	}
	buf := make([]byte, 0, 512)
	// Read the next page while this one is checked: reading (decoding rows)
	// and hashing take about as long as each other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		entries []Entry
		err     error
	}
	pages := make(chan page, 1)
	fetch := func(from uint64) {
		go func() {
			es, err := src.AuditEntries(ctx, from, verifyPage)
			pages <- page{es, err}
		}()
	}
	fetch(from)
	for {
		p := <-pages
		if p.err != nil {
			return res, fmt.Errorf("audit verify: read entries from %d: %w", from, p.err)
		}
		full := len(p.entries) >= verifyPage
		if full {
			from = p.entries[len(p.entries)-1].Seq + 1
			if from == 0 { // seq overflowed: no further page can exist
				full = false
			} else {
				fetch(from)
			}
		}
		for i := range p.entries {
			e := &p.entries[i]
			ci0 := ci // the checkpoints at this entry start here
			if trustFirst {
				trustFirst = false
				if e.Seq != first {
					return res, &VerifyError{Seq: first, Reason: fmt.Sprintf("missing: the log has no entry %d, which a signed checkpoint names (deleted entries)", first)}
				}
				prev.Hash = e.PrevHash
			}
			if err := checkEntry(&prev, e, &buf); err != nil {
				return res, err
			}
			for ; ci < len(cps) && cps[ci].Seq <= e.Seq; ci++ {
				if err := checkCheckpoint(pub, &cps[ci], e); err != nil {
					return res, err
				}
				// A copy of a checkpoint (a line repeated in an export) is
				// checked but not counted: the key signed it once.
				if !slices.ContainsFunc(cps[ci0:ci], func(o Checkpoint) bool { return sameCheckpoint(&o, &cps[ci]) }) {
					res.Checkpoints++
				}
				res.LastCheckpointSeq = e.Seq
			}
			prev = *e
			res.Entries++
			res.Head = e.Hash
		}
		if !full {
			break
		}
	}
	if trustFirst { // no entry at or after the one a checkpoint pins
		return res, &VerifyError{Seq: first, Reason: fmt.Sprintf(
			"missing: the log ends before entry %d, which a signed checkpoint names (truncated tail)", first)}
	}
	if ci < len(cps) { // a checkpoint beyond the last entry
		c := &cps[ci]
		if !VerifyCheckpoint(pub, c) {
			return res, &VerifyError{Seq: c.Seq, Checkpoint: true, Reason: "bad signature"}
		}
		return res, &VerifyError{Seq: prev.Seq + 1, Reason: fmt.Sprintf(
			"missing: the log ends at entry %d but a signed checkpoint names entry %d (truncated tail)", prev.Seq, c.Seq)}
	}
	return res, nil
}

func checkEntry(prev, e *Entry, buf *[]byte) error {
	want := prev.Seq + 1
	switch {
	case e.Seq > want:
		return &VerifyError{Seq: want, Reason: fmt.Sprintf("missing: entry %d follows entry %d (deleted entries)", e.Seq, prev.Seq)}
	case e.Seq < want:
		return &VerifyError{Seq: e.Seq, Reason: fmt.Sprintf("out of order: entry %d appears again after entry %d", e.Seq, prev.Seq)}
	}
	bad := func(format string, args ...any) error {
		return &VerifyError{Seq: e.Seq, Reason: fmt.Sprintf(format, args...)}
	}
	if e.PrevHash != prev.Hash {
		return bad("prev hash %s is not the hash of entry %d (%s)", e.PrevHash, prev.Seq, prev.Hash)
	}
	var got Hash
	if got, *buf = entryHash(*buf, prev.Hash, e); got != e.Hash {
		return bad("stored hash %s, contents hash to %s (entry altered)", e.Hash, got)
	}
	// The hash covers these fields, so a failure below means the entry was
	// written wrong (or re-hashed by an attacker), not altered afterwards.
	if e.Actor == "" || e.Action == "" {
		return bad("empty actor or action")
	}
	if !e.Outcome.valid() {
		return bad("outcome %q is not ok, denied or error", e.Outcome)
	}
	for k, v := range e.Identifiers {
		if !validIdentifier(v) {
			return bad("identifier %q is not an hmac-sha256 value (clear identifier in the log)", k)
		}
	}
	if prev.Seq > 0 && e.Time.Before(prev.Time) {
		return bad("time %s is before entry %d's time %s", e.Time.Format(timeLayout), prev.Seq, prev.Time.Format(timeLayout))
	}
	return nil
}

func checkCheckpoint(pub ed25519.PublicKey, c *Checkpoint, e *Entry) error {
	if c.Seq != e.Seq { // seq 0 or a duplicate sorted before an entry
		return &VerifyError{Seq: c.Seq, Checkpoint: true, Reason: "names no entry"}
	}
	if !VerifyCheckpoint(pub, c) {
		return &VerifyError{Seq: c.Seq, Checkpoint: true, Reason: "bad signature"}
	}
	if c.Hash != e.Hash {
		return &VerifyError{Seq: c.Seq, Checkpoint: true, Reason: fmt.Sprintf(
			"signed hash %s differs from the chain's %s (history rewritten under the checkpoint)", c.Hash, e.Hash)}
	}
	return nil
}
