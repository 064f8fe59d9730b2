package protocol

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func validUpdate() Update {
	return Update{
		Version: Version, Round: "round-000001", Merchant: "m1", BaseVersion: 1, SchemaHash: "sha256:ab",
		Delta:     []float64{0.1, -0.2, 0},
		Release:   Release{SamplingRate: 0.05, NoiseMultiplier: 1.1, Steps: 10, ClipNorm: 1},
		Customers: NoisyCount{Value: 1234.5, Sigma: 50},
	}
}

// TestValidate mutates one field of a valid update at a time.
func TestValidate(t *testing.T) {
	if u := validUpdate(); u.Validate(3) != nil {
		t.Fatalf("valid update: got %v, want nil", u.Validate(3))
	}
	cases := []struct {
		name   string
		mutate func(*Update)
	}{
		{"version", func(u *Update) { u.Version = 2 }},
		{"no round", func(u *Update) { u.Round = "" }},
		{"no merchant", func(u *Update) { u.Merchant = "" }},
		{"short delta", func(u *Update) { u.Delta = u.Delta[:2] }},
		{"long delta", func(u *Update) { u.Delta = append(u.Delta, 0) }},
		{"zero steps", func(u *Update) { u.Release.Steps = 0 }},
		{"zero sampling rate", func(u *Update) { u.Release.SamplingRate = 0 }},
		{"sampling rate above 1", func(u *Update) { u.Release.SamplingRate = 1.5 }},
		{"NaN sampling rate", func(u *Update) { u.Release.SamplingRate = math.NaN() }},
		{"zero noise", func(u *Update) { u.Release.NoiseMultiplier = 0 }},
		{"infinite noise", func(u *Update) { u.Release.NoiseMultiplier = math.Inf(1) }},
		{"NaN noise", func(u *Update) { u.Release.NoiseMultiplier = math.NaN() }},
		{"negative clip", func(u *Update) { u.Release.ClipNorm = -1 }},
		{"infinite clip", func(u *Update) { u.Release.ClipNorm = math.Inf(1) }},
		{"NaN count", func(u *Update) { u.Customers.Value = math.NaN() }},
		{"infinite count", func(u *Update) { u.Customers.Value = math.Inf(-1) }},
		{"noiseless count", func(u *Update) { u.Customers.Sigma = 0 }},
		{"NaN delta", func(u *Update) { u.Delta[1] = math.NaN() }},
		{"infinite delta", func(u *Update) { u.Delta[2] = math.Inf(1) }},
	}
	for _, tc := range cases {
		u := validUpdate()
		u.Delta = append([]float64(nil), u.Delta...)
		tc.mutate(&u)
		if err := u.Validate(3); !errors.Is(err, ErrInvalidUpdate) {
			t.Errorf("%s: got %v, want ErrInvalidUpdate", tc.name, err)
		}
	}
}

func TestRoundStateTerminal(t *testing.T) {
	for s, want := range map[RoundState]bool{
		RoundOpen: false, RoundCollecting: false, RoundAggregating: false, RoundPublished: true, RoundFailed: true,
	} {
		if got := s.Terminal(); got != want {
			t.Errorf("%s.Terminal(): got %v, want %v", s, got, want)
		}
	}
}

// FuzzUpdate decodes arbitrary JSON as an Update and validates it: no panic,
// and an accepted update has only finite numbers in range.
func FuzzUpdate(f *testing.F) {
	b, err := json.Marshal(validUpdate())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, 3)
	f.Add([]byte(`{"version":1,"round":"r","merchant":"m","delta":[1e308,-1e308]}`), 2)
	f.Add([]byte(`{}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		var u Update
		if json.Unmarshal(data, &u) != nil {
			return
		}
		if err := u.Validate(n); err != nil {
			if !errors.Is(err, ErrInvalidUpdate) {
				t.Fatalf("error %v does not match ErrInvalidUpdate", err)
			}
			return
		}
		r := u.Release
		if len(u.Delta) != n || r.Steps < 1 || !(r.SamplingRate > 0 && r.SamplingRate <= 1) || !(r.NoiseMultiplier > 0) ||
			math.IsInf(r.NoiseMultiplier, 0) || !(r.ClipNorm > 0) || math.IsInf(r.ClipNorm, 0) || !(u.Customers.Sigma > 0) {
			t.Fatalf("accepted %+v", u)
		}
		for _, v := range u.Delta {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted non-finite delta %v", v)
			}
		}
	})
}
