package feature

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/model"
)

// liveStateVersion is the first byte of an encoded LiveState.
const liveStateVersion = 1

// maxLiveRecords bounds each list in an encoded state, so that a corrupt
// length cannot make UnmarshalBinary allocate without limit.
const maxLiveRecords = 1 << 24

// MarshalBinary encodes s in a compact, versioned form (varints and IEEE
// float bits) for a store.
func (s *LiveState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+16*s.Size())
	b = append(b, liveStateVersion)
	flag := byte(0)
	if s.seen {
		flag |= 1
	}
	if s.fold.hasAmount {
		flag |= 2
	}
	b = append(b, flag)
	b = binary.AppendVarint(b, s.first)
	b = binary.AppendVarint(b, s.latest)
	b = binary.AppendUvarint(b, uint64(len(s.recent)))
	for _, p := range s.recent {
		b = binary.AppendVarint(b, p.at)
		b = appendFloat(b, p.amount)
		if p.hasAmount {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	f := &s.fold
	for _, v := range []int64{f.n, f.firstAt, f.lastAt, f.firstDay, f.firstCount, f.days, f.tail[0], f.tail[1], f.tail[2], f.lastDay, f.decayRef} {
		b = binary.AppendVarint(b, v)
	}
	for _, v := range []float64{f.lastAmount, f.total, f.firstSpend} {
		b = appendFloat(b, v)
	}
	for _, v := range f.decayed {
		b = appendFloat(b, v)
	}
	for _, v := range f.dow {
		b = binary.AppendVarint(b, v)
	}
	for _, v := range f.hour {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(f.gaps)))
	for _, g := range f.gaps {
		b = binary.AppendVarint(b, g.gap)
		b = binary.AppendVarint(b, g.count)
	}
	for _, a := range s.act {
		b = binary.AppendVarint(b, a.total)
		b = binary.AppendVarint(b, a.last)
		b = binary.AppendUvarint(b, uint64(len(a.recent)))
		for _, t := range a.recent {
			b = binary.AppendVarint(b, t)
		}
	}
	return b, nil
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// errLiveCodec is wrapped by every decoding error.
var errLiveCodec = errors.New("decode live state")

type liveReader struct {
	b   []byte
	off int
	err error
}

func (r *liveReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", errLiveCodec, what, r.off)
	}
}

func (r *liveReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	r.off += n
	return v
}

func (r *liveReader) count(what string) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 || v > maxLiveRecords || v > uint64(len(r.b)-r.off) {
		r.fail("bad " + what + " count")
		return 0
	}
	r.off += n
	return int(v)
}

func (r *liveReader) float(what string) float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.fail("short " + what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.off:]))
	r.off += 8
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.fail(what + " is not finite")
	}
	return v
}

func (r *liveReader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("short " + what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// UnmarshalBinary decodes what MarshalBinary wrote. It checks the invariants
// Apply keeps (sorted lists, counts that agree, times within range), so a
// corrupt record is an error, never a state that computes wrong features.
func (s *LiveState) UnmarshalBinary(data []byte) error {
	r := &liveReader{b: data}
	if v := r.byte1("version"); r.err == nil && v != liveStateVersion {
		return fmt.Errorf("%w: version %d, want %d", errLiveCodec, v, liveStateVersion)
	}
	flag := r.byte1("flags")
	var d LiveState
	d.seen, d.fold.hasAmount = flag&1 != 0, flag&2 != 0
	d.first = r.varint("first")
	d.latest = r.varint("latest")
	if nr := r.count("purchase"); nr > 0 {
		d.recent = make([]purchase, nr)
		for i := range d.recent {
			d.recent[i].at = r.varint("purchase time")
			d.recent[i].amount = r.float("purchase amount")
			d.recent[i].hasAmount = r.byte1("purchase amount flag") == 1
		}
	}
	f := &d.fold
	for _, p := range []*int64{&f.n, &f.firstAt, &f.lastAt, &f.firstDay, &f.firstCount, &f.days, &f.tail[0], &f.tail[1], &f.tail[2], &f.lastDay, &f.decayRef} {
		*p = r.varint("folded purchases")
	}
	for _, p := range []*float64{&f.lastAmount, &f.total, &f.firstSpend} {
		*p = r.float("folded amounts")
	}
	for i := range f.decayed {
		f.decayed[i] = r.float("decayed count")
	}
	for i := range f.dow {
		f.dow[i] = r.varint("weekday count")
	}
	for i := range f.hour {
		f.hour[i] = r.varint("hour count")
	}
	if ng := r.count("gap"); ng > 0 {
		f.gaps = make([]gapCount, ng)
		for i := range f.gaps {
			f.gaps[i] = gapCount{gap: r.varint("gap"), count: r.varint("gap count")}
		}
	}
	for k := range d.act {
		a := &d.act[k]
		a.total = r.varint("activity total")
		a.last = r.varint("activity last")
		if na := r.count("activity"); na > 0 {
			a.recent = make([]int64, na)
			for i := range a.recent {
				a.recent[i] = r.varint("activity time")
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	if r.off != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", errLiveCodec, len(data)-r.off)
	}
	if err := d.check(); err != nil {
		return fmt.Errorf("%w: %w", errLiveCodec, err)
	}
	*s = d
	return nil
}

// check verifies the invariants Apply maintains.
func (s *LiveState) check() error {
	inRange := func(t int64) bool { return t >= -maxAbsUnix && t <= maxAbsUnix }
	if !s.seen {
		if len(s.recent) > 0 || s.fold.n != 0 || s.act[0].total != 0 || s.act[1].total != 0 || s.act[2].total != 0 {
			return errors.New("events in a state marked empty")
		}
		return nil
	}
	if !inRange(s.first) || !inRange(s.latest) || s.first > s.latest {
		return errors.New("first and latest event times out of order or range")
	}
	for i, p := range s.recent {
		if p.at < s.first || p.at > s.latest || (i > 0 && p.at < s.recent[i-1].at) {
			return fmt.Errorf("purchase %d out of order or outside [first, latest]", i)
		}
		if math.Abs(p.amount) > model.MaxAmount {
			return fmt.Errorf("purchase %d amount out of range", i)
		}
	}
	f := &s.fold
	if f.n < 0 || f.days < 0 || f.days > f.n || f.firstCount < 0 || f.firstCount > f.n {
		return errors.New("folded counts inconsistent")
	}
	if f.n > 0 {
		if f.days < 1 || f.firstCount < 1 || f.firstAt < s.first || f.lastAt < f.firstAt || f.lastAt > s.latest || f.lastDay < f.firstDay || f.decayRef != f.lastAt {
			return errors.New("folded purchase times inconsistent")
		}
		if len(s.recent) > 0 && s.recent[0].at < f.lastAt {
			return errors.New("exact purchases before the folded ones")
		}
		var gaps, span int64
		for i, g := range f.gaps {
			if g.gap < 1 || g.count < 1 || (i > 0 && g.gap <= f.gaps[i-1].gap) || g.count > f.days {
				return fmt.Errorf("gap bucket %d invalid", i)
			}
			gaps += g.count
			span += g.gap * g.count
			if span > 2*maxAbsUnix/secPerDay {
				return errors.New("gap span out of range")
			}
		}
		if gaps != f.days-1 || span != f.lastDay-f.firstDay {
			return errors.New("gap histogram does not match the folded days")
		}
		for _, v := range f.decayed {
			if v < 1 || v > float64(f.n) {
				return errors.New("decayed count out of range")
			}
		}
	} else if f.days != 0 || len(f.gaps) != 0 {
		return errors.New("folded aggregates without folded purchases")
	}
	var dow, hour int64
	for _, v := range f.dow {
		if v < 0 {
			return errors.New("negative weekday count")
		}
		dow += v
	}
	for _, v := range f.hour {
		if v < 0 {
			return errors.New("negative hour count")
		}
		hour += v
	}
	if dow != f.n || hour != f.n {
		return errors.New("weekday or hour counts do not add up to the folded purchases")
	}
	for k, a := range s.act {
		if a.total < 0 || int64(len(a.recent)) > a.total {
			return fmt.Errorf("activity %d counts inconsistent", k)
		}
		if a.total > 0 && (a.last < s.first || a.last > s.latest) {
			return fmt.Errorf("activity %d last time out of range", k)
		}
		for i, t := range a.recent {
			if t < s.first || t > a.last || (i > 0 && t < a.recent[i-1]) {
				return fmt.Errorf("activity %d time %d out of order", k, i)
			}
		}
	}
	return nil
}
