package api

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
)

// TestPartnerRateLimit: a partner granted 2 requests a second with a burst of
// 3 gets 3 answers at once, then 429 with Retry-After until the clock moves;
// a partner the policy does not know gets 403; other roles are not limited.
func TestPartnerRateLimit(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	grants := func(id string) (float64, int, error) {
		if id == "crm" {
			return 2, 3, nil
		}
		return 0, 0, errors.New("partner not in policy")
	}
	f := newFixture(t, &fakeService{}, Options{Partners: grants, Now: clock.Now})
	stranger := issue(t, f.issuer, auth.Grant{Subject: "spy", Role: auth.RolePartner, Merchants: []string{"m1"}, TTL: time.Hour})

	get := func(token string) (int, string, string) {
		t.Helper()
		rec := f.do(t, "GET", "/v1/models", token, "", nil)
		typ := ""
		if rec.Code >= 400 {
			typ = problemOf(t, rec).Type
		}
		return rec.Code, rec.Header().Get("Retry-After"), typ
	}
	steps := []struct {
		advance    time.Duration
		token      string
		want       int
		retryAfter string
		typ        string
	}{
		{0, "partner", 200, "", ""},
		{0, "partner", 200, "", ""},
		{0, "partner", 200, "", ""},
		{0, "partner", 429, "1", apiclient.TypeRateLimited}, // 0 tokens, 0.5 s to the next
		{0, "admin", 200, "", ""},
		{0, "compliance", 200, "", ""},
		{400 * time.Millisecond, "partner", 429, "1", apiclient.TypeRateLimited}, // 0.8 tokens
		{100 * time.Millisecond, "partner", 200, "", ""},                         // 1.0 token
		{0, "partner", 429, "1", apiclient.TypeRateLimited},
		{10 * time.Second, "partner", 200, "", ""}, // refilled to the burst, not beyond
		{0, "partner", 200, "", ""},
		{0, "partner", 200, "", ""},
		{0, "partner", 429, "1", apiclient.TypeRateLimited},
	}
	for i, st := range steps {
		clock.Add(st.advance)
		code, ra, typ := get(f.tokens[st.token])
		if code != st.want || ra != st.retryAfter || typ != st.typ {
			t.Errorf("step %d (%s): got %d, Retry-After %q, type %q; want %d, %q, %q", i, st.token, code, ra, typ, st.want, st.retryAfter, st.typ)
		}
	}
	if code, _, typ := get(stranger); code != 403 || typ != apiclient.TypeForbidden {
		t.Errorf("partner without a grant: got %d %s, want 403 forbidden", code, typ)
	}
}

// TestPartnerRateLimitRetryAfter checks the Retry-After rounding against a
// slow grant: at 0.25 requests a second, the second request waits 4 s.
func TestPartnerRateLimitRetryAfter(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	f := newFixture(t, &fakeService{}, Options{Partners: func(string) (float64, int, error) { return 0.25, 1, nil }, Now: clock.Now})
	for i, want := range []string{"", "4"} {
		rec := f.do(t, "GET", "/v1/models", f.tokens["partner"], "", nil)
		if got := rec.Header().Get("Retry-After"); got != want {
			t.Errorf("request %d: Retry-After %q, want %q", i, got, want)
		}
	}
	clock.Add(2500 * time.Millisecond) // 0.625 tokens: 1.5 s to go, rounded up
	rec := f.do(t, "GET", "/v1/models", f.tokens["partner"], "", nil)
	if got := rec.Header().Get("Retry-After"); got != fmt.Sprint(2) {
		t.Errorf("after 2.5 s: Retry-After %q, want 2", got)
	}
}

// TestPartnerGrantReloaded: the limiter follows the policy as it is now, not
// as it was at the partner's first request. A reload that lowers a partner's
// rate to 1 every 10 s with a burst of 1 holds it to that at once (before: it
// kept its first bucket, 3 at once and 2 a second, until a restart), and one
// that removes the partner refuses it with 403 (before: it kept passing at
// its old rate, to every route its role reaches).
func TestPartnerGrantReloaded(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	rate, burst, granted := 2.0, 3, true
	grants := func(string) (float64, int, error) {
		mu.Lock()
		defer mu.Unlock()
		if !granted {
			return 0, 0, errors.New("partner not in policy")
		}
		return rate, burst, nil
	}
	reload := func(r float64, b int, g bool) {
		mu.Lock()
		defer mu.Unlock()
		rate, burst, granted = r, b, g
	}
	f := newFixture(t, &fakeService{}, Options{Partners: grants, Now: clock.Now})
	get := func() int {
		t.Helper()
		return f.do(t, "GET", "/v1/models", f.tokens["partner"], "", nil).Code
	}
	if code := get(); code != 200 {
		t.Fatalf("first request under the first grant: %d", code)
	}
	reload(0.1, 1, true)
	clock.Add(time.Second) // the old grant would have 3 tokens again
	for i, want := range []int{200, 429} {
		if code := get(); code != want {
			t.Errorf("request %d after the rate was lowered: %d, want %d", i, code, want)
		}
	}
	clock.Add(10 * time.Second)
	if code := get(); code != 200 {
		t.Errorf("after 10 s at 0.1/s: %d, want 200", code)
	}
	reload(0, 0, false)
	clock.Add(time.Minute)
	rec := f.do(t, "GET", "/v1/models", f.tokens["partner"], "", nil)
	if rec.Code != 403 || problemOf(t, rec).Type != apiclient.TypeForbidden {
		t.Errorf("partner removed from the policy: %d, want 403 forbidden", rec.Code)
	}
	reload(2, 3, true)
	if code := get(); code != 200 {
		t.Errorf("partner granted again: %d, want 200", code)
	}
}
