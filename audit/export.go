package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// timeLayout is how export files write times: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// maxExportLine bounds one line of an export file. The log takes records
// of any size and the service writes some that grow with the federation (a
// campaign decision names every merchant's budget), so the bound is far
// above any entry an honest log holds; it only keeps a damaged file (no
// newline at all) from being read as one line without end.
const maxExportLine = 64 << 20

// maxWitnessLine bounds the last line of a witness file that FileWitness
// reads back before appending: witness lines are checkpoints, a few hundred
// bytes each.
const maxWitnessLine = 1 << 20

// jsonEntry is one "entry" line of an export. Hashes are lower-case hex.
type jsonEntry struct {
	Type        string            `json:"type"`
	Seq         uint64            `json:"seq"`
	Time        string            `json:"time"`
	Actor       string            `json:"actor"`
	Action      string            `json:"action"`
	Object      string            `json:"object"`
	Outcome     string            `json:"outcome"`
	Reason      string            `json:"reason,omitempty"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
	Details     map[string]string `json:"details,omitempty"`
	PrevHash    string            `json:"prev_hash"`
	Hash        string            `json:"hash"`
}

// jsonCheckpoint is one "checkpoint" line; the signature is standard base64.
type jsonCheckpoint struct {
	Type      string `json:"type"`
	LogID     string `json:"log_id"`
	Seq       uint64 `json:"seq"`
	Hash      string `json:"hash"`
	Time      string `json:"time"`
	Signature string `json:"signature"`
}

// Export writes src as JSON lines: one {"type":"entry",…} line per entry in
// seq order, each checkpoint as a {"type":"checkpoint",…} line right after
// the entry it names. The file holds everything Verify needs.
func Export(ctx context.Context, src Source, w io.Writer) error {
	cps, err := src.AuditCheckpoints(ctx)
	if err != nil {
		return fmt.Errorf("audit export: read checkpoints: %w", err)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	ci := 0
	writeCps := func(upTo uint64) error {
		for ; ci < len(cps) && cps[ci].Seq <= upTo; ci++ {
			c := &cps[ci]
			if err := enc.Encode(jsonCheckpoint{
				Type: "checkpoint", LogID: c.LogID, Seq: c.Seq, Hash: c.Hash.String(),
				Time: c.Time.UTC().Format(timeLayout), Signature: base64.StdEncoding.EncodeToString(c.Signature),
			}); err != nil {
				return fmt.Errorf("audit export: write checkpoint %d: %w", c.Seq, err)
			}
		}
		return nil
	}
	for from := uint64(1); ; {
		page, err := src.AuditEntries(ctx, from, verifyPage)
		if err != nil {
			return fmt.Errorf("audit export: read entries from %d: %w", from, err)
		}
		for i := range page {
			e := &page[i]
			if err := enc.Encode(jsonEntry{
				Type: "entry", Seq: e.Seq, Time: e.Time.UTC().Format(timeLayout),
				Actor: e.Actor, Action: e.Action, Object: e.Object, Outcome: string(e.Outcome), Reason: e.Reason,
				Identifiers: e.Identifiers, Details: e.Details,
				PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
			}); err != nil {
				return fmt.Errorf("audit export: write entry %d: %w", e.Seq, err)
			}
			if err := writeCps(e.Seq); err != nil {
				return err
			}
		}
		if len(page) < verifyPage || page[len(page)-1].Seq == ^uint64(0) {
			break
		}
		from = page[len(page)-1].Seq + 1
	}
	if err := writeCps(^uint64(0)); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// Snapshot is a log held in memory, typically read from an export file. It
// is a Source, so Verify and Export work on it.
type Snapshot struct {
	entries     []Entry // sorted by Seq, stable: duplicates keep file order
	checkpoints []Checkpoint
}

// NewSnapshot returns a Snapshot of the given entries and checkpoints.
func NewSnapshot(entries []Entry, checkpoints []Checkpoint) *Snapshot {
	s := &Snapshot{entries: slices.Clone(entries), checkpoints: slices.Clone(checkpoints)}
	slices.SortStableFunc(s.entries, func(a, b Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	slices.SortStableFunc(s.checkpoints, func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	return s
}

// AuditEntries implements Source.
func (s *Snapshot) AuditEntries(_ context.Context, from uint64, limit int) ([]Entry, error) {
	i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].Seq >= from })
	j := min(len(s.entries), i+max(limit, 0))
	return s.entries[i:j:j], nil
}

// AuditCheckpoints implements Source.
func (s *Snapshot) AuditCheckpoints(context.Context) ([]Checkpoint, error) {
	return s.checkpoints, nil
}

// Len returns the number of entries and checkpoints.
func (s *Snapshot) Len() (entries, checkpoints int) { return len(s.entries), len(s.checkpoints) }

// ErrExportSyntax is matched by every syntax error ReadExport returns.
var ErrExportSyntax = errors.New("bad export syntax")

// ExportError is a syntax error in an export file.
type ExportError struct {
	Line int
	Msg  string
}

func (e *ExportError) Error() string {
	return fmt.Sprintf("read audit export: line %d: %s", e.Line, e.Msg)
}

// Is reports whether target is ErrExportSyntax.
func (e *ExportError) Is(target error) bool { return target == ErrExportSyntax }

// ReadExport parses an export written by Export. It checks syntax only
// (known fields, hex hashes, times, outcomes are strings); Verify checks
// the chain. Blank lines are ignored.
func ReadExport(r io.Reader) (*Snapshot, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxExportLine)
	var entries []Entry
	var cps []Checkpoint
	line := 1
	for ; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return &ExportError{Line: line, Msg: fmt.Sprintf(format, args...)}
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return nil, bad("%v", err)
		}
		keys, err := objectKeys(b)
		if err != nil {
			return nil, bad("%v", err)
		}
		allowed := entryKeys
		if head.Type == "checkpoint" {
			allowed = checkpointKeys
		}
		for _, k := range keys {
			// encoding/json would take "ACTOR" (or "Type") for "actor": the
			// verifier would check one value and every other reader of the
			// file see another. Unknown keys are strictDecode's to refuse.
			if !slices.Contains(allowed, k) && slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, k) }) {
				return nil, bad("key %q: the format's keys are lower case, spelled exactly", k)
			}
		}
		switch head.Type {
		case "entry":
			var j jsonEntry
			if err := strictDecode(b, &j); err != nil {
				return nil, bad("%v", err)
			}
			e, err := j.entry()
			if err != nil {
				return nil, bad("entry %d: %v", j.Seq, err)
			}
			entries = append(entries, e)
		case "checkpoint":
			var j jsonCheckpoint
			if err := strictDecode(b, &j); err != nil {
				return nil, bad("%v", err)
			}
			c, err := j.checkpoint()
			if err != nil {
				return nil, bad("checkpoint %d: %v", j.Seq, err)
			}
			cps = append(cps, c)
		default:
			return nil, bad("type %q is not entry or checkpoint", head.Type)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, &ExportError{Line: line, Msg: fmt.Sprintf("longer than %d MiB", maxExportLine>>20)}
	} else if err != nil {
		return nil, fmt.Errorf("read audit export: line %d: %w", line, err)
	}
	return NewSnapshot(entries, cps), nil
}

// The keys of the two kinds of line, spelled as Export writes them.
var (
	entryKeys      = []string{"type", "seq", "time", "actor", "action", "object", "outcome", "reason", "identifiers", "details", "prev_hash", "hash"}
	checkpointKeys = []string{"type", "log_id", "seq", "hash", "time", "signature"}
)

// objectKeys returns the keys of the JSON object b, in order, and refuses an
// object (at any depth) that holds a key twice: encoding/json keeps the last
// value of a repeated key, and a reader that keeps the first, or a reviewer
// reading the line, would see another entry than the one verified.
func objectKeys(b []byte) ([]string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	keys, err := objectRest(d, "")
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value on the line")
	}
	return keys, nil
}

// objectRest reads the keys and values of an object whose '{' was read, up
// to and including its '}', refusing a repeated key; path names the object
// in errors.
func objectRest(d *json.Decoder, path string) ([]string, error) {
	var keys []string
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		if slices.Contains(keys, k) {
			return nil, fmt.Errorf("key %q twice", path+k)
		}
		keys = append(keys, k)
		if err := skipValue(d, path+k+"."); err != nil {
			return nil, err
		}
	}
	if _, err := d.Token(); err != nil { // the closing '}'
		return nil, err
	}
	return keys, nil
}

// skipValue reads one value, checking the objects in it with objectRest.
func skipValue(d *json.Decoder, path string) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		_, err = objectRest(d, path)
		return err
	case json.Delim('['):
		for d.More() {
			if err := skipValue(d, path); err != nil {
				return err
			}
		}
		_, err = d.Token() // the closing ']'
		return err
	}
	return nil
}

func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func (j *jsonEntry) entry() (Entry, error) {
	t, err := parseTime(j.Time)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Seq: j.Seq, Time: t, Actor: j.Actor, Action: j.Action, Object: j.Object,
		Outcome: Outcome(j.Outcome), Reason: j.Reason, Identifiers: j.Identifiers, Details: j.Details,
	}
	if e.PrevHash, err = parseHash("prev_hash", j.PrevHash); err != nil {
		return Entry{}, err
	}
	if e.Hash, err = parseHash("hash", j.Hash); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (j *jsonCheckpoint) checkpoint() (Checkpoint, error) {
	t, err := parseTime(j.Time)
	if err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{LogID: j.LogID, Seq: j.Seq, Time: t}
	if c.Hash, err = parseHash("hash", j.Hash); err != nil {
		return Checkpoint{}, err
	}
	if c.Signature, err = base64.StdEncoding.Strict().DecodeString(j.Signature); err != nil {
		return Checkpoint{}, fmt.Errorf("signature: %w", err)
	}
	return c, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	if !t.Equal(millis(t)) {
		return time.Time{}, fmt.Errorf("time %q has more than millisecond precision", s)
	}
	return millis(t), nil
}

func parseHash(field, s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("%s has %d hex digits, want %d", field, len(s), 2*HashSize)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%s: %w", field, err)
	}
	return h, nil
}

// Signed returns src cut after its last checkpoint: the entries a signed
// checkpoint covers, and every checkpoint. An export of it verifies with no
// entry that only the hash chain vouches for (anyone who can write the file
// can extend a chain; only the checkpoint key can sign a checkpoint).
func Signed(src Source) Source { return &signed{src: src} }

type signed struct {
	src  Source
	last uint64 // seq of the last checkpoint, read once
	read bool
}

func (s *signed) AuditCheckpoints(ctx context.Context) ([]Checkpoint, error) {
	cps, err := s.src.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	if !s.read {
		for _, c := range cps {
			s.last = max(s.last, c.Seq)
		}
		s.read = true
	}
	return cps, nil
}

func (s *signed) AuditEntries(ctx context.Context, from uint64, limit int) ([]Entry, error) {
	if !s.read {
		if _, err := s.AuditCheckpoints(ctx); err != nil {
			return nil, err
		}
	}
	if from > s.last {
		return nil, nil
	}
	es, err := s.src.AuditEntries(ctx, from, limit)
	if err != nil {
		return nil, err
	}
	n := sort.Search(len(es), func(i int) bool { return es[i].Seq > s.last })
	return es[:n:n], nil
}
