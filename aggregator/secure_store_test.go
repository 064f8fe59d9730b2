package aggregator_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestSecureStoreTx checks the SecureTx contract on every backend: a secure
// round's row round-trips (blobs, stage, deadline, the plausible customers
// stored at insert and left alone by updates), a second insert and a
// second message for one stage conflict, updates of a missing row and reads
// of missing rows are ErrNotFound.
func TestSecureStoreTx(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t).(aggregator.Store)
			at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
			in := func(fn func(tx aggregator.Tx) error) error { return st.InTx(ctx, fn) }
			m := aggregator.Merchant{ID: "m1", Region: "eu", TimeZone: "UTC", PublicKey: make([]byte, 32), EnrolledAt: at}
			r := aggregator.RoundRecord{ID: "r1", Seq: 1, State: protocol.RoundOpen, OpenedAt: at, Deadline: at.Add(time.Hour),
				Quorum: 1, Selected: []string{"m1"}, BaseVersion: 1, Plan: protocol.TrainingPlan{Steps: 1, Secure: &protocol.SecurePlan{Merchants: []string{"m1"}}}}
			if err := in(func(tx aggregator.Tx) error {
				if err := tx.InsertMerchant(ctx, m); err != nil {
					return err
				}
				_, err := tx.InsertRound(ctx, r)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			rec := aggregator.SecureRoundRecord{Round: "r1", Stage: protocol.StageAdvertise, StageDeadline: at.Add(time.Minute),
				Server: []byte{1, 0x10, 0, 0xff}, UpdatedAt: at, Customers: []float64{1000, 999999}}
			if err := in(func(tx aggregator.Tx) error { return tx.InsertSecureRound(ctx, rec) }); err != nil {
				t.Fatal(err)
			}
			if err := in(func(tx aggregator.Tx) error { return tx.InsertSecureRound(ctx, rec) }); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("second insert: got %v, want ErrConflict", err)
			}
			rec.Stage, rec.Result, rec.Reason, rec.Server = protocol.StageDone, []byte{0, 0, 0, 7}, "why", []byte{9}
			rec.Customers = nil // fixed when the round was planned: an update does not touch them
			if err := in(func(tx aggregator.Tx) error { return tx.UpdateSecureRound(ctx, rec) }); err != nil {
				t.Fatal(err)
			}
			var got aggregator.SecureRoundRecord
			if err := in(func(tx aggregator.Tx) (err error) {
				got, err = tx.SecureRound(ctx, "r1", aggregator.LockUpdate)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if got.Stage != protocol.StageDone || !bytes.Equal(got.Result, rec.Result) || !bytes.Equal(got.Server, rec.Server) ||
				got.Reason != "why" || !got.StageDeadline.Equal(rec.StageDeadline) || !got.UpdatedAt.Equal(at) ||
				!slices.Equal(got.Customers, []float64{1000, 999999}) {
				t.Errorf("round trip: got %+v, want %+v", got, rec)
			}
			missing := rec
			missing.Round = "r9"
			if err := in(func(tx aggregator.Tx) error { return tx.UpdateSecureRound(ctx, missing) }); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("update of a missing round: got %v, want ErrNotFound", err)
			}
			if err := in(func(tx aggregator.Tx) error { _, err := tx.SecureRound(ctx, "r9", aggregator.LockNone); return err }); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("missing round: got %v, want ErrNotFound", err)
			}
			msg := aggregator.SecureMessageRecord{Round: "r1", Merchant: "m1", Stage: protocol.StageShare, EnvelopeSHA256: []byte{3, 4}, AcceptedAt: at}
			if err := in(func(tx aggregator.Tx) error { return tx.InsertSecureMessage(ctx, msg) }); err != nil {
				t.Fatal(err)
			}
			if err := in(func(tx aggregator.Tx) error { return tx.InsertSecureMessage(ctx, msg) }); !errors.Is(err, aggregator.ErrConflict) {
				t.Errorf("second message for a stage: got %v, want ErrConflict", err)
			}
			var gm aggregator.SecureMessageRecord
			if err := in(func(tx aggregator.Tx) (err error) {
				gm, err = tx.SecureMessage(ctx, "r1", "m1", protocol.StageShare)
				return err
			}); err != nil || !bytes.Equal(gm.EnvelopeSHA256, msg.EnvelopeSHA256) || !gm.AcceptedAt.Equal(at) {
				t.Errorf("message round trip: got %+v, %v", gm, err)
			}
			if err := in(func(tx aggregator.Tx) error {
				_, err := tx.SecureMessage(ctx, "r1", "m1", protocol.StageMask)
				return err
			}); !errors.Is(err, aggregator.ErrNotFound) {
				t.Errorf("missing message: got %v, want ErrNotFound", err)
			}
		})
	}
}
