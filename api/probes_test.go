package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/dp"
)

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestProbesAndJWKS(t *testing.T) {
	var readyErr error
	f := newFixture(t, &fakeService{}, Options{Ready: func(context.Context) error { return readyErr }})

	if rec := f.do(t, "GET", "/healthz", "", "", nil); rec.Code != 200 || rec.Body.String() != "ok\n" || rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("healthz: got %d %q (request id %q), want 200 ok with a request id", rec.Code, rec.Body, rec.Header().Get("X-Request-Id"))
	}
	if rec := f.do(t, "GET", "/readyz", "", "", nil); rec.Code != 200 {
		t.Errorf("readyz while ready: got %d, want 200", rec.Code)
	}
	readyErr = errors.New("store unreachable")
	rec := f.do(t, "GET", "/readyz", "", "", nil)
	if rec.Code != 503 {
		t.Fatalf("readyz while not ready: got %d, want 503", rec.Code)
	}
	if p := problemOf(t, rec); p.Type != apiclient.TypeUnavailable || strings.Contains(p.Detail, "unreachable") {
		t.Errorf("readyz problem %+v: want type unavailable and no cause", p)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("readyz 503 Retry-After = %q, want 1", ra)
	}
	if rec := f.do(t, "GET", "/healthz", "", "", nil); rec.Code != 200 {
		t.Errorf("healthz must not depend on the store: got %d", rec.Code)
	}

	rec = f.do(t, "GET", "/.well-known/jwks.json", "", "", nil)
	if rec.Code != 200 {
		t.Fatalf("jwks: %d", rec.Code)
	}
	keys, err := auth.ParseJWKS(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != f.jwks[0].ID || !keys[0].Key.Equal(f.jwks[0].Key) {
		t.Errorf("jwks served %+v, want %+v", keys, f.jwks)
	}
}

// TestMetrics checks the counters after known traffic and the per-merchant
// gauges read from the service.
func TestMetrics(t *testing.T) {
	svc := &fakeService{
		budgets: []aggregator.Budget{{Merchant: "m1", Cap: 1, Delta: 1e-6, Epsilon: 0.375, Releases: 3}},
		rounds:  map[protocol.RoundState]int{protocol.RoundPublished: 4, protocol.RoundFailed: 1, protocol.RoundCollecting: 1},
	}
	f := newFixture(t, svc, Options{RoundCounts: svc})
	for range 2 {
		if rec := f.do(t, "POST", "/v1/rounds/r1/updates", f.tokens["m1"], "application/octet-stream", f.envelope(t, "m1", "r1")); rec.Code != 202 {
			t.Fatalf("submit: %d", rec.Code)
		}
	}
	svc.err = dp.ErrBudgetExhausted
	f.do(t, "POST", "/v1/rounds/r1/updates", f.tokens["m1"], "application/octet-stream", f.envelope(t, "m1", "r1"))
	f.do(t, "POST", "/v1/rounds/r1/updates", f.tokens["m1"], "text/plain", nil)
	svc.err = nil
	f.do(t, "GET", "/v1/budgets", f.tokens["admin"], "", nil)

	rec := f.do(t, "GET", "/metrics", f.tokens["compliance"], "", nil)
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`kairos_updates_accepted_total{duplicate="false"} 2`,
		`kairos_updates_refused_total{reason="budget-exhausted"} 1`,
		`kairos_updates_refused_total{reason="unsupported-media-type"} 1`,
		`kairos_epsilon_spent{merchant="m1"} 0.375`,
		`kairos_epsilon_cap{merchant="m1"} 1`,
		`kairos_rounds{state="published"} 4`,
		`kairos_rounds{state="failed"} 1`,
		`kairos_rounds{state="open"} 0`,
		`kairos_metrics_service_up 1`,
		`kairos_http_request_duration_seconds_count{code="202",method="post",route="/v1/rounds/{id}/updates"} 2`,
		`kairos_http_request_duration_seconds_count{code="403",method="post",route="/v1/rounds/{id}/updates"} 1`,
		`kairos_http_request_duration_seconds_count{code="200",method="get",route="/v1/budgets"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics include the default registry's Go collector; the registry must be private")
	}

	svc.err = errors.New("db down")
	rec = f.do(t, "GET", "/metrics", f.tokens["admin"], "", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "kairos_metrics_service_up 0\n") {
		t.Errorf("metrics with the service down: %d, want 200 with kairos_metrics_service_up 0", rec.Code)
	}
}
