package evaluate

import (
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

// TestSpan: the earliest and latest times of a log in no order, read off by
// hand.
func TestSpan(t *testing.T) {
	at := func(d int) model.Event { return model.Event{Time: time.Date(2024, 3, d, 12, 0, 0, 0, time.UTC)} }
	first, last := Span([]model.Event{at(9), at(2), at(30), at(15)})
	if !first.Equal(at(2).Time) || !last.Equal(at(30).Time) {
		t.Errorf("got %v .. %v, want 2024-03-02 .. 2024-03-30", first, last)
	}
	if first, last := Span([]model.Event{at(5)}); !first.Equal(last) {
		t.Errorf("one event: got %v .. %v", first, last)
	}
}
