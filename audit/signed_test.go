package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/kairos-fl/kairos/audit"
)

// forgedTail returns the vector log with a third entry appended by someone
// without the checkpoint key: it chains correctly, as anyone can make it.
func forgedTail(t *testing.T) ([]audit.Entry, audit.Checkpoint) {
	t.Helper()
	es, c := vecEntries(t)
	e3 := audit.Entry{
		Seq: 3, Time: vecTime.Add(3 * 1e6), Actor: "admin:mallory", Action: "budget.reset",
		Outcome: audit.OutcomeOK, PrevHash: es[1].Hash,
	}
	e3.Hash = audit.EntryHash(e3.PrevHash, &e3)
	return append(es, e3), c
}

// TestSignedCutsUnsignedTail: an export through Signed holds the entries the
// last checkpoint covers and every checkpoint, and nothing after; the full
// export holds the third entry, which Verify reports as uncovered.
func TestSignedCutsUnsignedTail(t *testing.T) {
	ctx := context.Background()
	es, c := forgedTail(t)
	snap := audit.NewSnapshot(es, []audit.Checkpoint{c})
	pub := vecKey().Public().(ed25519.PublicKey)

	var full, signed bytes.Buffer
	if err := audit.Export(ctx, snap, &full); err != nil {
		t.Fatal(err)
	}
	if err := audit.Export(ctx, audit.Signed(snap), &signed); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(full.Bytes(), []byte(`"type":"entry"`)); n != 3 {
		t.Errorf("full export has %d entries, want 3", n)
	}
	if n := bytes.Count(signed.Bytes(), []byte(`"type":"entry"`)); n != 2 {
		t.Errorf("signed export has %d entries, want 2", n)
	}
	if bytes.Contains(signed.Bytes(), []byte("mallory")) {
		t.Error("signed export holds the unsigned entry")
	}
	if n := bytes.Count(signed.Bytes(), []byte(`"type":"checkpoint"`)); n != 1 {
		t.Errorf("signed export has %d checkpoints, want 1", n)
	}
	// The full export verifies as a chain, with entry 3 beyond the last
	// checkpoint: the caller must not take it as signed.
	s2, err := audit.ReadExport(&full)
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(ctx, s2, pub)
	if err != nil || res.Entries != 3 || res.LastCheckpointSeq != 2 {
		t.Errorf("Verify(full) = %+v, %v; want 3 entries, last checkpoint at 2", res, err)
	}
	s3, err := audit.ReadExport(&signed)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := audit.Verify(ctx, s3, pub); err != nil || res.Entries != 2 || res.LastCheckpointSeq != 2 {
		t.Errorf("Verify(signed) = %+v, %v; want 2 entries covered by the checkpoint at 2", res, err)
	}
	// No checkpoint at all: nothing is signed, nothing is exported.
	var none bytes.Buffer
	if err := audit.Export(ctx, audit.Signed(audit.NewSnapshot(es, nil)), &none); err != nil {
		t.Fatal(err)
	}
	if none.Len() != 0 {
		t.Errorf("signed export of a log without checkpoints = %q, want empty", none.String())
	}
}
