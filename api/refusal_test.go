package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
)

// TestRefusalsAreProblems reproduces the last of issue 10 item 5 over
// loopback HTTP: the auth layer's 401 and 403 were problem documents of type
// about:blank, which a client cannot act on, and the path-cleaning 301 had
// no body at all. Each is now a problem of a Kairos type with the path as
// its instance; the 301 still names the canonical path in Location.
func TestRefusalsAreProblems(t *testing.T) {
	f := newFixture(t, &fakeService{}, Options{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	c := ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tests := []struct {
		name, method, path, token string
		status                    int
		typ, location             string
	}{
		{"no token", "GET", "/v1/merchants", "none", 401, apiclient.TypeUnauthorized, ""},
		{"garbage token", "GET", "/v1/merchants", "garbage", 401, apiclient.TypeUnauthorized, ""},
		{"expired token", "GET", "/v1/budgets", "expired", 401, apiclient.TypeUnauthorized, ""},
		{"foreign key", "GET", "/v1/budgets", "foreign", 401, apiclient.TypeUnauthorized, ""},
		{"role", "GET", "/v1/merchants", "partner", 403, apiclient.TypeForbidden, ""},
		{"role on a POST", "POST", "/v1/merchants", "compliance", 403, apiclient.TypeForbidden, ""},
		{"double slash", "GET", "/v1//merchants", "admin", 301, apiclient.TypeMovedPermanently, "/v1/merchants"},
		{"dot segment", "POST", "/v1/models/../merchants?x=1", "admin", 301, apiclient.TypeMovedPermanently, "/v1/merchants?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			// The client would clean the path itself; send it as written.
			req.URL.Opaque = strings.SplitN(tt.path, "?", 2)[0]
			req.Header.Set("Content-Type", "application/json")
			if tok := f.tokens[tt.token]; tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", res.StatusCode, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			var p problemDoc
			dec := json.NewDecoder(res.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("decode problem: %v", err)
			}
			wantInstance := strings.SplitN(tt.path, "?", 2)[0]
			if p.Type != tt.typ || p.Status != tt.status || p.Title != http.StatusText(tt.status) || p.Instance != wantInstance || p.Detail == "" {
				t.Errorf("problem %+v, want type %s, status %d, title %q, instance %s and a detail", p, tt.typ, tt.status, http.StatusText(tt.status), wantInstance)
			}
			if got := res.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
		})
	}
}

// TestAuthProblemTypes: the auth package spells the API's problem types
// itself (it imports nothing of the API); they must be apiclient's.
func TestAuthProblemTypes(t *testing.T) {
	for _, tt := range []struct{ auth, client string }{
		{auth.ProblemUnauthorized, apiclient.TypeUnauthorized},
		{auth.ProblemForbidden, apiclient.TypeForbidden},
		{auth.ProblemUnavailable, apiclient.TypeUnavailable},
	} {
		if tt.auth != tt.client {
			t.Errorf("auth problem type %q, apiclient %q", tt.auth, tt.client)
		}
	}
}
