package client

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/dp"
)

// BenchmarkRound is one merchant round against the in-process fake
// aggregator (300 customers, 2 cutoffs, 3 DP-SGD steps): training, sealing to
// an X25519 recipient, the fsynced state write and the upload, with features
// cached as across real rounds.
func BenchmarkRound(b *testing.B) {
	m, err := keys.GenerateMerchant(rand.Reader, "shop-1")
	if err != nil {
		b.Fatal(err)
	}
	agg := newFakeAgg(b, m)
	store, st, err := OpenState(b.TempDir(), m.ID)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	r, err := NewRunner(Options{
		API: agg, Merchant: m, Events: testEvents(), Store: store, State: st, EpsilonCap: 1e9,
		PollInterval: time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := r.Run(context.Background(), 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateSave is the atomic, fsynced write of a state holding 40
// rounds and a pending 10 KiB envelope.
func BenchmarkStateSave(b *testing.B) {
	store, st, err := OpenState(b.TempDir(), "shop-1")
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	for i := range 40 {
		st.Releases = append(st.Releases, dp.Release{Mechanism: dp.Gaussian, Q: 0.05, Z: 5.66, Steps: 10}, dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1})
		st.Rounds = append(st.Rounds, RoundRecord{Round: "r", Seq: int64(i), Outcome: OutcomeAccepted, Receipt: &protocol.Receipt{Epsilon: 0.5}})
	}
	st.Pending = &Pending{Round: "r40", Envelope: make([]byte, 10<<10), Payload: make([]byte, 2<<10)}
	b.ResetTimer()
	for range b.N {
		if err := store.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}
