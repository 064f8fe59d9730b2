package main

import (
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/evaluate"
)

// TestApplyClassic: --classic fits BG/NBD locally for a non-private model and
// with DP for a private one, and refuses --out, whose file could not carry
// the BG/NBD parameters.
func TestApplyClassic(t *testing.T) {
	var cfg evaluate.Config
	if err := applyClassic(&cfg, false, ""); err != nil || cfg.Classic != "" {
		t.Errorf("off: classic %q, error %v", cfg.Classic, err)
	}
	if err := applyClassic(&cfg, true, ""); err != nil || cfg.Classic != evaluate.ClassicLocal {
		t.Errorf("non-private: classic %q, error %v; want local", cfg.Classic, err)
	}
	cfg = evaluate.Config{DP: &evaluate.DPOptions{Epsilon: 1, Delta: 1e-6}}
	if err := applyClassic(&cfg, true, ""); err != nil || cfg.Classic != evaluate.ClassicDP {
		t.Errorf("private: classic %q, error %v; want dp", cfg.Classic, err)
	}
	if err := applyClassic(&cfg, true, "model.json"); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Errorf("with --out: error %v, want one naming --out", err)
	}
}
