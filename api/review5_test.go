package api

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/store/storetest"
)

// TestMerchantRateLimit: merchant tokens had no request rate at all, so a
// stolen (or buggy) merchant token made the server open rounds, decrypt
// envelopes and serve models at whatever rate it could send. Over real HTTP
// on a real service: a merchant gets DefaultMerchantBurst requests at once,
// then 429 with Retry-After until its bucket refills at
// DefaultMerchantRate; another merchant is not affected; the refusals are
// counted in kairos_http_rate_limited_total and never audited.
func TestMerchantRateLimit(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)}
	f := newRealFixture(t, aggregator.RoundConfig{Deadline: time.Hour, Quorum: 1, SampleFraction: 1}, Options{Now: clock.Now})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := context.Background()
	auditLen := func() int {
		t.Helper()
		es, err := f.store.(audit.Source).AuditEntries(ctx, 1, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	get := func(token, path string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Retry-After"), string(b)
	}
	before := auditLen()
	for i := range DefaultMerchantBurst {
		if code, _, body := get(f.tokens["m1"], "/v1/rounds/current"); code != http.StatusOK {
			t.Fatalf("request %d of m1 within its burst: %d %s", i, code, body)
		}
	}
	const refused = 25
	for i := range refused {
		code, ra, body := get(f.tokens["m1"], "/v1/rounds/current")
		if code != http.StatusTooManyRequests || ra != "1" || !strings.Contains(body, apiclient.TypeRateLimited) {
			t.Fatalf("request %d of m1 past its burst: got %d, Retry-After %q, %.200s; want 429, 1, %s", DefaultMerchantBurst+i, code, ra, body, apiclient.TypeRateLimited)
		}
	}
	// Every merchant route is held to the same bucket.
	if code, _, _ := get(f.tokens["m1"], "/v1/models"); code != http.StatusTooManyRequests {
		t.Errorf("m1's model list past its burst: %d, want 429", code)
	}
	if code, _, body := get(f.tokens["m2"], "/v1/rounds/current"); code != http.StatusOK {
		t.Errorf("m2 while m1 is limited: %d %s, want 200", code, body)
	}
	clock.Add(time.Duration(math.Ceil(float64(time.Second) / DefaultMerchantRate)))
	if code, _, body := get(f.tokens["m1"], "/v1/rounds/current"); code != http.StatusOK {
		t.Errorf("m1 after one token's time: %d %s, want 200", code, body)
	}
	if got := auditLen() - before; got != 0 {
		t.Errorf("%d audit entries for %d refused requests, want none", got, refused+1)
	}
	m := metricsText(t, f.srv)
	if want := `kairos_http_rate_limited_total{role="merchant"} 26`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "rate_limited"))
	}
}

// TestMerchantRateConfigured: Options.MerchantRate and MerchantBurst set the
// merchants' bucket (kairos.yaml limits.merchant_rate_per_second and
// limits.merchant_burst); a partner's 429 is counted under its role too.
func TestMerchantRateConfigured(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)}
	grants := func(string) (float64, int, error) { return 1, 1, nil }
	f := newFixture(t, &fakeService{}, Options{Now: clock.Now, MerchantRate: 0.5, MerchantBurst: 2, Partners: grants})
	for i, want := range []int{200, 200, 429} {
		rec := f.do(t, "GET", "/v1/models", f.tokens["m1"], "", nil)
		if rec.Code != want {
			t.Errorf("m1 request %d: %d, want %d", i, rec.Code, want)
		}
		if want == 429 && rec.Header().Get("Retry-After") != "2" {
			t.Errorf("m1 request %d: Retry-After %q, want 2 (0.5 requests a second)", i, rec.Header().Get("Retry-After"))
		}
	}
	for i, want := range []int{200, 429} {
		if rec := f.do(t, "GET", "/v1/models", f.tokens["partner"], "", nil); rec.Code != want {
			t.Errorf("partner request %d: %d, want %d", i, rec.Code, want)
		}
	}
	m := metricsText(t, f.srv)
	for _, want := range []string{`kairos_http_rate_limited_total{role="merchant"} 1`, `kairos_http_rate_limited_total{role="partner"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "rate_limited"))
		}
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Keys: f.jwks, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience, Revocations: auth.NewMemoryRevocations(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Options{{MerchantRate: -1}, {MerchantBurst: -1}, {MerchantRate: math.NaN()}, {MerchantRate: math.Inf(1)}} {
		bad.Service, bad.Verifier, bad.Issuer, bad.JWKS = f.srv.svc, v, f.issuer, f.jwks
		if _, err := NewServer(bad); err == nil {
			t.Errorf("NewServer(%+v): no error", bad)
		}
	}
}

func metricsText(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// slowAudit injects a slow store: each page of entries takes delay.
type slowAudit struct {
	audit.Source
	delay time.Duration
}

func (s slowAudit) AuditEntries(ctx context.Context, from uint64, limit int) ([]audit.Entry, error) {
	time.Sleep(s.delay)
	return s.Source.AuditEntries(ctx, from, limit)
}

// TestAuditExportOutlivesWriteTimeout: GET /v1/audit/export streams the
// whole log in one response, but serve's WriteTimeout (60 s) is a deadline
// for the whole response: a log that takes longer to export (some millions
// of entries; predictions alone add one per call) was cut off at the
// deadline, so the compliance export through the API and the console failed
// for good once the log had grown. Here the server's write timeout is
// 300 ms and each of the four pages of entries takes 150 ms: the export
// must arrive whole and verify; the deadline now bounds each write instead.
func TestAuditExportOutlivesWriteTimeout(t *testing.T) {
	es, cps := storetest.Chain(audit.Head{}, 3*4096+10, 1000, time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	f := newFixture(t, &fakeService{}, Options{Audit: slowAudit{audit.NewSnapshot(es, cps), 150 * time.Millisecond}})
	ts := httptest.NewUnstartedServer(f.srv)
	ts.Config.WriteTimeout = 300 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/audit/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.tokens["compliance"])
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("export: status %d, read after %d bytes: %v", res.StatusCode, len(body), err)
	}
	snap, err := audit.ReadExport(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("export of %d bytes: %v", len(body), err)
	}
	if n, c := snap.Len(); n != len(es) || c != len(cps) {
		t.Errorf("export holds %d entries and %d checkpoints, want %d and %d", n, c, len(es), len(cps))
	}
}

// TestComplianceAnswersAfterLongVerification: GET /v1/compliance and GET
// /v1/report verify the whole audit log before they write a byte, and
// serve's WriteTimeout (60 s) counted that time: once verifying took longer
// (a log of some millions of entries) the answer could never be written and
// the console's compliance page and the report failed for good. Here the
// server's write timeout is 300 ms and reading the log takes 400 ms; both
// must answer 200 with their document.
func TestComplianceAnswersAfterLongVerification(t *testing.T) {
	f := auditFixture(t)
	src := withReports(f)
	src.Audit = slowAudit{f.store, 400 * time.Millisecond}
	f.srv.reports = fixedReports(src)
	ts := httptest.NewUnstartedServer(f.srv)
	ts.Config.WriteTimeout = 300 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	for _, path := range []string{"/v1/compliance", "/v1/report"} {
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.tokens["compliance"])
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes, %v; want 200 with the document", path, res.StatusCode, len(body), err)
		}
	}
}
