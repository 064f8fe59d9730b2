package livestore

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/kairos-fl/kairos/store/postgres/pgtest"
)

func stores(t *testing.T) map[string]Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]Store{}
	sq, err := Open(ctx, filepath.Join(t.TempDir(), "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	out["sqlite"] = sq
	pg, err := Open(ctx, pgtest.Database(t, pgtest.BaseURL(t), "kairos_live_"))
	if err != nil {
		t.Fatal(err)
	}
	out["postgres"] = pg
	for _, s := range out {
		t.Cleanup(func() { s.Close() })
	}
	return out
}

// TestCommitLoad: states and positions come back as committed, per source; a
// later commit overwrites; a failed commit (a negative offset violates the
// table's check) leaves neither states nor positions changed.
func TestCommitLoad(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			load := func(src string) (map[string]string, map[int32]int64) {
				got := map[string]string{}
				next, err := s.Load(ctx, src, func(c string, b []byte) error { got[c] = string(b); return nil })
				if err != nil {
					t.Fatal(err)
				}
				return got, next
			}
			if err := s.Commit(ctx, "a", Batch{Next: map[int32]int64{0: 5, 1: 7}, States: map[string][]byte{"x": []byte("1"), "y": []byte("2")}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, "a", Batch{Next: map[int32]int64{0: 9}, States: map[string][]byte{"x": []byte("3")}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, "b", Batch{Next: map[int32]int64{0: 1}, States: map[string][]byte{"x": []byte("b")}}); err != nil {
				t.Fatal(err)
			}
			err := s.Commit(ctx, "a", Batch{Next: map[int32]int64{0: -1}, States: map[string][]byte{"x": []byte("bad"), "z": []byte("bad")}})
			if err == nil {
				t.Fatal("negative offset committed")
			}
			st, next := load("a")
			if want := map[string]string{"x": "3", "y": "2"}; !maps.Equal(st, want) {
				t.Errorf("states: got %v, want %v", st, want)
			}
			if want := map[int32]int64{0: 9, 1: 7}; !maps.Equal(next, want) {
				t.Errorf("positions: got %v, want %v", next, want)
			}
			st, next = load("b")
			if st["x"] != "b" || next[0] != 1 || len(st) != 1 {
				t.Errorf("source b: got %v %v", st, next)
			}
			boom := errors.New("boom")
			if _, err := s.Load(ctx, "a", func(string, []byte) error { return boom }); !errors.Is(err, boom) {
				t.Errorf("load callback error: got %v", err)
			}
		})
	}
}
