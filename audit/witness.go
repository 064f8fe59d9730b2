package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
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
	holds := bySeq(own)
	for _, c := range w.witness {
		if !holds.has(&c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// checkpointIndex finds checkpoints by seq. The log and the witness each
// hold up to one checkpoint a second of activity, so looking each one up in
// the other's list was quadratic: minutes of CPU per compliance read after a
// week.
type checkpointIndex map[uint64][]*Checkpoint

func bySeq(cps []Checkpoint) checkpointIndex {
	idx := make(checkpointIndex, len(cps))
	for i := range cps {
		idx[cps[i].Seq] = append(idx[cps[i].Seq], &cps[i])
	}
	return idx
}

// has reports whether the index holds a checkpoint identical to c.
func (idx checkpointIndex) has(c *Checkpoint) bool {
	return slices.ContainsFunc(idx[c.Seq], func(o *Checkpoint) bool { return sameCheckpoint(o, c) })
}

func sameCheckpoint(a, b *Checkpoint) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.LogID == b.LogID && a.Time.Equal(b.Time) && bytes.Equal(a.Signature, b.Signature)
}

// ReadWitness reads a witness file: checkpoint lines as WriteExport writes
// them (entry lines are refused). Every checkpoint's signature must verify
// under pub. A last line without its newline that does not parse is a write
// cut short by a crash (FileWitness appends whole lines) and is ignored.
func ReadWitness(r io.Reader, pub ed25519.PublicKey) ([]Checkpoint, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read witness: %w", err)
	}
	s, err := ReadExport(bytes.NewReader(data))
	if cut := bytes.LastIndexByte(data, '\n') + 1; err != nil && cut < len(data) {
		s, err = ReadExport(bytes.NewReader(data[:cut]))
	}
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

// CheckAgainstWitness checks that the log of src still passes through every
// checkpoint of held that src does not hold itself: from the earliest such
// checkpoint on, it walks the chain against held's checkpoints and src's.
// MergeWitness compares checkpoints seq by seq only, so a log cut and grown
// again by the key holder (a restarted aggregator signing over whatever the
// database holds) whose checkpoints at the witnessed seqs were then deleted
// passes it; this walk names the witnessed checkpoint the log lost instead.
// A *VerifyError (errors.Is ErrTampered) names it; other errors come from
// reading src.
func CheckAgainstWitness(ctx context.Context, src Source, held []Checkpoint, pub ed25519.PublicKey) error {
	own, err := src.AuditCheckpoints(ctx)
	if err != nil {
		return fmt.Errorf("audit witness: read checkpoints: %w", err)
	}
	var from uint64
	holds := bySeq(own)
	for i := range held {
		h := &held[i]
		if !holds.has(h) && (from == 0 || h.Seq < from) {
			from = h.Seq
		}
	}
	if from == 0 {
		return nil // the log holds every witnessed checkpoint: MergeWitness's check suffices
	}
	if _, err := verify(ctx, Witnessed(src, held), pub, from); err != nil {
		return fmt.Errorf("audit witness: the log does not pass through the witnessed checkpoint at entry %d: %w", from, err)
	}
	return nil
}

// A Witness keeps the log's checkpoints outside its store, where whoever can
// write the database cannot change them. Log pushes every checkpoint to it
// as soon as the checkpoint is durable in the store, and checks the stored
// log against it before signing anything at start-up.
type Witness interface {
	// Checkpoints returns every checkpoint the witness holds, each with a
	// verified signature.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
	// Add stores cps, in order, and returns once they are durable.
	Add(ctx context.Context, cps []Checkpoint) error
}

var _ Witness = (*FileWitness)(nil)

// endTornLine deals with a last line that has no newline: one that parses
// gets its newline; one that does not, a write cut short by a crash, is cut
// off so that the lines appended next follow a complete line.
func endTornLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	size := fi.Size()
	tail := make([]byte, min(size, maxWitnessLine))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return err
	}
	if tail[len(tail)-1] == '\n' {
		return nil
	}
	frag := tail[bytes.LastIndexByte(tail, '\n')+1:]
	if _, err := ReadExport(bytes.NewReader(frag)); err == nil {
		_, err = f.Write([]byte{'\n'})
		return err
	}
	return f.Truncate(size - int64(len(frag)))
}

// FileWitness is a Witness kept in a file of checkpoint lines in the export
// format, the format kairos compliance audit witness writes and ReadWitness
// reads. Add appends whole lines and fsyncs them; it opens the file for each
// call and holds an exclusive flock on it while it writes, so several
// writers (serve replicas, the witness command) may append to one file, and
// a file moved aside is not written to again. A last line cut short by a
// crash is removed before the next append.
type FileWitness struct {
	path string
	pub  ed25519.PublicKey
}

// NewFileWitness returns the witness kept in path, whose checkpoints must
// verify under pub. The file need not exist yet.
func NewFileWitness(path string, pub ed25519.PublicKey) (*FileWitness, error) {
	if path == "" {
		return nil, errors.New("file witness: empty path")
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("file witness: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return &FileWitness{path: path, pub: pub}, nil
}

// Checkpoints implements Witness: none when the file does not exist.
func (w *FileWitness) Checkpoints(context.Context) ([]Checkpoint, error) {
	f, err := os.Open(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file witness: %w", err)
	}
	defer f.Close()
	cps, err := ReadWitness(f, w.pub)
	if err != nil {
		return nil, fmt.Errorf("file witness %s: %w", w.path, err)
	}
	return cps, nil
}

// Add implements Witness: it appends cps as checkpoint lines and fsyncs the
// file (and its directory when it creates the file).
func (w *FileWitness) Add(_ context.Context, cps []Checkpoint) (err error) {
	if len(cps) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := WriteWitness(&buf, cps); err != nil {
		return fmt.Errorf("file witness: %w", err)
	}
	_, statErr := os.Stat(w.path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file witness: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("file witness: %w", cerr)
		}
	}()
	// Another writer's line in progress must not look torn to us.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("file witness: lock: %w", err)
	}
	if err := endTornLine(f); err != nil {
		return fmt.Errorf("file witness: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("file witness: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("file witness: %w", err)
	}
	if created {
		if d, err := os.Open(filepath.Dir(w.path)); err == nil {
			_ = d.Sync() // the new name survives a crash; best effort where directories cannot sync
			d.Close()
		}
	}
	return nil
}
