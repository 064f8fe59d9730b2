package sim

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// TestExplorePersonalize is a tuning harness for train.Personalize on
// cdnow-100 (KAIROS_EXPLORE=1 go test -run ExplorePersonalize -v): it runs the
// federation once per cutoff set (KAIROS_VALIDATION=1 for ValidationCutoffs),
// keeps the global model in KAIROS_FED_CACHE if set, and prints the merchant
// comparison (and writes the whole report as JSON to KAIROS_PERS_OUT if set).
// KAIROS_EARLIER=1 judges the candidates with a second federation's model that
// has not seen the latest training cutoff (PersonalizeOptions.Earlier), kept in
// KAIROS_EARLIER_CACHE if set.
func TestExplorePersonalize(t *testing.T) {
	if os.Getenv("KAIROS_EXPLORE") == "" {
		t.Skip("set KAIROS_EXPLORE=1")
	}
	ctx := context.Background()
	ev := cdnowEvents(t)
	split, err := SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	var do DataOptions
	do.TrainCutoffs, do.TestCutoff = ReferenceCutoffs()
	if os.Getenv("KAIROS_VALIDATION") != "" {
		do.TrainCutoffs, do.TestCutoff = ValidationCutoffs()
	}
	d, err := PrepareSplit(ev, split, do)
	if err != nil {
		t.Fatal(err)
	}
	global := cachedFederation(t, d, os.Getenv("KAIROS_FED_CACHE"))
	opt := train.PersonalizeOptions{Seed: 1}
	if os.Getenv("KAIROS_EARLIER") != "" {
		// The fair judge: the same federation on the rows of every training
		// cutoff but the latest (a stand-in for the registry version published
		// before that cutoff's labels existed), kept in KAIROS_EARLIER_CACHE.
		last := 0
		for _, rs := range d.Train {
			for _, r := range rs {
				last = max(last, r.Cutoff)
			}
		}
		early := *d
		early.Train = make([][]feature.Row, len(d.Train))
		for m, rs := range d.Train {
			for _, r := range rs {
				if r.Cutoff != last {
					early.Train[m] = append(early.Train[m], r)
				}
			}
		}
		opt.Earlier = cachedFederation(t, &early, os.Getenv("KAIROS_EARLIER_CACHE"))
	}
	start := time.Now()
	rep := ScenarioReport{}
	if rep.AUC30.Federated, err = auc30Of(d, global); err != nil {
		t.Fatal(err)
	}
	if err := d.compareMerchants(ctx, global, split, opt, &rep); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("KAIROS_PERS_OUT"); out != "" {
		// The whole report, per merchant choices included, to compare rules or
		// implementations on one global model.
		b, err := json.MarshalIndent(struct {
			Report      ScenarioReport
			PerMerchant []MerchantResult
		}{rep, rep.PerMerchant}, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("compare %v; fed %.4f local %.4f pers %.4f ge %.3f choices %v", time.Since(start), rep.AUC30.Federated, rep.AUC30.LocalOnlyPooled, rep.AUC30.PersonalizedPooled, rep.PersonalizedGELocal, rep.Choices)
	for _, b := range rep.BySize {
		t.Logf("%-8s %3d  L %.4f F %.4f P %.4f  (P-L %+.4f)  ge %.2f of %d  PR %.4f/%.4f/%.4f  Br %.4f/%.4f/%.4f", b.Bucket, b.Merchants, b.LocalOnly, b.Federated, b.Personalized, b.Personalized-b.LocalOnly, b.PersonalizedGELocal, b.Compared,
			b.PRAUC30.LocalOnly, b.PRAUC30.Federated, b.PRAUC30.Personalized, b.Brier30.LocalOnly, b.Brier30.Federated, b.Brier30.Personalized)
	}
}

// cachedFederation returns the model of d.Federate(DefaultFedOptions()), read
// from cache if that file exists, else trained and written there (cache "":
// trained, not kept).
func cachedFederation(t *testing.T, d *Data, cache string) *hazard.Model {
	t.Helper()
	if b, err := os.ReadFile(cache); err == nil && cache != "" {
		m, err := hazard.Unmarshal(b, "")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	fr, err := d.Federate(context.Background(), DefaultFedOptions())
	if err != nil {
		t.Fatal(err)
	}
	if cache != "" {
		b, err := json.Marshal(fr.Model)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fr.Model
}

func auc30Of(d *Data, m *hazard.Model) (float64, error) {
	sc, err := d.Evaluate(m, -1)
	return sc.AUC30, err
}

// TestExploreRules (KAIROS_EXPLORE=1, KAIROS_FED_CACHE, KAIROS_VALIDATION as
// above) writes, per merchant, every candidate's cross-fitted AUC, gap and SE
// and its test AUC@30 on the merchant's own customers, as JSON lines to
// KAIROS_RULES_OUT, so that selection rules can be compared offline.
func TestExploreRules(t *testing.T) {
	if os.Getenv("KAIROS_EXPLORE") == "" || os.Getenv("KAIROS_RULES_OUT") == "" {
		t.Skip("set KAIROS_EXPLORE=1 and KAIROS_RULES_OUT")
	}
	ctx := context.Background()
	ev := cdnowEvents(t)
	split, err := SplitCDNOW100(ev, 1)
	if err != nil {
		t.Fatal(err)
	}
	var do DataOptions
	do.TrainCutoffs, do.TestCutoff = ReferenceCutoffs()
	if os.Getenv("KAIROS_VALIDATION") != "" {
		do.TrainCutoffs, do.TestCutoff = ValidationCutoffs()
	}
	d, err := PrepareSplit(ev, split, do)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Getenv("KAIROS_FED_CACHE"))
	if err != nil {
		t.Fatal(err)
	}
	global, err := hazard.Unmarshal(b, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(os.Getenv("KAIROS_RULES_OUT"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	enc := json.NewEncoder(out)
	for m := range split.Merchants {
		p, err := train.Personalize(ctx, global, d.Train[m], train.PersonalizeOptions{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		rec := map[string]any{"merchant": m, "customers": split.Merchants[m].Customers, "choice": p.Choice, "reason": p.Reason, "candidates": candidatesJSON(p.Candidates)}
		buyers := 0
		for _, r := range d.Train[m] {
			if r.Label >= 1 {
				buyers++
			}
		}
		rec["train_buyers"] = buyers
		var y []bool
		for i, r := range d.Test {
			if d.TestMerchant[i] == m {
				y = append(y, r.Label >= 1)
			}
		}
		rec["y"] = y
		local, err := train.LocalOnly(ctx, d.Schema, d.Train[m], 1)
		if err != nil {
			t.Fatal(err)
		}
		models := []*hazard.Model{local, global}
		blends := train.DefaultBlends
		if len(p.Candidates) == 0 {
			blends = blends[:1] // the recalibrated global model alone
		}
		for _, a := range blends {
			mod, err := train.FitBlend(ctx, global, d.Train[m], a, train.PersonalizeOptions{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			models = append(models, mod)
		}
		var preds [][]float64
		for _, mod := range models {
			p30, err := d.p30(mod, m)
			if err != nil {
				t.Fatal(err)
			}
			preds = append(preds, p30)
		}
		rec["p30"] = preds // local, global, then the candidates (DefaultBlends; α = 0 alone without candidates)
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
	}
}

// candidatesJSON is cs with a NaN AUC (no buyer/non-buyer pair) as null,
// which JSON can hold.
func candidatesJSON(cs []train.Candidate) []map[string]any {
	var out []map[string]any
	for _, c := range cs {
		var auc any = c.AUC
		if math.IsNaN(c.AUC) {
			auc = nil
		}
		out = append(out, map[string]any{"choice": c.Choice, "blend": c.Blend, "auc": auc, "se": c.SE})
	}
	return out
}
