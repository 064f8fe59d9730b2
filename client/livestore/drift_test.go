package livestore

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestDriftStore: purchases come back once each (a repeated one is stored
// once), sorted by customer and time, and only from commits that succeeded
// (a failed commit's purchases are gone with its position); snapshots come
// back by Seq with their data; adding one keeps the keep latest and drops the
// purchases before the earliest kept snapshot's second, of that source only.
func TestDriftStore(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			buy := func(c string, d int) Purchase { return Purchase{Customer: c, At: t0.Add(time.Duration(d) * day)} }
			if err := s.Commit(ctx, "a", Batch{Next: map[int32]int64{0: 3}, Purchases: []Purchase{buy("y", 2), buy("x", 5), buy("x", 1), buy("x", 5)}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, "a", Batch{Next: map[int32]int64{0: -1}, Purchases: []Purchase{buy("z", 3)}}); err == nil {
				t.Fatal("negative offset committed")
			}
			if err := s.Commit(ctx, "b", Batch{Next: map[int32]int64{0: 1}, Purchases: []Purchase{buy("x", 0)}}); err != nil {
				t.Fatal(err)
			}
			d, err := s.LoadDrift(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if want := []Purchase{buy("x", 1), buy("x", 5), buy("y", 2)}; !reflect.DeepEqual(d.Purchases, want) || d.Snapshots != nil {
				t.Fatalf("after commits: got %+v, want purchases %+v and no snapshots", d, want)
			}

			// Snapshots at days 0, 2, 3, 4 (a few nanoseconds past the second), keeping 3.
			for i, at := range []int{0, 2, 3, 4} {
				sn := Snapshot{Seq: int64(i + 1), At: t0.Add(time.Duration(at)*day + 7), Data: []byte{byte(i), 0xff}}
				if err := s.AddSnapshot(ctx, "a", sn, 3); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddSnapshot(ctx, "a", Snapshot{Seq: 4, At: t0, Data: []byte{9}}, 3); err == nil {
				t.Error("a second snapshot 4 was stored")
			}
			d, err = s.LoadDrift(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			want := Drift{
				Snapshots: []Snapshot{
					{Seq: 2, At: t0.Add(2 * day), Data: []byte{1, 0xff}},
					{Seq: 3, At: t0.Add(3 * day), Data: []byte{2, 0xff}},
					{Seq: 4, At: t0.Add(4 * day), Data: []byte{3, 0xff}},
				},
				// Earliest kept snapshot: day 2. x's day-1 purchase goes.
				Purchases: []Purchase{buy("x", 5), buy("y", 2)},
			}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("after snapshots: got %+v, want %+v", d, want)
			}
			if d, err := s.LoadDrift(ctx, "b"); err != nil || !reflect.DeepEqual(d.Purchases, []Purchase{buy("x", 0)}) || d.Snapshots != nil {
				t.Errorf("source b: got %+v (%v), want its one purchase untouched", d, err)
			}
		})
	}
}
