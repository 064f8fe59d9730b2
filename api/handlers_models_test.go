package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// registryService lists the predict fixture's versions as the registry.
type registryService struct{ *predictService }

func (s registryService) ModelPage(ctx context.Context, _ int64, _ int) ([]protocol.ModelVersion, int64, error) {
	mv, err := s.Model(ctx, 1)
	if err != nil {
		return nil, 0, err
	}
	mv.Model = nil
	return []protocol.ModelVersion{mv}, 0, nil
}

// TestModelsContributionsByRole: version 1 was published from m1 (ε 0.42,
// weight 0.7) and m2 (ε 0.31, weight 0.3). GET /v1/models and
// /v1/models/{version} showed every role each contributor's ε and weight,
// although /v1/budgets and /metrics keep per-merchant ε to compliance and
// admin. Now admin and compliance see them; a merchant or a partner app
// gets an empty list marked contributions_redacted, and no ε at all.
func TestModelsContributionsByRole(t *testing.T) {
	pf := newPredictFixture(t, PredictOptions{})
	f := newFixture(t, registryService{pf.svc}, Options{})
	want := []protocol.Contribution{{Merchant: "m1", Epsilon: 0.42, Delta: 1e-6, Weight: 0.7}, {Merchant: "m2", Epsilon: 0.31, Delta: 1e-6, Weight: 0.3}}
	for _, role := range []string{"admin", "compliance", "m1", "partner"} {
		for _, path := range []string{"/v1/models", "/v1/models/1"} {
			rec := f.do(t, "GET", path, f.tokens[role], "", nil)
			if rec.Code != 200 {
				t.Fatalf("%s GET %s: %d %s", role, path, rec.Code, rec.Body)
			}
			var mv protocol.ModelVersion
			if path == "/v1/models" {
				var list modelList
				if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Models) != 1 {
					t.Fatalf("%s GET %s: %v, %s", role, path, err, rec.Body)
				}
				mv = list.Models[0]
			} else if err := json.Unmarshal(rec.Body.Bytes(), &mv); err != nil {
				t.Fatalf("%s GET %s: %v", role, path, err)
			}
			if role == "admin" || role == "compliance" {
				if len(mv.Contributions) != 2 || mv.Contributions[0] != want[0] || mv.Contributions[1] != want[1] || mv.ContributionsRedacted {
					t.Errorf("%s GET %s: contributions %+v (redacted %v), want %+v", role, path, mv.Contributions, mv.ContributionsRedacted, want)
				}
				continue
			}
			if mv.Contributions == nil || len(mv.Contributions) != 0 || !mv.ContributionsRedacted || strings.Contains(rec.Body.String(), `"epsilon"`) {
				t.Errorf("%s GET %s: %s; want an empty contributions list marked redacted, no ε", role, path, rec.Body)
			}
			if mv.Version != 1 || mv.PolicyHash != "sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("%s GET %s: version %d policy %s, want the rest of the entry as is", role, path, mv.Version, mv.PolicyHash)
			}
		}
	}
}

// TestPredictContributionsRedacted: every prediction's provenance carried
// each contributor's ε and weight to every role that may predict (partner
// apps and merchants): the leak GET /v1/models had, through another route.
// Only compliance and admin may see them, and neither may predict, so a
// prediction's provenance never carries them now: an empty list marked
// contributions_redacted, and no ε; single and batch answers alike.
func TestPredictContributionsRedacted(t *testing.T) {
	f := newPredictFixture(t, PredictOptions{})
	one := mustJSON(t, PredictRequest{Merchant: "m1", Customer: "c-1", Features: featureVec(1, 1), AsOf: "2026-11-27T05:00:00Z"})
	batch := mustJSON(t, PredictBatchRequest{Merchant: "m1", AsOf: "2026-11-27T05:00:00Z", Customers: []BatchCustomer{{Customer: "c-1", Features: featureVec(1, 1)}}})
	for _, role := range []string{"m1", "partner", "admin", "compliance"} {
		for path, body := range map[string][]byte{"/v1/predict": one, "/v1/predict:batch": batch} {
			rec := f.do(t, "POST", path, f.tokens[role], "application/json", body)
			if role == "admin" || role == "compliance" {
				if rec.Code != 403 {
					t.Errorf("%s POST %s: %d, want 403 (these roles do not predict)", role, path, rec.Code)
				}
				continue
			}
			if rec.Code != 200 {
				t.Fatalf("%s POST %s: %d %s", role, path, rec.Code, rec.Body)
			}
			var got struct{ Provenance Provenance }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("%s POST %s: %v", role, path, err)
			}
			pv := got.Provenance
			if pv.ModelVersion != 1 || pv.Contributions == nil || len(pv.Contributions) != 0 || !pv.ContributionsRedacted || strings.Contains(rec.Body.String(), `"epsilon"`) {
				t.Errorf("%s POST %s: %s; want version 1 with an empty contributions list marked redacted, no ε", role, path, rec.Body)
			}
		}
	}
}
