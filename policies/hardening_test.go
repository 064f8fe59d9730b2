package policies

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzAddMerchant (hardening review, session 18): `kairos aggregator enrol
// --add-to-policy` rewrites the policy file. For any file Parse accepts and
// any merchant and partner ids, AddMerchant never panics, and what it
// returns parses and names the merchant (granted to the partner when one is
// given); it never changes what it does not add.
func FuzzAddMerchant(f *testing.F) {
	for _, name := range []string{"examples/starter.yaml", "examples/cdnow-demo.yaml", "examples/eu-us.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "shop-1", "eu", "crm")
		f.Add(b, "cdnow-1", "", "")
	}
	f.Add([]byte("version: 1\nfederation: x\ndefaults: {epsilon_cap: 1, delta: 1e-6, min_noise_multiplier: 0.5, clip_norm: 1, min_customers_per_update: 100}\nmerchants:\n"), "m", "", "p")
	f.Fuzz(func(t *testing.T, data []byte, id, region, partner string) {
		before, err := Parse("p.yaml", data)
		if err != nil {
			return
		}
		e := MerchantEntry{ID: id, Region: region}
		if partner != "" {
			e.Partners = []string{partner}
		}
		out, err := AddMerchant("p.yaml", data, e)
		if err != nil {
			return
		}
		after, err := Parse("p.yaml", out)
		if err != nil {
			t.Fatalf("AddMerchant returned a policy Parse refuses: %v\n%s", err, out)
		}
		if _, err := after.Merchant(id); err != nil {
			t.Fatalf("merchant %q missing after AddMerchant: %v\n%s", id, err, out)
		}
		for _, m := range before.Merchants() {
			if _, err := after.Merchant(m); err != nil {
				t.Fatalf("merchant %q lost: %v", m, err)
			}
		}
		if partner != "" && !strings.Contains(string(out), partner) {
			t.Fatalf("partner %q not in the result", partner)
		}
	})
}

// FuzzParseDays: the retraining durations never panic; "Nd" is exactly N
// days, 0 ≤ N ≤ 36,600, and anything else accepted is what
// time.ParseDuration reads.
func FuzzParseDays(f *testing.F) {
	for _, s := range []string{"30d", "720h", "90m", "-1d", "36601d", "+7d", "1.5d", "d", "9223372036854775807d", "-5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDays(s)
		if err != nil {
			return
		}
		if n, ok := strings.CutSuffix(s, "d"); ok {
			days, aerr := strconv.Atoi(n)
			if aerr != nil || days < 0 || days > 100*366 || d != time.Duration(days)*24*time.Hour {
				t.Fatalf("ParseDays(%q) = %v", s, d)
			}
			return
		}
		if want, perr := time.ParseDuration(s); perr != nil || d != want {
			t.Fatalf("ParseDays(%q) = %v, time.ParseDuration: %v, %v", s, d, want, perr)
		}
	})
}
