package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMiddleware(t *testing.T) {
	v := newTestVerifier(t, nil)
	partner := forge(t, goodHeader(), goodClaims(), edSign(key1))
	admin := forge(t, goodHeader(), with(goodClaims(), "role", "admin", "merchants", nil), edSign(key1))
	expired := forge(t, goodHeader(), with(goodClaims(), "exp", testNow.Add(-3*testLeeway).Unix()), edSign(key1))

	var seen *Claims
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			t.Error("handler reached without claims")
		}
		seen = c
		w.WriteHeader(http.StatusNoContent)
	})
	h := Middleware(v, RequireRole(inner, RoleAdmin, RoleCompliance))

	tests := []struct {
		name      string
		auth      []string
		status    int
		challenge string
		detail    string
	}{
		{"admin passes", []string{"Bearer " + admin}, http.StatusNoContent, "", ""},
		{"scheme is case-insensitive", []string{"bearer " + admin}, http.StatusNoContent, "", ""},
		{"partner lacks the role", []string{"Bearer " + partner}, http.StatusForbidden,
			`Bearer realm="kairos", error="insufficient_scope"`, "role partner may not do this"},
		{"no header", nil, http.StatusUnauthorized, `Bearer realm="kairos"`, "no bearer token"},
		{"basic auth", []string{"Basic YTpi"}, http.StatusUnauthorized, `Bearer realm="kairos"`, "no bearer token"},
		{"two headers", []string{"Bearer " + admin, "Bearer " + admin}, http.StatusUnauthorized, `Bearer realm="kairos"`, "no bearer token"},
		{"garbage token", []string{"Bearer abc"}, http.StatusUnauthorized,
			`Bearer realm="kairos", error="invalid_token"`, "token malformed"},
		{"expired", []string{"Bearer " + expired}, http.StatusUnauthorized,
			`Bearer realm="kairos", error="invalid_token"`, "token expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodGet, "/v1/budgets", nil)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status: got %d, want %d (body %s)", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate: got %q, want %q", got, tt.challenge)
			}
			if tt.status == http.StatusNoContent {
				if seen == nil || seen.Role != RoleAdmin {
					t.Errorf("handler claims: got %+v, want role admin", seen)
				}
				return
			}
			if seen != nil {
				t.Errorf("handler reached with status %d", tt.status)
			}
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %q: %v", w.Body, err)
			}
			if p.Status != tt.status || p.Detail != tt.detail {
				t.Errorf("problem: got status %d detail %q, want %d %q", p.Status, p.Detail, tt.status, tt.detail)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type: got %q, want application/problem+json", ct)
			}
		})
	}
}

func TestMiddlewareStoreDown(t *testing.T) {
	h := Middleware(newTestVerifier(t, failingStore{}), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("handler reached while the revocation store is down")
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+forge(t, goodHeader(), goodClaims(), edSign(key1)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want 503", w.Code)
	}
}

func TestRequireRoleWithoutMiddleware(t *testing.T) {
	h := RequireRole(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler reached") }), RoleAdmin)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("status: got %d, want 401", w.Code)
	}
}
