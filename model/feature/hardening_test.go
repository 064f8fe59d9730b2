package feature

import (
	"math"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// FuzzLiveStateApply (hardening review, session 18): a state decoded from
// arbitrary bytes (a damaged live store row) then takes events before,
// inside and after its window and is scored; nothing panics, and every
// feature that is computed is finite.
func FuzzLiveStateApply(f *testing.F) {
	eng, _ := NewLiveEngine(LiveConfig{})
	for _, evs := range [][]model.Event{nil, liveLog(3, 2, 5), liveLog(7, 1, 40)} {
		var s LiveState
		for _, e := range evs {
			if e.Customer == "c0" {
				_ = eng.Apply(&s, e)
			}
		}
		b, _ := s.MarshalBinary()
		f.Add(b, int64(3600), int64(-400*86400), 12.5)
	}
	f.Fuzz(func(t *testing.T, data []byte, later, earlier int64, amount float64) {
		var s LiveState
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		if l, ok := s.Latest(); ok {
			at = l
		}
		for _, e := range []model.Event{
			{Customer: "c", Time: at.Add(time.Duration(later%(1<<40)) * time.Second), Kind: model.Purchase, Amount: amount, HasAmount: true},
			{Customer: "c", Time: at.Add(time.Duration(earlier%(1<<40)) * time.Second), Kind: model.Purchase, Amount: 1, HasAmount: true},
			{Customer: "c", Time: at.Add(-time.Hour), Kind: model.View},
		} {
			_ = eng.Apply(&s, e) // refusing an event is fine; panicking is not
		}
		l, ok := s.Latest()
		if !ok {
			return
		}
		x, err := eng.Features(&s, l.Add(time.Hour), nil)
		if err != nil {
			return
		}
		for i, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("feature %d is %v", i, v)
			}
		}
	})
}
