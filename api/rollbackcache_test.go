package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
)

// TestRollbackForgetsCachedModels: predict's model cache re-checks a pinned
// version and the active one every ActiveTTL, so after a rollback the
// replica that made it still answered from the version it withdrew (pinned)
// and from the old active version (unpinned) until the TTL ran out. The
// replica that made the rollback now forgets its cached versions when the
// rollback returns: the next pinned request is 410 and the next unpinned one
// is served by the version rolled back to, with the clock not moved at all.
// (Other replicas still follow within ActiveTTL, as documented.)
func TestRollbackForgetsCachedModels(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}
	f := newRealFixtureWith(t, "", realPolicy, nil, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{
		Predict: PredictOptions{Audit: &countingAuditor{}, Now: clock.Now, ActiveTTL: time.Hour,
			MayQuery: func(_, merchant string) bool { return merchant == "m1" }},
	})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	publishM1(t, f) // v2
	publishM1(t, f) // v3, active
	pinned := strings.Replace(predictBody("m1", "c-1"), `{"merchant"`, `{"model_version":3,"merchant"`, 1)
	version := func(body string) (int, int) {
		code, _, b := loopback(t, ts, "POST", "/v1/predict", f.tokens["partner"], body)
		var got struct {
			Provenance struct {
				ModelVersion int `json:"model_version"`
			} `json:"provenance"`
		}
		_ = json.Unmarshal(b, &got)
		return code, got.Provenance.ModelVersion
	}
	// Both cached: v3 pinned and v3 as the active version.
	if code, v := version(pinned); code != http.StatusOK || v != 3 {
		t.Fatalf("pinned v3 before the rollback: %d from v%d", code, v)
	}
	if code, v := version(predictBody("m1", "c-1")); code != http.StatusOK || v != 3 {
		t.Fatalf("active before the rollback: %d from v%d", code, v)
	}
	if code, _, b := loopback(t, ts, "POST", "/v1/models/2:rollback", f.tokens["admin"], ""); code != http.StatusOK {
		t.Fatalf("rollback: %d %s", code, b)
	}
	if code, v := version(pinned); code != http.StatusGone {
		t.Errorf("pinned v3 right after the rollback: %d from v%d, want 410", code, v)
	}
	if code, v := version(predictBody("m1", "c-1")); code != http.StatusOK || v != 2 {
		t.Errorf("active right after the rollback: %d from v%d, want 200 from v2", code, v)
	}
}
