package sim

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// secureData is CDNOW split over 10 merchants (SplitCDNOW, seed 1).
func secureData(t *testing.T) *Data {
	t.Helper()
	ev := cdnowEvents(t)
	split, err := SplitCDNOW(ev, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	var do DataOptions
	do.TrainCutoffs, do.TestCutoff = ReferenceCutoffs()
	d, err := PrepareSplit(ev, split, do)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFederateSecureSumOfSurvivors: one round, every customer sampled (q = 1),
// encodings without noise, 3 of 10 merchants dropping after masking (30%),
// the 7 survivors attesting the unmask request (consistency check on). The
// server's step must be the one computed here directly from the 7 survivors'
// clipped per-customer gradients (hazard.CustomerLoss, dp.ClipL2), within the
// encoding's rounding: less than γ per customer in each rotated coordinate,
// so at most γ·K·√d in L2 for K customers.
func TestFederateSecureSumOfSurvivors(t *testing.T) {
	d := secureData(t)
	opt := SecureOptions{Rounds: 1, SamplingRate: 1, ClipNorm: 1, LearningRate: 1, Epsilon: 50, Delta: 1e-6,
		Dropout: 0.3, Seed: 3, noiseless: true}
	res, err := d.FederateSecure(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropouts != 3 || len(res.lastDropped) != 3 {
		t.Fatalf("dropouts %d (%v), want 3", res.Dropouts, res.lastDropped)
	}
	// The round ran the consistency check live rounds run: each of the 7
	// survivors attested the unmask request before any unmasked.
	if len(res.lastAttested) != 7 {
		t.Errorf("%d survivors attested (%v), want all 7: the consistency check must be on", len(res.lastAttested), res.lastAttested)
	}
	// The min cohort defaults to the merchants that do not drop: the noise
	// shares are sized for the 7 that reach the sum.
	if res.Plan.Release.Cohort != 7 {
		t.Errorf("planned cohort %d, want 7", res.Plan.Release.Cohort)
	}
	init, err := hazard.Initial(d.Schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(init.Params))
	g := make([]float64, len(init.Params))
	total, survivors := 0, 0
	for m, rows := range d.Train {
		groups := train.GroupByCustomer(rows)
		total += len(groups)
		if slices.Contains(res.lastDropped, m) {
			continue
		}
		for _, c := range groups {
			clear(g)
			if _, err := init.CustomerLoss(c, g); err != nil {
				t.Fatal(err)
			}
			if _, err := dp.ClipL2(g, 1); err != nil {
				t.Fatal(err)
			}
			for j := range g {
				want[j] += g[j]
			}
			survivors++
		}
	}
	// The divisor is the 10 merchants' counts, each with Gaussian noise of σ 50.
	if sd := 50 * math.Sqrt(10); math.Abs(res.divisor-float64(total)) > 6*sd {
		t.Errorf("divisor %v, want %d ± %v", res.divisor, total, 6*sd)
	}
	var errSq, norm float64
	for j := range want {
		step := init.Params[j] - res.Model.Params[j] // = lr · sum / (q · released count)
		diff := step*res.divisor - want[j]
		errSq += diff * diff
		norm += want[j] * want[j]
	}
	bound := res.Plan.Params.Gamma * float64(survivors) * math.Sqrt(float64(res.Plan.Params.PaddedDim()))
	if math.Sqrt(errSq) > bound {
		t.Errorf("decoded sum off by %g in L2 (sum's norm %g), more than the rounding bound %g", math.Sqrt(errSq), math.Sqrt(norm), bound)
	}
	if math.Sqrt(norm) < 100*bound {
		t.Fatalf("test too weak: the sum's norm %g is not far above the rounding bound %g", math.Sqrt(norm), bound)
	}
}

// TestFederateSecureRefuses: a dropout share that leaves fewer merchants
// than the min cohort is refused before any round.
func TestFederateSecureRefuses(t *testing.T) {
	d := &Data{Train: make([][]feature.Row, 10)}
	for name, o := range map[string]SecureOptions{
		"cohort":  {Rounds: 1, SamplingRate: 0.1, ClipNorm: 1, Epsilon: 1, Delta: 1e-6, MinCohort: 8, Dropout: 0.3},
		"rounds":  {Rounds: 0, SamplingRate: 0.1, ClipNorm: 1, Epsilon: 1, Delta: 1e-6},
		"dropout": {Rounds: 1, SamplingRate: 0.1, ClipNorm: 1, Epsilon: 1, Delta: 1e-6, Dropout: 1},
	} {
		if _, err := d.FederateSecure(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestFederateSecureNormCheck: honest rounds with noise pass the aggregate's
// norm check; a merchant that adds 2^28 grid units (γ·2^28 = 2,048 at
// γ = 2⁻¹⁷) to each of the 128 words of its encoding adds a vector of norm
// 2,048·√128 ≈ 23,000 to the sum (the rotation keeps norms; a constant vector
// rotates back onto one coordinate), far above the bound of about 5,400·C for
// the ≈ 4,700 customers sampled at q = 0.2, and every round is rejected.
func TestFederateSecureNormCheck(t *testing.T) {
	d := secureData(t)
	opt := SecureOptions{Rounds: 2, SamplingRate: 0.2, ClipNorm: 1, LearningRate: 1, Epsilon: 1, Delta: 1e-6, Seed: 4}
	res, err := d.FederateSecure(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 0 {
		t.Errorf("honest run: %d rounds rejected, want 0", res.Rejected)
	}
	if res.Plan.Params.Gamma != 1.0/(1<<17) {
		t.Fatalf("test assumes γ = 2⁻¹⁷, plan has %v", res.Plan.Params.Gamma)
	}
	opt.tamper = func(m int, enc []uint32) {
		if m == 4 {
			for j := range enc {
				enc[j] += 1 << 28
			}
		}
	}
	init, _ := hazard.Initial(d.Schema, 0)
	res, err = d.FederateSecure(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 2 || !slices.Equal(res.Model.Params, init.Params) {
		t.Errorf("tampered run: %d of 2 rounds rejected (model moved: %v), want both rejected and the model unchanged", res.Rejected, !slices.Equal(res.Model.Params, init.Params))
	}
}
