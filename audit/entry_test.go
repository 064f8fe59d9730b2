package audit_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// The vectors below were computed independently with Python's hashlib, hmac
// and struct modules and the pyca/cryptography Ed25519 implementation,
// following the encoding in the package documentation.
const (
	vecHMACKey    = "0123456789abcdef"
	vecIdentifier = "hmac-sha256:5d8b850fe562a456e1ef117bf4a8babfbfeb1865f32c710e15a65cd80ff3a5da" // HMAC of "m-42"
	vecHash1      = "2c61805a20595e685aa8c3abb287a3ea3c61635c5d568ba50b9818ab803f6acc"
	vecHash2      = "ec37269625cc9fd941344f4b9b1e8d582bc94fb6ded2a064b17f8140efe39c85"
	vecCheckpoint = "01000000066b6169726f730000000000000002ec37269625cc9fd941344f4b9b1e8d582bc94fb6ded2a064b17f8140efe39c850000019b7ca98f30"
	vecSignature  = "07fb7bc2699dff92eb9f0e33ba6b77cf51cb9f642c96a2382fac089697d576e35034a9ad215af65a167e324ae9d613abe6deff8ac561216af4b1922c765a8d03"
)

// vecKey is the Ed25519 key with seed 01 02 … 20.
func vecKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return ed25519.NewKeyFromSeed(seed)
}

var vecTime = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

// vecEntries returns the two vector entries, chained, and a checkpoint at 2.
func vecEntries(t *testing.T) ([]audit.Entry, audit.Checkpoint) {
	t.Helper()
	e1 := audit.Entry{
		Seq: 1, Time: vecTime, Actor: "admin:alice", Action: "merchant.enrol", Object: "merchant/m-42",
		Outcome:     audit.OutcomeOK,
		Identifiers: map[string]string{"merchant": vecIdentifier},
		Details:     map[string]string{"region": "eu", "b": "2"},
	}
	e1.Hash = audit.EntryHash(e1.PrevHash, &e1)
	e2 := audit.Entry{
		Seq: 2, Time: vecTime.Add(time.Millisecond), Actor: "partner:crm", Action: "predict",
		Outcome: audit.OutcomeDenied, Reason: "scope missing", PrevHash: e1.Hash,
	}
	e2.Hash = audit.EntryHash(e2.PrevHash, &e2)
	c := audit.Checkpoint{LogID: "kairos", Seq: 2, Hash: e2.Hash, Time: vecTime.Add(2 * time.Millisecond)}
	audit.SignCheckpoint(vecKey(), &c)
	return []audit.Entry{e1, e2}, c
}

func TestVectors(t *testing.T) {
	if got := audit.HashIdentifier([]byte(vecHMACKey), "m-42"); got != vecIdentifier {
		t.Errorf("HashIdentifier = %s, want %s", got, vecIdentifier)
	}
	es, c := vecEntries(t)
	for _, tc := range []struct{ name, got, want string }{
		{"hash 1", es[0].Hash.String(), vecHash1},
		{"hash 2", es[1].Hash.String(), vecHash2},
		{"checkpoint message", hex.EncodeToString(audit.CheckpointMessage(&c)), vecCheckpoint},
		{"signature", hex.EncodeToString(c.Signature), vecSignature},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if !audit.VerifyCheckpoint(vecKey().Public().(ed25519.PublicKey), &c) {
		t.Error("VerifyCheckpoint(vector) = false, want true")
	}
}

// TestCanonicalInjective checks that moving bytes between adjacent fields,
// which a plain concatenation would not notice, changes the hash.
func TestCanonicalInjective(t *testing.T) {
	base := audit.Entry{Seq: 1, Time: vecTime, Actor: "ab", Action: "c", Outcome: audit.OutcomeOK,
		Details: map[string]string{"k": "v"}}
	variants := []audit.Entry{base, base, base, base, base}
	variants[1].Actor, variants[1].Action = "a", "bc"
	variants[2].Details = map[string]string{"kv": ""}
	variants[3].Details = map[string]string{"k": "v", "": ""}
	variants[4].Object, variants[4].Reason = "", "\x00"
	seen := map[audit.Hash]int{}
	for i := range variants {
		h := audit.EntryHash(audit.Hash{}, &variants[i])
		if j, ok := seen[h]; ok {
			t.Errorf("variants %d and %d hash alike: %s", j, i, h)
		}
		seen[h] = i
	}
	// Map order must not matter: Go randomises iteration, so repeat.
	m := map[string]string{}
	for i := range 50 {
		m[strings.Repeat("x", i)] = "v"
	}
	e := base
	e.Details = m
	want := audit.EntryHash(audit.Hash{}, &e)
	for range 20 {
		if got := audit.EntryHash(audit.Hash{}, &e); got != want {
			t.Fatalf("EntryHash differs between calls: %s, %s", got, want)
		}
	}
}
