package sim

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/merge"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

func envF(k string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return v
	}
	return def
}

func envI(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// TestExplore is a tuning harness: KAIROS_EXPLORE=1 go test -run Explore -v.
func TestExplore(t *testing.T) {
	if os.Getenv("KAIROS_EXPLORE") == "" {
		t.Skip("set KAIROS_EXPLORE=1")
	}
	d := cdnowData(t)
	ctx := context.Background()
	if os.Getenv("KAIROS_CENTRAL") != "" {
		_, sc, err := d.Centralized(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("centralized %+v", sc)
	}
	if os.Getenv("KAIROS_CENTRAL_FIXED") != "" {
		var rows []feature.Row
		for _, r := range d.Train {
			rows = append(rows, r...)
		}
		std := hazard.FixedStandardization(d.Schema)
		m, _, err := hazard.Train(ctx, d.Schema, rows, hazard.TrainOptions{EarlyStopping: true, L2: 1e-4, Seed: 1, Std: &std})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := d.Evaluate(m, -1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("centralized, fixed standardisation %+v", sc)
		return
	}
	opt := FedOptions{
		Rounds: envI("R", 20), Steps: envI("S", 10), SamplingRate: envF("Q", 0.05), ClipNorm: envF("C", 1),
		LearningRate: envF("LR", 0.1), L2: envF("L2", 0), Optimizer: os.Getenv("OPT"), Anneal: os.Getenv("ANNEAL") != "", Average: envF("AVG", 0),
		Epsilon: envF("EPS", 1), Delta: 1e-6, Server: os.Getenv("SERVER"), ServerLR: envF("SLR", 0), Tau: envF("TAU", 0),
		Merge: merge.Options{Method: os.Getenv("MERGE"), TrimFraction: envF("TRIM", 0), NormBound: envF("NB", 0)},
	}
	start := time.Now()
	res, err := d.Federate(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("median norms %.3f", res.MedianNorm)
	t.Logf("federated z=%.3f eps=%v %+v (%v)", res.NoiseMultiplier, res.Epsilon, res.Pooled, time.Since(start))
	if os.Getenv("LOCAL") != "" {
		for _, f := range strings.Split(os.Getenv("LOCAL"), ",") {
			m, _ := strconv.Atoi(f)
			o := opt
			o.Merchants = []int{m}
			start := time.Now()
			r, err := d.Federate(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			own, _ := d.Evaluate(r.Model, m)
			t.Logf("local %d (%d customers) %+v own %+v (%v)", m, d.Customers[m], r.Pooled, own, time.Since(start))
		}
	}
}

// TestRepeat runs Simulate REPS times (KAIROS_EXPLORE=1) and prints the spread.
func TestRepeat(t *testing.T) {
	if os.Getenv("KAIROS_EXPLORE") == "" {
		t.Skip("set KAIROS_EXPLORE=1")
	}
	d := cdnowData(t)
	opt := DefaultFedOptions()
	opt.Rounds, opt.Steps, opt.LearningRate = envI("R", opt.Rounds), envI("S", opt.Steps), envF("LR", opt.LearningRate)
	opt.ClipNorm, opt.SamplingRate = envF("C", opt.ClipNorm), envF("Q", opt.SamplingRate)
	opt.Average, opt.WeightPower = envF("AVG", 0), envF("WP", 0)
	if v := os.Getenv("SERVER"); v != "" {
		opt.Server, opt.ServerLR, opt.Tau = v, envF("SLR", 0), envF("TAU", 0)
	}
	for rep := range envI("REPS", 3) {
		r, err := d.Simulate(context.Background(), Options{Fed: opt, SkipCentralized: true})
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("rep %d fed %.4f local", rep, r.Federated.AUC30)
		for _, m := range r.Merchants {
			line += fmt.Sprintf(" %.4f", m.LocalOnly.AUC30)
		}
		t.Log(line)
	}
}
