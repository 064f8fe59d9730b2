package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/suite"
)

// Scratch environment variables of `kairos eval --suite`, for measurement
// only (docs/benchmarks.md, "A nonlinear score across thirteen validation
// splits"); unset, nothing changes.
//
//	KAIROS_SCRATCH_MODELS="name:key=value,…;name2:…" adds Kairos models to the
//	  suite, each starting from the MLP's settings (evaluate.DefaultMLPOptions)
//	  with keys kind (linear, mlp, wide), hidden, l2, l2h (TrainOptions.L2Hidden),
//	  lr, epochs, rhythm (1: TrainOptions.Rhythm), ownday (0: no own-rhythm
//	  day, which those settings fit).
//	KAIROS_SCRATCH_ONLY=1 keeps only the default model "hazard" besides them
//	  (no 16-unit MLP row, no baselines).
//	KAIROS_SCRATCH_DUMP=dir writes every Kairos model's test predictions,
//	  dir/<data set>--<model>.tsv (customer, P(buy within 30 days), bought).

// scratchModels parses KAIROS_SCRATCH_MODELS.
func scratchModels() ([]suite.Model, error) {
	spec := os.Getenv("KAIROS_SCRATCH_MODELS")
	if spec == "" {
		return nil, nil
	}
	var out []suite.Model
	for _, part := range strings.Split(spec, ";") {
		name, kv, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("KAIROS_SCRATCH_MODELS: %q: want name:key=value,…", part)
		}
		o := evaluate.DefaultMLPOptions()
		for _, f := range strings.Split(kv, ",") {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("KAIROS_SCRATCH_MODELS: %s: %q: want key=value", name, f)
			}
			switch k {
			case "kind":
				o.Kind = v
				continue
			case "rhythm":
				o.Rhythm = v == "1"
				continue
			case "ownday":
				o.OwnDay = v == "1"
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("KAIROS_SCRATCH_MODELS: %s: %s: %w", name, k, err)
			}
			switch k {
			case "hidden":
				o.Hidden = int(x)
			case "l2":
				o.L2 = x
			case "l2h":
				o.L2Hidden = x
			case "lr":
				o.LearningRate = x
			case "epochs":
				o.Epochs = int(x)
			default:
				return nil, fmt.Errorf("KAIROS_SCRATCH_MODELS: %s: unknown key %q", name, k)
			}
		}
		if o.Kind == hazard.KindLinear {
			o.Hidden = 0
		}
		out = append(out, suite.Model{Name: name, Hazard: o})
	}
	return out, nil
}

// applyScratch adds the scratch models to models and returns the models and
// baselines to run.
func applyScratch(models []suite.Model, baselines []string) ([]suite.Model, []string, error) {
	extra, err := scratchModels()
	if err != nil {
		return nil, nil, err
	}
	if os.Getenv("KAIROS_SCRATCH_ONLY") == "1" {
		models, baselines = models[:1], nil
	}
	return append(models, extra...), baselines, nil
}
