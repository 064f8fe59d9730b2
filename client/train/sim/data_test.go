package sim

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

var (
	eventsOnce sync.Once
	events     []model.Event
	eventsErr  error
	cdnowOnce  sync.Once
	cdnowD     *Data
	cdnowErr   error
)

// cdnowEvents reads CDNOW_master.txt once per test binary, or skips the test.
func cdnowEvents(t testing.TB) []model.Event {
	t.Helper()
	p := os.Getenv("KAIROS_DATA")
	if p == "" {
		p = "../../../../shared/data"
	}
	path := p + "/cdnow/CDNOW_master.txt"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("CDNOW_master.txt not found at %s (set KAIROS_DATA)", path)
	}
	eventsOnce.Do(func() { events, eventsErr = LoadCDNOW(context.Background(), path) })
	if eventsErr != nil {
		t.Fatal(eventsErr)
	}
	return events
}

// cdnowData prepares the reference split once per test binary.
func cdnowData(t testing.TB) *Data {
	t.Helper()
	ev := cdnowEvents(t)
	cdnowOnce.Do(func() { cdnowD, cdnowErr = Prepare(ev, DataOptions{}) })
	if cdnowErr != nil {
		t.Fatal(cdnowErr)
	}
	return cdnowD
}
