package policies

import (
	"os"
	"strings"
	"testing"
)

// TestAddMerchant: adding shop-1 (eu, partner crm-app) and shop-2 (us, the
// same partner) to the starter policy gives a policy that grants what was
// asked and keeps the file's comments; adding shop-1 again changes nothing;
// another region for it, an undefined region and a bad id are refused.
func TestAddMerchant(t *testing.T) {
	data, err := os.ReadFile("examples/starter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("starter.yaml", data); err != nil {
		t.Fatalf("starter policy: %v", err)
	}
	one, err := AddMerchant("starter.yaml", data, MerchantEntry{ID: "shop-1", Region: "eu", Partners: []string{"crm-app"}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := AddMerchant("starter.yaml", one, MerchantEntry{ID: "shop-2", Region: "us", Partners: []string{"crm-app"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("two.yaml", two)
	if err != nil {
		t.Fatalf("result: %v\n%s", err, two)
	}
	if got := strings.Join(p.Merchants(), ","); got != "shop-1,shop-2" {
		t.Errorf("merchants: got %s, want shop-1,shop-2", got)
	}
	m1, _ := p.Merchant("shop-1")
	m2, _ := p.Merchant("shop-2")
	if m1.Region != "eu" || m2.Region != "us" || m1.EpsilonCap != 1 || m1.Delta != 1e-6 {
		t.Errorf("shop-1 %+v, shop-2 %+v: want regions eu/us under the defaults (ε 1, δ 1e-6)", m1, m2)
	}
	pp, err := p.Partner("crm-app")
	if err != nil {
		t.Fatal(err)
	}
	if pp.RatePerSecond != DefaultPartnerRate || pp.Burst != DefaultPartnerBurst || !p.MayQuery("crm-app", "shop-1") || !p.MayQuery("crm-app", "shop-2") {
		t.Errorf("crm-app: got %+v, want both shops at %d/s burst %d", pp, DefaultPartnerRate, DefaultPartnerBurst)
	}
	if !strings.Contains(string(two), "# lifetime ε of each merchant") {
		t.Error("comments lost")
	}
	again, err := AddMerchant("two.yaml", two, MerchantEntry{ID: "shop-1", Region: "eu", Partners: []string{"crm-app"}})
	if err != nil || string(again) != string(two) {
		t.Errorf("adding shop-1 again: err %v, changed %v", err, string(again) != string(two))
	}
	for _, c := range []struct {
		e    MerchantEntry
		want string
	}{
		{MerchantEntry{ID: "shop-1", Region: "us"}, `region "eu", not "us"`},
		{MerchantEntry{ID: "shop-3", Region: "mars"}, "not a valid policy"},
		{MerchantEntry{ID: "bad id"}, `id "bad id"`},
		{MerchantEntry{ID: "shop-3", Partners: []string{"a b"}}, `partner id "a b"`},
	} {
		if _, err := AddMerchant("two.yaml", two, c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error with %q", c.e, err, c.want)
		}
	}
}
