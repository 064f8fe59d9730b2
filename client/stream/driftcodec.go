package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kairos-fl/kairos/client/drift"
)

// snapshotVersion is the first byte of an encoded snapshot.
const snapshotVersion = 1

// encodeSnapshot encodes a drift check's time and predictions for the live
// store: the version, the time, the count, then per prediction the
// customer, its time and the bits of P30 (so a restored snapshot scores
// exactly as the one taken). Times are Unix seconds and nanoseconds.
func encodeSnapshot(at time.Time, preds []drift.Prediction) []byte {
	b := make([]byte, 0, 32+len(preds)*32)
	b = append(b, snapshotVersion)
	b = appendTime(b, at)
	b = binary.AppendUvarint(b, uint64(len(preds)))
	for _, p := range preds {
		b = binary.AppendUvarint(b, uint64(len(p.Customer)))
		b = append(b, p.Customer...)
		b = appendTime(b, p.At)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.P30))
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// errSnapshotTruncated is decodeSnapshot's error for data that ends early.
var errSnapshotTruncated = errors.New("truncated")

// decodeSnapshot reverses encodeSnapshot, refusing (never panicking on)
// damaged data.
func decodeSnapshot(b []byte) (time.Time, []drift.Prediction, error) {
	d := snapshotDecoder{b: b}
	if len(b) == 0 || b[0] != snapshotVersion {
		return time.Time{}, nil, fmt.Errorf("decode drift snapshot: unknown version (want %d)", snapshotVersion)
	}
	d.b = d.b[1:]
	at := d.time()
	n := d.uvarint()
	// Every prediction takes at least 11 bytes: a bound before allocating.
	if d.err == nil && n > uint64(len(d.b))/11 {
		d.err = fmt.Errorf("%d predictions in %d bytes", n, len(d.b))
	}
	var preds []drift.Prediction
	if d.err == nil {
		preds = make([]drift.Prediction, 0, n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		var p drift.Prediction
		p.Customer = string(d.bytes(d.uvarint()))
		p.At = d.time()
		if d.err == nil && len(d.b) < 8 {
			d.err = errSnapshotTruncated
		}
		if d.err == nil {
			p.P30 = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
			d.b = d.b[8:]
			if !(p.P30 >= 0 && p.P30 <= 1) {
				d.err = fmt.Errorf("prediction %d: P30 %v outside [0, 1]", i, p.P30)
			}
		}
		preds = append(preds, p)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the last prediction", len(d.b))
	}
	if d.err != nil {
		return time.Time{}, nil, fmt.Errorf("decode drift snapshot: %w", d.err)
	}
	return at, preds, nil
}

// snapshotDecoder reads b, keeping the first error.
type snapshotDecoder struct {
	b   []byte
	err error
}

func (d *snapshotDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errSnapshotTruncated
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *snapshotDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errSnapshotTruncated
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *snapshotDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errSnapshotTruncated
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *snapshotDecoder) time() time.Time {
	s, ns := d.varint(), d.uvarint()
	if d.err == nil && ns >= 1e9 {
		d.err = fmt.Errorf("time with %d nanoseconds", ns)
	}
	return time.Unix(s, int64(ns)).UTC()
}
