package apiclient

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewValidatesBaseURL(t *testing.T) {
	tests := []struct {
		base, token string
		ok          bool
	}{
		{"http://127.0.0.1:8700", "t", true},
		{"https://agg.example/prefix/", "", true},
		{"ftp://agg.example", "t", false},
		{"127.0.0.1:8700", "t", false},
		{"http://", "t", false},
		{"http://agg.example?x=1", "t", false},
		{"http://user:pw@agg.example", "t", false},
		{"http://agg.example", "a b", false},
	}
	for _, tt := range tests {
		_, err := New(tt.base, tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q, %q): got err %v, want ok=%v", tt.base, tt.token, err, tt.ok)
		}
	}
}

// TestProblemDecoding serves hand-written answers and checks what the client
// makes of them.
// TestNewRefusesTokenInClear: a plain-http base URL whose host is not
// loopback would send the bearer token across the network in clear.
func TestNewRefusesTokenInClear(t *testing.T) {
	for _, tt := range []struct {
		base     string
		insecure bool
		ok       bool
	}{
		{"http://localhost:8700", false, true},
		{"http://LOCALHOST", false, true},
		{"http://127.0.0.1", false, true},
		{"http://127.9.9.9:1", false, true},
		{"http://[::1]:8700", false, true},
		{"https://agg.example", false, true},
		{"http://agg.example:8700", false, false},
		{"http://10.1.2.3:8700", false, false},
		{"http://[2001:db8::1]:8700", false, false},
		{"http://localhost.evil.example", false, false},
		{"http://agg.example:8700", true, true},
	} {
		var opts []Option
		if tt.insecure {
			opts = append(opts, WithInsecureHTTP())
		}
		_, err := New(tt.base, "t", opts...)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q, insecure %v): err %v, want ok=%v", tt.base, tt.insecure, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInsecureHTTP) {
			t.Errorf("New(%q): %v, want ErrInsecureHTTP", tt.base, err)
		}
	}
}

func TestProblemDecoding(t *testing.T) {
	tests := []struct {
		name       string
		ct, body   string
		status     int
		retryAfter string
		want       Problem
	}{
		{"problem", "application/problem+json",
			`{"type":"` + TypeRoundClosed + `","title":"Conflict","status":409,"detail":"round closed","instance":"/v1/rounds/r1/updates","request_id":"x-1"}`,
			409, "", Problem{Status: 409, Type: TypeRoundClosed, Title: "Conflict", Detail: "round closed", Instance: "/v1/rounds/r1/updates", RequestID: "x-1"}},
		{"plain text from a proxy", "text/plain", "upstream connect error\n", 502, "",
			Problem{Status: 502, Type: "about:blank", Title: "Bad Gateway", Detail: "upstream connect error"}},
		{"broken problem json", "application/problem+json", `{"type":`, 500, "",
			Problem{Status: 500, Type: "about:blank", Title: "Internal Server Error"}},
		{"status disagrees with header", "application/problem+json", `{"status":200,"title":"OK"}`, 429, "7",
			Problem{Status: 429, Type: "about:blank", Title: "OK", RetryAfter: 7 * time.Second}},
		// A hostile or broken server's Retry-After held the merchant's
		// client asleep for up to 292 years (9223372036 s), or wrapped the
		// duration; it is capped at MaxRetryAfter (review round 5).
		{"retry after 292 years", "application/problem+json", `{"status":503}`, 503, "9223372036",
			Problem{Status: 503, Type: "about:blank", Title: "Service Unavailable", RetryAfter: MaxRetryAfter}},
		{"retry after past int64 nanoseconds", "application/problem+json", `{"status":429}`, 429, "99999999999",
			Problem{Status: 429, Type: "about:blank", Title: "Too Many Requests", RetryAfter: MaxRetryAfter}},
		{"retry after one hour", "application/problem+json", `{"status":429}`, 429, "3600",
			Problem{Status: 429, Type: "about:blank", Title: "Too Many Requests", RetryAfter: MaxRetryAfter}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer tok" {
					t.Errorf("Authorization = %q", got)
				}
				w.Header().Set("Content-Type", tt.ct)
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer ts.Close()
			c, err := New(ts.URL, "tok")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Models(t.Context())
			p, ok := errors.AsType[*Problem](err)
			if !ok {
				t.Fatalf("got %T %v, want *Problem", err, err)
			}
			if *p != tt.want {
				t.Errorf("got %+v, want %+v", *p, tt.want)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Status: 403, Type: TypeBudgetExhausted, Detail: "privacy budget exhausted"}, "kairos api: 403 budget-exhausted: privacy budget exhausted"},
		{Problem{Status: 401, Type: "about:blank"}, "kairos api: 401 unauthorized"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestSuccessBodyIsDecodedAndBounded(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/rounds/current":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"r9","seq":9,"state":"collecting"}`))
		case "/v1/rounds/r/1/updates": // the decoded path of an escaped "r/1"
			if r.URL.RawPath != "/v1/rounds/r%2F1/updates" || r.Header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("round id not escaped (%q) or wrong type %q", r.URL.RawPath, r.Header.Get("Content-Type"))
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"update_id":"u7","round":"r/1"}`))
		default:
			_, _ = w.Write([]byte("not json"))
		}
	}))
	defer ts.Close()
	c, _ := New(ts.URL, "tok")
	r, err := c.CurrentRound(t.Context())
	if err != nil || r.ID != "r9" || r.Seq != 9 || r.State != "collecting" {
		t.Errorf("got %+v, %v", r, err)
	}
	if _, err := c.Models(t.Context()); err == nil || !strings.Contains(err.Error(), "decode response") {
		t.Errorf("got %v, want a decode error", err)
	}
	if rc, err := c.SubmitUpdate(t.Context(), "r/1", []byte("env")); err != nil || rc.UpdateID != "u7" {
		t.Errorf("submit: got %+v, %v", rc, err)
	}
	if _, err := c.SubmitUpdate(t.Context(), "", nil); err == nil {
		t.Errorf("empty round id accepted")
	}
}
