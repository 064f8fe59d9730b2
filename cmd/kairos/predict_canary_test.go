package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
)

// TestServePredictCanary reproduces issue 10 item 3 against `kairos
// aggregator serve` (SQLite): a predict for customer
// "raw-email:alice@example.com" with only future events wrote
// `422 customer "raw-email:alice@example.com": …` into the audit entry's
// reason, serve's log, GET /v1/audit and `kairos compliance audit export`,
// where it can never be erased. A distinctive id goes through the predict
// error paths (and one answered call); afterwards it is in none of the
// database files, serve's log, GET /v1/audit, GET /metrics or the export,
// and no answer holds it beyond the documented echo. The export holds the
// id's HMAC, so a reviewer who knows the id can still find its entries.
func TestServePredictCanary(t *testing.T) {
	const canary = "raw-email:alice-5be1d0@example.com"
	dir := filepath.Join(t.TempDir(), "agg")
	if _, err := runAgg(t, "init", "--dir", dir, "--classic", "--listen", "127.0.0.1:0", "--policy", cdnowDemoPolicy); err != nil {
		t.Fatal(err)
	}
	agg := startServe(t, "--dir", dir)
	enr := enrolServed(t, agg.base, dir, "cdnow-1")
	ak, err := keys.LoadAggregator(filepath.Join(dir, config.KeysDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	reviewer, err := aggIssue(ak, auth.Grant{Subject: "reviewer", Role: auth.RoleCompliance, TTL: 1e12})
	if err != nil {
		t.Fatal(err)
	}

	send := func(method, path, token string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, agg.base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, b
	}
	amount := func(a float64) *float64 { return &a }
	past := "2026-11-01T10:00:00Z"
	asOf := "2026-11-27T00:00:00Z"
	single := func(evs []api.EventInput, features []float64) []byte {
		b, err := json.Marshal(api.PredictRequest{Merchant: "cdnow-1", Customer: canary, Events: evs, Features: features, AsOf: asOf})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bodies := []struct {
		name, path string
		body       []byte
		echoes     int
	}{
		{"future events only", "/v1/predict", single([]api.EventInput{{Time: "2027-01-01T00:00:00Z", Kind: "view"}}, nil), 0},
		{"two purchases of 1e308", "/v1/predict", single([]api.EventInput{
			{Time: past, Kind: "purchase", Amount: amount(1e308)}, {Time: past, Kind: "purchase", Amount: amount(1e308)}}, nil), 0},
		{"bad event time", "/v1/predict", single([]api.EventInput{{Time: "soon", Kind: "view"}}, nil), 0},
		{"short feature vector", "/v1/predict", single(nil, []float64{1e308}), 0},
		{"answered", "/v1/predict", single([]api.EventInput{{Time: past, Kind: "purchase", Amount: amount(20)}}, nil), 1},
		{"batch", "/v1/predict:batch", []byte(`{"merchant":"cdnow-1","as_of":"` + asOf + `","customers":[` +
			`{"customer":"` + canary + `","events":[{"time":"2027-01-01T00:00:00Z","kind":"view"}]},` +
			`{"customer":"` + canary + `","events":[{"time":"` + past + `","kind":"purchase","amount":1e308}]},` +
			`{"customer":"` + canary + `","events":[{"time":"` + past + `","kind":"purchase","amount":20}]}]}`), 3},
		{"batch, bad as_of", "/v1/predict:batch", []byte(`{"merchant":"cdnow-1","as_of":"x","customers":[{"customer":"` + canary + `","features":[1]}]}`), 0},
	}
	for _, b := range bodies {
		code, answer := send(http.MethodPost, b.path, enr.Token, b.body)
		if code >= 500 {
			t.Errorf("%s: %d %s, want no 5xx", b.name, code, answer)
		}
		if got := bytes.Count(answer, []byte(canary)); got != b.echoes {
			t.Errorf("%s: answer %d %s holds the id %d times, want %d (the echo only)", b.name, code, answer, got, b.echoes)
		}
	}
	_, auditPage := send(http.MethodGet, "/v1/audit?limit=1000", reviewer, nil)
	_, metrics := send(http.MethodGet, "/metrics", reviewer, nil)
	agg.stop(t) // flushes the audit log

	cmd := newComplianceCmd()
	var export bytes.Buffer
	cmd.SetOut(&export)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"audit", "export", "--db", filepath.Join(dir, config.DBFile)})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	var db []byte
	files, _ := filepath.Glob(filepath.Join(dir, config.DBFile+"*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	for name, b := range map[string][]byte{
		"serve's log": []byte(agg.logs.String()), "GET /v1/audit": auditPage, "GET /metrics": metrics,
		"audit export": export.Bytes(), "database files": db,
	} {
		if len(b) == 0 {
			t.Errorf("%s: empty, nothing checked", name)
		}
		if i := bytes.Index(b, []byte(canary)); i >= 0 {
			t.Errorf("%s holds the customer id in clear: …%q…", name, b[max(0, i-100):min(len(b), i+len(canary)+20)])
		}
	}
	if h := audit.HashIdentifier(ak.AuditHMAC, canary); !bytes.Contains(export.Bytes(), []byte(h)) {
		t.Errorf("the export does not hold %s, the id's HMAC", h)
	}
}
