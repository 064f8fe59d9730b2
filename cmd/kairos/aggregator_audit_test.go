package main

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestAggConfigAudit: init configures a witness file, the audit section is
// parsed strictly, and a negative checkpoint interval is refused by name.
func TestAggConfigAudit(t *testing.T) {
	def := defaultAggConfig("127.0.0.1:8700", "sqlite:kairos.db")
	if def.Audit.Witness != "audit-witness.jsonl" || def.Audit.CheckpointInterval != 0 {
		t.Errorf("init's audit section = %+v, want the witness audit-witness.jsonl and the default interval", def.Audit)
	}
	base, err := yaml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(base), "witness: audit-witness.jsonl") {
		t.Fatalf("init's config does not name the witness:\n%s", base)
	}
	body := strings.Replace(string(base), "witness: audit-witness.jsonl", "", 1) // re-added per case below
	for _, tc := range []struct {
		audit    string
		interval time.Duration
		witness  string
		err      string
	}{
		{audit: "    checkpoint_interval: 250ms\n    witness: /srv/w.jsonl\n", interval: 250 * time.Millisecond, witness: "/srv/w.jsonl"},
		{audit: "    checkpoint_interval: -1s\n", err: "audit.checkpoint_interval: -1s is negative"},
		{audit: "    witnes: w.jsonl\n", err: "field witnes not found"},
	} {
		c, err := parseAggConfig("kairos.yaml", []byte(strings.Replace(body, "audit:\n", "audit:\n"+tc.audit, 1)))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("audit %q: err = %v, want %q", tc.audit, err, tc.err)
			}
		case err != nil:
			t.Errorf("audit %q: %v", tc.audit, err)
		case c.Audit.CheckpointInterval != tc.interval || c.Audit.Witness != tc.witness:
			t.Errorf("audit %q: got %+v, want interval %v witness %q", tc.audit, c.Audit, tc.interval, tc.witness)
		}
	}
}
