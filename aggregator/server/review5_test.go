package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/api/auth"
)

// TestMerchantRateFromConfig: kairos.yaml's limits.merchant_rate_per_second
// and limits.merchant_burst reach the API: with a burst of 3 the fourth
// request of a merchant at once is 429, and another merchant is served.
func TestMerchantRateFromConfig(t *testing.T) {
	st := openStore(t)
	k, pol := parts(t) // the policy names shop-a only
	a, err := New(t.Context(), Options{Store: st, Keys: k, Policy: pol, Source: "test",
		Limits: config.Limits{MerchantRatePerSecond: 0.01, MerchantBurst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ts := httptest.NewServer(a.API)
	t.Cleanup(ts.Close)
	tok, _, err := a.Issuer.Issue(auth.Grant{Subject: "shop-a", Role: auth.RoleMerchant, Merchants: []string{"shop-a"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{200, 200, 200, 429} {
		if code, body := request(t, ts, "GET", "/v1/session", tok, ""); code != want || (want == 429 && !strings.Contains(body, "rate")) {
			t.Errorf("request %d of shop-a: %d %.200s, want %d", i, code, body, want)
		}
	}
}
