package audit_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

// TestWitnessCatchesWhatTheLogCannot: two attacks by someone who can write
// the database but not sign checkpoints — cutting the tail together with the
// checkpoint covering it, and rewriting an entry, re-chaining everything
// after it and dropping the checkpoint that no longer matches — leave a log
// that verifies on its own. With the checkpoints a witness copied earlier,
// Verify names the truncation and the rewritten entry.
func TestWitnessCatchesWhatTheLogCannot(t *testing.T) {
	ctx := context.Background()
	es, cps := storetest.Chain(audit.Head{}, 10, 4, vecTime) // checkpoints at 4 and 8
	witness := append([]audit.Checkpoint(nil), cps...)

	// Honest log: the witness adds nothing and changes nothing.
	res, err := audit.Verify(ctx, audit.Witnessed(audit.NewSnapshot(es, cps), witness), pub())
	if err != nil || res.Entries != 10 || res.Checkpoints != 2 {
		t.Fatalf("honest log with its witness: %+v, %v; want 10 entries, 2 checkpoints", res, err)
	}

	truncated := audit.NewSnapshot(es[:4], cps[:1])
	if _, err := audit.Verify(ctx, truncated, pub()); err != nil {
		t.Fatalf("the truncated log alone should verify (that is the weakness): %v", err)
	}
	var ve *audit.VerifyError
	_, err = audit.Verify(ctx, audit.Witnessed(truncated, witness), pub())
	if !errors.As(err, &ve) || ve.Seq != 5 || !strings.Contains(ve.Reason, "truncated tail") {
		t.Errorf("truncated log with the witness: %v, want a truncated tail at entry 5", err)
	}

	rewritten := append([]audit.Entry(nil), es...)
	rewritten[5].Actor = "admin:mallory"
	rehash(rewritten, 5)
	forged := audit.NewSnapshot(rewritten, cps[:1])
	if _, err := audit.Verify(ctx, forged, pub()); err != nil {
		t.Fatalf("the re-chained log alone should verify (that is the weakness): %v", err)
	}
	_, err = audit.Verify(ctx, audit.Witnessed(forged, witness), pub())
	if !errors.As(err, &ve) || ve.Seq != 8 || !ve.Checkpoint {
		t.Errorf("rewritten log with the witness: %v, want the checkpoint at entry 8 to fail", err)
	}
}

// TestMergeWitness: new checkpoints are added in order; a log whose
// checkpoints stop short of the witness, or that shows a differently signed
// hash for a witnessed entry (a fork by the key holder), is refused.
func TestMergeWitness(t *testing.T) {
	_, cps := storetest.Chain(audit.Head{}, 12, 4, vecTime) // checkpoints at 4, 8, 12
	merged, added, err := audit.MergeWitness(cps[:1], []audit.Checkpoint{cps[2], cps[0], cps[1]}, pub())
	if err != nil || added != 2 || len(merged) != 3 || merged[0].Seq != 4 || merged[1].Seq != 8 || merged[2].Seq != 12 {
		t.Fatalf("merge: %d added, %v, %v", added, merged, err)
	}
	if _, _, err := audit.MergeWitness(cps, cps[:2], pub()); !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("log behind the witness: %v, want a truncation", err)
	}
	fork := cps[1]
	fork.Hash[0] ^= 1
	audit.SignCheckpoint(storetest.Key(), &fork)
	if _, _, err := audit.MergeWitness(cps[:2], []audit.Checkpoint{cps[0], fork, cps[2]}, pub()); !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("forked checkpoint: %v, want history rewritten", err)
	}
	bad := cps[2]
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[0] ^= 1
	if _, _, err := audit.MergeWitness(nil, []audit.Checkpoint{bad}, pub()); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("badly signed checkpoint: %v", err)
	}
}

// TestWitnessFile: WriteWitness and ReadWitness round-trip; a file with an
// entry line or a badly signed checkpoint is refused.
func TestWitnessFile(t *testing.T) {
	es, cps := storetest.Chain(audit.Head{}, 8, 4, vecTime)
	var buf bytes.Buffer
	if err := audit.WriteWitness(&buf, cps); err != nil {
		t.Fatal(err)
	}
	got, err := audit.ReadWitness(bytes.NewReader(buf.Bytes()), pub())
	if err != nil || len(got) != 2 || got[0].Hash != cps[0].Hash || got[1].Hash != cps[1].Hash || !got[1].Time.Equal(cps[1].Time) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	var withEntries bytes.Buffer
	if err := audit.Export(context.Background(), audit.NewSnapshot(es, cps), &withEntries); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.ReadWitness(&withEntries, pub()); err == nil {
		t.Error("an export with entries was read as a witness")
	}
	tampered := strings.Replace(buf.String(), `"signature":"`, `"signature":"A`, 1)
	if _, err := audit.ReadWitness(strings.NewReader(tampered), pub()); err == nil {
		t.Error("a witness with a damaged signature was accepted")
	}
}

// FuzzReadWitness: any input is read without panicking, and whatever is
// accepted holds only checkpoints whose signatures verify.
func FuzzReadWitness(f *testing.F) {
	_, cps := storetest.Chain(audit.Head{}, 8, 4, vecTime)
	var buf bytes.Buffer
	if err := audit.WriteWitness(&buf, cps); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"type":"checkpoint","seq":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := audit.ReadWitness(bytes.NewReader(data), pub())
		if err != nil {
			return
		}
		for i := range got {
			if !audit.VerifyCheckpoint(pub(), &got[i]) {
				t.Fatalf("accepted a checkpoint that does not verify: %+v", got[i])
			}
		}
	})
}

// TestCheckAgainstWitness: an honest log passes whatever part of its
// checkpoints the witness holds, also when its own copy of one is missing
// (the walk then confirms the chain through it); a log cut after entry 4 and
// grown again to 12 entries, whose new checkpoint at 8 was deleted, fails at
// the witnessed checkpoint of entry 8 although no checkpoint of it shares a
// seq with the witness's but 4 (which it signs alike).
func TestCheckAgainstWitness(t *testing.T) {
	ctx := context.Background()
	es, cps := storetest.Chain(audit.Head{}, 12, 4, vecTime) // checkpoints at 4, 8, 12
	honest := audit.NewSnapshot(es, cps)
	for _, held := range [][]audit.Checkpoint{nil, cps[:1], cps[:2], cps} {
		if err := audit.CheckAgainstWitness(ctx, honest, held, pub()); err != nil {
			t.Errorf("honest log, %d witnessed checkpoints: %v", len(held), err)
		}
	}
	if err := audit.CheckAgainstWitness(ctx, audit.NewSnapshot(es, []audit.Checkpoint{cps[0], cps[2]}), cps, pub()); err != nil {
		t.Errorf("honest log that lost its own checkpoint at 8: %v", err)
	}

	// The regrown log: entries 1–4 kept, 5–12 new, signed by the key holder.
	grown := append([]audit.Entry(nil), es...)
	for i := 4; i < len(grown); i++ {
		grown[i].Actor = "admin:mallory"
	}
	rehash(grown, 4)
	var regrownCps []audit.Checkpoint
	for _, c := range []audit.Checkpoint{cps[0], cps[2]} { // 8' deleted
		c.Hash = grown[c.Seq-1].Hash
		audit.SignCheckpoint(storetest.Key(), &c)
		regrownCps = append(regrownCps, c)
	}
	regrown := audit.NewSnapshot(grown, regrownCps)
	if _, _, err := audit.MergeWitness(cps[:2], regrownCps, pub()); err != nil {
		t.Fatalf("MergeWitness should not see it (checkpoints 4 and 12 only): %v", err)
	}
	err := audit.CheckAgainstWitness(ctx, regrown, cps[:2], pub())
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || ve.Seq != 8 || !ve.Checkpoint {
		t.Errorf("regrown log: %v, want the witnessed checkpoint at entry 8 to fail", err)
	}
}
