package protocol

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
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
	if u := validUpdate(); u.Validate(3, TrainingPlan{}) != nil {
		t.Fatalf("valid update: got %v, want nil", u.Validate(3, TrainingPlan{}))
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
		if err := u.Validate(3, TrainingPlan{}); !errors.Is(err, ErrInvalidUpdate) {
			t.Errorf("%s: got %v, want ErrInvalidUpdate", tc.name, err)
		}
	}
}

// TestValidateEvaluation: an evaluation must match its round's plan, and an
// evaluation-only round takes nothing else.
func TestValidateEvaluation(t *testing.T) {
	cut := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	ep := &EvaluationPlan{Cutoff: cut, Edges: []float64{0.1, 0.5}, Sigma: 10}
	ev := func() *Evaluation {
		return &Evaluation{Cutoff: cut, Counts: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, Sigma: 10.005}
	}
	withEval := validUpdate()
	withEval.Evaluation = ev()
	if err := withEval.Validate(3, TrainingPlan{Steps: 10, Evaluation: ep}); err != nil {
		t.Fatalf("update with its evaluation: %v", err)
	}
	only := Update{Version: Version, Round: "round-000002", Merchant: "m1", Evaluation: ev()}
	onlyPlan := TrainingPlan{Evaluation: ep}
	if !onlyPlan.EvaluationOnly() {
		t.Fatal("a plan with no steps and an evaluation is not evaluation-only")
	}
	if err := only.Validate(3, onlyPlan); err != nil {
		t.Fatalf("evaluation-only update: %v", err)
	}
	cases := []struct {
		name string
		u    func() Update
		plan TrainingPlan
	}{
		{"missing evaluation", validUpdate, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"unrequested evaluation", func() Update { u := validUpdate(); u.Evaluation = ev(); return u }, TrainingPlan{}},
		{"other cutoff", func() Update {
			u := validUpdate()
			u.Evaluation = ev()
			u.Evaluation.Cutoff = cut.Add(time.Hour)
			return u
		}, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"too few cells", func() Update {
			u := validUpdate()
			u.Evaluation = ev()
			u.Evaluation.Counts = u.Evaluation.Counts[:8]
			return u
		}, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"less noise", func() Update { u := validUpdate(); u.Evaluation = ev(); u.Evaluation.Sigma = 9.9; return u }, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"NaN noise", func() Update { u := validUpdate(); u.Evaluation = ev(); u.Evaluation.Sigma = math.NaN(); return u }, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"NaN cell", func() Update { u := validUpdate(); u.Evaluation = ev(); u.Evaluation.Counts[4] = math.NaN(); return u }, TrainingPlan{Steps: 10, Evaluation: ep}},
		{"delta in evaluation-only round", func() Update { u := only; u.Evaluation = ev(); u.Delta = []float64{1, 2, 3}; return u }, onlyPlan},
		{"count in evaluation-only round", func() Update { u := only; u.Evaluation = ev(); u.Customers.Value = 5; return u }, onlyPlan},
	}
	for _, tc := range cases {
		u := tc.u()
		if err := u.Validate(3, tc.plan); !errors.Is(err, ErrInvalidUpdate) {
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
	evalPlan := &EvaluationPlan{Cutoff: time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC), Edges: []float64{0.1, 0.5}, Sigma: 10}
	f.Add([]byte(`{"version":1,"round":"r","merchant":"m","evaluation":{"cutoff":"1998-03-01T00:00:00Z","counts":[1,2,3,4,5,6,7,8,9],"sigma":10}}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		var u Update
		if json.Unmarshal(data, &u) != nil {
			return
		}
		// Against plans that ask for an evaluation (with and without training):
		// no panic, and an accepted evaluation is finite with the plan's shape.
		for _, p := range []TrainingPlan{{Evaluation: evalPlan}, {Steps: 1, Evaluation: evalPlan}} {
			if err := u.Validate(n, p); err == nil {
				e := u.Evaluation
				if e == nil || len(e.Counts) != 9 || !(e.Sigma >= 10*(1-1e-9)) || math.IsInf(e.Sigma, 0) {
					t.Fatalf("accepted evaluation %+v", e)
				}
				for _, c := range e.Counts {
					if math.IsNaN(c) || math.IsInf(c, 0) {
						t.Fatalf("accepted non-finite count %v", c)
					}
				}
			} else if !errors.Is(err, ErrInvalidUpdate) {
				t.Fatalf("error %v does not match ErrInvalidUpdate", err)
			}
		}
		if err := u.Validate(n, TrainingPlan{}); err != nil {
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
