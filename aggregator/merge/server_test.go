package merge

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestServerDefaults(t *testing.T) {
	tests := []struct {
		in, want ServerOptions
	}{
		{ServerOptions{}, ServerOptions{Optimizer: ServerFedAdam, LR: 0.01, Tau: 1e-3}},
		{ServerOptions{Optimizer: ServerFedAvg}, ServerOptions{Optimizer: ServerFedAvg, LR: 1, Tau: 1e-3}},
		{ServerOptions{Optimizer: ServerFedAdam, LR: 0.2, Tau: 0.5}, ServerOptions{Optimizer: ServerFedAdam, LR: 0.2, Tau: 0.5}},
	}
	for _, tt := range tests {
		if got := tt.in.WithDefaults(); got != tt.want {
			t.Errorf("%+v with defaults: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
	a := NewAdam(1, 1)
	if a.Beta1 != 0.9 || a.Beta2 != 0.99 {
		t.Errorf("adam moment decays: got (%v, %v), want the paper's (0.9, 0.99)", a.Beta1, a.Beta2)
	}
}

func TestServerFedAdamTwoStepsClosedForm(t *testing.T) {
	// The default step (η = 0.01, β₁ = 0.9, β₂ = 0.99, τ = 0.001), worked by hand,
	// with the state stored and reloaded between the rounds as the aggregator does.
	// Coordinate 0, Δ = 0.1 then 0.01:
	//   m = 0.01, v = 0.0001, √v = 0.01: x += 0.01·0.01/0.011 = 1/110
	//   m = 0.009 + 0.001 = 0.01, v = 0.000099 + 0.000001 = 0.0001: x += 1/110
	// Coordinate 1, Δ = −0.3 then +0.03 (the second update points back up):
	//   m = −0.03, v = 0.0009, √v = 0.03: x += 0.01·(−0.03)/0.031 = −3/310
	//   m = −0.027 + 0.003 = −0.024, v = 0.000891 + 0.000009 = 0.0009: x += −2.4/310
	// so the momentum still moves it down: x₁ = −2 − 5.4/310.
	p := []float64{1, -2}
	var state []byte
	for _, delta := range [][]float64{{0.1, -0.3}, {0.01, 0.03}} {
		s, err := NewServer(ServerOptions{}, state)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Step(p, delta); err != nil {
			t.Fatal(err)
		}
		if state, err = s.State(); err != nil {
			t.Fatal(err)
		}
	}
	want := []float64{1 + 2.0/110, -2 - 5.4/310}
	if !near(p, want, 1e-15) {
		t.Errorf("after two steps: got %v, want %v", p, want)
	}
	s, err := NewServer(ServerOptions{}, state)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "fedadam(lr=0.01, tau=0.001, t=2)"; got != want {
		t.Errorf("description: got %q, want %q", got, want)
	}
}

func TestServerFedAvgStep(t *testing.T) {
	tests := []struct {
		opt  ServerOptions
		want []float64
		desc string
	}{
		{ServerOptions{Optimizer: ServerFedAvg}, []float64{1.5, -2.25}, "server sgd(lr=1)"},
		{ServerOptions{Optimizer: ServerFedAvg, LR: 0.5}, []float64{1.25, -2.125}, "server sgd(lr=0.5)"},
	}
	for _, tt := range tests {
		s, err := NewServer(tt.opt, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := []float64{1, -2}
		if err := s.Step(p, []float64{0.5, -0.25}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.opt, p, tt.want)
		}
		if got := s.String(); got != tt.desc {
			t.Errorf("%+v description: got %q, want %q", tt.opt, got, tt.desc)
		}
		if st, err := s.State(); err != nil || string(st) != "{}" {
			t.Errorf("%+v state: got %q, %v, want {}", tt.opt, st, err)
		}
	}
}

func TestServerErrors(t *testing.T) {
	for _, opt := range []ServerOptions{
		{Optimizer: "sgd"},
		{LR: -1},
		{Tau: math.Inf(1)},
		{Optimizer: ServerFedAvg, LR: math.NaN()},
	} {
		if _, err := NewServer(opt, nil); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: got %v, want ErrOptions", opt, err)
		}
	}
	if _, err := NewServer(ServerOptions{}, []byte(`{"lr":`)); err == nil {
		t.Error("truncated state: got nil error")
	}
	if _, err := NewServer(ServerOptions{}, []byte(`{"lr":0.01,"beta1":1,"beta2":0.99,"tau":0.001}`)); !errors.Is(err, ErrOptions) {
		t.Errorf("state with beta1 = 1: got %v, want ErrOptions", err)
	}
	for _, opt := range []ServerOptions{{}, {Optimizer: ServerFedAvg}} {
		s, err := NewServer(opt, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ p, d []float64 }{
			{[]float64{1, 2}, []float64{1}},
			{[]float64{1, 2}, []float64{1, math.NaN()}},
			{[]float64{math.Inf(-1), 2}, []float64{1, 1}},
		} {
			p := slices.Clone(tt.p)
			if err := s.Step(p, tt.d); err == nil {
				t.Errorf("%s step %v by %v: got nil error", opt.WithDefaults().Optimizer, tt.p, tt.d)
			}
			if !slices.Equal(p, tt.p) {
				t.Errorf("%s step %v by %v: params changed to %v", opt.WithDefaults().Optimizer, tt.p, tt.d, p)
			}
		}
	}
}
