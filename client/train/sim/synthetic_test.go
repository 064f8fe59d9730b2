package sim

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
)

func TestSyntheticMerchants(t *testing.T) {
	ms := SyntheticMerchants(Synthetic1000Merchants, 1)
	if len(ms) != 1000 {
		t.Fatalf("got %d merchants, want 1,000", len(ms))
	}
	if again := SyntheticMerchants(1000, 1); !slices.Equal(ms, again) {
		t.Error("seed 1 twice: merchants differ")
	}
	if other := SyntheticMerchants(1000, 2); slices.Equal(ms, other) {
		t.Error("seeds 1 and 2 give the same merchants")
	}
	sizes := make([]int, len(ms))
	ids := map[string]bool{}
	for i, m := range ms {
		sizes[i] = m.Customers
		ids[m.ID] = true
		switch {
		case m.Customers < 20 || m.Customers > 5000:
			t.Errorf("%s: %d customers, want 20..5,000", m.ID, m.Customers)
		case m.MeanGapDays < 10 || m.MeanGapDays > 90, m.GapShape < 1 || m.GapShape > 4:
			t.Errorf("%s: mean gap %v, shape %v, want [10, 90] and [1, 4]", m.ID, m.MeanGapDays, m.GapShape)
		case m.Seasonality < 0 || m.Seasonality >= 0.8 || m.SeasonPeak < 0 || m.SeasonPeak >= 365:
			t.Errorf("%s: seasonality %v peak %v", m.ID, m.Seasonality, m.SeasonPeak)
		}
	}
	if len(ids) != 1000 {
		t.Errorf("%d distinct ids, want 1,000", len(ids))
	}
	// The log-normal's median is 60: over 1,000 draws the sample median lies
	// within 60·e^(±1.1·0.1) (its standard error is about 1.25·1.1/√1000 ≈ 0.04
	// on the log scale; 0.1 is 2.3 of them).
	slices.Sort(sizes)
	if med := float64(sizes[500]); math.Abs(math.Log(med/60)) > 0.11 {
		t.Errorf("median size %v, want about 60", med)
	}
}

// TestSyntheticFederation builds five synthetic merchants and federates them
// through the aggregator service: every round publishes, no merchant spends
// more than ε = 1, and the model ranks the test customers better than chance.
func TestSyntheticFederation(t *testing.T) {
	ms := SyntheticMerchants(5, 3)
	for i := range ms {
		ms[i].Customers = 150 + 25*i
	}
	split, d, err := buildSynthetic(ms, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if d.Customers[i] == 0 || d.Customers[i] > m.Customers {
			t.Errorf("merchant %d: %d training customers of %d", i, d.Customers[i], m.Customers)
		}
	}
	if len(split.Owner) == 0 || len(d.Test) == 0 {
		t.Fatal("no owners or no test rows")
	}
	trainCutoffs, _ := SyntheticCutoffs(false)
	res, err := federateSynthetic(context.Background(), d, split, trainCutoffs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != SyntheticRounds || res.MaxEpsilon > 1+1e-9 || res.MaxEpsilon < 0.5 {
		t.Errorf("published %d rounds (want %d), largest ε %v (want about 1, never above)", res.Published, SyntheticRounds, res.MaxEpsilon)
	}
	auc, err := auc30(d, res.Model)
	if err != nil {
		t.Fatal(err)
	}
	if auc < 0.6 {
		t.Errorf("federated AUC@30 %.4f, want > 0.6 on customers whose recency and cadence predict their next purchase", auc)
	}
	t.Logf("federated AUC@30 %.4f, z %.3f, %d dropouts", auc, res.NoiseMultiplier, res.Dropouts)

	// CompareMerchants against a second computation: the pooled local-only
	// AUC@30 over every test row, each scored by its own merchant's
	// train.LocalOnly, and the bucket counts.
	var rep ScenarioReport
	if err := d.CompareMerchants(context.Background(), res.Model, split, 3, &rep); err != nil {
		t.Fatal(err)
	}
	var p []float64
	var y []bool
	for m := range ms {
		local, err := train.LocalOnly(context.Background(), d.Schema, d.Train[m], 3)
		if err != nil {
			t.Fatal(err)
		}
		var pm []float64
		var ym []bool
		for i, r := range d.Test {
			if d.TestMerchant[i] != m {
				continue
			}
			f, err := local.Score(r.X)
			if err != nil {
				t.Fatal(err)
			}
			pm, ym = append(pm, local.PredictScore(f).Within[len(hazard.Horizons)-1]), append(ym, r.Label >= 1)
		}
		p, y = append(p, pm...), append(y, ym...)
		// The merchant's own row of the report: its test customers, buyers
		// and local-only AUC@30, recomputed.
		got := rep.PerMerchant[m]
		buyers := 0
		for _, b := range ym {
			if b {
				buyers++
			}
		}
		if got.TestCustomers != len(ym) || got.Buyers != buyers || got.Choice == "" {
			t.Errorf("merchant %d: %d test customers, %d buyers, choice %q; want %d, %d and a choice", m, got.TestCustomers, got.Buyers, got.Choice, len(ym), buyers)
		}
		if want, err := metrics.AUC(pm, ym); err == nil && (!got.Scored || math.Abs(got.AUC30.LocalOnly-want) > 1e-12) {
			t.Errorf("merchant %d: local-only AUC@30 %v (scored %v), recomputed %v", m, got.AUC30.LocalOnly, got.Scored, want)
		}
	}
	want, err := metrics.AUC(p, y)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rep.AUC30.LocalOnlyPooled-want) > 1e-12 {
		t.Errorf("pooled local-only AUC@30 %v, recomputed %v", rep.AUC30.LocalOnlyPooled, want)
	}
	merchants, customers := 0, 0
	for _, b := range rep.BySize {
		merchants += b.Merchants
		customers += b.Customers
	}
	// Sizes 150..250: all in the 100-299 bucket.
	if merchants != 5 || customers != len(d.Test) || rep.BySize[1].Merchants != 5 {
		t.Errorf("buckets hold %d merchants and %d customers (100-299: %d), want 5, %d, 5", merchants, customers, rep.BySize[1].Merchants, len(d.Test))
	}
	n := 0
	for _, c := range rep.Choices {
		n += c
	}
	if n != 5 || rep.PersonalizedGELocal < 0 || rep.PersonalizedGELocal > 1 {
		t.Errorf("choices %v (want 5 in all), share %v", rep.Choices, rep.PersonalizedGELocal)
	}
}
