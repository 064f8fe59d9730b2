package audit_test

import (
	"context"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

// TestWitnessedKeepsForeignCheckpoints: Witnessed adds exactly the witnessed
// checkpoints the log does not hold identically (the result the lookup by
// seq below must keep): one the log holds is not repeated, one at the same
// seq with another hash or time is added beside the log's, one the log lost
// is added.
func TestWitnessedKeepsForeignCheckpoints(t *testing.T) {
	ctx := context.Background()
	es, cps := storetest.Chain(audit.Head{}, 12, 4, vecTime) // 4, 8, 12
	other := cps[1]
	other.Hash[0] ^= 1
	later := cps[2]
	later.Time = later.Time.Add(1)
	w := audit.Witnessed(audit.NewSnapshot(es, cps[:2]), []audit.Checkpoint{cps[0], other, cps[2], later, cps[0]})
	got, err := w.AuditCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Checkpoint{cps[0], cps[1], other, cps[2], later}
	if len(got) != len(want) {
		t.Fatalf("got %d checkpoints, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || !got[i].Time.Equal(want[i].Time) {
			t.Errorf("checkpoint %d: got seq %d %s %v, want seq %d %s %v", i, got[i].Seq, got[i].Hash, got[i].Time, want[i].Seq, want[i].Hash, want[i].Time)
		}
	}
}

// BenchmarkWitnessedCheckpoints: GET /v1/compliance (and the console's
// compliance page) reads the log's checkpoints through Witnessed with the
// witness file's, and serve's start-up runs CheckAgainstWitness over both.
// serve signs up to one checkpoint a second while the log moves (86,400 a
// day), and each lookup scanned the log's whole list: quadratic.
func BenchmarkWitnessedCheckpoints(b *testing.B) {
	es, cps := storetest.Chain(audit.Head{}, 20_000, 1, vecTime)
	src := audit.NewSnapshot(es, cps)
	ctx := context.Background()
	for b.Loop() {
		got, err := audit.Witnessed(src, cps).AuditCheckpoints(ctx)
		if err != nil || len(got) != len(cps) {
			b.Fatalf("%d checkpoints, %v", len(got), err)
		}
		if err := audit.CheckAgainstWitness(ctx, src, cps, pub()); err != nil {
			b.Fatal(err)
		}
	}
}
