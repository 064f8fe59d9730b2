package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
)

// loopback sends one request to ts over real HTTP and returns the status,
// headers and body.
func loopback(t *testing.T, ts *httptest.Server, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

// publishM1 has m1 send an honest update and lets the round's deadline (an
// hour) pass, publishing the next version.
func publishM1(t *testing.T, f *realFixture) {
	t.Helper()
	r, err := f.svc.CurrentRound(context.Background(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	rec := f.do(t, "POST", "/v1/rounds/"+r.ID+"/updates", f.tokens["m1"], "application/octet-stream", f.honest(t, "m1"))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", rec.Code, rec.Body)
	}
	f.clock.Add(time.Hour + time.Second)
	if err := f.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPinnedWithdrawnVersionRefused: after the rollback from v3 to v2, a
// partner pinning model_version 3 is answered 410 naming v3 and the seq of
// the rollback's audit entry (read from the store), after the cache's TTL
// as for the active version; GET /v1/models/3 is 410 too; the list marks v3
// withdrawn; v2 and the active version are served.
func TestPinnedWithdrawnVersionRefused(t *testing.T) {
	predClock := &testClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	f := newRealFixtureWith(t, "", realPolicy, nil, aggregator.RoundConfig{Quorum: 1, Deadline: time.Hour}, Options{
		Predict: PredictOptions{Audit: &countingAuditor{}, Now: predClock.Now, ActiveTTL: time.Second,
			MayQuery: func(_, merchant string) bool { return merchant == "m1" }},
	})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	publishM1(t, f) // v2
	publishM1(t, f) // v3
	pinned := func(v int) string {
		return strings.Replace(predictBody("m1", "c-1"), `{"merchant"`, `{"model_version":`+strconv.Itoa(v)+`,"merchant"`, 1)
	}
	if code, _, b := loopback(t, ts, "POST", "/v1/predict", f.tokens["partner"], pinned(3)); code != http.StatusOK {
		t.Fatalf("predict on v3 before the rollback: %d %s", code, b)
	}
	if code, _, b := loopback(t, ts, "POST", "/v1/models/2:rollback", f.tokens["admin"], ""); code != http.StatusOK {
		t.Fatalf("rollback: %d %s", code, b)
	}
	var seq uint64
	for _, e := range stored(t, f) {
		if e.Action == "model.rollback" {
			seq = e.Seq
		}
	}
	if seq == 0 {
		t.Fatal("no rollback entry")
	}
	predClock.Add(2 * time.Second) // past the cache's TTL
	wantDetail := "model version 3 was withdrawn by the rollback at seq " + strconv.FormatUint(seq, 10) + " of the audit log"
	for _, c := range []struct{ method, path, token, body string }{
		{"POST", "/v1/predict", "partner", pinned(3)},
		{"POST", "/v1/predict:batch", "partner", `{"model_version":3,"merchant":"m1","customers":[{"customer":"c","features":[]}]}`},
		{"GET", "/v1/models/3", "partner", ""},
		{"GET", "/v1/models/3", "m1", ""},
		{"GET", "/v1/models/3", "admin", ""},
	} {
		code, h, b := loopback(t, ts, c.method, c.path, f.tokens[c.token], c.body)
		var p problemDoc
		_ = json.Unmarshal(b, &p)
		if code != http.StatusGone || h.Get("Content-Type") != "application/problem+json" || p.Type != apiclient.TypeWithdrawn || !strings.Contains(p.Detail, wantDetail) {
			t.Errorf("%s %s as %s: %d %s, want 410 %s saying %q", c.method, c.path, c.token, code, b, apiclient.TypeWithdrawn, wantDetail)
		}
	}
	for _, body := range []string{pinned(2), predictBody("m1", "c-1")} {
		code, _, b := loopback(t, ts, "POST", "/v1/predict", f.tokens["partner"], body)
		var got struct {
			Provenance struct {
				ModelVersion int `json:"model_version"`
			} `json:"provenance"`
		}
		if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil || got.Provenance.ModelVersion != 2 {
			t.Errorf("predict %s: %d %s, want 200 from v2", body[:30], code, b)
		}
	}
	code, _, b := loopback(t, ts, "GET", "/v1/models", f.tokens["partner"], "")
	var list struct {
		Models []protocol.ModelVersion `json:"models"`
	}
	if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil || len(list.Models) != 3 {
		t.Fatalf("models: %d %s (%v)", code, b, err)
	}
	for _, mv := range list.Models {
		if want := mv.Version == 3; mv.Withdrawn != want || (want && mv.WithdrawnSeq != int64(seq)) {
			t.Errorf("listed v%d: withdrawn %v seq %d, want %v seq %d", mv.Version, mv.Withdrawn, mv.WithdrawnSeq, want, seq)
		}
	}
	if !strings.Contains(string(b), `"withdrawn":true`) {
		t.Errorf("model list %s lacks \"withdrawn\":true", b)
	}
}

// TestOverseersRateLimitedEverywhere (privacy.md §16, round 8 row 14):
// admin and compliance tokens were held to a rate on the predict routes
// only; everywhere else they were unthrottled, and GET /v1/compliance
// verifies the whole log per call. Now each role and subject has one bucket
// over every route (DefaultOverseerBurst, then 429 with Retry-After), and
// the whole-log routes a second one (DefaultVerifyBurst); refusals are
// counted, never audited; another subject is not affected; a console
// session polling as the console does is never limited.
func TestOverseersRateLimitedEverywhere(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)}
	f := newRealFixture(t, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, SampleFraction: 1}, Options{Now: clock.Now})
	f.srv.auditSrc, f.srv.status = f.store, f.svc
	withReports(f)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	auditLen := func() int {
		t.Helper()
		es, err := f.store.(audit.Source).AuditEntries(context.Background(), 1, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := auditLen()
	// Admin: the burst spread over its routes, then 429 on any of them.
	routes := []string{"/v1/merchants", "/v1/budgets", "/v1/models", "/v1/federation", "/v1/session", "/v1/audit/checkpoints"}
	for i := range DefaultOverseerBurst {
		if code, _, b := loopback(t, ts, "GET", routes[i%len(routes)], f.tokens["admin"], ""); code != http.StatusOK {
			t.Fatalf("admin request %d within its burst: %d %.200s", i, code, b)
		}
	}
	limited := 0
	for _, path := range append(routes, "/v1/audit", "/v1/compliance", "/metrics") {
		code, h, b := loopback(t, ts, "GET", path, f.tokens["admin"], "")
		if code != http.StatusTooManyRequests || h.Get("Retry-After") != "1" || !strings.Contains(string(b), apiclient.TypeRateLimited) {
			t.Errorf("admin %s past its burst: %d, Retry-After %q, %.200s; want 429, 1, %s", path, code, h.Get("Retry-After"), b, apiclient.TypeRateLimited)
		}
		limited++
	}
	other := issue(t, f.issuer, auth.Grant{Subject: "ops-2", Role: auth.RoleAdmin, TTL: time.Hour})
	if code, _, b := loopback(t, ts, "GET", "/v1/merchants", other, ""); code != http.StatusOK {
		t.Errorf("another admin while ops is limited: %d %.200s", code, b)
	}

	// Compliance: whole-log verification has its own, smaller bucket.
	for i := range DefaultVerifyBurst {
		if code, _, b := loopback(t, ts, "GET", "/v1/compliance", f.tokens["compliance"], ""); code != http.StatusOK {
			t.Fatalf("compliance verification %d within its burst: %d %.200s", i, code, b)
		}
	}
	for _, path := range []string{"/v1/compliance", "/v1/report", "/v1/audit/export"} {
		if code, h, _ := loopback(t, ts, "GET", path, f.tokens["compliance"], ""); code != http.StatusTooManyRequests || h.Get("Retry-After") != "1" {
			t.Errorf("compliance %s past the verification burst: %d, Retry-After %q; want 429, 1", path, code, h.Get("Retry-After"))
		}
		limited++
	}
	if code, _, b := loopback(t, ts, "GET", "/v1/audit?limit=10", f.tokens["compliance"], ""); code != http.StatusOK {
		t.Errorf("compliance audit page while verification is limited: %d %.200s", code, b)
	}
	clock.Add(time.Duration(math.Ceil(float64(time.Second) / DefaultVerifyRate)))
	if code, _, b := loopback(t, ts, "GET", "/v1/compliance", f.tokens["compliance"], ""); code != http.StatusOK {
		t.Errorf("compliance verification after one token's time: %d %.200s", code, b)
	}
	if got := auditLen() - before; got != 0 {
		t.Errorf("%d audit entries for the reads and %d refusals, want none", got, limited)
	}
	m := metricsText(t, f.srv)
	for _, want := range []string{
		fmt.Sprintf(`kairos_http_rate_limited_total{role="admin"} %d`, len(routes)+3),
		`kairos_http_rate_limited_total{role="compliance"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "rate_limited"))
		}
	}

	// An honest console session for an hour: the overview polled every
	// 2 s, and every 10 s the other tabs' reads (session, models, budgets,
	// an audit page, the compliance data): never limited.
	officer := issue(t, f.issuer, auth.Grant{Subject: "officer", Role: auth.RoleCompliance, TTL: 2 * time.Hour})
	for i := range 1800 {
		paths := []string{"/v1/federation?rounds=50"}
		if i%5 == 0 {
			paths = append(paths, "/v1/session", "/v1/models?limit=1000", "/v1/budgets", "/v1/audit?limit=100", "/v1/compliance")
		}
		for _, p := range paths {
			if code, _, b := loopback(t, ts, "GET", p, officer, ""); code != http.StatusOK {
				t.Fatalf("console poll %d %s: %d %.200s", i, p, code, b)
			}
		}
		clock.Add(2 * time.Second)
	}
}

// TestJSONKeyCaseRefused (privacy.md §16, round 8 row 15): encoding/json
// matches a key to a field ignoring case, so {"MERCHANT":"m1",…} alone was
// authorized, answered and audited for m1 while a case-sensitive reader (a
// gateway's policy, jq, a reviewer) saw no merchant key at all. Every JSON
// route refuses a key not spelled exactly as its field, 400 naming the key's
// path and the field (a key that is not a plain field name is not echoed);
// the same bodies with exact keys are served.
func TestJSONKeyCaseRefused(t *testing.T) {
	f := newRealFixtureWith(t, "", realPolicy, nil, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{
		Predict: PredictOptions{Audit: &countingAuditor{}, MayQuery: func(_, merchant string) bool { return merchant == "m1" }},
	})
	f.srv.tokenAudit = f.svc
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	pub, _, _ := edKey()
	enrol, err := json.Marshal(protocol.EnrolRequest{ID: "m3", TimeZone: "UTC", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	batch := `{"merchant":"m1","as_of":"2026-11-01T00:00:00Z","customers":[{"customer":"c-1","events":[{"time":"2026-10-01T10:00:00Z","kind":"purchase","amount":20}]}]}`
	for _, tt := range []struct {
		name, path, token, exact, folded string
		want                             int    // status of the exact body
		key, field                       string // named in the refusal ("" : not echoed)
	}{
		{"predict merchant", "/v1/predict", "partner", predictBody("m1", "c-1"), strings.Replace(predictBody("m1", "c-1"), `"merchant"`, `"MERCHANT"`, 1), 200, "MERCHANT", "merchant"},
		{"predict event kind", "/v1/predict", "partner", predictBody("m1", "c-1"), strings.Replace(predictBody("m1", "c-1"), `"kind":"view"`, `"Kind":"view"`, 1), 200, "events[2].Kind", "kind"},
		{"predict kelvin sign", "/v1/predict", "partner", predictBody("m1", "c-1"), strings.Replace(predictBody("m1", "c-1"), `"kind":"view"`, `"\u212aind":"view"`, 1), 200, "", ""},
		{"batch customer", "/v1/predict:batch", "partner", batch, strings.Replace(batch, `"customer":`, `"Customer":`, 1), 200, "customers[0].Customer", "customer"},
		{"batch as_of", "/v1/predict:batch", "partner", batch, strings.Replace(batch, `"as_of"`, `"As_Of"`, 1), 200, "As_Of", "as_of"},
		{"issue token", "/v1/tokens", "admin", `{"subject":"crm","role":"partner","merchants":["m1"],"ttl_seconds":3600}`, `{"Subject":"crm","role":"partner","merchants":["m1"],"ttl_seconds":3600}`, 201, "Subject", "subject"},
		{"revoke token", "/v1/tokens:revoke", "admin", `{"jti":"some-token-id","expires_at":"2099-01-01T00:00:00Z"}`, `{"JTI":"some-token-id","expires_at":"2099-01-01T00:00:00Z"}`, 200, "JTI", "jti"},
		{"enrol", "/v1/merchants", "admin", string(enrol), strings.Replace(string(enrol), `"time_zone"`, `"Time_Zone"`, 1), 201, "Time_Zone", "time_zone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, b := loopback(t, ts, "POST", tt.path, f.tokens[tt.token], tt.folded)
			var p problemDoc
			if err := json.Unmarshal(b, &p); err != nil || code != http.StatusBadRequest {
				t.Fatalf("folded key: %d %s, want 400", code, b)
			}
			if tt.key != "" {
				if want := fmt.Sprintf("key %q is not spelled as the field %q", tt.key, tt.field); !strings.Contains(p.Detail, want) {
					t.Errorf("detail %q, want it to say %s", p.Detail, want)
				}
			} else if strings.Contains(p.Detail, "\u212a") || !strings.Contains(p.Detail, "not echoed") {
				t.Errorf("detail %q echoes the key or does not say it is not echoed", p.Detail)
			}
			if code, _, b := loopback(t, ts, "POST", tt.path, f.tokens[tt.token], tt.exact); code != tt.want {
				t.Errorf("exact keys: %d %s, want %d", code, b, tt.want)
			}
		})
	}
}
