package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
)

func TestStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := ReadState(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read missing state: got %v, want fs.ErrNotExist", err)
	}
	s, st, err := OpenState(dir, "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	st.Delta = 1e-6
	st.Releases = []dp.Release{{Mechanism: dp.Gaussian, Q: 0.1, Z: 1.1, Steps: 20}}
	st.Rounds = []RoundRecord{{Round: "r1", Outcome: OutcomeAccepted, Receipt: &protocol.Receipt{Epsilon: 0.3, EpsilonCap: 1}}}
	st.Pending = &Pending{Round: "r2", Payload: []byte(`{"a":1}`), Envelope: []byte{0, 1, 2, 255}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Merchant != "shop-1" || len(got.Releases) != 1 || got.Releases[0] != st.Releases[0] ||
		got.Pending == nil || string(got.Pending.Envelope) != string(st.Pending.Envelope) || got.Accepted() != 1 {
		t.Errorf("read back %+v, want what was saved", got)
	}
	if rc, ok := got.LastReceipt(); !ok || rc.Epsilon != 0.3 {
		t.Errorf("last receipt: got %+v, %v; want ε 0.3", rc, ok)
	}
	// A second open of the same directory is refused while the first holds it.
	if _, _, err := OpenState(dir, "shop-1"); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: got %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenState(dir, "shop-2"); err == nil {
		t.Error("open for another merchant: got nil error")
	}
	s2, _, err := OpenState(dir, "shop-1")
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	s2.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != stateFile && e.Name() != lockFile {
			t.Errorf("stray file %s left in the state directory", e.Name())
		}
	}
}

func TestStateEpsilonMatchesAccountant(t *testing.T) {
	rs := []dp.Release{
		{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.3, Steps: 40},
		{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1},
		{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.3, Steps: 40},
	}
	st := &State{Releases: rs}
	got, err := st.Epsilon(1e-6)
	if err != nil {
		t.Fatal(err)
	}
	// The same releases composed as one: 80 steps of the subsampled Gaussian plus the count.
	want, _, err := dp.Epsilon([]dp.Release{rs[0], rs[1], rs[2]}, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged, _, err := dp.Epsilon([]dp.Release{{Mechanism: dp.Gaussian, Q: 0.05, Z: 1.3, Steps: 80}, rs[1]}, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := got - want; diff > 1e-9 || diff < -1e-9 || got-merged > 1e-9 || merged-got > 1e-9 {
		t.Errorf("ε: got %v, want %v (= %v merged)", got, want, merged)
	}
	if e, _ := (&State{}).Epsilon(1e-6); e != 0 {
		t.Errorf("empty ledger ε: got %v, want 0", e)
	}
}

// FuzzParseState: the state file is read without a panic whatever it holds;
// a state it accepts is of the current version, writes back to bytes that
// read to the same state, and its ledger's ε is either an error or a number ≥ 0
// (+Inf when the noise is too small to bound it).
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"merchant":"shop-1","delta":1e-6,"releases":[{"mechanism":"gaussian","q":0.1,"z":1.1,"steps":20}],` +
		`"rounds":[{"round":"r1","seq":1,"base_version":1,"outcome":"accepted","receipt":{"epsilon":0.3,"epsilon_cap":1},"local_epsilon":0.3,"at":"2026-12-04T12:00:00Z"}],` +
		`"pending":{"round":"r2","payload":"eyJhIjoxfQ==","envelope":"AAEC/w==","sealed_at":"2026-12-04T12:00:00+01:00"},"count":{"value":41.5,"sigma":5,"round":"r1","cutoffs":"x"}}`))
	f.Add([]byte(`{"version":1,"releases":[{"steps":0}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"releases":null,"rounds":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState("state.json", data)
		if err != nil {
			return
		}
		if st.Version != stateVersion {
			t.Fatalf("accepted version %d", st.Version)
		}
		b1, err := json.Marshal(st)
		if err != nil {
			return // a time outside what encoding/json writes (year > 9999): Save reports it
		}
		again, err := parseState("state.json", b1)
		if err != nil {
			t.Fatalf("a state written back does not read: %v\n%s", err, b1)
		}
		if b2, _ := json.Marshal(again); !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed the state:\n%s\n%s", b1, b2)
		}
		if eps, err := st.Epsilon(1e-6); err == nil && (math.IsNaN(eps) || eps < 0) {
			t.Fatalf("ledger ε %v", eps)
		}
	})
}

// TestPruneKeepsReleasedRounds: Prune removes only the oldest quiet
// records beyond MaxQuietRounds; a secure round dropped or abandoned after
// its debit, and a round with a receipt, are kept wherever they are.
func TestPruneKeepsReleasedRounds(t *testing.T) {
	st := &State{}
	add := func(outcome string, eps float64) {
		st.Rounds = append(st.Rounds, RoundRecord{Round: fmt.Sprintf("r%03d", len(st.Rounds)), Outcome: outcome, LocalEpsilon: eps})
	}
	add(OutcomeDropped, 0.1)   // r000: dropped after masking
	add(OutcomeAbandoned, 0.2) // r001: abandoned after masking
	for range 40 {
		add(OutcomeFailed, 0) // r002–r041
	}
	add(OutcomeKeysRefused, 0) // r042
	for range 30 {
		add(OutcomeAbandoned, 0) // r043–r072
	}
	add(OutcomeAccepted, 0.3) // r073
	st.Rounds[73].Receipt = &protocol.Receipt{Round: "r073"}
	st.Prune()
	// 71 quiet records (r002–r072): the oldest 7 (r002–r008) go.
	if got, want := len(st.Rounds), 74-7; got != want {
		t.Fatalf("rounds after prune: %d, want %d", got, want)
	}
	if got := st.PrunedRounds; len(got) != 1 || got[OutcomeFailed] != 7 {
		t.Errorf("pruned: %v, want map[failed:7]", got)
	}
	for _, id := range []string{"r000", "r001", "r009", "r042", "r072", "r073"} {
		if _, ok := st.Joined(id); !ok {
			t.Errorf("%s pruned, want kept", id)
		}
	}
	for _, id := range []string{"r002", "r008"} {
		if _, ok := st.Joined(id); ok {
			t.Errorf("%s kept, want pruned", id)
		}
	}
	if got, want := st.RoundsJoined(), 74; got != want {
		t.Errorf("rounds joined: %d, want %d", got, want)
	}
	st.Prune() // nothing more to prune
	if got := st.PrunedRounds[OutcomeFailed]; got != 7 || len(st.Rounds) != 67 {
		t.Errorf("second prune: %d pruned, %d rounds; want 7, 67", got, len(st.Rounds))
	}
}

// TestParseStatePrunedRounds: a state file whose pruned_rounds holds a
// negative count or an outcome that is never pruned (an accepted round,
// which guards the ledger) is refused naming the entry; the quiet outcomes
// read.
func TestParseStatePrunedRounds(t *testing.T) {
	for _, tc := range []struct{ pruned, want string }{
		{`{"failed":-3}`, `pruned_rounds "failed": -3`},
		{`{"accepted":2}`, `pruned_rounds "accepted": 2`},
		{`{"failed":3,"abandoned":1}`, ""},
	} {
		_, err := parseState("state.json", []byte(`{"version":1,"pruned_rounds":`+tc.pruned+`}`))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.pruned, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error naming %s", tc.pruned, err, tc.want)
		}
	}
}
