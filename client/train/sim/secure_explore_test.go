package sim

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestSecureExplore is a tuning harness for FederateSecure on cdnow-100:
// KAIROS_SECURE_EXPLORE=1 [VAL=1] [R=rounds Q=rate LR=rate C=clip DROP=share MINC=n] go test -run SecureExplore -v.
func TestSecureExplore(t *testing.T) {
	if os.Getenv("KAIROS_SECURE_EXPLORE") == "" {
		t.Skip("set KAIROS_SECURE_EXPLORE=1")
	}
	ev := cdnowEvents(t)
	split, err := SplitCDNOW(ev, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	var do DataOptions
	do.TrainCutoffs, do.TestCutoff = ReferenceCutoffs()
	if os.Getenv("VAL") != "" {
		do.TrainCutoffs, do.TestCutoff = ValidationCutoffs()
	}
	d, err := PrepareSplit(ev, split, do)
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultSecureOptions()
	o.Rounds = envI("R", o.Rounds)
	o.SamplingRate = envF("Q", o.SamplingRate)
	o.LearningRate = envF("LR", o.LearningRate)
	o.ClipNorm = envF("C", o.ClipNorm)
	o.Dropout = envF("DROP", 0)
	o.MinCohort = envI("MINC", 0)
	start := time.Now()
	res, err := d.FederateSecure(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("R %d q %v lr %v C %v: AUC30 %.4f  eps %.4f z %.3f bits %d gamma %v deg %d t %d secagg %.1fs total %.1fs",
		o.Rounds, o.SamplingRate, o.LearningRate, o.ClipNorm, res.Pooled.AUC30, res.Plan.Epsilon, res.Plan.NoiseMultiplier,
		res.Plan.Params.Bits, res.Plan.Params.Gamma, res.Degree, res.Threshold, res.SecAggSeconds, time.Since(start).Seconds())
}
