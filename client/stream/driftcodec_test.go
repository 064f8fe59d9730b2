package stream

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/drift"
)

func codecPreds() (time.Time, []drift.Prediction) {
	at := time.Date(2024, 6, 1, 12, 0, 0, 123456789, time.UTC)
	return at, []drift.Prediction{
		{Customer: "alice", At: at, P30: 0.1 + 0.2}, // a value without a short decimal form
		{Customer: "", At: time.Unix(-86400*365, 999999999).UTC(), P30: 0},
		{Customer: "名前\x00x", At: at.Add(time.Hour), P30: math.Nextafter(1, 0)},
		{Customer: "bob", At: at, P30: 1},
	}
}

// TestSnapshotCodecRoundTrip: a decoded snapshot has the check's time and
// every prediction exactly: customer bytes, time to the nanosecond, and the
// bits of P30.
func TestSnapshotCodecRoundTrip(t *testing.T) {
	at, preds := codecPreds()
	gotAt, got, err := decodeSnapshot(encodeSnapshot(at, preds))
	if err != nil {
		t.Fatal(err)
	}
	if !gotAt.Equal(at) || !reflect.DeepEqual(got, preds) {
		t.Errorf("round trip: got %v %+v, want %v %+v", gotAt, got, at, preds)
	}
	for i := range preds {
		if math.Float64bits(got[i].P30) != math.Float64bits(preds[i].P30) {
			t.Errorf("prediction %d: P30 bits changed", i)
		}
	}
	if _, got, err := decodeSnapshot(encodeSnapshot(at, nil)); err != nil || len(got) != 0 {
		t.Errorf("empty snapshot: %v %v", got, err)
	}
}

// TestSnapshotCodecRefusesDamage: every truncation of a valid encoding, an
// unknown version, trailing bytes, a count larger than the data, a P30
// outside [0, 1] and an out-of-range nanosecond field are errors that name
// the fault, never a panic or a wrong snapshot.
func TestSnapshotCodecRefusesDamage(t *testing.T) {
	at, preds := codecPreds()
	b := encodeSnapshot(at, preds)
	for n := range len(b) {
		if _, _, err := decodeSnapshot(b[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: decoded", n, len(b))
		}
	}
	bad := map[string][]byte{
		"unknown version": append([]byte{2}, b[1:]...),
		"bytes after":     append(append([]byte{}, b...), 0),
		"predictions in":  {1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"outside [0, 1]":  encodeSnapshot(at, []drift.Prediction{{Customer: "x", At: at, P30: math.NaN()}}),
		"nanoseconds":     {1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0},
	}
	for want, data := range bad {
		if _, _, err := decodeSnapshot(data); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

// FuzzDecodeSnapshot: arbitrary data never panics, and what decodes
// re-encodes to data that decodes to the same snapshot.
func FuzzDecodeSnapshot(f *testing.F) {
	at, preds := codecPreds()
	f.Add(encodeSnapshot(at, preds))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		at, preds, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		at2, preds2, err := decodeSnapshot(encodeSnapshot(at, preds))
		if err != nil || !at2.Equal(at) || !reflect.DeepEqual(preds2, preds) {
			t.Errorf("%x decoded to %v %+v, its re-encoding to %v %+v (%v)", b, at, preds, at2, preds2, err)
		}
	})
}
