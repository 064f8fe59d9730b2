package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/auth"
)

// TestMerchantOutsidePolicyRefused (review round 3): a merchant the policy
// no longer names (removed by a reload: offboarded, or cut off) kept a
// merchant token valid for up to 90 days, and with it read every model the
// federation published after it left (GET /v1/models, /v1/models/{v}) and
// its session, although the round routes already refused it. As a partner
// without a grant is refused on every route, so is a merchant token whose
// merchant the policy in force does not name (403, naming why); a merchant
// the policy names is served as before.
func TestMerchantOutsidePolicyRefused(t *testing.T) {
	st := openStore(t)
	k, pol := parts(t) // the policy names shop-a only
	a, err := New(t.Context(), Options{Store: st, Keys: k, Policy: pol, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ts := httptest.NewServer(a.API)
	t.Cleanup(ts.Close)
	tok := func(id string) string {
		s, _, err := a.Issuer.Issue(auth.Grant{Subject: id, Role: auth.RoleMerchant, Merchants: []string{id}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	get := func(path, token string) (int, string) {
		t.Helper()
		return request(t, ts, "GET", path, token, "")
	}
	in, out := tok("shop-a"), tok("shop-gone")
	for _, path := range []string{"/v1/models", "/v1/models/active", "/v1/models/1", "/v1/session"} {
		if code, body := get(path, in); code != 200 {
			t.Errorf("GET %s as shop-a (in the policy): %d %.200s, want 200", path, code, body)
		}
		if code, body := get(path, out); code != 403 || !strings.Contains(body, "policy") {
			t.Errorf("GET %s as shop-gone (not in the policy): %d %.200s, want 403 naming the policy", path, code, body)
		}
	}
}
