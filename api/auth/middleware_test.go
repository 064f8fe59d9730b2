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

func TestRequireMerchant(t *testing.T) {
	v := newTestVerifier(t, nil)
	tokens := map[string]string{
		"partner m1,m2": forge(t, goodHeader(), goodClaims(), edSign(key1)),
		"merchant m1":   forge(t, goodHeader(), with(goodClaims(), "sub", "m1", "role", "merchant", "merchants", []string{"m1"}), edSign(key1)),
		"admin":         forge(t, goodHeader(), with(goodClaims(), "role", "admin", "merchants", nil), edSign(key1)),
		"compliance":    forge(t, goodHeader(), with(goodClaims(), "role", "compliance", "merchants", nil), edSign(key1)),
	}
	h := Middleware(v, RequireMerchant(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), func(r *http.Request) string { return r.URL.Query().Get("merchant") }))
	tests := []struct {
		who, merchant string
		want          int
	}{
		{"partner m1,m2", "m2", http.StatusNoContent},
		{"partner m1,m2", "m3", http.StatusForbidden},
		{"merchant m1", "m1", http.StatusNoContent},
		{"merchant m1", "m2", http.StatusForbidden},
		{"admin", "m9", http.StatusNoContent},
		{"compliance", "m1", http.StatusForbidden},
		{"partner m1,m2", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/v1/predict?merchant="+tt.merchant, nil)
		r.Header.Set("Authorization", "Bearer "+tokens[tt.who])
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s asking for %q: got %d, want %d", tt.who, tt.merchant, w.Code, tt.want)
		}
	}
}
