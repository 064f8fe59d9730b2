package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/audit"
)

// liveCase is one real request to a running server: the documented path
// template it must match, with its path parameters.
type liveCase struct {
	method, tmpl string
	params       map[string]string
	query        string
	token        string // fixture token name
	contentType  string
	body         func(t *testing.T) []byte
	status       int // expected
}

func (c liveCase) path() string {
	p := c.tmpl
	for k, v := range c.params {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	if c.query != "" {
		p += "?" + c.query
	}
	return p
}

// TestOpenAPIValidatesLiveResponses sends real requests to a test server over
// a real aggregator on SQLite and validates every response (status, media
// type, body) against the served OpenAPI document with kin-openapi. Every
// documented operation must be exercised by at least one case.
func TestOpenAPIValidatesLiveResponses(t *testing.T) {
	ctx := context.Background()
	f := newRealFixtureWith(t, "", realPolicy, []string{"m3"}, aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour}, Options{
		Predict: PredictOptions{Audit: &countingAuditor{}, MayQuery: func(partner, merchant string) bool { return merchant == "m1" }},
	})
	f.srv.auditSrc = f.store
	f.srv.status, f.srv.tokenAudit = f.svc, f.svc
	withReports(f)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()

	res, err := http.Get(ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatalf("load served document: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("served document is not valid OpenAPI: %v", err)
	}

	round := func(m string) string {
		r, err := f.svc.CurrentRound(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	var envM1 []byte
	enrol := func(t *testing.T) []byte { return enrolBodyIn(t, "new-1", "") }
	noBody := func(*testing.T) []byte { return nil }
	honest := func(m string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			if m == "m1" && envM1 != nil {
				return envM1 // the same envelope again: a duplicate
			}
			env := f.honest(t, m)
			if m == "m1" {
				envM1 = env
			}
			return env
		}
	}
	rid := round("m1")
	octet := "application/octet-stream"

	// Phase 1: before any model is published beyond the initial one.
	cases := []liveCase{
		{"GET", "/healthz", nil, "", "none", "", noBody, 200},
		{"GET", "/readyz", nil, "", "none", "", noBody, 200},
		{"GET", "/metrics", nil, "", "compliance", "", noBody, 200},
		{"GET", "/metrics", nil, "", "none", "", noBody, 401},
		{"GET", "/metrics", nil, "", "partner", "", noBody, 403},
		{"GET", "/.well-known/jwks.json", nil, "", "none", "", noBody, 200},
		{"GET", "/openapi.json", nil, "", "none", "", noBody, 200},
		{"POST", "/v1/merchants", nil, "", "admin", "application/json", enrol, 201},
		{"POST", "/v1/merchants", nil, "", "admin", "application/json", enrol, 409},
		{"POST", "/v1/merchants", nil, "", "admin", "application/json", func(*testing.T) []byte { return []byte(`{"id":`) }, 400},
		{"POST", "/v1/merchants", nil, "", "m1", "application/json", enrol, 403},
		{"GET", "/v1/merchants", nil, "", "admin", "", noBody, 200},
		{"GET", "/v1/merchants", nil, "", "none", "", noBody, 401},
		{"GET", "/v1/rounds/current", nil, "", "m1", "", noBody, 200},
		{"POST", "/v1/rounds/{id}/updates", map[string]string{"id": rid}, "", "m1", octet, honest("m1"), 202},
		// The fixture's rounds are plain: no secure status, and an update is no secure message.
		{"GET", "/v1/rounds/{id}/secure", map[string]string{"id": rid}, "", "m1", "", noBody, 404},
		{"POST", "/v1/rounds/{id}/secure", map[string]string{"id": rid}, "", "m3", octet, honest("m3"), 400},
		{"POST", "/v1/rounds/{id}/updates", map[string]string{"id": rid}, "", "m1", octet, honest("m1"), 202},
		{"POST", "/v1/rounds/{id}/updates", map[string]string{"id": rid}, "", "m2", octet, honest("m2"), 202},
		{"POST", "/v1/rounds/{id}/updates", map[string]string{"id": rid}, "", "m3", octet, func(*testing.T) []byte { return []byte("not an envelope") }, 400},
		{"POST", "/v1/rounds/{id}/updates", map[string]string{"id": rid}, "", "m3", "text/plain", noBody, 415},
		{"GET", "/v1/budgets", nil, "", "compliance", "", noBody, 200},
		{"GET", "/v1/budgets", nil, "", "partner", "", noBody, 403},
		{"GET", "/v1/audit", nil, "limit=3", "compliance", "", noBody, 200},
		{"GET", "/v1/audit", nil, "action=round.update.accept", "admin", "", noBody, 200},
		{"GET", "/v1/audit", nil, "limit=0", "compliance", "", noBody, 400},
		{"GET", "/v1/audit/checkpoints", nil, "", "compliance", "", noBody, 200},
		{"GET", "/v1/budgets/{merchant}/chart.svg", map[string]string{"merchant": "m1"}, "", "compliance", "", noBody, 200},
		{"GET", "/v1/budgets/{merchant}/chart.svg", map[string]string{"merchant": "m3"}, "", "admin", "", noBody, 200},
		{"GET", "/v1/budgets/{merchant}/chart.svg", map[string]string{"merchant": "m404"}, "", "admin", "", noBody, 404},
		{"GET", "/v1/budgets/{merchant}/chart.svg", map[string]string{"merchant": "m1"}, "", "m1", "", noBody, 403},
		{"GET", "/v1/budgets/{merchant}/chart.svg", map[string]string{"merchant": "m1"}, "", "none", "", noBody, 401},
		{"GET", "/v1/report", nil, "", "compliance", "", noBody, 200},
		{"GET", "/v1/report", nil, "", "partner", "", noBody, 403},
		{"GET", "/v1/session", nil, "", "partner", "", noBody, 200},
		{"GET", "/v1/session", nil, "", "none", "", noBody, 401},
		{"GET", "/v1/federation", nil, "rounds=5", "compliance", "", noBody, 200},
		{"GET", "/v1/federation", nil, "rounds=0", "admin", "", noBody, 400},
		{"GET", "/v1/federation", nil, "", "m1", "", noBody, 403},
		{"GET", "/v1/compliance", nil, "", "compliance", "", noBody, 200},
		{"GET", "/v1/compliance", nil, "", "partner", "", noBody, 403},
		{"GET", "/v1/audit/export", nil, "", "compliance", "", noBody, 200},
		{"GET", "/v1/audit/export", nil, "", "m1", "", noBody, 403},
		{"POST", "/v1/tokens", nil, "", "admin", "application/json", jsonBody(`{"subject":"crm","role":"partner","merchants":["m1"],"ttl_seconds":3600}`), 201},
		{"POST", "/v1/tokens", nil, "", "admin", "application/json", jsonBody(`{"subject":"crm","role":"root","ttl_seconds":3600}`), 400},
		{"POST", "/v1/tokens", nil, "", "compliance", "application/json", jsonBody(`{"subject":"x","role":"admin","ttl_seconds":3600}`), 403},
	}
	exercised := map[string]bool{}
	run := func(cases []liveCase) {
		for _, c := range cases {
			name := fmt.Sprintf("%s %s %s %d", c.method, c.path(), c.token, c.status)
			t.Run(name, func(t *testing.T) {
				exercised[strings.ToLower(c.method)+" "+c.tmpl] = true
				validateLive(t, ts, doc, f, c)
			})
		}
	}
	run(cases)

	// Phase 2: both sampled merchants sent updates; the round publishes v1.
	if err := f.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	v := map[string]string{"version": "1"}
	run([]liveCase{
		{"GET", "/v1/models", nil, "", "partner", "", noBody, 200},
		{"GET", "/v1/models/{version}", v, "", "m1", "", noBody, 200},
		{"GET", "/v1/models/{version}", map[string]string{"version": "active"}, "", "compliance", "", noBody, 200},
		{"GET", "/v1/models/{version}", map[string]string{"version": "99"}, "", "m1", "", noBody, 404},
		{"GET", "/v1/models/{version}", map[string]string{"version": "x"}, "", "m1", "", noBody, 400},
		{"POST", "/v1/models/{version}:rollback", v, "", "admin", "", noBody, 200},
		{"POST", "/v1/models/{version}:rollback", map[string]string{"version": "99"}, "", "admin", "", noBody, 404},
		{"POST", "/v1/models/{version}:rollback", v, "", "compliance", "", noBody, 403},
		{"POST", "/v1/tokens:revoke", nil, "", "admin", "application/json", jsonBody(`{"jti":"some-token-id","expires_at":"2099-01-01T00:00:00Z"}`), 200},
		{"POST", "/v1/tokens:revoke", nil, "", "admin", "application/json", jsonBody(`{"jti":"","expires_at":"2099-01-01T00:00:00Z"}`), 400},
		{"POST", "/v1/tokens:revoke", nil, "", "admin", "application/json", jsonBody(`{"jti":"old","expires_at":"2001-01-01T00:00:00Z"}`), 422},
		{"POST", "/v1/tokens:revoke", nil, "", "compliance", "application/json", jsonBody(`{"jti":"x","expires_at":"2099-01-01T00:00:00Z"}`), 403},
		{"POST", "/v1/predict", nil, "", "partner", "application/json", jsonBody(predictBody("m1", "c-1")), 200},
		{"POST", "/v1/predict", nil, "", "m1", "application/json", jsonBody(predictBody("m1", "c-2")), 200},
		{"POST", "/v1/predict", nil, "", "m1", "application/json", jsonBody(predictBody("m2", "c-1")), 403},
		{"POST", "/v1/predict", nil, "", "partner", "application/json", jsonBody(`{"merchant":"m1","customer":"c","bogus":1}`), 400},
		{"POST", "/v1/predict", nil, "", "compliance", "application/json", jsonBody(predictBody("m1", "c-1")), 403},
		{"POST", "/v1/predict:batch", nil, "", "partner", "application/json", jsonBody(`{"merchant":"m1","as_of":"2026-11-01T00:00:00Z","customers":[` +
			`{"customer":"c-1","events":[{"time":"2026-10-01T10:00:00Z","kind":"purchase","amount":12.5}]},` +
			`{"customer":"c-2","events":[{"time":"2026-10-20T10:00:00Z","kind":"view"}]},` +
			`{"customer":"c-3","events":[{"time":"2026-10-30T10:00:00Z","kind":"favorite"}]}]}`), 200},
		{"POST", "/v1/predict:batch", nil, "", "partner", "application/json", jsonBody(`{"merchant":"m1","customers":[` +
			`{"customer":"c-3","events":[{"time":"not a time","kind":"purchase"}]},` +
			`{"customer":"c-4","events":[{"time":"2026-10-01T10:00:00Z","kind":"purchase","amount":1e308}]}]}`), 200},
		{"POST", "/v1/predict:batch", nil, "", "partner", "application/json", jsonBody(`{"merchant":"m1","as_of":"not a time","customers":[` +
			`{"customer":"c-3","events":[{"time":"2026-10-01T10:00:00Z","kind":"purchase"}]}]}`), 400},
		{"POST", "/v1/predict:batch", nil, "", "partner", "text/plain", jsonBody(`{}`), 415},
	})

	// Phase 3: round and configuration administration.
	f.srv.rounds = f.svc
	f.srv.reload = func(ctx context.Context, actor string) (protocol.Reload, error) {
		return f.svc.Reload(ctx, actor, f.svc.Policy(), aggregator.RoundConfig{Quorum: 2, Deadline: time.Hour})
	}
	run([]liveCase{
		{"POST", "/v1/merchants/me:stop", nil, "", "m3", "application/json", jsonBody(`{"reason":"local privacy cap reached"}`), 200},
		{"POST", "/v1/merchants/me:stop", nil, "", "admin", "application/json", jsonBody(`{"reason":"x"}`), 403},
		{"POST", "/v1/merchants/me:stop", nil, "", "m3", "application/json", jsonBody(`{"reason":1}`), 400},
		{"POST", "/v1/config:reload", nil, "", "admin", "", noBody, 200},
		{"POST", "/v1/config:reload", nil, "", "compliance", "", noBody, 403},
		{"POST", "/v1/rounds:cancel", nil, "", "admin", "application/json", jsonBody(`{"reason":"new cutoffs"}`), 200},
		{"POST", "/v1/rounds:cancel", nil, "", "admin", "application/json", jsonBody(`{"round":"round-000001"}`), 409},
		{"POST", "/v1/rounds:cancel", nil, "", "admin", "application/json", jsonBody(`{"round":"round-999999"}`), 404},
		{"POST", "/v1/rounds:cancel", nil, "", "compliance", "application/json", jsonBody(`{}`), 403},
	})

	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !exercised[strings.ToLower(method)+" "+path] {
				t.Errorf("%s %s is documented but no live response of it was validated; add a case here", method, path)
			}
		}
	}
}

// validateLive sends c to ts and validates the answer against doc.
func validateLive(t *testing.T, ts *httptest.Server, doc *openapi3.T, f *realFixture, c liveCase) {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, c.method, ts.URL+c.path(), bytes.NewReader(c.body(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if tok := f.tokens[c.token]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != c.status {
		t.Fatalf("got status %d, want %d: %s", res.StatusCode, c.status, body)
	}
	item := doc.Paths.Value(c.tmpl)
	if item == nil {
		t.Fatalf("path %s is not in the document", c.tmpl)
	}
	op := item.GetOperation(c.method)
	if op == nil {
		t.Fatalf("%s %s is not in the document", c.method, c.tmpl)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: c.params, Options: opts,
		Route: &routers.Route{Spec: doc, Path: c.tmpl, PathItem: item, Method: c.method, Operation: op},
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: opts,
	})
	if err != nil {
		t.Errorf("response does not match the document: %v\nbody: %.400s", err, body)
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/") && strings.HasSuffix(res.Header.Get("Content-Type"), "json") && !json.Valid(body) {
		t.Errorf("body is not JSON: %.200s", body)
	}
}

// countingAuditor acknowledges every predict audit record at once.
type countingAuditor struct{ n uint64 }

func (a *countingAuditor) Append(_ context.Context, rec audit.Record) (audit.Entry, error) {
	a.n++
	return audit.Entry{Seq: a.n, Time: time.Now().UTC(), Actor: rec.Actor, Action: rec.Action, Object: rec.Object, Outcome: rec.Outcome}, nil
}

func jsonBody(s string) func(*testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }

// predictBody asks for one customer's prediction from two purchases and a view.
func predictBody(merchant, customer string) string {
	return fmt.Sprintf(`{"merchant":%q,"customer":%q,"as_of":"2026-11-01T00:00:00Z","events":[`+
		`{"time":"2026-08-01T10:00:00Z","kind":"purchase","amount":20},`+
		`{"time":"2026-10-01T10:00:00Z","kind":"purchase","amount":35.5},`+
		`{"time":"2026-10-25T09:00:00Z","kind":"view"}]}`, merchant, customer)
}
