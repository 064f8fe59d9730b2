package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestMetricsDiscloseNoBudgets reproduces the disclosure over real HTTP: an
// unauthenticated GET /metrics on the API used to list every merchant's ε
// spent and cap, which GET /v1/budgets refuses partners and merchants. Now
// the API's /metrics answers only the roles /v1/budgets serves, and the
// tokenless handler for the operator's own listener has no merchant series.
func TestMetricsDiscloseNoBudgets(t *testing.T) {
	svc := &fakeService{
		budgets: []aggregator.Budget{{Merchant: "shop-7", Cap: 2, Delta: 1e-6, Epsilon: 0.625, Releases: 5}},
		rounds:  map[protocol.RoundState]int{protocol.RoundPublished: 3},
	}
	f := newFixture(t, svc, Options{RoundCounts: svc})
	api := httptest.NewServer(f.srv)
	t.Cleanup(api.Close)
	ops := httptest.NewServer(f.srv.MetricsHandler())
	t.Cleanup(ops.Close)

	get := func(url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
	const series = `kairos_epsilon_spent{merchant="shop-7"} 0.625`
	for _, tt := range []struct {
		caller string
		want   int
	}{
		{"none", http.StatusUnauthorized},
		{"garbage", http.StatusUnauthorized},
		{"partner", http.StatusForbidden},
		{"m1", http.StatusForbidden},
		{"compliance", http.StatusOK},
		{"admin", http.StatusOK},
	} {
		code, body := get(api.URL+"/metrics", f.tokens[tt.caller])
		if code != tt.want {
			t.Errorf("GET /metrics as %s: %d, want %d", tt.caller, code, tt.want)
		}
		if has := strings.Contains(body, series); has != (tt.want == http.StatusOK) {
			t.Errorf("GET /metrics as %s: per-merchant ε shown %v, want %v", tt.caller, has, tt.want == http.StatusOK)
		}
	}
	if _, body := get(api.URL+"/metrics", f.tokens["compliance"]); !strings.Contains(body, `kairos_epsilon_cap{merchant="shop-7"} 2`+"\n") ||
		!strings.Contains(body, "kairos_metrics_budgets_up 1\n") || !strings.Contains(body, `kairos_rounds{state="published"} 3`+"\n") {
		t.Errorf("compliance scrape lacks the cap, budgets_up or rounds:\n%s", body)
	}

	code, body := get(ops.URL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("operator listener: %d", code)
	}
	for _, want := range []string{`kairos_rounds{state="published"} 3`, "kairos_metrics_service_up 1", "kairos_admission_budget_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("operator listener lacks %q", want)
		}
	}
	for _, leak := range []string{"merchant=", "shop-7", "kairos_epsilon"} {
		if strings.Contains(body, leak) {
			t.Errorf("operator listener shows %q without a token", leak)
		}
	}
}
