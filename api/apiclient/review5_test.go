package apiclient

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestRedirectDoesNotCarryToken: New refuses a plain http:// base URL to a
// host that is not loopback, so that the bearer token never crosses the
// network in clear (review round 3), but the HTTP client followed redirects,
// and Go forwards the Authorization header to the same host on any scheme:
// an https aggregator (or a proxy in front of it, misconfigured) answering
// 301 to http:// on that host had the merchant's 90-day token sent in
// clear. Here an https server redirects to a plain http server on the same
// loopback host; the plain server must receive no token, and the client
// must fail naming the redirect. The API never redirects a client that uses
// its canonical paths, so no redirect is followed at all.
func TestRedirectDoesNotCarryToken(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"models":[]}`))
	}))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer tlsSrv.Close()
	for _, opts := range [][]Option{nil, {WithHTTPClient(tlsSrv.Client())}} {
		c, err := New(tlsSrv.URL, "secret-token", opts...)
		if err != nil {
			t.Fatal(err)
		}
		if opts == nil {
			c.hc.Transport = tlsSrv.Client().Transport // the default client, trusting the test server
		}
		_, err = c.Models(t.Context())
		if p, ok := errors.AsType[*Problem](err); !ok || p.Status != http.StatusMovedPermanently || !strings.Contains(p.Detail, "redirect") {
			t.Errorf("Models through a redirect: %v; want a 301 problem naming the redirect", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, h := range leaked {
		if h != "" {
			t.Errorf("request %d to the plain http server carried Authorization %q", i, h)
		}
	}
	if len(leaked) != 0 {
		t.Errorf("the client followed %d redirects, want none", len(leaked))
	}
}
