package ingest

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

// taobaoStream produces n Taobao rows on the fly, each with a new item and
// every 50 rows a new user, without holding them in memory.
type taobaoStream struct {
	n, i int
	buf  []byte
}

func (s *taobaoStream) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.i < s.n {
		s.buf = strconv.AppendInt(s.buf, int64(s.i/50), 10)
		s.buf = append(s.buf, ',')
		s.buf = strconv.AppendInt(s.buf, int64(s.i), 10)
		s.buf = append(s.buf, ",42,pv,"...)
		s.buf = strconv.AppendInt(s.buf, 1511544070+int64(s.i%1000), 10)
		s.buf = append(s.buf, '\n')
		s.i++
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = append(s.buf[:0], s.buf[n:]...)
	return n, nil
}

// TestMemoryIndependentOfFileSize reads about 40 MB of rows from a stream
// and checks that the live heap stays far below the input size.
func TestMemoryIndependentOfFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a million rows")
	}
	const rows = 1_000_000
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	i := 0
	rep, err := Read(context.Background(), &taobaoStream{n: rows}, "stream", Options{Format: Taobao}, func(model.Event) error {
		i++
		if i%200_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != rows {
		t.Fatalf("got %d events, want %d", rep.Events, rows)
	}
	if grown := int64(peak) - int64(base); grown > 8<<20 {
		t.Errorf("live heap grew by %d bytes while streaming ~40 MB, want under 8 MiB", grown)
	} else {
		t.Logf("live heap grew by %d bytes while streaming %d rows", grown, rows)
	}
}
