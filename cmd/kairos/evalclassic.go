package main

import (
	"errors"

	"github.com/kairos-fl/kairos/model/evaluate"
)

// applyClassic sets cfg's classic features for `kairos eval --classic`: a
// local BG/NBD fit for a non-private model, a DP fit within the budget for a
// private one. A model with them cannot be written yet (--out): the model file
// does not carry the BG/NBD parameters its features need.
func applyClassic(cfg *evaluate.Config, on bool, out string) error {
	if !on {
		return nil
	}
	if out != "" {
		return errors.New("--classic cannot be combined with --out: the model file does not carry the BG/NBD parameters its features need")
	}
	cfg.Classic = evaluate.ClassicLocal
	if cfg.DP != nil {
		cfg.Classic = evaluate.ClassicDP
	}
	return nil
}
