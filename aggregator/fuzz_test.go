package aggregator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
)

// FuzzSubmit feeds arbitrary bytes to Submit as merchant m1: every input is
// either accepted or refused with one of the documented sentinels, never a
// panic or an unclassified error, and the budget never passes the cap.
//
//	go test -run '^$' -fuzz FuzzSubmit -fuzztime 20s ./aggregator/
func FuzzSubmit(f *testing.F) {
	b := sqliteBackend(f)
	fd := newFed(f, b, aggregator.RoundConfig{Deadline: 24 * time.Hour, PlannedRounds: 1})
	r := fd.start(f)
	fd.enrol(f, r, "m1")
	tick(f, r)
	round, err := r.svc.CurrentRound(context.Background(), "m1")
	if err != nil {
		f.Fatal(err)
	}
	valid := fd.seal(f, fd.update(f, round, "m1"))
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(seal.Magic))
	f.Add([]byte{})
	sentinels := []error{
		aggregator.ErrNotFound, aggregator.ErrConflict, aggregator.ErrRoundClosed, aggregator.ErrPolicy, aggregator.ErrNotSelected,
		dp.ErrBudgetExhausted, protocol.ErrInvalidUpdate,
		seal.ErrMalformed, seal.ErrTooLarge, seal.ErrMissingSignature, seal.ErrUnknownSigner, seal.ErrRevokedSigner,
		seal.ErrBadSignature, seal.ErrRoundMismatch, seal.ErrStale, seal.ErrRecipientKind, seal.ErrReplay,
		seal.ErrDecrypt, seal.ErrDigestMismatch,
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		_, err := r.svc.Submit(context.Background(), "m1", env)
		if err != nil && !slicesContainsErr(sentinels, err) {
			t.Fatalf("unclassified error: %v", err)
		}
		if got := budgetOf(t, r, "m1"); got.Epsilon > got.Cap*(1+dp.FilterTolerance) {
			t.Fatalf("budget: ε %v above cap %v", got.Epsilon, got.Cap)
		}
	})
}

func slicesContainsErr(sentinels []error, err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
