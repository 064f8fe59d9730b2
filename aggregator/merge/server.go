package merge

import (
	"encoding/json"
	"fmt"
	"math"
)

// Server optimizers: how the server moves the global model by a round's
// combined update.
const (
	ServerFedAdam = "fedadam" // Adam (Reddi et al. 2021) with the combined update as pseudo-gradient
	ServerFedAvg  = "fedavg"  // θ ← θ + η·Δ (server SGD; η = 1 is plain FedAvg)
)

// The server step's defaults, the single place they are set: the aggregator's
// rounds and the simulator's federations both take them from here.
const (
	DefaultServer       = ServerFedAdam
	DefaultFedAdamLR    = 0.01
	DefaultFedAvgLR     = 1.0
	DefaultFedAdamTau   = 1e-3
	DefaultFedAdamBeta1 = 0.9
	DefaultFedAdamBeta2 = 0.99
)

// ServerOptions configure the server step. Zero fields take the defaults
// (WithDefaults): FedAdam at η = 0.01, τ = 1e-3; η = 1 for FedAvg.
type ServerOptions struct {
	Optimizer string  // ServerFedAdam or ServerFedAvg
	LR        float64 // η, > 0
	Tau       float64 // FedAdam's τ, > 0 (unused by FedAvg)
}

// WithDefaults returns o with its zero fields set to the defaults.
func (o ServerOptions) WithDefaults() ServerOptions {
	if o.Optimizer == "" {
		o.Optimizer = DefaultServer
	}
	if o.LR == 0 {
		o.LR = DefaultFedAvgLR
		if o.Optimizer == ServerFedAdam {
			o.LR = DefaultFedAdamLR
		}
	}
	if o.Tau == 0 {
		o.Tau = DefaultFedAdamTau
	}
	return o
}

// Validate reports whether o (after defaults) names a server optimizer with a
// usable step size and τ.
func (o ServerOptions) Validate() error {
	switch {
	case o.Optimizer != ServerFedAdam && o.Optimizer != ServerFedAvg:
		return fmt.Errorf("%w: server optimizer %q (want %s or %s)", ErrOptions, o.Optimizer, ServerFedAdam, ServerFedAvg)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("%w: server learning rate %v must be finite and > 0", ErrOptions, o.LR)
	case !(o.Tau > 0) || math.IsInf(o.Tau, 0):
		return fmt.Errorf("%w: server tau %v must be finite and > 0", ErrOptions, o.Tau)
	}
	return nil
}

// Server is the server step of a federation, with the state it carries from
// round to round (FedAdam's moments; FedAvg has none).
type Server struct {
	opt  ServerOptions
	adam *Adam // nil for FedAvg
}

// NewServer returns the server step that opt describes (defaults applied),
// resuming from state, a value of State from an earlier round (nil, empty or
// "{}" for a fresh start). A FedAdam state is the whole optimizer, its
// hyper-parameters included, so a resumed run continues exactly as it would
// have without the restart.
func NewServer(opt ServerOptions, state []byte) (*Server, error) {
	opt = opt.WithDefaults()
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("new server step: %w", err)
	}
	s := &Server{opt: opt}
	if opt.Optimizer != ServerFedAdam {
		return s, nil
	}
	s.adam = NewAdam(opt.LR, opt.Tau)
	if len(state) > 0 && string(state) != "{}" {
		if err := json.Unmarshal(state, s.adam); err != nil {
			return nil, fmt.Errorf("new server step: fedadam state: %w", err)
		}
		if err := s.adam.Validate(); err != nil {
			return nil, fmt.Errorf("new server step: fedadam state: %w", err)
		}
	}
	return s, nil
}

// Step moves params in place by combined, the round's merged update. On error
// params and the state are unchanged.
func (s *Server) Step(params, combined []float64) error {
	if s.adam != nil {
		return s.adam.Step(params, combined)
	}
	if len(params) != len(combined) {
		return fmt.Errorf("server step: %w: %d parameters, update has %d", ErrLength, len(params), len(combined))
	}
	for i := range params {
		if math.IsNaN(combined[i]) || math.IsInf(combined[i], 0) {
			return fmt.Errorf("server step: %w: update coordinate %d is %v", ErrNonFinite, i, combined[i])
		}
		if math.IsNaN(params[i]) || math.IsInf(params[i], 0) {
			return fmt.Errorf("server step: %w: parameter %d is %v", ErrNonFinite, i, params[i])
		}
	}
	for i, x := range combined {
		params[i] += s.opt.LR * x
	}
	return nil
}

// State returns the state to store beside the model that the last Step
// produced: FedAdam's optimizer as JSON, "{}" for FedAvg.
func (s *Server) State() ([]byte, error) {
	if s.adam == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(s.adam)
	if err != nil {
		return nil, fmt.Errorf("server step state: %w", err)
	}
	return b, nil
}

// String describes the step as the model lineage records it, e.g.
// "fedadam(lr=0.01, tau=0.001, t=3)" or "server sgd(lr=1)".
func (s *Server) String() string {
	if s.adam != nil {
		return fmt.Sprintf("fedadam(lr=%g, tau=%g, t=%d)", s.adam.LR, s.adam.Tau, s.adam.T)
	}
	return fmt.Sprintf("server sgd(lr=%g)", s.opt.LR)
}
