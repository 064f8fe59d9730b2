package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestEvalCommandJSON runs `kairos eval --dataset cdnow-sample --json --out F`
// and checks the shape of the one JSON object it prints and the model file.
func TestEvalCommandJSON(t *testing.T) {
	if _, err := sharedDataPath("cdnow/CDNOW_sample.txt"); err != nil {
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "model.json")
	cmd := newRootCmd()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetArgs([]string{"eval", "--dataset", "cdnow-sample", "--json", "--out", out})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Dataset      string             `json:"dataset"`
		TestCutoff   string             `json:"test_cutoff"`
		Customers    int                `json:"customers"`
		PositiveRate map[string]float64 `json:"positive_rate"`
		Methods      []struct {
			Name  string             `json:"name"`
			AUC   map[string]float64 `json:"auc"`
			PRAUC map[string]float64 `json:"pr_auc"`
		} `json:"methods"`
	}
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	if dec.More() {
		t.Error("output holds more than one JSON value")
	}
	// CDNOW_sample.txt: 2,357 customers, all first seen in 1997 Q1.
	if got.Dataset != "cdnow-sample" || got.TestCutoff != "1998-03-01" || got.Customers != 2357 {
		t.Errorf("header: got %q %q %d, want cdnow-sample 1998-03-01 2357", got.Dataset, got.TestCutoff, got.Customers)
	}
	var names []string
	for _, m := range got.Methods {
		names = append(names, m.Name)
		for _, h := range []string{"1", "3", "7", "14", "30"} {
			if a, ok := m.AUC[h]; !ok || a <= 0.5 || a > 1 {
				t.Errorf("%s auc@%s: got %v (present %v), want in (0.5, 1]", m.Name, h, a, ok)
			}
		}
	}
	if len(names) != 4 || names[0] != "hazard" {
		t.Errorf("methods: got %v, want hazard, bgnbd, recency, frequency_365", names)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Format string `json:"format"`
		Kind   string `json:"kind"`
	}
	if err := json.Unmarshal(b, &model); err != nil || model.Format != "kairos-hazard-model" || model.Kind != "linear" {
		t.Errorf("model file: got %+v (%v), want a linear kairos-hazard-model", model, err)
	}
}

// TestEvalCommandDP runs `kairos eval --dataset cdnow-sample --dp-epsilon 2 --json`
// and checks the privacy object: the ε charged is at most the target and close to
// it, and the steps follow from the epochs and the sampling rate.
func TestEvalCommandDP(t *testing.T) {
	if _, err := sharedDataPath("cdnow/CDNOW_sample.txt"); err != nil {
		t.Skip(err)
	}
	cmd := newRootCmd()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetArgs([]string{"eval", "--dataset", "cdnow-sample", "--json", "--dp-epsilon", "2", "--dp-delta", "1e-5",
		"--dp-batch", "500", "--dp-epochs", "5", "--dp-clip", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Methods []struct {
			Name string             `json:"name"`
			AUC  map[string]float64 `json:"auc"`
		} `json:"methods"`
		Privacy *struct {
			Target  float64 `json:"target_epsilon"`
			Delta   float64 `json:"delta"`
			Epsilon float64 `json:"epsilon"`
			Q       float64 `json:"sampling_rate"`
			Z       float64 `json:"noise_multiplier"`
			Steps   int     `json:"steps"`
			Clip    float64 `json:"clip"`
			Noisy   float64 `json:"noisy_customers"`
		} `json:"privacy"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	p := got.Privacy
	if p == nil {
		t.Fatal("no privacy object")
	}
	if p.Target != 2 || p.Delta != 1e-5 || p.Clip != 2 || p.Epsilon > 2 || p.Epsilon < 1.99 || !(p.Z > 0) {
		t.Errorf("privacy: got %+v, want ε in [1.99, 2] at δ 1e-5, clip 2, z > 0", *p)
	}
	// 2,357 customers (the count is released with σ = 100); q = 500/ñ, steps = ⌈5/q⌉.
	if wantQ := 500 / math.Round(p.Noisy); math.Abs(p.Q-wantQ) > 1e-9 || p.Steps != int(math.Ceil(5/wantQ-1e-9)) {
		t.Errorf("q %v, steps %d: want %v, %d", p.Q, p.Steps, wantQ, int(math.Ceil(5/wantQ)))
	}
	if len(got.Methods) == 0 || got.Methods[0].Name != "hazard" || !(got.Methods[0].AUC["30"] > 0.6) {
		t.Errorf("methods: got %+v, want hazard first with AUC@30 > 0.6", got.Methods)
	}
}
