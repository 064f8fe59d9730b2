package hazard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
)

// FileFormat and FileVersion identify a model file. Version 2 adds
// rhythm_weights (the rhythm term, rhythm.go), version 3 own_day_weight (the
// own-rhythm day, ownday.go); a model is written with the lowest version
// that holds what it has, so that older builds keep reading it, and every
// version is read.
const (
	FileFormat  = "kairos-hazard-model"
	FileVersion = 3
)

// Errors a caller of Unmarshal acts on.
var (
	// ErrSchemaMismatch: the file was trained on a different feature schema.
	ErrSchemaMismatch = errors.New("feature schema hash mismatch")
	// ErrUnknownVersion: the file's format or version is not one this build reads.
	ErrUnknownVersion = errors.New("unknown model file format or version")
)

// fileModel is the JSON layout of a model file. Parameters are split by role so
// that the file explains itself.
type fileModel struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Kind     string          `json:"kind"`
	Horizon  int             `json:"horizon"`
	Hidden   int             `json:"hidden,omitempty"`
	Schema   feature.Schema  `json:"feature_schema"`
	Std      Standardization `json:"standardization"`
	Baseline []float64       `json:"baseline_logits"`
	Weights  []float64       `json:"weights,omitempty"`        // linear
	W1       []float64       `json:"hidden_weights,omitempty"` // mlp, Hidden×d row major
	C1       []float64       `json:"hidden_bias,omitempty"`    // mlp
	W2       []float64       `json:"output_weights,omitempty"` // mlp
	Rhythm   []float64       `json:"rhythm_weights,omitempty"` // version 2
	OwnDay   float64         `json:"own_day_weight,omitempty"` // version 3
	Training Metadata        `json:"training"`
}

// MarshalJSON encodes m as a self-describing, versioned model file.
func (m *Model) MarshalJSON() ([]byte, error) {
	if m.Kind == KindWide {
		return nil, errors.New("hazard model: the scratch kind wide is not a model file kind")
	}
	f := fileModel{
		Format: FileFormat, Version: 1, Kind: m.Kind, Horizon: m.Horizon, Hidden: m.Hidden,
		Schema: m.Schema, Std: m.Std, Baseline: m.Params[:m.Horizon], Training: m.Training,
	}
	w := m.Params[m.Horizon:]
	if m.rhythm.on {
		f.Version, f.Rhythm = 2, w[len(w)-RhythmTerms:]
		w = w[:len(w)-RhythmTerms]
	}
	if m.ownDayWeight > 0 {
		f.Version, f.OwnDay = 3, m.ownDayWeight
	}
	if m.Kind == KindMLP {
		d, H := m.Schema.Len(), m.Hidden
		f.W1, f.C1, f.W2 = w[:H*d], w[H*d:H*d+H], w[H*d+H:]
	} else {
		f.Weights = w
	}
	return json.Marshal(f)
}

// Unmarshal decodes a model file and checks it completely: format and version
// (ErrUnknownVersion), the schema hash against both the file's own names and
// wantHash (ErrSchemaMismatch; an empty wantHash skips only the latter), shapes,
// and that every number is finite.
func Unmarshal(data []byte, wantHash string) (*Model, error) {
	const op = "load hazard model"
	var f fileModel
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if f.Format != FileFormat || f.Version < 1 || f.Version > FileVersion {
		return nil, fmt.Errorf("%s: %w: format %q version %d (want %q version 1..%d)", op, ErrUnknownVersion, f.Format, f.Version, FileFormat, FileVersion)
	}
	switch {
	case f.Version == 1 && f.Rhythm != nil:
		return nil, fmt.Errorf("%s: version 1 file has rhythm_weights (a version 2 field)", op)
	case f.Version == 2 && len(f.Rhythm) != RhythmTerms:
		return nil, fmt.Errorf("%s: version 2 file has %d rhythm_weights, want %d", op, len(f.Rhythm), RhythmTerms)
	case f.Version < 3 && f.OwnDay != 0:
		return nil, fmt.Errorf("%s: version %d file has own_day_weight (a version 3 field)", op, f.Version)
	case f.Version == 3 && f.Rhythm != nil && len(f.Rhythm) != RhythmTerms:
		return nil, fmt.Errorf("%s: version 3 file has %d rhythm_weights, want %d", op, len(f.Rhythm), RhythmTerms)
	}
	if got := f.Schema.ComputeHash(); got != f.Schema.Hash {
		return nil, fmt.Errorf("%s: %w: file's schema hash %s does not match its feature names (%s)", op, ErrSchemaMismatch, f.Schema.Hash, got)
	}
	if wantHash != "" && f.Schema.Hash != wantHash {
		return nil, fmt.Errorf("%s: %w: model has %s, features have %s", op, ErrSchemaMismatch, f.Schema.Hash, wantHash)
	}
	d := len(f.Schema.Names)
	if len(f.Schema.Transforms) != d {
		return nil, fmt.Errorf("%s: schema has %d names and %d transforms", op, d, len(f.Schema.Transforms))
	}
	if f.Horizon != model.Horizon || len(f.Baseline) != f.Horizon {
		return nil, fmt.Errorf("%s: horizon %d with %d baseline logits (want %d)", op, f.Horizon, len(f.Baseline), model.Horizon)
	}
	if len(f.Std.Mean) != d || len(f.Std.Scale) != d {
		return nil, fmt.Errorf("%s: standardization has %d/%d entries, schema has %d features", op, len(f.Std.Mean), len(f.Std.Scale), d)
	}
	for j, s := range f.Std.Scale {
		if !(s > 0) {
			return nil, fmt.Errorf("%s: standardization scale %d is %v, want > 0", op, j, s)
		}
	}
	m := &Model{Kind: f.Kind, Horizon: f.Horizon, Schema: f.Schema, Std: f.Std, Training: f.Training, gate: f.Schema.Gates()}
	m.Params = append(m.Params, f.Baseline...)
	switch f.Kind {
	case KindLinear:
		if len(f.Weights) != d || f.Hidden != 0 || f.W1 != nil || f.C1 != nil || f.W2 != nil {
			return nil, fmt.Errorf("%s: linear model needs %d weights and no hidden layer, got %d weights", op, d, len(f.Weights))
		}
		m.Params = append(m.Params, f.Weights...)
	case KindMLP:
		H := f.Hidden
		if H < 1 || H > 4096 || len(f.W1) != H*d || len(f.C1) != H || len(f.W2) != H || f.Weights != nil {
			return nil, fmt.Errorf("%s: mlp with hidden %d and %d features has wrong parameter shapes", op, H, d)
		}
		m.Hidden = H
		m.Params = append(append(append(m.Params, f.W1...), f.C1...), f.W2...)
	default:
		return nil, fmt.Errorf("%s: unknown kind %q (want linear or mlp)", op, f.Kind)
	}
	if f.Rhythm != nil {
		if err := m.EnableRhythm(); err != nil {
			return nil, fmt.Errorf("%s: rhythm_weights: %w", op, err)
		}
		copy(m.Params[m.rhythmStart():], f.Rhythm)
	}
	if f.OwnDay != 0 {
		if err := m.SetOwnDay(f.OwnDay); err != nil {
			return nil, fmt.Errorf("%s: own_day_weight: %w", op, err)
		}
	}
	for _, v := range [][]float64{m.Params, f.Std.Mean, f.Std.Scale} {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%s: parameter is not finite", op)
			}
		}
	}
	return m, nil
}
