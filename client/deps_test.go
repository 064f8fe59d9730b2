package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the merchant client on its side of the federation: it may
// use the model packages (the classic BG/NBD features included), privacy,
// crypto and ingest packages, the protocol messages, the secure-aggregation
// protocol it runs its side of (aggregator/secagg, aggregator/secureplan,
// dp/distributed) and the API's Go client, but never the aggregator, its store, the audit log
// or the in-process simulation (the design's layering table).
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	const mod = "github.com/kairos-fl/kairos/"
	allowed := []string{
		"aggregator/protocol", "aggregator/secagg", "aggregator/secureplan", "api/apiclient", "api/auth", "client", "client/ingest", "client/train",
		"crypto/keys", "crypto/pseudonym", "crypto/seal", "dp", "dp/distributed", "model", "model/bgnbd", "model/feature", "model/fedeval", "model/hazard", "model/metrics",
	}
	for _, dep := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(dep, mod)
		if !ok {
			continue
		}
		found := false
		for _, a := range allowed {
			found = found || rel == a
		}
		if !found {
			t.Errorf("client depends on %s", dep)
		}
	}
}
