package train

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kairos-fl/kairos/model/hazard"
)

// restandardize returns the parameters of the linear model local rewritten for
// the standardisation of ref (same schema, same layout), so that the two
// models' parameters can be mixed: the rewritten model predicts exactly what
// local does for every feature vector whose gating indicators are 0 or 1 (as
// the feature builder makes them), and its score differs from local's by one
// constant, moved into the baseline hazards.
//
// Why it is exact: local scores Σ_j w_j·[present_j]·(x_j − μ_j)/σ_j and ref
// standardises with (μ'_j, σ'_j). Each term is w_j·σ'_j/σ_j times ref's
// standardised x_j plus [present_j]·c_j, c_j = w_j·(μ'_j − μ_j)/σ_j. An
// ungated feature is always present, so c_j is a constant; a gated feature is
// present exactly when its 0/1 indicator x_k is 1, and x_k = σ'_k·z'_k + μ'_k,
// so c_j moves to the indicator's weight (c_j·σ'_k) and the constant (c_j·μ'_k).
// A constant added to the score and subtracted from every baseline hazard's
// logit leaves every hazard unchanged.
//
// This lets Personalize fit the merchant's own model once, as LocalOnly, and
// use that same fit both as the local-only candidate and inside the blends.
func restandardize(local, ref *hazard.Model) ([]float64, error) {
	d, h := ref.Schema.Len(), ref.Horizon
	switch {
	case local.Kind != hazard.KindLinear || ref.Kind != hazard.KindLinear:
		return nil, fmt.Errorf("restandardize: kinds %s and %s, want linear", local.Kind, ref.Kind)
	case local.Rhythm() || ref.Rhythm():
		return nil, errors.New("restandardize: a model has the rhythm term")
	case local.Schema.Hash != ref.Schema.Hash:
		return nil, fmt.Errorf("restandardize: schemas %.12s… and %.12s… differ", local.Schema.Hash, ref.Schema.Hash)
	case local.Horizon != h || len(local.Params) != h+d || len(ref.Params) != h+d:
		return nil, fmt.Errorf("restandardize: %d and %d parameters, want %d", len(local.Params), len(ref.Params), h+d)
	}
	mu, sd := local.Std, ref.Std
	for j := range d {
		if !(mu.Scale[j] > 0) || !(sd.Scale[j] > 0) {
			return nil, fmt.Errorf("restandardize: feature %s: scales %v and %v, want > 0", ref.Schema.Names[j], mu.Scale[j], sd.Scale[j])
		}
	}
	gates := ref.Schema.Gates()
	p := slices.Clone(local.Params)
	w, wl := p[h:], local.Params[h:]
	var shift float64
	for j := range d {
		w[j] = wl[j] * sd.Scale[j] / mu.Scale[j]
	}
	for j := range d {
		c := wl[j] * (sd.Mean[j] - mu.Mean[j]) / mu.Scale[j]
		k := gates[j]
		if k < 0 {
			shift += c
			continue
		}
		if gates[k] >= 0 {
			return nil, fmt.Errorf("restandardize: feature %s is gated by %s, itself gated", ref.Schema.Names[j], ref.Schema.Names[k])
		}
		w[k] += c * sd.Scale[k]
		shift += c * sd.Mean[k]
	}
	for t := range h {
		p[t] += shift
	}
	return p, nil
}
