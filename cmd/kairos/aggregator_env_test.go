package main

import (
	"os"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/config"
)

// TestEnvDocumented: every environment variable the commands read is
// documented for operators (aggregator/config tests what each one does).
func TestEnvDocumented(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(config.EnvVars, config.EnvConfig, envPassphrase, envPassphraseFile, envClientConfig, envAggregator, envTokenFile) {
		if !strings.Contains(string(ops), k) {
			t.Errorf("docs/operations.md does not document $%s", k)
		}
	}
}
