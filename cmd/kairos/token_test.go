package main

import (
	"bytes"
	"testing"
)

// runToken runs `kairos token args...` and returns its standard output. The
// token commands themselves are tested by testdata/script/token.txtar.
func runToken(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newTokenCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	return out.String(), err
}
