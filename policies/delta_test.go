package policies

import (
	"strings"
	"testing"
)

// TestDeltaBoundedAlways: δ used to be bounded only by 1/min_customers_per_update,
// so min_customers_per_update: 1 let a policy set δ = 0.5, at which the demo's
// ε = 1 releases read ε = 0 and every cap is met. δ is now at most MaxDelta at
// every level, whatever min_customers_per_update says.
func TestDeltaBoundedAlways(t *testing.T) {
	lax := strings.Replace(okHead, "min_customers_per_update: 100", "min_customers_per_update: 1", 1)
	tests := []struct {
		name, src, want string
	}{
		{"defaults", strings.Replace(lax, "delta: 1e-6", "delta: 0.5", 1),
			`policy.yaml:5:10: delta: must be in (0, 0.0001], got 0.5`},
		{"region", lax + "regions:\n  eu: {delta: 0.001}\nmerchants:\n  m1: {region: eu}\n",
			`policy.yaml:12:15: delta: must be in (0, 0.0001], got 0.001`},
		{"merchant", lax + "merchants:\n  m1: {delta: 0.3}\n",
			`policy.yaml:12:15: delta: must be in (0, 0.0001], got 0.3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("policy.yaml", []byte(tt.src))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
	p, err := Parse("policy.yaml", []byte(strings.Replace(lax, "delta: 1e-6", "delta: 1e-4", 1)+"merchants:\n  m1: {}\n"))
	if err != nil {
		t.Fatalf("δ = MaxDelta: %v", err)
	}
	if m, err := p.Merchant("m1"); err != nil || m.Delta != MaxDelta {
		t.Errorf("m1: δ %v, %v; want %v", m.Delta, err, MaxDelta)
	}
}
